//! One training run of each selected optimization, in order: lock, scan, lifecycle, posteriors,
//! allocation per context, diagnostics, and one atomic write.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::allocation::{self, ArmState, ArmStatus, Phase, Roster, Settings};
use crate::config::{Config, MetricKind, Optimization, Status};
use crate::exit::{ExitStatus, Failure};
use crate::interrupt;
use crate::model::{self, Sums};
use crate::output::Printer;
use crate::report::{
    self, AllocationRow, ArmReport, Diagnostics, RunReport, ScanSummary, Staged, Winner,
};
use crate::state::{self, LastRun, RunWrite, StateStore, StoredArm};
use crate::warehouse::{self, BatchRow, Engine, ScanPlan, SqlEngine};

use super::generation::{generate, Evidence};
use super::roster::{is_excluded, roster_arm, stored_arm};
use super::tally::{self, sample_ratio, Cell, Tally, HOLDOUT_ID};

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
    /// A data, SQL, engine or state error (exit code 4 when nothing else succeeded).
    Failed {
        optimization: String,
        error: anyhow::Error,
    },
}

/// Trains the selected optimizations on the configured warehouse; one failing optimization does not
/// stop the others.
pub fn train(
    config: &Config,
    options: &TrainOptions,
    printer: &Printer,
) -> Result<Vec<Outcome>, Failure> {
    train_with(config, options, printer, None)
}

/// Trains on `engine` instead of the configured warehouse (the simulator's fast path).
pub fn train_on(
    config: &Config,
    options: &TrainOptions,
    printer: &Printer,
    engine: &dyn Engine,
) -> Result<Vec<Outcome>, Failure> {
    train_with(config, options, printer, Some(engine))
}

fn train_with(
    config: &Config,
    options: &TrainOptions,
    printer: &Printer,
    given: Option<&dyn Engine>,
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
    let needs_engine = given.is_none() && selected.iter().any(|o| o.status != Status::Archived);
    let (store, mut engine) = std::thread::scope(|scope| {
        let store = scope.spawn(|| open_store(&config.state));
        let engine: Option<Result<Box<dyn SqlEngine>, String>> =
            needs_engine.then(|| warehouse::open(&config.warehouse).map_err(|e| e.to_string()));
        let store = store
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (store, engine)
    });
    let mut store = store.map_err(|e| Failure::new(ExitStatus::Data, e))?;
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
        let engine: Result<&dyn Engine, String> = match given {
            Some(engine) => Ok(engine),
            None => match engine.get_or_insert_with(|| {
                warehouse::open(&config.warehouse).map_err(|e| e.to_string())
            }) {
                Ok(engine) => Ok(&**engine as &dyn Engine),
                Err(message) => Err(message.clone()),
            },
        };
        let outcome = match engine {
            Err(message) => Outcome::Failed {
                optimization: optimization.name.clone(),
                error: anyhow!("{message}"),
            },
            Ok(engine) => {
                let seed = options
                    .seed
                    .or(optimization.model.seed)
                    .unwrap_or_else(rand::random::<u64>);
                match train_one(
                    config,
                    optimization,
                    engine,
                    &mut store,
                    options,
                    printer,
                    seed,
                ) {
                    Ok(report) => Outcome::Trained(Box::new(report)),
                    Err(_) if interrupt::received().is_some() => {
                        let signal = interrupt::received().unwrap_or_default();
                        Outcome::Failed {
                            optimization: optimization.name.clone(),
                            error: anyhow!(
                                "stopped by {}: nothing of this run was written",
                                interrupt::name(signal)
                            ),
                        }
                    }
                    Err(error) => {
                        if !options.dry_run {
                            record_failure(
                                &mut store,
                                &optimization.name,
                                options,
                                seed,
                                &format!("{error:#}"),
                            );
                        }
                        Outcome::Failed {
                            optimization: optimization.name.clone(),
                            error,
                        }
                    }
                }
            }
        };
        outcomes.push(outcome);
    }
    // Readers (report, history) see what this run recorded, trained or failed, once it is over.
    let recorded = outcomes
        .iter()
        .any(|o| !matches!(o, Outcome::Skipped { .. }));
    if recorded && !options.dry_run {
        if let Err(error) = store.publish_snapshot() {
            printer.warn(&format!(
                "{error}\n  hint: report and history read the store itself until a run publishes it"
            ));
        }
    }
    Ok(outcomes)
}

