//! The embedded DuckDB engine: a read-only `.duckdb` file or a folder of Parquet files.

use std::path::{Path, PathBuf};

use duckdb::types::{TimeUnit, Value};
use duckdb::{AccessMode, Config, Connection};

use crate::config::{Warehouse, WarehouseSource};

use super::scan::{BatchRow, ScanPlan, ScanResult};
use super::sql::{self, Unmatched};

#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("cannot open the warehouse {path}: {message}\n  hint: {hint}")]
    Open {
        path: PathBuf,
        message: String,
        hint: &'static str,
    },
    #[error("optimization `{optimization}`: the aggregation over exposures and metric `{metric}` failed: {message}\n  hint: {hint}")]
    Query {
        optimization: String,
        metric: String,
        message: String,
        hint: String,
    },
    /// The definition asks for something the data cannot give (an invalid definition, exit 3).
    #[error("optimization `{optimization}` has a holdout, but its exposures have no `{column}` column\n  hint: add a BOOLEAN `{column}` column (true for visitors held out on the baseline), map it under exposures.columns.holdout, or remove model.holdout")]
    MissingHoldout {
        optimization: String,
        column: String,
    },
}

/// An open, sandboxed connection to the warehouse.
pub struct DuckDb {
    connection: Connection,
    tables: std::collections::BTreeMap<String, String>,
}

impl DuckDb {
    /// Opens the warehouse read-only; user SQL can then read nothing outside it.
    pub fn open(warehouse: &Warehouse) -> Result<DuckDb, WarehouseError> {
        let open_error = |path: &Path, e: &dyn std::fmt::Display, hint| WarehouseError::Open {
            path: path.to_path_buf(),
            message: first_line(&e.to_string()),
            hint,
        };
        let mut config = Config::default()
            .enable_autoload_extension(false)
            .map_err(|e| open_error(Path::new(""), &e, "an engine setting was refused"))?;
        if let Some(limit) = &warehouse.memory_limit {
            config = config.max_memory(limit).map_err(|e| {
                open_error(Path::new(""), &e, "check warehouse.memory_limit, e.g. 1GB")
            })?;
        }
        if let Some(threads) = warehouse.threads {
            config = config
                .threads(i64::from(threads))
                .map_err(|e| open_error(Path::new(""), &e, "check warehouse.threads"))?;
        }
        let connection = match &warehouse.source {
            WarehouseSource::DuckDbFile(path) => {
                if !path.is_file() {
                    return Err(open_error(
                        path,
                        &"no such file",
                        "warehouse.path is resolved against the definitions file's folder",
                    ));
                }
                let config = config
                    .access_mode(AccessMode::ReadOnly)
                    .map_err(|e| open_error(path, &e, "an engine setting was refused"))?;
                let connection = Connection::open_with_flags(path, config).map_err(|e| {
                    open_error(
                        path,
                        &e,
                        "is it a DuckDB database, and not held open by a writer?",
                    )
                })?;
                connection
                    .execute_batch(
                        "SET enable_external_access = false; SET lock_configuration = true;",
                    )
                    .map_err(|e| open_error(path, &e, "an engine setting was refused"))?;
                connection
            }
            WarehouseSource::ParquetFolder(folder) => {
                if !folder.is_dir() {
                    return Err(open_error(
                        folder,
                        &"no such folder",
                        "warehouse.path is resolved against the definitions file's folder",
                    ));
                }
                let connection = Connection::open_in_memory_with_flags(config)
                    .map_err(|e| open_error(folder, &e, "the embedded engine did not start"))?;
                register_parquet_tables(&connection, folder).map_err(|e| {
                    open_error(
                        folder,
                        &e,
                        "every x.parquet file or x/ folder of Parquet files becomes table x",
                    )
                })?;
                connection
            }
        };
        let _ = connection.execute_batch("SET TimeZone = 'UTC';");
        Ok(DuckDb {
            connection,
            tables: warehouse.tables.clone(),
        })
    }

    /// DuckDB's version, for the run record.
    pub fn version(&self) -> String {
        self.connection
            .query_row("SELECT library_version FROM pragma_version()", [], |row| {
                row.get(0)
            })
            .unwrap_or_else(|_| "unknown".into())
    }

    /// The relation an exposure table name refers to, after `warehouse.tables`.
    fn table(&self, logical: &str) -> String {
        let target = self.tables.get(logical).map_or(logical, String::as_str);
        sql::quote_path(target)
    }

