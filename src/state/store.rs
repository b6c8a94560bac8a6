//! levered's own DuckDB store: runs, batch aggregates, arms, allocations and arm reports.
//! Every run's writes are one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use duckdb::types::{TimeUnit, Value};
use duckdb::{params, AccessMode, Config, Connection, Statement, Transaction};

use crate::domain::{ArmId, ArmStatus, ContextKey, Origin};
use crate::report::{ArmReport, GuardrailEstimate, HistoryRow, RunInfo, RunReport, Winner};
use crate::time::Instant;
use crate::warehouse::{BatchRow, GuardrailSums};

use super::columns::JsonList;
use super::schema::{self, SchemaError};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state store {}: {error}", path.display())]
    Engine { path: PathBuf, error: duckdb::Error },
    #[error("state store {}: cannot create its folder: {error}", path.display())]
    Folder {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("state store {}: {error}", path.display())]
    Schema { path: PathBuf, error: SchemaError },
    /// A value levered wrote that no longer reads back as what it was.
    #[error("state store {}: {table}.{column} of {of} cannot be read: {why}\n  hint: restore the store from a backup, or move it aside and run levered train --full", path.display())]
    Corrupt {
        path: PathBuf,
        table: &'static str,
        column: String,
        /// The run or optimization whose row it is.
        of: String,
        why: String,
    },
    #[error("state store {}: cannot publish the snapshot {} that report and history read: {why}", path.display(), snapshot.display())]
    Snapshot {
        path: PathBuf,
        snapshot: PathBuf,
        why: String,
    },
}

/// What the previous successful run of an optimization left behind.
#[derive(Debug, Clone, PartialEq)]
pub struct LastRun {
    pub run_id: String,
    pub as_of: Instant,
    pub sql_hash: String,
    pub final_until: Option<Instant>,
    pub first_exposure: Option<Instant>,
    pub newest_exposure: Option<Instant>,
    pub winner_arm_id: Option<u32>,
    /// The winner's evidence, once a completed run locked it in.
    pub winner: Option<Winner>,
    /// The reasons (docs/design.md §2.2) of the rows the run could not count.
    pub unmatched: BTreeSet<String>,
}

/// An arm known to the store, with its lifecycle.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredArm {
    pub arm_id: u32,
    pub variant: String,
    pub status: ArmStatus,
    pub since: Instant,
    pub reason: String,
    pub started: Option<Instant>,
    pub initial: bool,
    pub origin: Origin,
}

/// The weights one successful run published, by context and arm id (`holdout` for the holdout row).
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    pub as_of: Instant,
    /// Whether `weights` holds every row the run published (else only the pooled holdout row).
    pub complete: bool,
    pub weights: BTreeMap<ContextKey, BTreeMap<ArmId, f64>>,
}

impl Served {
    /// The weights a visitor of `context` was served: its own rows, else `*`.
    pub fn for_context(&self, context: &ContextKey) -> Option<&BTreeMap<ArmId, f64>> {
        self.weights
            .get(context)
            .or_else(|| self.weights.get(&ContextKey::pooled()))
    }
}

/// Everything a successful run writes.
pub struct RunWrite<'a> {
    pub report: &'a RunReport,
    pub seq: i64,
    pub as_of: Instant,
    pub trained_at: Instant,
    pub definition_hash: &'a str,
    pub sql_hash: &'a str,
    pub duckdb_version: &'a str,
    /// The batches the scan recomputed start here (`None`: every batch was recomputed).
    pub replaced_from: Option<Instant>,
    pub final_until: Instant,
    pub first_exposure: Option<Instant>,
    pub newest_exposure: Option<Instant>,
    pub winner_arm_id: Option<u32>,
    pub new_batches: &'a [BatchRow],
    /// Every arm of the optimization with its lifecycle after this run.
    pub arms: &'a [StoredArm],
    /// The status changes this run made.
    pub events: &'a [crate::allocation::ArmEvent],
    pub duration_ms: i64,
}

fn engine_error(path: &Path, error: duckdb::Error) -> StateError {
    StateError::Engine {
        path: path.to_path_buf(),
        error,
    }
}

fn schema_error(path: &Path, error: SchemaError) -> StateError {
    StateError::Schema {
        path: path.to_path_buf(),
        error,
    }
}

