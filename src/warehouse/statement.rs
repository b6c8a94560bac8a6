//! The embedded engine's database, opened through DuckDB's C API so that levered holds a connection
//! of its own besides the one duckdb-rs runs queries on (duckdb-rs keeps its handle private). That
//! second connection only parses and prepares: it proves that a text is exactly one read-only SELECT
//! before the text is ever prepared for running, because duckdb-rs `Connection::prepare` executes
//! every statement of a text but the last (docs/design.md §1.13).

use std::ffi::{c_char, CStr, CString};
use std::path::Path;
use std::ptr;

use duckdb::{ffi, Connection};

/// Why a text was not accepted as one SELECT statement.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StatementError {
    /// The engine could not parse or bind the text (a syntax error, an unknown table).
    #[error("{0}")]
    Engine(String),
    #[error("refused: the SQL levered sends must be exactly one SELECT statement, but this text holds {0} statements (does the SQL close levered's parentheses, or contain `;`?)")]
    NotOneStatement(u64),
    #[error("refused: the SQL levered sends must be a read-only SELECT, but the engine reads it as {0} statement")]
    NotSelect(&'static str),
}

/// Why the engine did not open a database.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OpenError {
    #[error("`{0}` contains a NUL character")]
    NulCharacter(String),
    #[error("the engine could not create its configuration")]
    NoConfiguration,
    #[error("the engine refused the setting {name} = {value}")]
    SettingRefused { name: String, value: String },
    /// The engine's own message, when it gave one.
    #[error("{}", .0.as_deref().unwrap_or("the engine did not open"))]
    NotOpened(Option<String>),
    #[error("the engine refused a connection")]
    NoConnection,
}

/// A DuckDB database and the connection that checks statements. Queries run on [`Database::connect`]'s
/// connections, which must be dropped before the database.
pub struct Database {
    raw: ffi::duckdb_database,
    checker: ffi::duckdb_connection,
}

impl Database {
    /// Opens the database at `path` (in memory without one) with the given settings.
    pub fn open(path: Option<&Path>, settings: &[(&str, String)]) -> Result<Database, OpenError> {
        let c_path = match path {
            Some(path) => c_string(&path.display().to_string())?,
            None => c_string(":memory:")?,
        };
        let mut config: ffi::duckdb_config = ptr::null_mut();
        // SAFETY: every pointer passed is valid for the call; the config is destroyed on all paths.
        unsafe {
            if ffi::duckdb_create_config(&mut config) != ffi::DuckDBSuccess {
                return Err(OpenError::NoConfiguration);
            }
            for (name, value) in settings {
                let (c_name, c_value) = (c_string(name)?, c_string(value)?);
                if ffi::duckdb_set_config(config, c_name.as_ptr(), c_value.as_ptr())
                    != ffi::DuckDBSuccess
                {
                    ffi::duckdb_destroy_config(&mut config);
                    return Err(OpenError::SettingRefused {
                        name: name.to_string(),
                        value: value.clone(),
                    });
                }
            }
            let mut raw: ffi::duckdb_database = ptr::null_mut();
            let mut error: *mut c_char = ptr::null_mut();
            let state = ffi::duckdb_open_ext(c_path.as_ptr(), &mut raw, config, &mut error);
            ffi::duckdb_destroy_config(&mut config);
            if state != ffi::DuckDBSuccess {
                let message = owned_text(error);
                if !error.is_null() {
                    ffi::duckdb_free(error.cast());
                }
                return Err(OpenError::NotOpened(message));
            }
            let mut checker: ffi::duckdb_connection = ptr::null_mut();
            if ffi::duckdb_connect(raw, &mut checker) != ffi::DuckDBSuccess {
                ffi::duckdb_close(&mut raw);
                return Err(OpenError::NoConnection);
            }
            Ok(Database { raw, checker })
        }
    }

    /// A duckdb-rs connection to this database.
    pub fn connect(&self) -> Result<Connection, duckdb::Error> {
        // SAFETY: `raw` is an open database; the connection does not close it, and `DuckDb`
        // drops its connection before this database.
        unsafe { Connection::open_from_raw(self.raw) }
    }

