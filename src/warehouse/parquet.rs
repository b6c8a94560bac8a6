//! A folder of Parquet files as a warehouse: each `x.parquet` file and each `x/` folder of Parquet
//! files (read recursively) becomes table `x`. Hidden and `_`-prefixed entries are not data, at any
//! level, as Spark and Hive treat them (`_temporary/`, `_SUCCESS`, `.part-0.parquet.crc`, dot-files).
//! A table that cannot be registered (a broken file, a folder without Parquet files) fails only the
//! SQL that reads it, with a message that names the table and the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use duckdb::Connection;

use super::sql::Dialect;

/// Why a folder could not be registered at all.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{}: {error}", folder.display())]
    Folder {
        folder: PathBuf,
        error: std::io::Error,
    },
    #[error("{0}")]
    Engine(duckdb::Error),
}

/// The tables of a registered folder, and why some of them could not be registered.
pub struct ParquetFolder {
    files: BTreeMap<String, Vec<PathBuf>>,
    unreadable: BTreeMap<String, String>,
}

impl ParquetFolder {
    /// Registers every table of `folder` as a view on `connection`, then confines the engine to
    /// reading that folder.
    pub fn register(
        connection: &Connection,
        folder: &Path,
    ) -> Result<ParquetFolder, RegisterError> {
        let unlisted = |error| RegisterError::Folder {
            folder: folder.to_path_buf(),
            error,
        };
        let folder = folder.canonicalize().map_err(unlisted)?;
        let files = tables(&folder).map_err(unlisted)?;
        connection
            .execute_batch(&format!(
                "SET allowed_directories = [{}]; SET enable_external_access = false;",
                literal(&folder)
            ))
            .map_err(RegisterError::Engine)?;
        let mut unreadable = BTreeMap::new();
        for (name, paths) in &files {
            if paths.is_empty() {
                unreadable.insert(
                    name.clone(),
                    "its folder holds no .parquet file".to_string(),
                );
                continue;
            }
            let list: Vec<String> = paths.iter().map(|p| literal(p)).collect();
            let view = format!(
                "CREATE VIEW {} AS SELECT * FROM read_parquet([{}])",
                Dialect::DuckDb.quote_identifier(name),
                list.join(", ")
            );
            if let Err(e) = connection.execute_batch(&view) {
                let problem = broken_file(connection, paths)
                    .unwrap_or_else(|| super::duckdb::clean_text(&e.to_string()));
                unreadable.insert(name.clone(), problem);
            }
        }
        connection
            .execute_batch("SET lock_configuration = true;")
            .map_err(RegisterError::Engine)?;
        Ok(ParquetFolder { files, unreadable })
    }

    /// A message that names the table and file behind an engine error: a table that could not be
    /// registered, or a file whose footer cannot be read. Other messages are returned as they are.
    pub fn explain(&self, connection: &Connection, message: String) -> String {
        let lower = message.to_lowercase();
        for (table, problem) in &self.unreadable {
            if lower.contains(&format!(
                "table with name {} does not exist",
                table.to_lowercase()
            )) {
                return format!("table `{table}` cannot be read: {problem}");
            }
        }
        let reading_error = [
            "Invalid Error",
            "Invalid Input Error",
            "IO Error",
            "Serialization Error",
        ]
        .iter()
        .any(|kind| message.starts_with(kind));
        let names_a_file = self
            .files
            .values()
            .flatten()
            .any(|p| message.contains(&p.display().to_string()));
        if reading_error && !names_a_file {
            for (table, paths) in &self.files {
                if let Some(problem) = broken_file(connection, paths) {
                    return format!("table `{table}`: {problem} (the engine said: {message})");
                }
            }
        }
        message
    }
}

/// The first of `paths` whose Parquet footer the engine cannot read, with the engine's reason.
fn broken_file(connection: &Connection, paths: &[PathBuf]) -> Option<String> {
    paths.iter().find_map(|path| {
        let text = path.display().to_string();
        connection
            .query_row(
                "SELECT count(*) FROM parquet_file_metadata(?)",
                [&text],
                |row| row.get::<_, i64>(0),
            )
            .err()
            .map(|e| {
                format!(
                    "file {text} is not a readable Parquet file ({})",
                    super::duckdb::clean_text(&e.to_string())
                )
            })
    })
}

/// Whether a folder entry is data (not hidden, not `_`-prefixed, not a checksum).
fn is_data(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| !n.starts_with('.') && !n.starts_with('_') && !n.ends_with(".crc"))
}

fn is_parquet(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "parquet")
}

/// Table name → its files, sorted.
fn tables(folder: &Path) -> std::io::Result<BTreeMap<String, Vec<PathBuf>>> {
    let mut tables = BTreeMap::new();
    for path in entries(folder)? {
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        if path.is_dir() {
            let mut files = Vec::new();
            parquet_files(&path, &mut files)?;
            tables.insert(name.to_string(), files);
        } else if is_parquet(&path) {
            tables.insert(name.to_string(), vec![path.clone()]);
        }
    }
    Ok(tables)
}

/// The data entries of a folder, sorted.
fn entries(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        if is_data(&path) {
            entries.push(path);
        }
    }
    entries.sort();
    Ok(entries)
}

/// Every Parquet file under `folder`, in path order.
fn parquet_files(folder: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for path in entries(folder)? {
        if path.is_dir() {
            parquet_files(&path, out)?;
        } else if is_parquet(&path) {
            out.push(path);
        }
    }
    Ok(())
}

fn literal(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_and_underscore_entries_are_not_data_at_any_level() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for folder in [
            "exposures/day=1/_temporary/0",
            "_temporary",
            ".hidden",
            "empty",
        ] {
            std::fs::create_dir_all(root.join(folder)).unwrap();
        }
        for file in [
            "exposures/day=1/part-0.parquet",
            "exposures/day=1/.part-0.parquet.crc",
            "exposures/day=1/_temporary/0/part-1.parquet",
            "exposures/_SUCCESS",
            "signups.parquet",
            ".signups.parquet.crc",
            "_SUCCESS",
            "notes.txt",
        ] {
            std::fs::write(root.join(file), b"").unwrap();
        }
        let found = tables(root).unwrap();
        let names: Vec<&str> = found.keys().map(String::as_str).collect();
        assert_eq!(names, ["empty", "exposures", "signups"]);
        assert_eq!(
            found["exposures"],
            [root.join("exposures/day=1/part-0.parquet")]
        );
        assert!(found["empty"].is_empty());
    }
}