/// A run that failed: recorded so that the history shows it.
pub struct FailedRun<'a> {
    pub optimization: &'a str,
    pub run_id: &'a str,
    pub seq: i64,
    pub as_of: Instant,
    pub trained_at: Instant,
    pub seed: u64,
    pub message: &'a str,
}

/// The copy of a store that readers open, beside it (`state.duckdb` → `state.duckdb.snapshot`): a
/// training run holds the store open for writing, and DuckDB lets no other process open a file then.
pub fn snapshot_path(state: &Path) -> PathBuf {
    let mut name = state.file_name().unwrap_or_default().to_os_string();
    name.push(".snapshot");
    state.with_file_name(name)
}

/// Removes the snapshot copies a killed run left in `folder` (names starting with `prefix`).
fn remove_staged(folder: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

pub struct StateStore {
    path: PathBuf,
    connection: Connection,
    /// The store file, read to publish the snapshot. Kept open for the store's lifetime: closing
    /// any descriptor of a file drops the process's fcntl locks on it, DuckDB's included.
    snapshot_source: std::sync::OnceLock<std::fs::File>,
}

/// An instant for a TIMESTAMP column.
fn ts(t: Instant) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.micros())
}

fn opt_ts(t: Option<Instant>) -> Value {
    t.map_or(Value::Null, ts)
}