fn select<'c>(
    config: &'c Config,
    options: &TrainOptions,
) -> Result<Vec<&'c Optimization>, Failure> {
    if !options.all && options.optimizations.is_empty() {
        return Err(Failure::new(
            ExitStatus::Usage,
            anyhow!(
                "no optimization selected\n  hint: pass --all, or --optimization NAME (repeatable)"
            ),
        ));
    }
    config
        .select(&options.optimizations)
        .map_err(|message| Failure::new(ExitStatus::Usage, anyhow!(message)))
}

fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn rfc3339(us: i64) -> String {
    Utc.timestamp_micros(us)
        .single()
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The seed of one optimization's random stream, derived from the run seed and its name.
fn stream_seed(seed: u64, optimization: &str) -> u64 {
    let digest = Sha256::digest(format!("{seed}:{optimization}").as_bytes());
    u64::from_be_bytes(
        digest[..8]
            .try_into()
            .expect("a SHA-256 digest has 32 bytes"),
    )
}

fn train_one(
    config: &Config,
    optimization: &Optimization,
    engine: &dyn Engine,
    store: &mut StateStore,
    options: &TrainOptions,
    printer: &Printer,
    seed: u64,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let name = &optimization.name;
    let as_of_us = micros(options.as_of);
    let last = store.last_run(name)?;
    let factor_names: Vec<String> = optimization
        .factors
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let defined: Vec<(Vec<String>, String)> = optimization
        .variants
        .iter()
        .map(|v| (v.0.clone(), optimization.variant_json(v)))
        .collect();
    let cap = optimization
        .generation
        .as_ref()
        .map_or(usize::MAX, |g| g.max_active_arms);
    let mut roster = Roster::reconcile(
        store
            .arms(name)?
            .iter()
            .map(|a| roster_arm(a, &factor_names))
            .collect(),
        &defined,
        |levels| is_excluded(optimization, levels),
        cap,
        as_of_us,
    );

    let probe = ScanPlan {
        optimization,
        arms: roster
            .arms
            .iter()
            .map(|a| (a.id, a.levels.clone()))
            .collect(),
        as_of_us,
        from_batch_us: None,
    };
    let sql_hash = sql_hash(optimization, &config.warehouse.tables, &probe);
    let definition_hash = sha256_hex(&serde_json::to_string(optimization).unwrap_or_default());
    if let Some(last) = &last {
        if as_of_us < last.as_of_us && !options.full {
            return Err(anyhow!(
                "the run's as_of {} is earlier than the last run's ({}, run {})\n  hint: to train as of this time, add --full once (every batch is recomputed up to it); if the last run's as_of was a mistake (a typo, a time in the future), one `levered train --full` without --as-of puts the optimization back on the clock",
                rfc3339(as_of_us),
                rfc3339(last.as_of_us),
                last.run_id
            ));
        }
    }
    let full_reason = full_reason(optimization, options.full, last.as_ref(), &sql_hash);
    let from_batch_us = match (&full_reason, &last) {
        (None, Some(last)) => last.final_until_us,
        _ => None,
    };
    let plan = ScanPlan {
        from_batch_us,
        ..probe
    };

    let model_settings = &optimization.model;
    let batch_us = model_settings.batch.micros();
    let window_us = optimization.attribution.window.micros();
    // The SRM test reads the full weights of the runs that served its newest complete batches.
    let srm_from_us = as_of_us - window_us - (tally::SRM_BATCHES as i64 + 2) * batch_us;
    // The state store is read while the warehouse aggregates: the stored batches before the scan's
    // first batch, those served weights, the run's sequence number and the last run's weights.
    let spinner = printer.spinner(format!("{name}: aggregating in the warehouse"));
    let (scan, reads) = std::thread::scope(|scope| {
        let store = &mut *store;
        let reads = scope.spawn(move || {
            let stored = match from_batch_us {
                Some(from) => store.batches(name, Some(from))?,
                None => Vec::new(),
            };
            let served = store.served(name, srm_from_us)?;
            Ok::<_, crate::state::StateError>((
                stored,
                served,
                store.next_seq(name)?,
                store.last_weights(name)?,
            ))
        });
        let cancel = engine.canceller();
        let scan = interrupt::cancellable(cancel.as_deref(), || engine.aggregate(&plan));
        let reads = reads
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (scan, reads)
    });
    spinner.finish_and_clear();
    let scan = scan?;
    let (stored, served, seq, previous) = reads?;
    let batches: Vec<BatchRow> = stored.iter().chain(&scan.rows).cloned().collect();
    let final_until_us =
        warehouse::final_until_us(optimization, as_of_us).max(from_batch_us.unwrap_or(i64::MIN));
    let first_exposure_us = earliest(
        scan.first_exposure_us,
        last.as_ref().and_then(|l| l.first_exposure_us),
        from_batch_us.is_some(),
    );
    let newest_exposure_us = if from_batch_us.is_some() {
        scan.newest_exposure_us
            .max(last.as_ref().and_then(|l| l.newest_exposure_us))
    } else {
        scan.newest_exposure_us
    };

    let half_life = model_settings.decay_half_life.map(|h| h.micros());
    let tally = Tally::collect(&batches, &served, as_of_us, half_life, batch_us);
    let pooled = &tally.pooled;
    let kind = optimization.reward.kind;
    let numeric_prior = model::NumericPrior::pooled(
        &roster
            .arms
            .iter()
            .map(|a| pooled.decayed(a.id))
            .collect::<Vec<_>>(),
    );
    let fit = |sums: &Sums| match kind {
        MetricKind::Bool => {
            model::fit_bool(model_settings.prior.alpha, model_settings.prior.beta, sums)
        }
        MetricKind::Numeric => numeric_prior.fit(sums),
    };
    let mut fitted: BTreeMap<u32, model::Fitted> = roster
        .arms
        .iter()
        .map(|a| (a.id, fit(&pooled.decayed(a.id))))
        .collect();
    let baseline_id = roster
        .arms
        .iter()
        .find(|a| {
            optimization
                .variants
                .first()
                .is_some_and(|v| v.0 == a.levels)
        })
        .map(|a| a.id);
    let live = optimization.status == Status::Live;
    let incubation_us = model_settings.drop.map_or(0, |d| d.incubation.micros());
    if optimization.generation.is_none() {
        // Without generation there is no cap: arms that waited under an earlier one start.
        let waiting: Vec<u32> = roster
            .arms
            .iter()
            .filter(|a| a.status == ArmStatus::Proposed)
            .map(|a| a.id)
            .collect();
        roster.start_proposed(
            &waiting,
            usize::MAX,
            "generation.max_active_arms removed",
            as_of_us,
        );
    }
    roster.mature(incubation_us, as_of_us);

    let holdout_units = pooled.holdout_raw.units as u64;
    let holdout_share = model_settings
        .holdout
        .map(|h| if live { h.share(holdout_units) } else { 0.0 });
    let burn_in_elapsed =
        first_exposure_us.is_some_and(|first| as_of_us >= first + model_settings.burn_in.micros());
    let locked = last
        .as_ref()
        .and_then(|l| l.winner.as_deref())
        .and_then(|w| serde_json::from_str::<report::Winner>(w).ok());
    let settings = Settings {
        status: optimization.status,
        burn_in_elapsed,
        min_units_per_arm: model_settings.min_units_per_arm,
        floor: model_settings.floor.get(),
        locked_winner: locked
            .as_ref()
            .map(|w| w.arm_id)
            .or(last.as_ref().and_then(|l| l.winner_arm_id)),
        holdout: holdout_share.unwrap_or(0.0),
    };
    let stream = stream_seed(seed, name);
    let mut comparison = Serving::compare(&roster, &fitted, stream);
    let mut warnings = Vec::new();
    if live {
        let mut changed = false;
        if let Some(rule) = model_settings.drop {
            let states = comparison.states(&roster, pooled, baseline_id);
            let below = rule.below.get();
            let dropped: Vec<(u32, String)> = allocation::drops(&states, &settings, below)
                .into_iter()
                .map(|id| {
                    let p = comparison.p_best(id).unwrap_or(0.0);
                    (
                        id,
                        format!("P(best) {p:.4} under drop.below {below} after incubation"),
                    )
                })
                .collect();
            changed |= !dropped.is_empty();
            roster.drop_arms(&dropped, as_of_us);
        }
        if let Some(generation) = &optimization.generation {
            let before = roster.serving_count();
            generate(
                optimization,
                generation,
                &mut roster,
                &Evidence {
                    fitted: &fitted,
                    tally: pooled,
                    comparison: &comparison,
                },
                as_of_us,
                &mut warnings,
            );
            changed |= roster.serving_count() != before;
        }
        if changed {
            // Generated arms have no data yet: their posterior is the prior.
            for arm in &roster.arms {
                fitted
                    .entry(arm.id)
                    .or_insert_with(|| fit(&Sums::default()));
            }
            comparison = Serving::compare(&roster, &fitted, stream);
        }
    }
    let states = comparison.states(&roster, pooled, baseline_id);
    let decision = allocation::decide(&states, &settings);
    let winner = match decision.phase {
        Phase::Completed { winner } => Some(match locked.filter(|w| w.arm_id == winner) {
            Some(locked) => locked,
            None => {
                let posterior = fitted[&winner].posterior;
                let interval = posterior.interval(0.95);
                Winner {
                    arm_id: winner,
                    variant: roster
                        .arms
                        .iter()
                        .find(|a| a.id == winner)
                        .map(|a| a.variant.clone())
                        .unwrap_or_default(),
                    p_best: comparison.p_best(winner).unwrap_or(0.0),
                    mean: posterior.mean(),
                    ci_low: interval.low,
                    ci_high: interval.high,
                    units: pooled.raw(winner).units as i64,
                    decided_run: String::new(),
                    decided_as_of: rfc3339(as_of_us),
                }
            }
        }),
        _ => None,
    };

    // Contextual models: the most frequent cells get their own allocation, from posteriors shrunk
    // toward each arm's pooled posterior; every other visitor is served the pooled `*` rows.
    let holdout_fit = fit(&pooled.holdout_decayed);
    let mut views = vec![View {
        context: "*".into(),
        cell: pooled,
        fitted: fitted.clone(),
        holdout_fit,
        comparison,
        decision,
    }];
    let frame = Frame {
        optimization,
        roster: &roster,
        numeric_prior,
        baseline: baseline_id,
        seed,
    };
    let cell_settings = Settings {
        locked_winner: views[0].decision.phase.winner().or(settings.locked_winner),
        ..settings
    };
    let mut context_note = None;
    views.extend(context_views(
        &frame,
        &tally,
        &views[0],
        &cell_settings,
        &mut context_note,
    ));
    if let Some(context) = views.iter().skip(1).find(|v| {
        matches!(
            v.comparison.comparison.method,
            model::Method::MonteCarlo { .. }
        )
    }) {
        warnings.push(format!(
            "P(best) of context {} (and maybe others) by Monte Carlo: quadrature did not converge",
            context.context
        ));
    }

    let run_id = report::run_id(options.as_of, seq);
    let winner = winner.map(|w| Winner {
        decided_run: if w.decided_run.is_empty() {
            run_id.clone()
        } else {
            w.decided_run
        },
        ..w
    });
    let trained_at = options.trained_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let unmatched: BTreeMap<String, i64> = scan
        .unmatched
        .iter()
        .map(|(reason, count)| (reason.label().to_string(), *count))
        .collect();
    let (metric_rows, exposure_rows): (Vec<_>, Vec<_>) = scan
        .unmatched
        .iter()
        .partition(|(reason, _)| reason.is_metric_row());
    if !exposure_rows.is_empty() {
        let parts: Vec<String> = exposure_rows
            .iter()
            .map(|(r, c)| format!("{}: {c}", r.label()))
            .collect();
        warnings.push(format!(
            "{} exposure rows in the scanned range were not counted ({})",
            exposure_rows.iter().map(|(_, c)| **c).sum::<i64>(),
            parts.join(", ")
        ));
    }
    for (reason, count) in metric_rows {
        warnings.push(format!(
            "{count} rows of metric `{}` in the scanned range were not counted as rewards ({}: column `value` is NULL)",
            optimization.reward.name,
            reason.label()
        ));
    }
    let stale_after = config.warehouse.stale_after.micros();
    match newest_exposure_us {
        None => warnings.push("no valid exposure found for this optimization".into()),
        Some(newest) if as_of_us - newest > stale_after => warnings.push(format!(
            "the newest exposure ({}) is older than warehouse.stale_after ({}): is the pipeline still writing?",
            rfc3339(newest),
            config.warehouse.stale_after
        )),
        Some(_) => {}
    }
    if model_settings.holdout.is_none() && holdout_units > 0 {
        warnings.push(format!(
            "{holdout_units} mature units are flagged holdout in the exposures, but no holdout is configured; they are left out of every arm's posterior"
        ));
    }
    if let model::Method::MonteCarlo { draws, seed } = views[0].comparison.comparison.method {
        warnings.push(format!(
            "P(best) by Monte Carlo ({draws} draws, seed {seed}): quadrature did not converge"
        ));
    }
    for event in &roster.events {
        if event.definition_changed {
            warnings.push(format!(
                "arm {} is now {}: {} (the definition changed)",
                event.arm_id, event.status, event.reason
            ));
        }
    }
    let (srm, srm_note) = sample_ratio(&batches, &served, as_of_us, batch_us, window_us);
    if let Some(test) = srm.filter(|t| t.flagged) {
        warnings.push(format!(
            "sample-ratio mismatch: the units per arm do not follow the served weights ({}, {srm_note}): check that the serving side reads allocation.csv and logs every exposure",
            report::srm_text(&test)
        ));
    }
    let bool_reward = kind == MetricKind::Bool;
    let (lift, lift_note) = match model_settings.holdout {
        None => (None, Some("no holdout is configured".to_string())),
        Some(_) => match model::lift(&pooled.strata(None), bool_reward) {
            Ok(lift) => (Some(lift), None),
            Err(why) => (None, Some(why)),
        },
    };

    let (allocation_rows, arm_reports) = rows(
        &frame,
        &views,
        holdout_share,
        &previous,
        (&run_id, &trained_at),
    );
    let report = RunReport {
        optimization: name.clone(),
        run_id: run_id.clone(),
        as_of: rfc3339(as_of_us),
        trained_at,
        seed,
        phase: views[0].decision.phase.clone(),
        p_best_method: views[0].comparison.comparison.method,
        scan: ScanSummary {
            mode: if from_batch_us.is_some() {
                "incremental"
            } else {
                "full"
            }
            .into(),
            full_reason,
            from_batch: from_batch_us.map(rfc3339),
            batches_recomputed: scan
                .rows
                .iter()
                .map(|r| r.batch_start_us)
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            mature_units: batches.iter().filter(|b| !b.holdout).map(|b| b.units).sum(),
            unmatched,
            newest_exposure: newest_exposure_us.map(rfc3339),
        },
        diagnostics: Diagnostics {
            holdout_share,
            lift,
            lift_note,
            srm,
            srm_note,
            arm_changes: roster.events.clone(),
            context_note,
        },
        winner,
        warnings,
        allocation: allocation_rows,
        arms: arm_reports,
    };
    if options.dry_run {
        return Ok(report);
    }

    let folder = report::inside(&config.output_dir, name)?;
    let mut staged = Staged::new();
    stage_files(&mut staged, &folder, &report)?;
    if let Some(signal) = interrupt::received() {
        return Err(anyhow!("stopped by {}", interrupt::name(signal)));
    }
    let arms: Vec<StoredArm> = roster.arms.iter().map(stored_arm).collect();
    store.commit(&RunWrite {
        report: &report,
        seq,
        as_of_us,
        trained_at_us: micros(options.trained_at),
        definition_hash: &definition_hash,
        sql_hash: &sql_hash,
        duckdb_version: &engine.version(),
        replaced_from_us: from_batch_us,
        final_until_us,
        first_exposure_us,
        newest_exposure_us,
        winner_arm_id: report.winner.as_ref().map(|w| w.arm_id),
        new_batches: &scan.rows,
        arms: &arms,
        events: &roster.events,
        duration_ms: started.elapsed().as_millis() as i64,
    })?;
    staged.publish()?;
    report::prune_runs(&folder.join("runs"), config.keep_runs as usize)?;
    Ok(report)
}

/// What every context of one run shares.
struct Frame<'a> {
    optimization: &'a Optimization,
    roster: &'a Roster,
    numeric_prior: model::NumericPrior,
    baseline: Option<u32>,
    seed: u64,
}

