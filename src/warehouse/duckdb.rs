//! The embedded DuckDB engine: a read-only `.duckdb` file or a folder of Parquet files.

use std::collections::BTreeMap;
use std::path::Path;

use duckdb::types::{TimeUnit, Value};
use duckdb::{AccessMode, Config, Connection};

use crate::config::{Warehouse, WarehouseSource};

use super::query::{AggregateRow, Backend, Param, Params};
use super::sql::Dialect;
use super::{ColumnKind, WarehouseError};

/// An open, sandboxed connection to the warehouse.
pub struct DuckDb {
    connection: Connection,
    tables: BTreeMap<String, String>,
}

impl DuckDb {
    /// Opens the warehouse read-only; user SQL can then read nothing outside it.
    pub fn open(warehouse: &Warehouse) -> Result<DuckDb, WarehouseError> {
        let open_error = |path: &Path, e: &dyn std::fmt::Display, hint| WarehouseError::Open {
            location: path.display().to_string(),
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
                // A run reads each file's footer several times (views, the schema check, each
                // pass of the aggregation); the engine lives for one run, so it reads them once.
                connection
                    .execute_batch("SET parquet_metadata_cache = true;")
                    .map_err(|e| open_error(folder, &e, "an engine setting was refused"))?;
                register_parquet_tables(&connection, folder).map_err(|e| {
                    open_error(
                        folder,
                        &e,
                        "every x.parquet file or x/ folder of Parquet files becomes table x",
                    )
                })?;
                connection
            }
            WarehouseSource::Spark { remote } => {
                return Err(WarehouseError::Open {
                    location: remote.clone(),
                    message: "a Spark Connect endpoint is not a DuckDB warehouse".into(),
                    hint: "open it with warehouse::open, which picks the engine",
                })
            }
        };
        let _ = connection.execute_batch("SET TimeZone = 'UTC';");
        Ok(DuckDb {
            connection,
            tables: warehouse.tables.clone(),
        })
    }
}

impl Backend for DuckDb {
    fn dialect(&self) -> Dialect {
        Dialect::DuckDb
    }

    fn tables(&self) -> &BTreeMap<String, String> {
        &self.tables
    }

    fn schema(&self, text: &str, params: &Params) -> Result<Vec<(String, ColumnKind)>, String> {
        let mut statement = self.prepare(text, params)?;
        statement.raw_execute().map_err(|e| clean_message(&e))?;
        Ok(statement
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), column_kind(f.data_type())))
            .collect())
    }

    fn rows(&self, text: &str, params: &Params) -> Result<Vec<AggregateRow>, String> {
        let mut statement = self.prepare(text, params)?;
        statement.raw_execute().map_err(|e| e.to_string())?;
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| e.to_string())? {
            let read = || -> duckdb::Result<AggregateRow> {
                Ok(AggregateRow {
                    reason: row.get(0)?,
                    counted: row.get(1)?,
                    batch: row.get(2)?,
                    arm_key: row.get(3)?,
                    exposures: row.get(4)?,
                    units: row.get(5)?,
                    conversions: row.get(6)?,
                    value_sum: row.get(7)?,
                    value_sq_sum: row.get(8)?,
                    first_us: row.get(9)?,
                    last_us: row.get(10)?,
                    context: row.get(11)?,
                })
            };
            out.push(read().map_err(|e| e.to_string())?);
        }
        Ok(out)
    }

    /// DuckDB's version, for the run record.
    fn version(&self) -> String {
        self.connection
            .query_row("SELECT library_version FROM pragma_version()", [], |row| {
                row.get(0)
            })
            .unwrap_or_else(|_| "unknown".into())
    }
}

impl DuckDb {
    /// Prepares `text` and binds each of its `$name` markers from `params`.
    fn prepare(&self, text: &str, params: &Params) -> Result<duckdb::Statement<'_>, String> {
        let mut statement = self
            .connection
            .prepare(text)
            .map_err(|e| clean_message(&e))?;
        for index in 1..=statement.parameter_count() {
            let name = statement
                .parameter_name(index)
                .map_err(|e| clean_message(&e))?;
            let value = match params.get(&name)? {
                Param::Text(text) => Value::Text(text.clone()),
                Param::BigInt(value) => Value::BigInt(*value),
                Param::Timestamp(micros) => Value::Timestamp(TimeUnit::Microsecond, *micros),
            };
            statement
                .raw_bind_parameter(index, value)
                .map_err(|e| clean_message(&e))?;
        }
        Ok(statement)
    }
}

/// The kind of a DuckDB (Arrow) column type.
fn column_kind(data_type: &duckdb::arrow::datatypes::DataType) -> ColumnKind {
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
        | T::UInt64
        | T::Float16
        | T::Float32
        | T::Float64
        | T::Decimal128(..)
        | T::Decimal256(..) => ColumnKind::Numeric,
        T::Boolean => ColumnKind::Boolean,
        other => ColumnKind::Other(other.to_string()),
    }
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
            Dialect::DuckDb.quote_identifier(name),
            literal(&source)
        ));
    }
    statements.push("SET lock_configuration = true".into());
    connection
        .execute_batch(&statements.join(";\n"))
        .map_err(|e| e.to_string())
}