impl StateStore {
    /// Opens (creating when needed) the store for writing.
    pub fn open(path: &Path) -> Result<StateStore, StateError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| StateError::Folder {
                path: path.to_path_buf(),
                error,
            })?;
        }
        let mut connection = Connection::open(path).map_err(|e| engine_error(path, e))?;
        schema::migrate(&mut connection).map_err(|e| schema_error(path, e))?;
        Ok(StateStore {
            path: path.to_path_buf(),
            connection,
            snapshot_source: std::sync::OnceLock::new(),
        })
    }

    /// Opens an existing store without writing to it (for `--dry-run` and reports); an absent
    /// store reads as empty.
    pub fn open_read_only(path: &Path) -> Result<StateStore, StateError> {
        let connection = if path.is_file() {
            let config = Config::default()
                .access_mode(AccessMode::ReadOnly)
                .map_err(|e| engine_error(path, e))?;
            let connection =
                Connection::open_with_flags(path, config).map_err(|e| engine_error(path, e))?;
            // A read-only store cannot be migrated: say so instead of failing on a missing column.
            schema::check(&connection).map_err(|e| schema_error(path, e))?;
            connection
        } else {
            let mut connection = Connection::open_in_memory().map_err(|e| engine_error(path, e))?;
            schema::migrate(&mut connection).map_err(|e| schema_error(path, e))?;
            connection
        };
        Ok(StateStore {
            path: path.to_path_buf(),
            connection,
            snapshot_source: std::sync::OnceLock::new(),
        })
    }

    /// Opens the store for a reader (`report`, `history`): the snapshot the last run published, else
    /// (a store no run of this version has written yet) the store itself, read-only. Takes no lock,
    /// so it never waits for a training run, and writes nothing.
    pub fn open_for_reading(path: &Path) -> Result<StateStore, StateError> {
        let snapshot = snapshot_path(path);
        StateStore::open_read_only(if snapshot.is_file() { &snapshot } else { path })
    }

    /// Publishes what the store holds to its snapshot: a checkpoint (the file then holds every
    /// committed write), then a copy renamed into place. When that fails, the old snapshot is removed
    /// too, so that no reader is shown runs older than the store's.
    pub fn publish_snapshot(&self) -> Result<(), StateError> {
        let snapshot = snapshot_path(&self.path);
        let folder = self
            .path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let prefix = format!(
            ".{}.tmp",
            snapshot.file_name().unwrap_or_default().to_string_lossy()
        );
        let published = self
            .connection
            .execute_batch("CHECKPOINT")
            .map_err(|e| e.to_string())
            .and_then(|()| {
                remove_staged(folder, &prefix);
                let mut staged = tempfile::Builder::new()
                    .prefix(&prefix)
                    .tempfile_in(folder)
                    .map_err(|e| e.to_string())?;
                if self.snapshot_source.get().is_none() {
                    let file = std::fs::File::open(&self.path).map_err(|e| e.to_string())?;
                    let _ = self.snapshot_source.set(file);
                }
                let mut source = self
                    .snapshot_source
                    .get()
                    .ok_or_else(|| "the store file is not open".to_string())?;
                std::io::Seek::rewind(&mut source)
                    .and_then(|()| std::io::copy(&mut source, staged.as_file_mut()))
                    .and_then(|_| staged.as_file().sync_all())
                    .map_err(|e| e.to_string())?;
                staged.persist(&snapshot).map_err(|e| e.to_string())?;
                Ok(())
            });
        published.map_err(|why| {
            let _ = std::fs::remove_file(&snapshot);
            StateError::Snapshot {
                path: self.path.clone(),
                snapshot,
                why,
            }
        })
    }

    fn error(&self, error: duckdb::Error) -> StateError {
        engine_error(&self.path, error)
    }

    /// The error of reading rows of `table`: a value that no longer converts to what levered wrote
    /// there names its table and column; any other error is the engine's.
    fn read_error(
        &self,
        statement: &Statement<'_>,
        table: &'static str,
        of: &str,
        error: duckdb::Error,
    ) -> StateError {
        match error {
            duckdb::Error::FromSqlConversionFailure(index, _, why) => StateError::Corrupt {
                path: self.path.clone(),
                table,
                column: statement
                    .column_name(index)
                    .map_or_else(|_| format!("column {index}"), String::clone),
                of: of.to_string(),
                why: why.to_string(),
            },
            other => self.error(other),
        }
    }

    /// A JSON column of run `run_id` in `runs`, as what levered wrote there.
    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        column: &'static str,
        run_id: &str,
        text: &str,
    ) -> Result<T, StateError> {
        serde_json::from_str(text).map_err(|e| StateError::Corrupt {
            path: self.path.clone(),
            table: "runs",
            column: column.to_string(),
            of: format!("run {run_id}"),
            why: e.to_string(),
        })
    }

    pub fn last_run(&self, optimization: &str) -> Result<Option<LastRun>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT run_id, epoch_us(as_of), sql_hash, epoch_us(final_until), epoch_us(first_exposure),
                        epoch_us(newest_exposure), winner_arm_id, CAST(winner AS VARCHAR),
                        CAST(unmatched AS VARCHAR)
                 FROM runs WHERE optimization = ? AND outcome = 'ok'
                 ORDER BY seq DESC LIMIT 1",
            )
            .map_err(|e| self.error(e))?;
        let mut rows = statement
            .query(params![optimization])
            .map_err(|e| self.error(e))?;
        let Some(row) = rows.next().map_err(|e| self.error(e))? else {
            return Ok(None);
        };
        let get = |e| self.error(e);
        let run_id: String = row.get(0).map_err(get)?;
        Ok(Some(LastRun {
            run_id: run_id.clone(),
            as_of: row.get(1).map_err(get)?,
            sql_hash: row.get(2).map_err(get)?,
            final_until: row.get(3).map_err(get)?,
            first_exposure: row.get(4).map_err(get)?,
            newest_exposure: row.get(5).map_err(get)?,
            winner_arm_id: row.get::<_, Option<i32>>(6).map_err(get)?.map(|w| w as u32),
            winner: row
                .get::<_, Option<String>>(7)
                .map_err(get)?
                .map(|w| self.decode("winner", &run_id, &w))
                .transpose()?,
            unmatched: self
                .decode::<BTreeMap<String, i64>>(
                    "unmatched",
                    &run_id,
                    &row.get::<_, String>(8).map_err(get)?,
                )?
                .into_keys()
                .collect(),
        }))
    }

    /// The next run sequence number of an optimization (failed runs count too).
    pub fn next_seq(&self, optimization: &str) -> Result<i64, StateError> {
        self.connection
            .query_row(
                "SELECT coalesce(max(seq), 0) + 1 FROM runs WHERE optimization = ?",
                params![optimization],
                |row| row.get(0),
            )
            .map_err(|e| self.error(e))
    }

    pub fn arms(&self, optimization: &str) -> Result<Vec<StoredArm>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT arm_id, CAST(variant AS VARCHAR), status, epoch_us(since), reason, epoch_us(started),
                        coalesce(initial, true), coalesce(origin, 'definition')
                 FROM arms WHERE optimization = ? ORDER BY arm_id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![optimization], |row| {
                Ok(StoredArm {
                    arm_id: row.get::<_, i32>(0)? as u32,
                    variant: row.get(1)?,
                    status: row.get(2)?,
                    since: row.get(3)?,
                    reason: row.get(4)?,
                    started: row.get(5)?,
                    initial: row.get(6)?,
                    origin: row.get(7)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| {
            self.read_error(
                &statement,
                "arms",
                &format!("optimization {optimization}"),
                e,
            )
        })
    }

    /// Stored batch aggregates that start before `before` (all when `None`).
    pub fn batches(
        &self,
        optimization: &str,
        before: Option<Instant>,
    ) -> Result<Vec<BatchRow>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT epoch_us(batch_start), arm_id, holdout, units, conversions, value_sum, value_sq_sum, context, CAST(guardrails AS VARCHAR)
                 FROM batch_stats
                 WHERE optimization = ? AND (? IS NULL OR batch_start < make_timestamp(?))
                 ORDER BY batch_start, context, arm_id, holdout",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(
                params![
                    optimization,
                    before.map(Instant::micros),
                    before.map(Instant::micros)
                ],
                |row| {
                    Ok(BatchRow {
                        batch_start: row.get(0)?,
                        context: row.get(7)?,
                        arm_id: row.get::<_, i32>(1)? as u32,
                        holdout: row.get(2)?,
                        units: row.get(3)?,
                        conversions: row.get(4)?,
                        value_sum: row.get(5)?,
                        value_sq_sum: row.get(6)?,
                        guardrails: row.get::<_, JsonList<GuardrailSums>>(8)?.0,
                    })
                },
            )
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| {
            self.read_error(
                &statement,
                "batch_stats",
                &format!("optimization {optimization}"),
                e,
            )
        })
    }

    /// The weights of the latest allocation, by context and arm id.
    pub fn last_weights(
        &self,
        optimization: &str,
    ) -> Result<BTreeMap<(ContextKey, ArmId), f64>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT context, arm_id, weight FROM allocations
                 WHERE optimization = ?
                   AND run_id = (SELECT run_id FROM runs WHERE optimization = ? AND outcome = 'ok' ORDER BY seq DESC LIMIT 1)",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![optimization, optimization], |row| {
                Ok(((row.get(0)?, row.get(1)?), row.get(2)?))
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| {
            self.read_error(
                &statement,
                "allocations",
                &format!("optimization {optimization}"),
                e,
            )
        })
    }

    /// The weights every successful run published for context `*`, by `as_of` (reruns: the later).
    ///
    /// Every run is listed, but before the one in force at `recent_from` only with its pooled
    /// holdout weight (what the lift strata need; `complete` is false), so that an hourly run does not
    /// load the whole allocation history. The run in force then and every later one are complete, so
    /// that batches after a gap between runs are compared with the weights that served them.
    pub fn served(
        &self,
        optimization: &str,
        recent_from: Instant,
    ) -> Result<Vec<Served>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "WITH ok AS (SELECT * FROM runs WHERE optimization = ? AND outcome = 'ok'),
                 cutoff AS (
                   SELECT coalesce(max(as_of), make_timestamp(?)) AS t FROM ok
                   WHERE as_of <= make_timestamp(?))
                 SELECT epoch_us(r.as_of), a.context, a.arm_id, a.weight, r.seq, r.as_of >= cutoff.t
                 FROM ok AS r CROSS JOIN cutoff LEFT JOIN allocations AS a
                   ON a.optimization = r.optimization AND a.run_id = r.run_id
                  AND (r.as_of >= cutoff.t OR (a.context = '*' AND a.role = 'holdout'))
                 ORDER BY r.as_of, r.seq, a.context, a.arm_id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(
                params![optimization, recent_from.micros(), recent_from.micros()],
                |row| {
                    Ok((
                        row.get::<_, Instant>(0)?,
                        row.get::<_, Option<ContextKey>>(1)?,
                        row.get::<_, Option<ArmId>>(2)?,
                        row.get::<_, Option<f64>>(3)?,
                        row.get::<_, i64>(4)?,
                        row.get::<_, bool>(5)?,
                    ))
                },
            )
            .map_err(|e| self.error(e))?;
        let mut served: Vec<Served> = Vec::new();
        let mut last_seq = None;
        let rows: Vec<_> = rows.collect::<Result<_, _>>().map_err(|e| {
            let of = format!("optimization {optimization}");
            self.read_error(&statement, "allocations", &of, e)
        })?;
        for (as_of, context, arm_id, weight, seq, complete) in rows {
            if last_seq != Some(seq) {
                // A rerun at the same as_of replaces what the earlier run published.
                if served.last().is_some_and(|last| last.as_of == as_of) {
                    served.pop();
                }
                served.push(Served {
                    as_of,
                    complete,
                    weights: BTreeMap::new(),
                });
                last_seq = Some(seq);
            }
            if let (Some(last), Some(context), Some(arm_id), Some(weight)) =
                (served.last_mut(), context, arm_id, weight)
            {
                last.weights
                    .entry(context)
                    .or_default()
                    .insert(arm_id, weight);
            }
        }
        Ok(served)
    }

    /// The latest successful run of an optimization and its report rows, in context and arm order.
    pub fn latest_report(
        &self,
        optimization: &str,
    ) -> Result<Option<(RunInfo, Vec<ArmReport>)>, StateError> {
        let run = self
            .connection
            .query_row(
                "SELECT run_id, epoch_us(as_of), epoch_us(trained_at), seed, scan_mode, mature_units,
                        CAST(unmatched AS VARCHAR), CAST(warnings AS VARCHAR), CAST(diagnostics AS VARCHAR),
                        metric
                 FROM runs WHERE optimization = ? AND outcome = 'ok' ORDER BY seq DESC LIMIT 1",
                params![optimization],
                |row| {
                    let run = RunInfo {
                        optimization: optimization.to_string(),
                        run_id: row.get(0)?,
                        metric: row.get(9)?,
                        as_of: row.get(1)?,
                        trained_at: row.get(2)?,
                        seed: row.get(3)?,
                        scan_mode: row.get(4)?,
                        mature_units: row.get(5)?,
                        unmatched: BTreeMap::new(),
                        warnings: Vec::new(),
                        diagnostics: None,
                    };
                    // The JSON columns, decoded below with an error that names them.
                    let json: (String, String, Option<String>) =
                        (row.get(6)?, row.get(7)?, row.get(8)?);
                    Ok((run, json))
                },
            )
            .map(Some)
            .or_else(|e| match e {
                duckdb::Error::QueryReturnedNoRows => Ok(None),
                e => Err(self.error(e)),
            })?;
        let Some((mut run, (unmatched, warnings, diagnostics))) = run else {
            return Ok(None);
        };
        run.unmatched = self.decode("unmatched", &run.run_id, &unmatched)?;
        run.warnings = self.decode("warnings", &run.run_id, &warnings)?;
        run.diagnostics = diagnostics
            .map(|d| self.decode("diagnostics", &run.run_id, &d))
            .transpose()?;
        let mut statement = self
            .connection
            .prepare(
                "SELECT context, arm_id, role, CAST(variant AS VARCHAR), status, units, conversions, rate, alpha, beta,
                        mean, ci_low, ci_high, p_best, expected_loss, weight_prev, weight_new,
                        lift_vs_holdout, lift_ci_low, lift_ci_high, CAST(guardrails AS VARCHAR)
                 FROM arm_reports WHERE optimization = ? AND run_id = ?
                 ORDER BY context, role, TRY_CAST(arm_id AS INTEGER), arm_id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![optimization, run.run_id], |row| {
                Ok(ArmReport {
                    context: row.get(0)?,
                    arm_id: row.get(1)?,
                    role: row.get(2)?,
                    variant: row.get(3)?,
                    status: row.get(4)?,
                    units: row.get(5)?,
                    conversions: row.get(6)?,
                    rate: row.get(7)?,
                    alpha: row.get(8)?,
                    beta: row.get(9)?,
                    mean: row.get(10)?,
                    ci_low: row.get(11)?,
                    ci_high: row.get(12)?,
                    p_best: row.get(13)?,
                    expected_loss: row.get(14)?,
                    weight_prev: row.get(15)?,
                    weight_new: row.get(16)?,
                    lift_vs_holdout: row.get(17)?,
                    lift_ci_low: row.get(18)?,
                    lift_ci_high: row.get(19)?,
                    guardrails: row.get::<_, JsonList<GuardrailEstimate>>(20)?.0,
                })
            })
            .map_err(|e| self.error(e))?;
        let arms = rows.collect::<Result<_, _>>().map_err(|e| {
            self.read_error(&statement, "arm_reports", &format!("run {}", run.run_id), e)
        })?;
        Ok(Some((run, arms)))
    }

    /// Every successful run's weight and P(best) per arm, oldest first: the allocation history.
    pub fn history(&self, optimization: &str) -> Result<Vec<HistoryRow>, StateError> {
        let mut statement = self
            .connection
            .prepare(
                "SELECT r.run_id, epoch_us(r.as_of), r.seed, a.context, a.arm_id, a.role, a.status, e.change,
                        TRY_CAST(json_extract_string(r.diagnostics, '$.srm.p_value') AS DOUBLE),
                        CAST(a.variant AS VARCHAR), a.weight_new, a.p_best, a.mean, a.ci_low, a.ci_high
                 FROM runs AS r
                 JOIN arm_reports AS a ON a.optimization = r.optimization AND a.run_id = r.run_id
                 LEFT JOIN (
                     SELECT optimization, run_id, CAST(arm_id AS VARCHAR) AS arm_id,
                            string_agg(status || ': ' || reason, '; ' ORDER BY status) AS change
                     FROM arm_events GROUP BY ALL
                 ) AS e ON e.optimization = r.optimization AND e.run_id = r.run_id AND e.arm_id = a.arm_id
                 WHERE r.optimization = ? AND r.outcome = 'ok'
                 ORDER BY r.seq, a.context, a.role, TRY_CAST(a.arm_id AS INTEGER), a.arm_id",
            )
            .map_err(|e| self.error(e))?;
        let rows = statement
            .query_map(params![optimization], |row| {
                Ok(HistoryRow {
                    run_id: row.get(0)?,
                    as_of: row.get(1)?,
                    seed: row.get(2)?,
                    context: row.get(3)?,
                    arm_id: row.get(4)?,
                    role: row.get(5)?,
                    status: row.get(6)?,
                    change: row.get(7)?,
                    srm_p_value: row.get(8)?,
                    variant: row.get(9)?,
                    weight: row.get(10)?,
                    p_best: row.get(11)?,
                    mean: row.get(12)?,
                    ci_low: row.get(13)?,
                    ci_high: row.get(14)?,
                })
            })
            .map_err(|e| self.error(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| {
            self.read_error(
                &statement,
                "arm_reports",
                &format!("optimization {optimization}"),
                e,
            )
        })
    }

    /// Writes a successful run, in one transaction.
    pub fn commit(&mut self, w: &RunWrite<'_>) -> Result<(), StateError> {
        let path = self.path.clone();
        let error = |e: duckdb::Error| engine_error(&path, e);
        let tx = self.connection.transaction().map_err(error)?;
        for write in [
            replace_batches,
            replace_arms,
            insert_events,
            insert_run,
            append_allocations,
            append_arm_reports,
        ] {
            write(&tx, w).map_err(error)?;
        }
        tx.commit().map_err(error)
    }

    /// Records a failed run (no aggregates, no allocation), so that the history shows it.
    pub fn record_failure(&mut self, f: &FailedRun<'_>) -> Result<(), StateError> {
        self.connection
            .execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, '', '', ?, '', 'none', NULL, NULL, NULL, NULL, 0, '{}', '[]', NULL, 0, 'failed', ?, NULL, NULL, NULL)",
                params![
                    f.run_id,
                    f.optimization,
                    f.seq,
                    ts(f.as_of),
                    ts(f.trained_at),
                    f.seed,
                    env!("CARGO_PKG_VERSION"),
                    f.message
                ],
            )
            .map(|_| ())
            .map_err(|e| self.error(e))
    }
}