/// The allocations of the most frequent context cells (contextual models): posteriors shrunk toward
/// each arm's pooled posterior with the empirical-Bayes strength estimated across the cells.
fn context_views<'a>(
    frame: &Frame<'_>,
    tally: &'a Tally,
    pooled_view: &View<'_>,
    settings: &Settings,
    note: &mut Option<String>,
) -> Vec<View<'a>> {
    let mut views = Vec::new();
    let mut cells: Vec<(&String, &Cell)> = tally.cells.iter().collect();
    cells.sort_by(|a, b| {
        b.1.bandit_units()
            .total_cmp(&a.1.bandit_units())
            .then(a.0.cmp(b.0))
    });
    if cells.len() > frame.optimization.model.max_contexts {
        *note = Some(format!(
            "{} of {} contexts have their own allocation (model.max_contexts); the others are served `*`",
            frame.optimization.model.max_contexts,
            cells.len()
        ));
    }
    let strength = model::prior_strength(
        &frame
            .roster
            .arms
            .iter()
            .map(|a| cells.iter().map(|(_, c)| c.decayed(a.id)).collect())
            .collect::<Vec<_>>(),
        frame.optimization.reward.kind == MetricKind::Bool,
    )
    .unwrap_or(f64::INFINITY);
    for (context, cell) in cells
        .into_iter()
        .take(frame.optimization.model.max_contexts)
    {
        let shrink = |pooled_fit: &model::Fitted, pooled: &Sums, sums: &Sums| match frame
            .optimization
            .reward
            .kind
        {
            MetricKind::Bool => model::fit_bool_cell(pooled_fit, strength, sums),
            MetricKind::Numeric => {
                model::fit_numeric_cell(&frame.numeric_prior, pooled, strength, sums)
            }
        };
        let cell_fitted: BTreeMap<u32, model::Fitted> = pooled_view
            .fitted
            .iter()
            .map(|(id, f)| {
                (
                    *id,
                    shrink(f, &tally.pooled.decayed(*id), &cell.decayed(*id)),
                )
            })
            .collect();
        let comparison = Serving::compare(
            frame.roster,
            &cell_fitted,
            stream_seed(
                frame.seed,
                &format!("{}|{context}", frame.optimization.name),
            ),
        );
        let decision = allocation::decide(
            &comparison.states(frame.roster, cell, frame.baseline),
            settings,
        );
        views.push(View {
            context: context.clone(),
            cell,
            holdout_fit: shrink(
                &pooled_view.holdout_fit,
                &tally.pooled.holdout_decayed,
                &cell.holdout_decayed,
            ),
            fitted: cell_fitted,
            comparison,
            decision,
        });
    }
    views
}

