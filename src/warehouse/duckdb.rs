//! The embedded DuckDB engine: a read-only `.duckdb` file or a folder of Parquet files.

use std::collections::BTreeMap;
use std::path::Path;

use duckdb::types::{TimeUnit, Value};
use duckdb::Connection;

use crate::config::{Warehouse, WarehouseSource};

use super::parquet::ParquetFolder;
use super::query::{micros, AggregateRow, Backend, Param, Params, TextPair};
use super::scan::MetricMicros;
use super::split::{self, Split};
use super::sql::Dialect;
use super::statement::Database;
use super::{ColumnKind, EngineError, WarehouseError};

/// An open, sandboxed connection to the warehouse.
pub struct DuckDb {
    /// Runs levered's queries; declared before `database` so that it is dropped first.
    connection: Connection,
    /// Checks every text before `connection` prepares it.
    database: Database,
    /// The tables of a Parquet-folder warehouse.
    folder: Option<ParquetFolder>,
    tables: BTreeMap<String, String>,
    /// Cancels `connection`'s running query from another thread.
    interrupt: std::sync::Arc<duckdb::InterruptHandle>,
    /// How scans are split: `warehouse.scan_parts`, else by the memory of a part.
    split: Split,
}

impl DuckDb {
    /// Opens the warehouse read-only; user SQL can then read nothing outside it.
    pub fn open(warehouse: &Warehouse) -> Result<DuckDb, WarehouseError> {
        let open_error = |path: &Path, e: &dyn std::fmt::Display, hint| WarehouseError::Open {
            location: path.display().to_string(),
            message: first_line(&e.to_string()),
            hint,
        };
        let mut settings = vec![
            ("autoinstall_known_extensions", "false".to_string()),
            ("autoload_known_extensions", "false".to_string()),
        ];
        if let Some(limit) = &warehouse.memory_limit {
            settings.push(("max_memory", limit.clone()));
        }
        if let Some(threads) = warehouse.threads {
            settings.push(("threads", threads.to_string()));
        }
        let (database, connection, folder) = match &warehouse.source {
            WarehouseSource::DuckDbFile(path) => {
                if !path.is_file() {
                    return Err(open_error(
                        path,
                        &"no such file",
                        "warehouse.path is resolved against the definitions file's folder",
                    ));
                }
                settings.push(("access_mode", "READ_ONLY".to_string()));
                let database = Database::open(Some(path), &settings).map_err(|e| {
                    open_error(
                        path,
                        &e,
                        "is it a DuckDB database, and not held open by a writer? (warehouse.memory_limit and warehouse.threads must be engine values such as 1GB and 2)",
                    )
                })?;
                let connection = database
                    .connect()
                    .map_err(|e| open_error(path, &e, "the embedded engine did not start"))?;
                connection
                    .execute_batch(
                        "SET enable_external_access = false; SET lock_configuration = true;",
                    )
                    .map_err(|e| open_error(path, &e, "an engine setting was refused"))?;
                (database, connection, None)
            }
            WarehouseSource::ParquetFolder(folder) => {
                if !folder.is_dir() {
                    return Err(open_error(
                        folder,
                        &"no such folder",
                        "warehouse.path is resolved against the definitions file's folder",
                    ));
                }
                let database = Database::open(None, &settings).map_err(|e| {
                    open_error(
                        folder,
                        &e,
                        "warehouse.memory_limit and warehouse.threads must be engine values such as 1GB and 2",
                    )
                })?;
                let connection = database
                    .connect()
                    .map_err(|e| open_error(folder, &e, "the embedded engine did not start"))?;
                // A run reads each file's footer several times (views, the schema check, each
                // pass of the aggregation); the engine lives for one run, so it reads them once.
                connection
                    .execute_batch("SET parquet_metadata_cache = true;")
                    .map_err(|e| open_error(folder, &e, "an engine setting was refused"))?;
                let tables = ParquetFolder::register(&connection, folder).map_err(|e| {
                    open_error(
                        folder,
                        &e,
                        "every x.parquet file or x/ folder of Parquet files becomes table x",
                    )
                })?;
                (database, connection, Some(tables))
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
            interrupt: connection.interrupt_handle(),
            connection,
            database,
            folder,
            tables: warehouse.tables.clone(),
            split: Split {
                parts: warehouse.scan_parts,
                memory: split::duckdb_part_memory(warehouse.memory_limit.as_deref()),
            },
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

    fn canceller(&self) -> Option<super::Cancel> {
        let interrupt = self.interrupt.clone();
        Some(std::sync::Arc::new(move || interrupt.interrupt()))
    }

    fn schema(
        &self,
        text: &str,
        params: &Params,
    ) -> Result<Vec<(String, ColumnKind)>, EngineError> {
        self.schema_of(text, params).map_err(|e| self.explain(e))
    }

    fn rows(&self, text: &str, params: &Params) -> Result<Vec<AggregateRow>, EngineError> {
        self.rows_of(text, params).map_err(|e| self.explain(e))
    }

    /// `warehouse.scan_parts`, else as many parts as keep each within `warehouse.memory_limit`
    /// (1 GiB when not set): the embedded engine's memory is levered's own.
    fn split(&self) -> Split {
        self.split
    }

    fn integer_pairs(&self, text: &str, params: &Params) -> Result<Vec<(i64, i64)>, EngineError> {
        self.integer_pairs_of(text, params)
            .map_err(|e| self.explain(e))
    }

    fn text_pairs(&self, text: &str, params: &Params) -> Result<Vec<TextPair>, EngineError> {
        self.collect(text, params, |row| {
            let pair = || -> duckdb::Result<TextPair> { Ok((row.get(0)?, row.get(1)?)) };
            pair().map_err(|e| failed(&e))
        })
        .map_err(|e| self.explain(e))
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
    /// An engine error, with the table and file behind it where a Parquet folder can tell.
    fn explain(&self, error: EngineError) -> EngineError {
        match (&self.folder, error) {
            (Some(folder), EngineError::Failed(message)) => {
                EngineError::Failed(folder.explain(&self.connection, message))
            }
            (_, error) => error,
        }
    }

    fn schema_of(
        &self,
        text: &str,
        params: &Params,
    ) -> Result<Vec<(String, ColumnKind)>, EngineError> {
        let mut statement = self.prepare(text, params)?;
        statement.raw_execute().map_err(|e| failed(&e))?;
        Ok(statement
            .schema()
            .fields()
            .iter()
            .map(|f| (f.name().clone(), column_kind(f.data_type())))
            .collect())
    }

    /// Runs `text` and converts each result row with `read`.
    fn collect<T>(
        &self,
        text: &str,
        params: &Params,
        mut read: impl FnMut(&duckdb::Row<'_>) -> Result<T, EngineError>,
    ) -> Result<Vec<T>, EngineError> {
        let mut statement = self.prepare(text, params)?;
        statement.raw_execute().map_err(|e| failed(&e))?;
        let mut rows = statement.raw_query();
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| failed(&e))? {
            out.push(read(row)?);
        }
        Ok(out)
    }

    fn integer_pairs_of(
        &self,
        text: &str,
        params: &Params,
    ) -> Result<Vec<(i64, i64)>, EngineError> {
        let pairs = self.collect(text, params, |row| {
            let first: Option<i64> = row.get(0).map_err(|e| failed(&e))?;
            let second: i64 = row.get(1).map_err(|e| failed(&e))?;
            Ok(first.map(|first| (first, second)))
        })?;
        Ok(pairs.into_iter().flatten().collect())
    }

    fn rows_of(&self, text: &str, params: &Params) -> Result<Vec<AggregateRow>, EngineError> {
        self.collect(text, params, |row| {
            // Per guardrail three columns between `last_us` (10) and `context` (the last).
            let last = row.as_ref().column_count() - 1;
            let read = || -> duckdb::Result<(AggregateRow, [Option<String>; 2])> {
                let sums = [row.get(7)?, row.get(8)?];
                let row = AggregateRow {
                    reason: row.get(0)?,
                    counted: row.get(1)?,
                    batch: row.get(2)?,
                    arm_key: row.get(3)?,
                    exposures: row.get(4)?,
                    units: row.get(5)?,
                    conversions: row.get(6)?,
                    value_micros: 0,
                    value_sq_micros: 0,
                    first_us: row.get(9)?,
                    last_us: row.get(10)?,
                    context: row.get(last)?,
                    guardrails: Vec::new(),
                };
                Ok((row, sums))
            };
            let (aggregate, [value, value_sq]) = read().map_err(|e| failed(&e))?;
            let guardrails = (11..last)
                .step_by(3)
                .map(|i| {
                    let conversions: Option<i64> = row.get(i).map_err(|e| failed(&e))?;
                    let value: Option<String> = row.get(i + 1).map_err(|e| failed(&e))?;
                    let value_sq: Option<String> = row.get(i + 2).map_err(|e| failed(&e))?;
                    Ok(MetricMicros {
                        conversions: conversions.unwrap_or(0),
                        value_micros: micros(value.as_deref())?,
                        value_sq_micros: micros(value_sq.as_deref())?,
                    })
                })
                .collect::<Result<_, EngineError>>()?;
            Ok(AggregateRow {
                value_micros: micros(value.as_deref())?,
                value_sq_micros: micros(value_sq.as_deref())?,
                guardrails,
                ..aggregate
            })
        })
    }

    /// Prepares `text` and binds each of its `$name` markers from `params`.
    /// The text must be exactly one SELECT ([`Database::check_select`]); nothing else is prepared.
    fn prepare(&self, text: &str, params: &Params) -> Result<duckdb::Statement<'_>, EngineError> {
        self.database
            .check_select(text)
            .map_err(|e| EngineError::Failed(clean_text(&e.to_string())))?;
        let mut statement = self.connection.prepare(text).map_err(|e| failed(&e))?;
        for index in 1..=statement.parameter_count() {
            let name = statement.parameter_name(index).map_err(|e| failed(&e))?;
            let value = match params.get(&name)? {
                Param::Text(text) => Value::Text(text.clone()),
                Param::BigInt(value) => Value::BigInt(*value),
                Param::Timestamp(t) => Value::Timestamp(TimeUnit::Microsecond, t.micros()),
            };
            statement
                .raw_bind_parameter(index, value)
                .map_err(|e| failed(&e))?;
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
fn failed(error: &duckdb::Error) -> EngineError {
    EngineError::Failed(clean_text(&error.to_string()))
}

/// An engine message without the generated SQL it quotes, and with control characters escaped (a
/// broken file can put raw bytes into the engine's message).
pub(super) fn clean_text(text: &str) -> String {
    let message = text.split("\n\nLINE ").next().unwrap_or(text).trim();
    message
        .chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}