/// The batch aggregates the run recomputed, in place of the stored ones from its first batch.
fn replace_batches(tx: &Transaction<'_>, w: &RunWrite<'_>) -> duckdb::Result<()> {
    let r = w.report;
    match w.replaced_from {
        Some(from) => tx.execute(
            "DELETE FROM batch_stats WHERE optimization = ? AND batch_start >= make_timestamp(?)",
            params![r.optimization, from.micros()],
        ),
        None => tx.execute(
            "DELETE FROM batch_stats WHERE optimization = ?",
            params![r.optimization],
        ),
    }?;
    {
        let mut appender = tx.appender("batch_stats")?;
        for b in w.new_batches {
            appender.append_row(params![
                r.optimization,
                ts(b.batch_start),
                b.context,
                b.arm_id as i32,
                b.holdout,
                b.units,
                b.conversions,
                b.value_sum,
                b.value_sq_sum,
                b.batch_start < w.final_until,
                r.run_id,
                JsonList(b.guardrails.clone())
            ])?;
        }
        appender.flush()?;
    }
    Ok(())
}

/// The roster after the run.
fn replace_arms(tx: &Transaction<'_>, w: &RunWrite<'_>) -> duckdb::Result<()> {
    let r = w.report;
    tx.execute(
        "DELETE FROM arms WHERE optimization = ?",
        params![r.optimization],
    )?;
    {
        let mut appender = tx.appender("arms")?;
        for arm in w.arms {
            appender.append_row(params![
                r.optimization,
                arm.arm_id as i32,
                arm.variant,
                arm.status,
                ts(arm.since),
                arm.reason,
                opt_ts(arm.started),
                arm.initial,
                arm.origin
            ])?;
        }
        appender.flush()?;
    }
    Ok(())
}