/// The allocation and report rows of every context: each arm (whatever its status) and the holdout.
fn rows(
    frame: &Frame<'_>,
    views: &[View<'_>],
    holdout_share: Option<f64>,
    previous: &BTreeMap<(String, String), f64>,
    (run_id, trained_at): (&str, &str),
) -> (Vec<AllocationRow>, Vec<ArmReport>) {
    let mut allocation_rows = Vec::new();
    let mut arm_reports = Vec::new();
    let baseline_json = frame
        .optimization
        .variants
        .first()
        .map(|v| frame.optimization.variant_json(v))
        .unwrap_or_default();
    for view in views {
        let states = view
            .comparison
            .states(frame.roster, view.cell, frame.baseline);
        let weight_of: BTreeMap<u32, f64> = states
            .iter()
            .zip(&view.decision.weights)
            .map(|(s, w)| (s.id, *w))
            .collect();
        let mut rows: Vec<Row> = frame
            .roster
            .arms
            .iter()
            .map(|arm| Row {
                arm_id: arm.id.to_string(),
                role: "bandit",
                variant: arm.variant.clone(),
                status: arm.status.as_str().to_string(),
                counts: view.cell.raw(arm.id),
                fitted: view.fitted[&arm.id],
                weight: weight_of.get(&arm.id).copied().unwrap_or(0.0),
            })
            .collect();
        if holdout_share.is_some() {
            rows.push(Row {
                arm_id: HOLDOUT_ID.into(),
                role: "holdout",
                variant: baseline_json.clone(),
                status: "active".into(),
                counts: view.cell.holdout_raw,
                fitted: view.holdout_fit,
                weight: view.decision.holdout,
            });
        }
        for row in rows {
            let Row {
                arm_id,
                role,
                variant,
                status,
                counts,
                fitted,
                weight,
            } = row;
            let bandit_id: Option<u32> = arm_id.parse().ok();
            allocation_rows.push(AllocationRow {
                optimization: frame.optimization.name.clone(),
                run_id: run_id.to_string(),
                trained_at: trained_at.to_string(),
                context: view.context.clone(),
                arm_id: arm_id.clone(),
                role: role.into(),
                variant: variant.clone(),
                weight,
                status: status.clone(),
            });
            let rate = (counts.units > 0.0).then(|| match frame.optimization.reward.kind {
                MetricKind::Bool => counts.conversions / counts.units,
                MetricKind::Numeric => counts.value_sum / counts.units,
            });
            let arm_lift = match (bandit_id, frame.optimization.model.holdout) {
                (Some(id), Some(_)) => model::lift(
                    &view.cell.strata(Some(id)),
                    frame.optimization.reward.kind == MetricKind::Bool,
                )
                .ok(),
                _ => None,
            };
            let interval = fitted.posterior.interval(0.95);
            let in_bandit = bandit_id.and_then(|id| view.comparison.index(id));
            arm_reports.push(ArmReport {
                context: view.context.clone(),
                arm_id: arm_id.clone(),
                role: role.into(),
                variant,
                status,
                units: counts.units as i64,
                conversions: counts.conversions as i64,
                rate,
                alpha: fitted.alpha,
                beta: fitted.beta,
                mean: fitted.posterior.mean(),
                ci_low: interval.low,
                ci_high: interval.high,
                p_best: in_bandit.map(|i| view.comparison.comparison.p_best[i]),
                expected_loss: in_bandit.map(|i| view.comparison.comparison.expected_loss[i]),
                weight_prev: bandit_id.and(
                    previous
                        .get(&(view.context.clone(), arm_id.clone()))
                        .copied(),
                ),
                weight_new: bandit_id.map(|_| weight),
                lift_vs_holdout: arm_lift.and_then(|l| l.relative),
                lift_ci_low: arm_lift.and_then(|l| l.relative_low),
                lift_ci_high: arm_lift.and_then(|l| l.relative_high),
            });
        }
    }
    (allocation_rows, arm_reports)
}

/// One context's allocation: `*` (pooled) or a context cell.
struct View<'a> {
    context: String,
    cell: &'a Cell,
    fitted: BTreeMap<u32, model::Fitted>,
    holdout_fit: model::Fitted,
    comparison: Serving,
    decision: allocation::Decision,
}

