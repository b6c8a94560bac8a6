//! `levered train`: for each selected optimization, scan the warehouse for what changed, update the
//! stored aggregates, fit the posteriors, decide the allocation and write everything at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::allocation::{self, ArmState, Phase, Settings};
use crate::config::{Config, MetricKind, Optimization, Status};
use crate::exit::{ExitStatus, Failure};
use crate::model::{self, Sums};
use crate::output::Printer;
use crate::report::{self, AllocationRow, ArmReport, RunReport, ScanSummary, Staged};
use crate::state::{self, LastRun, RunWrite, StateStore, StoredArm};
use crate::warehouse::{self, floor_to, BatchRow, DuckDb, ScanPlan};

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

/// Trains the selected optimizations; one failing optimization does not stop the others.
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
    let mut store = open_store(&config.state).map_err(|e| Failure::new(ExitStatus::Data, e))?;
    let mut engine: Option<Result<DuckDb, String>> = None;
    let mut outcomes = Vec::new();
    for optimization in selected {
        if optimization.status == Status::Archived {
            outcomes.push(Outcome::Skipped {
                optimization: optimization.name.clone(),
                reason:
                    "archived: its data is kept, but it is not trained; set status: live to resume"
                        .into(),
            });
            continue;
        }
        let engine = engine
            .get_or_insert_with(|| DuckDb::open(&config.warehouse).map_err(|e| e.to_string()));
        let outcome = match engine {
            Err(message) => Outcome::Failed {
                optimization: optimization.name.clone(),
                error: anyhow!("{message}"),
            },
            Ok(engine) => {
                match train_one(config, optimization, engine, &mut store, options, printer) {
                    Ok(report) => Outcome::Trained(Box::new(report)),
                    Err(error) => {
                        if !options.dry_run {
                            record_failure(
                                &mut store,
                                &optimization.name,
                                options,
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

/// The order-insensitive key of a variant JSON object.
fn variant_key(json: &str) -> String {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(json) else {
        return json.to_string();
    };
    let (factors, levels): (Vec<String>, Vec<String>) = map
        .into_iter()
        .map(|(k, v)| (k, v.as_str().map_or_else(|| v.to_string(), str::to_string)))
        .unzip();
    warehouse::canonical_variant(&factors, &levels)
}

/// An arm of this run: its stable id and its variant.
struct Arm {
    id: u32,
    levels: Vec<String>,
    json: String,
}

/// Gives every variant of the definition its stored id, and new variants the next free ids.
fn assign_ids(optimization: &Optimization, stored: &[StoredArm]) -> (Vec<Arm>, Vec<StoredArm>) {
    let by_key: BTreeMap<String, u32> = stored
        .iter()
        .map(|a| (variant_key(&a.variant), a.arm_id))
        .collect();
    let mut next = stored.iter().map(|a| a.arm_id).max().unwrap_or(0) + 1;
    let mut new_arms = Vec::new();
    let arms = optimization
        .variants
        .iter()
        .map(|variant| {
            let json = optimization.variant_json(variant);
            let id = by_key.get(&variant_key(&json)).copied().unwrap_or_else(|| {
                let id = next;
                next += 1;
                new_arms.push(StoredArm {
                    arm_id: id,
                    variant: json.clone(),
                });
                id
            });
            Arm {
                id,
                levels: variant.0.clone(),
                json,
            }
        })
        .collect();
    (arms, new_arms)
}

fn train_one(
    config: &Config,
    optimization: &Optimization,
    engine: &DuckDb,
    store: &mut StateStore,
    options: &TrainOptions,
    printer: &Printer,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let name = &optimization.name;
    let as_of_us = micros(options.as_of);
    let last = store.last_run(name)?;
    let seed = options
        .seed
        .or(optimization.model.seed)
        .unwrap_or_else(rand::random::<u64>);
    let (arms, new_arms) = assign_ids(optimization, &store.arms(name)?);

    let probe = ScanPlan {
        optimization,
        arms: arms.iter().map(|a| (a.id, a.levels.clone())).collect(),
        as_of_us,
        from_batch_us: None,
    };
    let sql_hash = sql_hash(optimization, &config.warehouse.tables, &probe);
    let definition_hash = sha256_hex(&serde_json::to_string(optimization).unwrap_or_default());
    if let Some(last) = &last {
        if as_of_us < last.as_of_us && !options.full {
            return Err(anyhow!(
                "--as-of {} is earlier than the last run's ({}, run {})\n  hint: an earlier as_of needs --full (a backfill recomputes every batch)",
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

    let spinner = printer.spinner(format!("{name}: aggregating in the warehouse"));
    let scan = engine.aggregate(&plan);
    spinner.finish_and_clear();
    let scan = scan?;

    let stored = match from_batch_us {
        Some(from) => store.batches(name, Some(from))?,
        None => Vec::new(),
    };
    let batches: Vec<BatchRow> = stored.iter().chain(&scan.rows).copied().collect();
    let model_settings = &optimization.model;
    let batch_us = model_settings.batch.micros();
    let window_us = optimization.attribution.window.micros();
    let frontier = floor_to(
        as_of_us - window_us - optimization.attribution.late_grace.micros() - batch_us,
        batch_us,
    ) + batch_us;
    let final_until_us = frontier.max(from_batch_us.unwrap_or(i64::MIN));
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
    let (raw, decayed, holdout_units) = sufficient_statistics(&batches, as_of_us, half_life);
    let arm_sums: Vec<Sums> = arms
        .iter()
        .map(|a| decayed.get(&a.id).copied().unwrap_or_default())
        .collect();
    let fitted: Vec<model::Fitted> = match optimization.reward.kind {
        MetricKind::Bool => arm_sums
            .iter()
            .map(|s| model::fit_bool(model_settings.prior.alpha, model_settings.prior.beta, s))
            .collect(),
        MetricKind::Numeric => model::fit_numeric(&arm_sums),
    };
    let posteriors: Vec<model::Posterior> = fitted.iter().map(|f| f.posterior).collect();
    let comparison = model::compare(&posteriors, stream_seed(seed, name));

    let burn_in_elapsed =
        first_exposure_us.is_some_and(|first| as_of_us >= first + model_settings.burn_in.micros());
    let states: Vec<ArmState> = arms
        .iter()
        .zip(&comparison.p_best)
        .map(|(arm, &p_best)| ArmState {
            id: arm.id,
            units: raw.get(&arm.id).map_or(0, |s| s.units as u64),
            p_best,
        })
        .collect();
    let decision = allocation::decide(
        &states,
        &Settings {
            status: optimization.status,
            burn_in_elapsed,
            min_units_per_arm: model_settings.min_units_per_arm,
            floor: model_settings.floor.get(),
            locked_winner: last.as_ref().and_then(|l| l.winner_arm_id),
        },
    );
    let winner_arm_id = match decision.phase {
        Phase::Completed { winner } => Some(winner),
        _ => None,
    };

    let seq = store.next_seq(name)?;
    let run_id = format!("{}-{seq:04}", options.as_of.format("%Y%m%dT%H%M%SZ"));
    let trained_at = options.trained_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let previous = store.last_weights(name)?;
    let mut warnings = Vec::new();
    let unmatched: BTreeMap<String, i64> = scan
        .unmatched
        .iter()
        .map(|(reason, count)| (reason.label().to_string(), *count))
        .collect();
    if !unmatched.is_empty() {
        let parts: Vec<String> = unmatched.iter().map(|(r, c)| format!("{r}: {c}")).collect();
        warnings.push(format!(
            "{} exposure rows in the scanned range were not counted ({})",
            unmatched.values().sum::<i64>(),
            parts.join(", ")
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
    if holdout_units > 0 {
        warnings.push(format!(
            "{holdout_units} mature units are flagged holdout in the exposures; they are left out of every arm's posterior"
        ));
    }
    if let model::Method::MonteCarlo { draws, seed } = comparison.method {
        warnings.push(format!(
            "P(best) by Monte Carlo ({draws} draws, seed {seed}): quadrature did not converge"
        ));
    }

    let intervals: Vec<model::Interval> = posteriors.iter().map(|p| p.interval(0.95)).collect();
    let mut allocation_rows = Vec::new();
    let mut arm_reports = Vec::new();
    for (i, arm) in arms.iter().enumerate() {
        let counts = raw.get(&arm.id).copied().unwrap_or_default();
        let weight = decision.weights[i];
        let arm_id = arm.id.to_string();
        allocation_rows.push(AllocationRow {
            optimization: name.clone(),
            run_id: run_id.clone(),
            trained_at: trained_at.clone(),
            context: "*".into(),
            arm_id: arm_id.clone(),
            role: "bandit".into(),
            variant: arm.json.clone(),
            weight,
            status: "active".into(),
        });
        let rate = (counts.units > 0.0).then(|| match optimization.reward.kind {
            MetricKind::Bool => counts.conversions / counts.units,
            MetricKind::Numeric => counts.value_sum / counts.units,
        });
        arm_reports.push(ArmReport {
            context: "*".into(),
            arm_id: arm_id.clone(),
            role: "bandit".into(),
            variant: arm.json.clone(),
            status: "active".into(),
            units: counts.units as i64,
            conversions: counts.conversions as i64,
            rate,
            alpha: fitted[i].alpha,
            beta: fitted[i].beta,
            mean: posteriors[i].mean(),
            ci_low: intervals[i].low,
            ci_high: intervals[i].high,
            p_best: Some(comparison.p_best[i]),
            expected_loss: Some(comparison.expected_loss[i]),
            weight_prev: previous.get(&arm_id).copied(),
            weight_new: Some(weight),
            lift_vs_holdout: None,
            lift_ci_low: None,
            lift_ci_high: None,
        });
    }
    let report = RunReport {
        optimization: name.clone(),
        run_id: run_id.clone(),
        as_of: rfc3339(as_of_us),
        trained_at,
        seed,
        phase: decision.phase,
        p_best_method: comparison.method,
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
        warnings,
        allocation: allocation_rows,
        arms: arm_reports,
    };
    if options.dry_run {
        return Ok(report);
    }

    let folder = config.output_dir.join(name);
    let mut staged = Staged::new();
    stage_files(&mut staged, &folder, &report)?;
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
        winner_arm_id,
        new_batches: &scan.rows,
        new_arms: &new_arms,
        duration_ms: started.elapsed().as_millis() as i64,
    })?;
    staged.publish()?;
    report::prune_runs(&folder.join("runs"), config.keep_runs as usize)?;
    Ok(report)
}

/// Sufficient statistics per bandit arm: raw counts for the report and decay-weighted sums for the
/// posterior; holdout units are counted apart and never enter an arm.
fn sufficient_statistics(
    batches: &[BatchRow],
    as_of_us: i64,
    half_life_us: Option<i64>,
) -> (BTreeMap<u32, Sums>, BTreeMap<u32, Sums>, i64) {
    let mut raw: BTreeMap<u32, Sums> = BTreeMap::new();
    let mut decayed: BTreeMap<u32, Sums> = BTreeMap::new();
    let mut holdout_units = 0;
    for b in batches {
        if b.holdout {
            holdout_units += b.units;
            continue;
        }
        let sums = Sums {
            units: b.units as f64,
            conversions: b.conversions as f64,
            value_sum: b.value_sum,
            value_sq_sum: b.value_sq_sum,
        };
        raw.entry(b.arm_id).or_default().add(&sums, 1.0);
        let weight = model::decay_weight(as_of_us - b.batch_start_us, half_life_us);
        decayed.entry(b.arm_id).or_default().add(&sums, weight);
    }
    (raw, decayed, holdout_units)
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
/// SQL inside), the arms and the lengths bound into it.
fn sql_hash(
    optimization: &Optimization,
    tables: &BTreeMap<String, String>,
    plan: &ScanPlan<'_>,
) -> String {
    let source = format!("{:?} {tables:?}", optimization.exposures.source);
    let sql = warehouse::aggregation(optimization, &source, true);
    let a = &optimization.attribution;
    sha256_hex(&format!(
        "{sql}\n{:?}\n{}\n{}\n{}\n{}",
        plan.arms,
        a.window.micros(),
        a.late_grace.micros(),
        optimization.model.batch.micros(),
        optimization.name
    ))
}

fn stage_files(staged: &mut Staged, folder: &Path, report: &RunReport) -> anyhow::Result<()> {
    let allocation = report::allocation_csv(&report.allocation);
    let arms = report::report_csv(&report.arms);
    let run_folder = folder.join("runs").join(&report.run_id);
    let json = serde_json::to_string_pretty(report).context("cannot render the run as JSON")?;
    staged.add(&run_folder.join("allocation.csv"), &allocation)?;
    staged.add(&run_folder.join("report.csv"), &arms)?;
    staged.add(&run_folder.join("run.json"), &json)?;
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
    message: &str,
) {
    if let Ok(seq) = store.next_seq(optimization) {
        let run_id = format!("{}-{seq:04}", options.as_of.format("%Y%m%dT%H%M%SZ"));
        let _ = store.record_failure(&state::FailedRun {
            optimization,
            run_id: &run_id,
            seq,
            as_of_us: micros(options.as_of),
            trained_at_us: micros(options.trained_at),
            seed: options.seed.unwrap_or(0),
            message,
        });
    }
}