/// What the run changed on the roster.
fn insert_events(tx: &Transaction<'_>, w: &RunWrite<'_>) -> duckdb::Result<()> {
    let r = w.report;
    for event in w.events {
        tx.execute(
            "INSERT INTO arm_events VALUES (?, ?, ?, ?, ?, ?)",
            params![
                r.optimization,
                r.run_id,
                event.arm_id as i32,
                event.status.as_str(),
                ts(w.as_of),
                event.reason
            ],
        )?;
    }
    Ok(())
}

/// The run itself.
fn insert_run(tx: &Transaction<'_>, w: &RunWrite<'_>) -> duckdb::Result<()> {
    let r = w.report;
    let unmatched = serde_json::to_string(&r.scan.unmatched).unwrap_or_default();
    let warnings = serde_json::to_string(&r.warnings).unwrap_or_default();
    let diagnostics = serde_json::to_string(&r.diagnostics).unwrap_or_default();
    let winner = r
        .winner
        .as_ref()
        .map(|w| serde_json::to_string(w).unwrap_or_default());
    tx.execute(
        "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'ok', NULL, ?, ?, ?)",
        params![
            r.run_id,
            r.optimization,
            w.seq,
            ts(w.as_of),
            ts(w.trained_at),
            r.seed,
            w.definition_hash,
            w.sql_hash,
            env!("CARGO_PKG_VERSION"),
            w.duckdb_version,
            r.scan.mode,
            opt_ts(w.replaced_from),
            ts(w.final_until),
            opt_ts(w.first_exposure),
            opt_ts(w.newest_exposure),
            r.scan.mature_units,
            unmatched,
            warnings,
            w.winner_arm_id.map(|id| id as i32),
            w.duration_ms,
            diagnostics,
            winner,
            r.metric
        ],
    )
    ?;
    Ok(())
}

