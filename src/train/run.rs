//! One training run of each selected optimization, in order, under the state store's lock; each
//! optimization's run is a chain of stages: plan, evidence, fit, evolve, decide, diagnose, record,
//! persist (one file each).

use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use chrono::{DateTime, Utc};

use crate::config::{Config, Optimization, Status};
use crate::exit::{Failure, Kind};
use crate::interrupt;
use crate::output::Printer;
use crate::report::{self, RunReport};
use crate::state::{self, StateStore, Store};
use crate::time::Instant;
use crate::warehouse::{self, Engine, SqlEngine, WarehouseError};

use super::decide::{self, Frame};
use super::evidence::Evidence;
use super::fit::{stream_seed, Fitter};
use super::guard::Guarded;
use super::plan::Planned;
use super::tally::Tally;
use super::{diagnose, evidence, evolve, persist, plan, record};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct TrainOptions {
    pub optimizations: Vec<String>,
    pub all: bool,
    pub as_of: DateTime<Utc>,
    /// Wall-clock time of the run, recorded as `trained_at`.
    pub trained_at: DateTime<Utc>,
    pub seed: Option<u64>,
    pub dry_run: bool,
    pub full: bool,
    pub lock_timeout: Duration,
}

/// How one optimization's training ended.
#[derive(Debug)]
pub enum Outcome {
    Trained(Box<RunReport>),
    Skipped {
        optimization: String,
        reason: String,
    },
    /// A data, SQL, engine or state error, or a definition the warehouse cannot serve.
    Failed {
        optimization: String,
        failure: Failure,
    },
}

/// Trains the selected optimizations on the configured warehouse; one failing optimization does not
/// stop the others.
pub fn train(
    config: &Config,
    options: &TrainOptions,
    printer: &Printer,
) -> Result<Vec<Outcome>, Failure> {
    let selected = select(config, options)?;
    // A dry run on a project without a store has nothing to lock and must not create anything.
    let needs_lock = !options.dry_run || config.state.exists();
    let _lock = needs_lock
        .then(|| state::acquire(&config.state, options.lock_timeout))
        .transpose()
        .map_err(Failure::from)?;
    let open_store = if options.dry_run {
        StateStore::open_read_only
    } else {
        StateStore::open
    };
    // The warehouse engine, when the run needs one, starts while the state store opens: each is a
    // database instance of its own, and starting one takes tens of milliseconds.
    let needs_engine = selected.iter().any(|o| o.status != Status::Archived);
    let (store, mut engine) = std::thread::scope(|scope| {
        let store = scope.spawn(|| open_store(&config.state));
        // Shared by every optimization's outcome when the warehouse cannot be opened.
        let engine: Option<Result<Box<dyn SqlEngine>, Arc<WarehouseError>>> =
            needs_engine.then(|| warehouse::open(&config.warehouse).map_err(Arc::new));
        let store = store
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (store, engine)
    });
    let mut store = store?;
    let mut outcomes = Vec::new();
    for optimization in selected {
        if let Some(signal) = interrupt::received() {
            outcomes.push(Outcome::Skipped {
                optimization: optimization.name.clone(),
                reason: format!("not started: stopped by {}", interrupt::name(signal)),
            });
            continue;
        }
        if optimization.status == Status::Archived {
            outcomes.push(Outcome::Skipped {
                optimization: optimization.name.clone(),
                reason:
                    "archived: its data is kept, but it is not trained; set status: live to resume"
                        .into(),
            });
            continue;
        }
        let engine: Result<&dyn Engine, Arc<WarehouseError>> = match engine
            .get_or_insert_with(|| warehouse::open(&config.warehouse).map_err(Arc::new))
        {
            Ok(engine) => Ok(&**engine as &dyn Engine),
            Err(error) => Err(Arc::clone(error)),
        };
        let outcome = match engine {
            Err(error) => Outcome::Failed {
                optimization: optimization.name.clone(),
                failure: Failure::data(error),
            },
            Ok(engine) => {
                let job = Job {
                    config,
                    optimization,
                    options,
                    printer,
                };
                trained(job, engine, &mut store)
            }
        };
        outcomes.push(outcome);
    }
    if !options.dry_run {
        publish_snapshot(&store, &outcomes, printer);
    }
    Ok(outcomes)
}