    /// The columns of a user relation (`exposures.table`/`exposures.sql` or a metric's SQL), found by
    /// running levered's own `SELECT * FROM (...) LIMIT 0` around it: the engine binds the SQL and
    /// reads no data. `$start`/`$end` are bound to `start_us`/`end_us`.
    pub fn columns(
        &self,
        relation: &str,
        start_us: i64,
        end_us: i64,
    ) -> Result<Vec<(String, ColumnKind)>, String> {
        let text = format!("SELECT * FROM {relation} AS q LIMIT 0");
        let mut statement = self
            .connection
            .prepare(&text)
            .map_err(|e| clean_message(&e))?;
        bind_reward_range(&mut statement, start_us, end_us)?;
        statement.raw_execute().map_err(|e| clean_message(&e))?;
        let schema = statement.schema();
        Ok(schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), ColumnKind::of(f.data_type())))
            .collect())
    }

    /// The relation of an optimization's exposure source, as the aggregation reads it.
    pub fn exposure_relation(&self, optimization: &crate::config::Optimization) -> String {
        sql::exposure_relation(optimization, |t| self.table(t))
    }

    /// Runs the aggregation of one optimization.
    pub fn aggregate(&self, plan: &ScanPlan<'_>) -> Result<ScanResult, WarehouseError> {
        let optimization = plan.optimization;
        let query_error = |e: duckdb::Error| {
            let message = e.to_string();
            WarehouseError::Query {
                optimization: optimization.name.clone(),
                metric: optimization.reward.name.clone(),
                hint: hint_for(&message),
                message,
            }
        };
        let relation = sql::exposure_relation(optimization, |t| self.table(t));
        let holdout_column = self
            .columns(&relation, plan.rewards_from_us(), plan.as_of_us)
            .map_err(|message| WarehouseError::Query {
                optimization: optimization.name.clone(),
                metric: optimization.reward.name.clone(),
                hint: hint_for(&message),
                message: format!("the exposure source: {message}"),
            })?
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(&optimization.exposures.columns.holdout));
        if optimization.model.holdout.is_some() && !holdout_column {
            return Err(WarehouseError::MissingHoldout {
                optimization: optimization.name.clone(),
                column: optimization.exposures.columns.holdout.clone(),
            });
        }
        let text = sql::aggregation(optimization, &relation, holdout_column);
        let mut statement = self.connection.prepare(&text).map_err(query_error)?;
        let factor_names: Vec<String> = optimization
            .factors
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let arms: Vec<serde_json::Value> = plan
            .arms
            .iter()
            .map(|(id, levels)| {
                serde_json::json!({"arm_id": id, "canonical": sql::canonical_variant(&factor_names, levels)})
            })
            .collect();
        let arms = serde_json::Value::Array(arms).to_string();
        let from_batch = plan.from_batch_us.unwrap_or(super::scan::BEGINNING_US);
        let arm_span = 2 * (i64::from(plan.arms.iter().map(|(id, _)| *id).max().unwrap_or(0)) + 1);
        for index in 1..=statement.parameter_count() {
            let name = statement.parameter_name(index).map_err(query_error)?;
            let value = match name.as_str() {
                "optimization" => Value::Text(optimization.name.clone()),
                "arms" => Value::Text(arms.clone()),
                "as_of_us" => Value::BigInt(plan.as_of_us),
                "exposures_from_us" => Value::BigInt(plan.exposures_from_us()),
                "from_batch_us" => Value::BigInt(from_batch),
                "window_us" => Value::BigInt(plan.window_us()),
                "batch_us" => Value::BigInt(plan.batch_us()),
                "context_factors" => Value::Text(
                    serde_json::Value::from(optimization.context_factors.clone()).to_string(),
                ),
                "arm_span" => Value::BigInt(arm_span),
                "start" => Value::Timestamp(TimeUnit::Microsecond, plan.rewards_from_us()),
                "end" => Value::Timestamp(TimeUnit::Microsecond, plan.as_of_us),
                other => {
                    return Err(WarehouseError::Query {
                        optimization: optimization.name.clone(),
                        metric: optimization.reward.name.clone(),
                        message: format!(
                            "the SQL uses the parameter `${other}`, which levered does not bind"
                        ),
                        hint: "metric and exposure SQL may use only $start and $end".into(),
                    })
                }
            };
            statement
                .raw_bind_parameter(index, value)
                .map_err(query_error)?;
        }
        statement.raw_execute().map_err(query_error)?;
        let mut rows = statement.raw_query();
        let mut result = ScanResult::default();
        while let Some(row) = rows.next().map_err(query_error)? {
            let reason: i32 = row.get(0).map_err(query_error)?;
            let counted: bool = row.get(1).map_err(query_error)?;
            let exposures: i64 = row.get(4).map_err(query_error)?;
            if let Some(reason) = Unmatched::from_code(reason) {
                *result.unmatched.entry(reason).or_default() += exposures;
                continue;
            }
            let first: Option<i64> = row.get(9).map_err(query_error)?;
            let last: Option<i64> = row.get(10).map_err(query_error)?;
            result.first_exposure_us = min_option(result.first_exposure_us, first);
            result.newest_exposure_us = result.newest_exposure_us.max(last);
            if counted {
                let batch: i64 = row.get(2).map_err(query_error)?;
                let arm_key = row.get::<_, i64>(3).map_err(query_error)? % arm_span;
                result.rows.push(BatchRow {
                    batch_start_us: batch * plan.batch_us(),
                    context: row
                        .get::<_, Option<String>>(11)
                        .map_err(query_error)?
                        .unwrap_or_else(|| "*".into()),
                    arm_id: (arm_key / 2) as u32,
                    holdout: arm_key % 2 == 1,
                    units: row.get(5).map_err(query_error)?,
                    conversions: row.get(6).map_err(query_error)?,
                    value_sum: row.get(7).map_err(query_error)?,
                    value_sq_sum: row.get(8).map_err(query_error)?,
                });
            }
        }
        Ok(result)
    }
}

