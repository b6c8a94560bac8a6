//! The state store's schema: a `schema_version` table and the ordered migrations that bring a store
//! to the version this levered writes. A store is migrated in one transaction when it is opened for
//! writing; a store of a newer version is refused, and so is an older one opened read-only.

use duckdb::{params, Connection};

/// One step of the schema, applied once, in order, in the transaction that records it.
struct Migration {
    version: i64,
    sql: &'static str,
}

/// Every version of the schema, oldest first; a change to the schema is a new file here.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sql: include_str!("../../sql/state/001_tables.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../../sql/state/002_run_metric.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../../sql/state/003_guardrails.sql"),
    },
];

/// The schema version this levered writes and reads.
pub const CURRENT: i64 = MIGRATIONS[MIGRATIONS.len() - 1].version;

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER NOT NULL,
    applied_at TIMESTAMP NOT NULL DEFAULT current_timestamp
)";

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error(
        "was written by a newer levered{written_by} (state schema version {found}; this levered \
         reads version {CURRENT})\n  hint: run that levered version or a later one on this store"
    )]
    Newer { found: i64, written_by: String },
    #[error(
        "was written by an older levered and cannot be read without updating it (state schema \
         version {found}, this levered reads version {CURRENT})\n  hint: run levered train once \
         (without --dry-run); it updates the store"
    )]
    Older { found: i64 },
    #[error("cannot update its schema to version {CURRENT}: {0}")]
    Migration(duckdb::Error),
    #[error("cannot read its schema version: {0}")]
    Read(duckdb::Error),
}

/// The version a store is at: 0 for a new store, or one written before the version table.
fn version(connection: &Connection) -> Result<i64, SchemaError> {
    let versioned: bool = connection
        .query_row(
            "SELECT count(*) > 0 FROM duckdb_tables()
             WHERE database_name = current_database() AND schema_name = 'main'
               AND table_name = 'schema_version'",
            [],
            |row| row.get(0),
        )
        .map_err(SchemaError::Read)?;
    if !versioned {
        return Ok(0);
    }
    connection
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |row| row.get(0),
        )
        .map_err(SchemaError::Read)
}

/// Refuses a store newer than this levered, naming the levered version of its newest run.
fn refuse_newer(connection: &Connection, found: i64) -> Result<(), SchemaError> {
    if found <= CURRENT {
        return Ok(());
    }
    let written_by = connection
        .query_row(
            "SELECT levered_version FROM runs ORDER BY trained_at DESC LIMIT 1",
            [],
            |row| row.get::<_, String>(0),
        )
        .map_or_else(|_| String::new(), |v| format!(" ({v})"));
    Err(SchemaError::Newer { found, written_by })
}

/// Brings the store to [`CURRENT`]: every missing migration and its version row, in one
/// transaction, so that a failed or interrupted update leaves the store as it was.
pub fn migrate(connection: &mut Connection) -> Result<(), SchemaError> {
    let found = version(connection)?;
    refuse_newer(connection, found)?;
    if found == CURRENT {
        return Ok(());
    }
    let tx = connection.transaction().map_err(SchemaError::Migration)?;
    tx.execute_batch(VERSION_TABLE)
        .map_err(SchemaError::Migration)?;
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tx.execute_batch(migration.sql)
            .and_then(|()| {
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES (?)",
                    params![migration.version],
                )
            })
            .map_err(SchemaError::Migration)?;
    }
    tx.commit().map_err(SchemaError::Migration)
}

/// Checks that a store opened read-only is at [`CURRENT`]: it cannot be migrated.
pub fn check(connection: &Connection) -> Result<(), SchemaError> {
    let found = version(connection)?;
    refuse_newer(connection, found)?;
    if found < CURRENT {
        return Err(SchemaError::Older { found });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_created_at_the_current_version_and_reopens_unchanged() {
        let mut connection = Connection::open_in_memory().unwrap();
        assert_eq!(version(&connection).unwrap(), 0);
        migrate(&mut connection).unwrap();
        assert_eq!(version(&connection).unwrap(), CURRENT);
        migrate(&mut connection).unwrap();
        let rows: i64 = connection
            .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, MIGRATIONS.len() as i64);
        check(&connection).unwrap();
    }

    #[test]
    fn an_unversioned_store_gains_the_columns_it_lacked() {
        let mut connection = Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE arms (optimization VARCHAR NOT NULL, arm_id INTEGER NOT NULL,
                 variant JSON NOT NULL, status VARCHAR NOT NULL, since TIMESTAMP NOT NULL,
                 reason VARCHAR NOT NULL, PRIMARY KEY (optimization, arm_id));
                 INSERT INTO arms VALUES ('hero', 1, '[\"a\"]', 'active', TIMESTAMP '2026-01-01', 'defined')",
            )
            .unwrap();
        assert!(matches!(
            check(&connection),
            Err(SchemaError::Older { found: 0 })
        ));
        migrate(&mut connection).unwrap();
        let (initial, origin): (bool, String) = connection
            .query_row("SELECT initial, origin FROM arms", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((initial, origin.as_str()), (true, "definition"));
        check(&connection).unwrap();
    }

    #[test]
    fn a_newer_store_is_refused_and_left_as_it_was() {
        let mut connection = Connection::open_in_memory().unwrap();
        migrate(&mut connection).unwrap();
        connection
            .execute_batch("INSERT INTO schema_version (version) VALUES (99)")
            .unwrap();
        let error = migrate(&mut connection).unwrap_err().to_string();
        assert!(error.contains("newer levered"), "{error}");
        assert!(error.contains("version 99"), "{error}");
        assert!(check(&connection).is_err());
        assert_eq!(version(&connection).unwrap(), 99);
    }

    #[test]
    fn a_failing_migration_leaves_the_store_unversioned() {
        let mut connection = Connection::open_in_memory().unwrap();
        // A legacy `arms` whose layout the first migration cannot extend: a view of that name.
        connection
            .execute_batch("CREATE VIEW arms AS SELECT 1 AS arm_id")
            .unwrap();
        assert!(matches!(
            migrate(&mut connection),
            Err(SchemaError::Migration(_))
        ));
        assert_eq!(version(&connection).unwrap(), 0);
        let tables: i64 = connection
            .query_row(
                "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'runs'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            tables, 0,
            "the tables created before the failure were rolled back"
        );
    }
}