/// The allocation the run published.
fn append_allocations(tx: &Transaction<'_>, w: &RunWrite<'_>) -> duckdb::Result<()> {
    let r = w.report;
    let mut appender = tx.appender("allocations")?;
    for a in &r.allocation {
        appender.append_row(params![
            a.run_id,
            a.optimization,
            ts(w.trained_at),
            a.context,
            a.arm_id,
            a.role,
            a.variant,
            a.weight,
            a.status
        ])?;
    }
    appender.flush()?;
    Ok(())
}

/// The report rows of every context and arm.
fn append_arm_reports(tx: &Transaction<'_>, w: &RunWrite<'_>) -> duckdb::Result<()> {
    let r = w.report;
    let mut appender = tx.appender("arm_reports")?;
    for a in &r.arms {
        appender.append_row(params![
            r.run_id,
            r.optimization,
            a.context,
            a.arm_id,
            a.role,
            a.variant,
            a.status,
            a.units,
            a.conversions,
            a.rate,
            a.alpha,
            a.beta,
            a.mean,
            a.ci_low,
            a.ci_high,
            a.p_best,
            a.expected_loss,
            a.weight_prev,
            a.weight_new,
            a.lift_vs_holdout,
            a.lift_ci_low,
            a.lift_ci_high,
            JsonList(a.guardrails.clone())
        ])?;
    }
    appender.flush()?;
    Ok(())
}
