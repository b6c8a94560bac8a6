//! Apache Spark through Spark Connect: the same aggregation, in Spark SQL, run on the team's
//! cluster. Only the aggregate rows come back; they become levered's own [`AggregateRow`]s here, so no
//! Spark or Arrow type leaves this file.

use std::collections::{BTreeMap, HashMap};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use spark_connect::row::Value;
use spark_connect::types::DataType;
use spark_connect::{DataFrame, Expression, LiteralExpression, SparkSession};

use super::query::{micros, AggregateRow, Backend, Param, Params, TextPair};
use super::scan::MetricMicros;
use super::split::{self, Split};
use super::sql::Dialect;
use super::{ColumnKind, EngineError, WarehouseError};
use crate::config::Warehouse;

/// A session on a Spark Connect server.
pub struct Spark {
    session: SparkSession,
    tables: BTreeMap<String, String>,
    version: String,
    /// `warehouse.scan_parts`, else by the memory of one executor.
    split: Split,
}

impl Spark {
    /// Connects to `remote` (`sc://host:port`) and checks that the server answers. The session's
    /// time zone is UTC, as on the embedded engine, so timestamps without a zone mean UTC. Each
    /// `warehouse.tables` entry becomes a temporary view of the session under its logical name, so
    /// metric SQL reads `FROM signups` whether `signups` is a catalog table or a Parquet path.
    pub fn open(remote: &str, warehouse: &Warehouse) -> Result<Spark, WarehouseError> {
        let tables = &warehouse.tables;
        let open_error = |e: &dyn std::fmt::Display, hint| WarehouseError::Open {
            location: remote.to_string(),
            message: first_line(&e.to_string()),
            hint,
        };
        let unreachable =
            "is a Spark Connect server listening there? SPARK_REMOTE overrides warehouse.remote";
        probe(remote).map_err(|e| open_error(&e, unreachable))?;
        let session = SparkSession::builder()
            .remote(remote)
            .get_or_create()
            .map_err(|e| open_error(&e, unreachable))?;
        let version = session.version().map_err(|e| open_error(&e, unreachable))?;
        session
            .conf()
            .set("spark.sql.session.timeZone", "UTC")
            .map_err(|e| open_error(&e, "the server refused a session setting"))?;
        let executor_memory = session
            .conf()
            .get_with_default("spark.executor.memory", None)
            .map_err(|e| open_error(&e, unreachable))?;
        let spark = Spark {
            session,
            tables: tables.clone(),
            version,
            split: Split {
                parts: warehouse.scan_parts,
                memory: split::spark_part_memory(executor_memory.as_deref()),
            },
        };
        for (logical, target) in tables {
            let statement = format!(
                "CREATE OR REPLACE TEMPORARY VIEW {} AS SELECT * FROM {}",
                Dialect::Spark.quote_identifier(logical),
                Dialect::Spark.relation(target)
            );
            spark
                .frame(&statement, &Params::default())
                .and_then(|frame| frame.collect().map_err(|e| failed(&e)))
                .map_err(|error| WarehouseError::Open {
                    location: remote.to_string(),
                    message: format!("warehouse.tables.{logical}: {error}"),
                    hint: "a table the cluster knows, or a Parquet path it can read",
                })?;
        }
        Ok(spark)
    }

    /// A DataFrame of `text` with its `$name` markers spelled `:name` and bound from `params`.
    fn frame(&self, text: &str, params: &Params) -> Result<DataFrame, EngineError> {
        let (text, names) = super::sql::spark_parameters(text);
        let mut args = HashMap::new();
        for name in names {
            let literal = match params.get(&name)? {
                Param::Text(text) => LiteralExpression::String(text.clone()),
                Param::BigInt(value) => LiteralExpression::Long(*value),
                Param::Timestamp(t) => LiteralExpression::Timestamp(t.micros()),
            };
            args.insert(name, Expression::Literal(literal));
        }
        self.session
            .sql_with_args(&text, Vec::new(), args)
            .map_err(|e| failed(&e))
    }
}

