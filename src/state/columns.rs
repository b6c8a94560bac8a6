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