/// Trains the one selected optimization on `engine` into `store` and writes no report files: the
/// simulator's fast path, whose store lives in memory ([`state::MemoryStore`]). A failure is
/// returned, not recorded.
pub fn train_in(
    config: &Config,
    options: &TrainOptions,
    printer: &Printer,
    engine: &dyn Engine,
    store: &mut dyn Store,
) -> anyhow::Result<RunReport> {
    let selected = select(config, options).map_err(|failure| failure.error)?;
    let [optimization] = selected[..] else {
        return Err(anyhow!("select one optimization"));
    };
    let job = Job {
        config,
        optimization,
        options,
        printer,
    };
    train_one(job, engine, store, job.seed(), Files::None)
}

/// Whether a run writes its report files.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Files {
    Write,
    None,
}

/// One optimization to train, and what every stage of its run reads.
#[derive(Clone, Copy)]
pub(super) struct Job<'a> {
    pub(super) config: &'a Config,
    pub(super) optimization: &'a Optimization,
    pub(super) options: &'a TrainOptions,
    pub(super) printer: &'a Printer,
}

impl Job<'_> {
    /// The run's seed: `--seed`, else `model.seed`, else a random one (recorded with the run).
    fn seed(&self) -> u64 {
        self.options
            .seed
            .or(self.optimization.model.seed)
            .unwrap_or_else(rand::random::<u64>)
    }
}

/// Trains one optimization on `engine`; a failure is recorded in the store (unless a dry run or a
/// signal stopped it, which write nothing).
fn trained(job: Job<'_>, engine: &dyn Engine, store: &mut StateStore) -> Outcome {
    let Job {
        optimization,
        options,
        ..
    } = job;
    let seed = job.seed();
    let error = match train_one(job, engine, store, seed, Files::Write) {
        Ok(report) => return Outcome::Trained(Box::new(report)),
        Err(error) => error,
    };
    let name = optimization.name.clone();
    if let Some(signal) = interrupt::received() {
        return Outcome::Failed {
            optimization: name,
            failure: Failure::new(
                Kind::Stopped { signal },
                anyhow!(
                    "stopped by {}: nothing of this run was written",
                    interrupt::name(signal)
                ),
            ),
        };
    }
    if !options.dry_run {
        record_failure(store, &name, options, seed, &format!("{error:#}"));
    }
    Outcome::Failed {
        optimization: name,
        failure: Failure::of_training(error),
    }
}

/// Publishes the snapshot readers (report, history) open, when the run recorded anything, trained
/// or failed; a snapshot that cannot be written is a warning.
fn publish_snapshot(store: &StateStore, outcomes: &[Outcome], printer: &Printer) {
    let recorded = outcomes
        .iter()
        .any(|o| !matches!(o, Outcome::Skipped { .. }));
    if !recorded {
        return;
    }
    if let Err(error) = store.publish_snapshot() {
        printer.warn(&format!(
            "{error}\n  hint: report and history read the store itself until a run publishes it"
        ));
    }
}

fn select<'c>(
    config: &'c Config,
    options: &TrainOptions,
) -> Result<Vec<&'c Optimization>, Failure> {
    if !options.all && options.optimizations.is_empty() {
        return Err(Failure::usage(
            "no optimization selected\n  hint: pass --all, or --optimization NAME (repeatable)",
        ));
    }
    config
        .select(&options.optimizations)
        .map_err(Failure::usage)
}