impl Spark {
    /// Accepts `text` only when Spark's parser and analyzer take it as a query. Spark reports no
    /// statement type, and analysing a command runs it, so the text is analysed inside levered's
    /// own subquery, where the grammar admits nothing but a query: a command, a `;` or a second
    /// statement is a syntax error there, and nothing runs. The text begins and ends with levered's
    /// tokens, so a text that is a query in the subquery is a query on its own.
    fn check_query(&self, text: &str, params: &Params) -> Result<(), EngineError> {
        self.frame(
            &format!("SELECT * FROM (\n{text}\n) AS levered_query_check LIMIT 0"),
            params,
        )?
        .schema()
        .map(|_| ())
        .map_err(|e| failed(&e))
    }
}

impl Spark {
    /// The rows of a query, once Spark's analyzer has taken `text` as one (see `check_query`).
    fn collect(
        &self,
        text: &str,
        params: &Params,
    ) -> Result<Vec<spark_connect::row::Row>, EngineError> {
        self.check_query(text, params)?;
        self.frame(text, params)?.collect().map_err(|e| failed(&e))
    }
}

impl Backend for Spark {
    fn dialect(&self) -> Dialect {
        Dialect::Spark
    }

    fn tables(&self) -> &BTreeMap<String, String> {
        &self.tables
    }

    /// Binds the query through Spark's analyzer (an AnalyzePlan request): no job runs.
    fn schema(
        &self,
        text: &str,
        params: &Params,
    ) -> Result<Vec<(String, ColumnKind)>, EngineError> {
        self.check_query(text, params)?;
        match self.frame(text, params)?.schema().map_err(|e| failed(&e))? {
            DataType::Struct { fields } => Ok(fields
                .into_iter()
                .map(|f| (f.name, column_kind(&f.data_type)))
                .collect()),
            other => Err(EngineError::Unexpected(format!(
                "the query returned {other:?}, not rows"
            ))),
        }
    }

    fn rows(&self, text: &str, params: &Params) -> Result<Vec<AggregateRow>, EngineError> {
        let rows = self.collect(text, params)?;
        rows.iter()
            .map(|row| {
                let at = |i: usize| row.get(i).unwrap_or(&Value::Null);
                Ok(AggregateRow {
                    reason: integer(at(0))?
                        .and_then(|v| i32::try_from(v).ok())
                        .ok_or_else(|| {
                            EngineError::Unexpected("the reason column is missing".into())
                        })?,
                    counted: matches!(at(1), Value::Bool(true)),
                    batch: integer(at(2))?,
                    arm_key: integer(at(3))?,
                    exposures: integer(at(4))?.unwrap_or(0),
                    units: integer(at(5))?.unwrap_or(0),
                    conversions: integer(at(6))?.unwrap_or(0),
                    value_micros: sum_micros(at(7))?,
                    value_sq_micros: sum_micros(at(8))?,
                    first_us: integer(at(9))?,
                    last_us: integer(at(10))?,
                    context: match at(row.len().saturating_sub(1)) {
                        Value::String(key) => Some(key.clone()),
                        _ => None,
                    },
                    // Per guardrail three columns between `last_us` (10) and `context` (the last).
                    guardrails: (11..row.len().saturating_sub(1))
                        .step_by(3)
                        .map(|i| {
                            Ok(MetricMicros {
                                conversions: integer(at(i))?.unwrap_or(0),
                                value_micros: sum_micros(at(i + 1))?,
                                value_sq_micros: sum_micros(at(i + 2))?,
                            })
                        })
                        .collect::<Result<_, EngineError>>()?,
                })
            })
            .collect()
    }

    fn split(&self) -> Split {
        self.split
    }

    fn integer_pairs(&self, text: &str, params: &Params) -> Result<Vec<(i64, i64)>, EngineError> {
        let rows = self.collect(text, params)?;
        let mut out = Vec::new();
        for row in &rows {
            let at = |i: usize| row.get(i).unwrap_or(&Value::Null);
            if let (Some(first), Some(second)) = (integer(at(0))?, integer(at(1))?) {
                out.push((first, second));
            }
        }
        Ok(out)
    }

    fn text_pairs(&self, text: &str, params: &Params) -> Result<Vec<TextPair>, EngineError> {
        let rows = self.collect(text, params)?;
        let text_at = |row: &spark_connect::row::Row, i: usize| match row.get(i) {
            Some(Value::String(text)) => Some(text.clone()),
            _ => None,
        };
        Ok(rows
            .iter()
            .map(|row| (text_at(row, 0), text_at(row, 1)))
            .collect())
    }