/// One row of the allocation and the report, before rendering.
struct Row {
    arm_id: String,
    role: &'static str,
    variant: String,
    status: String,
    counts: Sums,
    fitted: model::Fitted,
    weight: f64,
}

/// P(best) and expected loss among the serving arms.
pub(super) struct Serving {
    ids: Vec<u32>,
    comparison: model::Comparison,
}

impl Serving {
    fn compare(roster: &Roster, fitted: &BTreeMap<u32, model::Fitted>, seed: u64) -> Serving {
        let ids: Vec<u32> = roster.serving().map(|a| a.id).collect();
        let posteriors: Vec<model::Posterior> = ids.iter().map(|id| fitted[id].posterior).collect();
        Serving {
            comparison: model::compare(&posteriors, seed),
            ids,
        }
    }

    fn index(&self, id: u32) -> Option<usize> {
        self.ids.iter().position(|i| *i == id)
    }

    pub(super) fn p_best(&self, id: u32) -> Option<f64> {
        self.index(id).map(|i| self.comparison.p_best[i])
    }

    /// What the allocation rule knows about each serving arm.
    fn states(&self, roster: &Roster, cell: &Cell, baseline: Option<u32>) -> Vec<ArmState> {
        roster
            .serving()
            .map(|arm| ArmState {
                id: arm.id,
                units: cell.raw(arm.id).units as u64,
                p_best: self.p_best(arm.id).unwrap_or(0.0),
                initial: arm.initial,
                droppable: arm.status == ArmStatus::Active && Some(arm.id) != baseline,
            })
            .collect()
    }
}