/// One optimization's run: a chain of stages, each in a file of its own.
fn train_one(
    job: Job<'_>,
    engine: &dyn Engine,
    store: &mut dyn Store,
    seed: u64,
    files: Files,
) -> anyhow::Result<RunReport> {
    let started = std::time::Instant::now();
    let mut planned = plan::plan(job.config, job.optimization, store, job.options)?;
    let evidence = evidence::read(job.optimization, engine, store, &planned, job.printer)?;
    if job.config.warehouse.fail_when_stale {
        if let Some(problem) = diagnose::stale(job.config, &evidence, planned.scan.as_of) {
            anyhow::bail!("{problem}\n  hint: warehouse.on_stale: fail makes this an error; nothing of this run was written");
        }
    }
    let report = report_of(job, &mut planned, &evidence, seed);
    if job.options.dry_run {
        return Ok(report);
    }
    let written = persist::Written {
        planned: &planned,
        evidence: &evidence,
        duckdb_version: engine.version(),
        duration_ms: started.elapsed().as_millis() as i64,
    };
    if files == Files::Write {
        persist::persist(job.config, store, &report, &written, job.options)?;
    } else {
        persist::commit(store, &report, &written, job.options)?;
    }
    Ok(report)
}

/// The stages between the evidence and the run's report: tally, fit, evolve the roster, decide,
/// diagnose, record. They read no engine and no store.
pub(super) fn report_of(
    job: Job<'_>,
    planned: &mut Planned<'_>,
    evidence: &Evidence,
    seed: u64,
) -> RunReport {
    let Job {
        config,
        optimization,
        options,
        ..
    } = job;
    let as_of = planned.scan.as_of;
    let tally = Tally::collect(&evidence.batches, &evidence.served, as_of, optimization);
    let pooled = &tally.pooled;
    let fitter = Fitter::new(optimization, &planned.roster, pooled);
    let mut fitted = fitter.fit_arms(&planned.roster, pooled);
    let baseline = decide::baseline(optimization, &planned.roster);
    let guarded = Guarded::assess(
        optimization,
        &planned.roster,
        pooled,
        baseline,
        stream_seed(seed, &optimization.name),
    );
    let standing = decide::standing(
        optimization,
        pooled,
        evidence.first_exposure,
        planned.last.as_ref(),
        as_of,
    );
    let mut warnings = Vec::new();
    let comparison = evolve::evolve(
        optimization,
        &mut planned.roster,
        evolve::Fitted {
            fitter: &fitter,
            arms: &mut fitted,
            pooled,
            baseline,
            guarded: &guarded,
        },
        &standing.settings,
        (stream_seed(seed, &optimization.name), as_of),
        &mut warnings,
    );
    let frame = Frame {
        optimization,
        roster: &planned.roster,
        fitter,
        baseline,
        seed,
        guarded,
    };
    let decided = decide::decide(
        &frame,
        &tally,
        (fitted, comparison),
        &standing,
        as_of,
        &mut warnings,
    );
    let diagnostics = diagnose::diagnose(
        config,
        optimization,
        (evidence, &tally),
        (&planned.roster, &decided),
        (
            diagnose::Clock {
                as_of,
                trained_at: Instant::from_utc(options.trained_at),
            },
            standing.holdout_share,
        ),
        planned.last.as_ref(),
        &mut warnings,
    );
    record::record(
        &frame,
        (planned, evidence, decided),
        (diagnostics, warnings),
        options,
    )
}

/// Records a failed run in the store, so that the history shows it; a store that cannot take the
/// record is left as it is (the error is reported either way).
fn record_failure(
    store: &mut StateStore,
    optimization: &str,
    options: &TrainOptions,
    seed: u64,
    message: &str,
) {
    if let Ok(seq) = store.next_seq(optimization) {
        let run_id = report::run_id(options.as_of, seq);
        let _ = store.record_failure(&state::FailedRun {
            optimization,
            run_id: &run_id,
            seq,
            as_of: Instant::from_utc(options.as_of),
            trained_at: Instant::from_utc(options.trained_at),
            seed,
            message,
        });
    }
}