/// The kind of a column, as far as the warehouse contract cares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum ColumnKind {
    Text,
    Timestamp,
    Numeric,
    Boolean,
    Other(String),
}

impl ColumnKind {
    fn of(data_type: &duckdb::arrow::datatypes::DataType) -> ColumnKind {
        use duckdb::arrow::datatypes::DataType as T;
        match data_type {
            T::Utf8 | T::LargeUtf8 | T::Utf8View => ColumnKind::Text,
            T::Timestamp(..) | T::Date32 | T::Date64 => ColumnKind::Timestamp,
            T::Int8
            | T::Int16
            | T::Int32
            | T::Int64
            | T::UInt8
            | T::UInt16
            | T::UInt32
            | T::UInt64 => ColumnKind::Numeric,
            T::Float16 | T::Float32 | T::Float64 | T::Decimal128(..) | T::Decimal256(..) => {
                ColumnKind::Numeric
            }
            T::Boolean => ColumnKind::Boolean,
            other => ColumnKind::Other(other.to_string()),
        }
    }
}

fn min_option(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Binds `$start`/`$end`; any other parameter is an error naming it.
fn bind_reward_range(
    statement: &mut duckdb::Statement<'_>,
    start_us: i64,
    end_us: i64,
) -> Result<(), String> {
    for index in 1..=statement.parameter_count() {
        let name = statement
            .parameter_name(index)
            .map_err(|e| clean_message(&e))?;
        let value = match name.as_str() {
            "start" => Value::Timestamp(TimeUnit::Microsecond, start_us),
            "end" => Value::Timestamp(TimeUnit::Microsecond, end_us),
            other => {
                return Err(format!(
                    "the SQL uses the parameter `${other}`; only $start and $end are bound"
                ))
            }
        };
        statement
            .raw_bind_parameter(index, value)
            .map_err(|e| clean_message(&e))?;
    }
    Ok(())
}

/// An engine message without the generated SQL it quotes.
fn clean_message(error: &duckdb::Error) -> String {
    let text = error.to_string();
    text.split("\n\nLINE ")
        .next()
        .unwrap_or(&text)
        .trim()
        .to_string()
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// A hint for the commonest engine errors.
fn hint_for(message: &str) -> String {
    if message.contains("does not exist") && message.contains("Table") {
        "check the table name; a Parquet folder exposes each x.parquet or x/ as table x".into()
    } else if message.contains("not found in FROM clause") || message.contains("Referenced column")
    {
        "the exposures need anonymous_id, timestamp, optimization_id and variant (map other names under exposures.columns); metric SQL returns anonymous_id, timestamp (and value for numeric metrics)".into()
    } else if message.contains("Parser Error") || message.contains("syntax error") {
        "the metric or exposure SQL must be one SELECT statement".into()
    } else if message.contains("Conversion Error") || message.contains("Could not convert") {
        "timestamp must be a TIMESTAMP and value numeric".into()
    } else {
        "run the metric SQL on its own to check it".into()
    }
}

/// Makes each `x.parquet` file and each `x/` folder of Parquet files a view `x`, then confines the
/// engine to reading that folder.
fn register_parquet_tables(connection: &Connection, folder: &Path) -> Result<(), String> {
    let folder = folder.canonicalize().map_err(|e| e.to_string())?;
    let mut entries: Vec<_> = std::fs::read_dir(&folder)
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    let literal = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "''"));
    let mut statements = vec![format!("SET allowed_directories = [{}]", literal(&folder))];
    statements.push("SET enable_external_access = false".into());
    for path in entries {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let source = if path.is_dir() {
            path.join("**").join("*.parquet")
        } else if path.extension().is_some_and(|e| e == "parquet") {
            path.clone()
        } else {
            continue;
        };
        statements.push(format!(
            "CREATE VIEW {} AS SELECT * FROM read_parquet({})",
            sql::quote_identifier(name),
            literal(&source)
        ));
    }
    statements.push("SET lock_configuration = true".into());
    connection
        .execute_batch(&statements.join(";\n"))
        .map_err(|e| e.to_string())
}