    /// Accepts `text` only when the engine parses it as exactly one statement whose prepared type is
    /// SELECT. Nothing is executed.
    pub fn check_select(&self, text: &str) -> Result<(), StatementError> {
        let c_text = CString::new(text)
            .map_err(|_| StatementError::Engine("the SQL contains a NUL character".into()))?;
        // SAFETY: the handles are open; the extracted statements and the prepared statement are
        // destroyed by their guards on every path.
        unsafe {
            let mut extracted: ffi::duckdb_extracted_statements = ptr::null_mut();
            let count =
                ffi::duckdb_extract_statements(self.checker, c_text.as_ptr(), &mut extracted);
            let extracted = Extracted(extracted);
            if count == 0 {
                let message = owned_text(ffi::duckdb_extract_statements_error(extracted.0));
                return Err(StatementError::Engine(
                    message.unwrap_or_else(|| "the SQL is empty".into()),
                ));
            }
            if count != 1 {
                return Err(StatementError::NotOneStatement(count));
            }
            let mut prepared: ffi::duckdb_prepared_statement = ptr::null_mut();
            let state = ffi::duckdb_prepare_extracted_statement(
                self.checker,
                extracted.0,
                0,
                &mut prepared,
            );
            let prepared = Prepared(prepared);
            if state != ffi::DuckDBSuccess {
                let message = owned_text(ffi::duckdb_prepare_error(prepared.0));
                return Err(StatementError::Engine(
                    message.unwrap_or_else(|| "the engine could not prepare the SQL".into()),
                ));
            }
            match ffi::duckdb_prepared_statement_type(prepared.0) {
                ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT => Ok(()),
                other => Err(StatementError::NotSelect(type_name(other))),
            }
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // SAFETY: both handles were opened by `open` and are closed once, here.
        unsafe {
            ffi::duckdb_disconnect(&mut self.checker);
            ffi::duckdb_close(&mut self.raw);
        }
    }
}

struct Extracted(ffi::duckdb_extracted_statements);

impl Drop for Extracted {
    fn drop(&mut self) {
        // SAFETY: created by duckdb_extract_statements, destroyed once (also when none were found).
        unsafe { ffi::duckdb_destroy_extracted(&mut self.0) }
    }
}

struct Prepared(ffi::duckdb_prepared_statement);

impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: created by duckdb_prepare_extracted_statement, destroyed once (also on failure).
        unsafe { ffi::duckdb_destroy_prepare(&mut self.0) }
    }
}

fn c_string(text: &str) -> Result<CString, OpenError> {
    CString::new(text).map_err(|_| OpenError::NulCharacter(text.escape_debug().to_string()))
}

/// A copy of a C string the engine owns (None for a null pointer).
///
/// # Safety
/// `text` is null or points to a NUL-terminated string.
unsafe fn owned_text(text: *const c_char) -> Option<String> {
    (!text.is_null()).then(|| {
        unsafe { CStr::from_ptr(text) }
            .to_string_lossy()
            .into_owned()
    })
}

/// The name of a statement type, for the refusal message.
fn type_name(kind: ffi::duckdb_statement_type) -> &'static str {
    match kind {
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_INSERT => "an INSERT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_UPDATE => "an UPDATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DELETE => "a DELETE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_MERGE_INTO => "a MERGE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CREATE_FUNC => "a CREATE",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DROP => "a DROP",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ALTER => "an ALTER",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_COPY_DATABASE => "a COPY",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPORT => "an EXPORT",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_ATTACH => "an ATTACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_DETACH => "a DETACH",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SET
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_VARIABLE_SET => "a SET",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_PRAGMA => "a PRAGMA",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_CALL => "a CALL",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXPLAIN => "an EXPLAIN",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_LOAD
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_EXTENSION
        | ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_UPDATE_EXTENSIONS => "an extension",
        ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_TRANSACTION => "a transaction",
        _ => "a non-SELECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database() -> Database {
        let database = Database::open(None, &[]).unwrap();
        database
            .connect()
            .unwrap()
            .execute_batch("CREATE TABLE t AS SELECT 1 AS a")
            .unwrap();
        database
    }

    #[test]
    fn one_select_is_accepted() {
        let database = database();
        assert_eq!(
            database.check_select("SELECT * FROM (SELECT a FROM t) AS q LIMIT 0"),
            Ok(())
        );
        assert_eq!(
            database.check_select("WITH x AS (SELECT a FROM t) SELECT * FROM x"),
            Ok(())
        );
    }

    #[test]
    fn a_text_that_closes_the_wrapper_is_refused_and_runs_nothing() {
        let database = database();
        let text = "SELECT * FROM (SELECT a FROM t) AS q LIMIT 0; DROP TABLE t; SELECT * FROM (SELECT 1) AS q";
        assert_eq!(
            database.check_select(text),
            Err(StatementError::NotOneStatement(3))
        );
        let connection = database.connect().unwrap();
        let a: i32 = connection
            .query_row("SELECT a FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(a, 1, "the DROP did not run");
    }

    #[test]
    fn a_single_statement_that_writes_is_refused() {
        let database = database();
        for (text, kind) in [
            ("CREATE OR REPLACE VIEW v AS SELECT 1", "a CREATE"),
            ("INSERT INTO t SELECT 2", "an INSERT"),
            (
                "WITH x AS (SELECT 3 AS a) INSERT INTO t SELECT a FROM x",
                "an INSERT",
            ),
            ("COPY (SELECT 1) TO '/tmp/levered-never.csv'", "a COPY"),
            ("SET threads = 1", "a SET"),
        ] {
            assert_eq!(
                database.check_select(text),
                Err(StatementError::NotSelect(kind)),
                "{text}"
            );
        }
        assert!(!Path::new("/tmp/levered-never.csv").exists());
    }

    #[test]
    fn syntax_errors_and_nul_are_engine_errors() {
        let database = database();
        assert!(matches!(
            database.check_select("SELEC 1"),
            Err(StatementError::Engine(_))
        ));
        assert!(matches!(
            database.check_select("SELECT 1\0"),
            Err(StatementError::Engine(_))
        ));
        assert!(matches!(
            database.check_select(""),
            Err(StatementError::Engine(_))
        ));
    }
}