fn earliest(scanned: Option<i64>, stored: Option<i64>, incremental: bool) -> Option<i64> {
    match (scanned, stored, incremental) {
        (Some(a), Some(b), true) => Some(a.min(b)),
        (a, b, true) => a.or(b),
        (a, _, false) => a,
    }
}

/// Why this run must recompute every batch, if it must.
fn full_reason(
    optimization: &Optimization,
    full: bool,
    last: Option<&LastRun>,
    sql_hash: &str,
) -> Option<String> {
    if full {
        return Some("--full".into());
    }
    let Some(last) = last else {
        return Some("first run".into());
    };
    if last.sql_hash != sql_hash {
        return Some(
            "the SQL or a data-affecting setting (arms, window, batch, unit, attribution) changed"
                .into(),
        );
    }
    if optimization.attribution.unit == crate::config::Unit::Visitor {
        return Some("unit: visitor reads every visitor's first exposure".into());
    }
    last.final_until_us
        .is_none()
        .then(|| "no batch is final yet".into())
}

/// Identifies everything that determines the stored aggregates: the generated SQL (with the user's
/// SQL inside), the arms, the lengths and the context factors bound into it.
fn sql_hash(
    optimization: &Optimization,
    tables: &BTreeMap<String, String>,
    plan: &ScanPlan<'_>,
) -> String {
    let source = format!("{:?} {tables:?}", optimization.exposures.source);
    let sql = warehouse::aggregation(optimization, &source, true);
    let a = &optimization.attribution;
    sha256_hex(&format!(
        "{sql}\n{:?}\n{}\n{}\n{}\n{}\n{:?}",
        plan.arms,
        a.window.micros(),
        a.late_grace.micros(),
        optimization.model.batch.micros(),
        optimization.name,
        optimization.context_factors
    ))
}

fn stage_files(staged: &mut Staged, folder: &Path, report: &RunReport) -> anyhow::Result<()> {
    let allocation = report::allocation_csv(&report.allocation);
    let arms = report::report_csv(&report.arms);
    let runs = folder.join("runs");
    let json = serde_json::to_string_pretty(report).context("cannot render the run as JSON")?;
    // What killed runs staged here is dead: this run holds the state store's lock.
    report::remove_leftovers(folder)?;
    report::remove_leftovers(&runs)?;
    staged.add_folder(
        &report::inside(&runs, &report.run_id)?,
        &[
            ("allocation.csv", &allocation),
            ("report.csv", &arms),
            ("run.json", &json),
        ],
    )?;
    staged.add(&folder.join("allocation.csv"), &allocation)?;
    staged.add(&folder.join("report.csv"), &arms)?;
    Ok(())
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
            as_of_us: micros(options.as_of),
            trained_at_us: micros(options.trained_at),
            seed,
            message,
        });
    }
}
