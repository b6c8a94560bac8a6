//! How the shared domain values are stored: as the text they render to, parsed back on read so that
//! a corrupt value is an error rather than a default.

use duckdb::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, Value, ValueRef};

use crate::domain::{ArmId, ArmStatus, ContextKey, Origin, Role};
use crate::time::Instant;

impl ToSql for ArmId {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(Value::Text(self.to_string())))
    }
}

impl FromSql for ArmId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<ArmId> {
        ArmId::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for Role {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Role {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Role> {
        Role::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for ContextKey {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ContextKey {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<ContextKey> {
        value.as_str().map(ContextKey::new)
    }
}

/// Read from `epoch_us(column)` of a TIMESTAMP column: microseconds since the epoch.
impl FromSql for Instant {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Instant> {
        i64::column_result(value).map(Instant::from_micros)
    }
}

impl ToSql for ArmStatus {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for ArmStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<ArmStatus> {
        ArmStatus::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

impl ToSql for Origin {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for Origin {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Origin> {
        Origin::parse(value.as_str()?).map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

/// A JSON array column whose empty list is NULL (such as `batch_stats.guardrails`, read as
/// `CAST(guardrails AS VARCHAR)`); text that is not such an array is a conversion error.
pub(super) struct JsonList<T>(pub Vec<T>);

impl<T: serde::Serialize> ToSql for JsonList<T> {
    fn to_sql(&self) -> duckdb::Result<ToSqlOutput<'_>> {
        if self.0.is_empty() {
            return Ok(ToSqlOutput::Owned(Value::Null));
        }
        let text = serde_json::to_string(&self.0)
            .map_err(|e| duckdb::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(ToSqlOutput::Owned(Value::Text(text)))
    }
}

impl<T: serde::de::DeserializeOwned> FromSql for JsonList<T> {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<JsonList<T>> {
        if let ValueRef::Null = value {
            return Ok(JsonList(Vec::new()));
        }
        serde_json::from_str(value.as_str()?)
            .map(JsonList)
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}