    fn version(&self) -> String {
        format!("Spark {}", self.version)
    }
}

/// How long opening a TCP connection to the endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Checks that something accepts connections at the endpoint's host and port (15002 when not
/// given) before the client is started: the client retries an unreachable server with backoff for
/// minutes, which an hourly cron run should not spend on a wrong address or a stopped cluster.
fn probe(remote: &str) -> Result<(), Unreachable> {
    let authority = remote
        .strip_prefix("sc://")
        .unwrap_or(remote)
        .split(['/', ';'])
        .next()
        .unwrap_or_default();
    let address = match authority.rsplit_once(':') {
        Some((_, port)) if !port.is_empty() && !port.contains(']') => authority.to_string(),
        _ => format!("{authority}:15002"),
    };
    let targets: Vec<_> = address
        .to_socket_addrs()
        .map_err(|error| Unreachable::Resolve {
            address: address.clone(),
            error,
        })?
        .collect();
    let mut last = Unreachable::NoAddress(address);
    for target in targets {
        match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(error) => last = Unreachable::Connect { target, error },
        }
    }
    Err(last)
}

/// Why nothing accepts connections at the endpoint.
#[derive(Debug, thiserror::Error)]
enum Unreachable {
    #[error("cannot resolve {address}: {error}")]
    Resolve {
        address: String,
        error: std::io::Error,
    },
    #[error("{0} has no address")]
    NoAddress(String),
    #[error("cannot connect to {target}: {error}")]
    Connect {
        target: std::net::SocketAddr,
        error: std::io::Error,
    },
}

fn integer(value: &Value) -> Result<Option<i64>, EngineError> {
    match value {
        Value::Null => Ok(None),
        Value::Byte(v) => Ok(Some(i64::from(*v))),
        Value::Short(v) => Ok(Some(i64::from(*v))),
        Value::Integer(v) => Ok(Some(i64::from(*v))),
        Value::Long(v) => Ok(Some(*v)),
        other => Err(EngineError::Unexpected(format!(
            "expected an integer, got {other:?}"
        ))),
    }
}

/// A sum column of the aggregation: the text of whole micro-units ([`micros`]).
fn sum_micros(value: &Value) -> Result<i128, EngineError> {
    match value {
        Value::String(text) => micros(Some(text)),
        Value::Null => Ok(0),
        other => Err(EngineError::Unexpected(format!(
            "expected the text of a sum, got {other:?}"
        ))),
    }
}

/// The kind of a Spark column type.
fn column_kind(data_type: &DataType) -> ColumnKind {
    match data_type {
        DataType::String { .. } | DataType::Char { .. } | DataType::Varchar { .. } => {
            ColumnKind::Text
        }
        DataType::Timestamp | DataType::TimestampNtz | DataType::Date => ColumnKind::Timestamp,
        DataType::Byte
        | DataType::Short
        | DataType::Integer
        | DataType::Long
        | DataType::Float
        | DataType::Double
        | DataType::Decimal { .. } => ColumnKind::Numeric,
        DataType::Boolean => ColumnKind::Boolean,
        other => ColumnKind::Other(format!("{other:?}")),
    }
}

/// A Spark error as the engine's message.
fn failed(error: &spark_connect::SparkError) -> EngineError {
    EngineError::Failed(clean_message(error))
}

/// A Spark message on one line, up to its SQLSTATE: without the server's stack trace, the SQL and
/// the plan it quotes, and the error class the client may repeat in front of it.
fn clean_message(error: &spark_connect::SparkError) -> String {
    let text = error.to_string();
    let text = text.split("JVM stacktrace:").next().unwrap_or(&text);
    let text = text.split("== SQL").next().unwrap_or(text);
    let mut text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some(at) = text.find("SQLSTATE: ") {
        let code_end = text[at + 10..]
            .find(|c: char| c == ';' || c.is_whitespace())
            .map_or(text.len(), |end| at + 10 + end);
        text.truncate(code_end);
    }
    match text.split_once("] ") {
        Some((class, rest)) if class.starts_with('[') && rest.starts_with(&format!("{class}]")) => {
            rest.to_string()
        }
        _ => text,
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .trim()
        .to_string()
}
