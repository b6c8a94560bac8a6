//! `levered train`: for each selected optimization, scan the warehouse for what changed, update the
//! stored aggregates, fit the posteriors, decide the allocation and write everything at once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use chrono::{DateTime, TimeZone, Utc};
use sha2::{Digest, Sha256};

use crate::allocation::{self, ArmState, ArmStatus, Origin, Phase, Roster, RosterArm, Settings};
use crate::config::{Config, Generation, MetricKind, Optimization, Status, Strategy};
use crate::exit::{ExitStatus, Failure};
use crate::generator;
use crate::model::{self, Sums};
use crate::output::Printer;
use crate::report::{
    self, AllocationRow, ArmReport, Diagnostics, RunReport, ScanSummary, Staged, Winner,
};
use crate::state::{self, LastRun, RunWrite, Served, StateStore, StoredArm};
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

/// The levels of a stored variant JSON object, in factor order; a factor it lacks gets a
/// placeholder no level equals, so that an arm of an older factor set matches nothing.
fn levels_of(json: &str, factors: &[String]) -> Vec<String> {
    let object = match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    factors
        .iter()
        .map(|f| match object.get(f) {
            Some(v) => v.as_str().map_or_else(|| v.to_string(), str::to_string),
            None => "\u{0}absent".into(),
        })
        .collect()
}

fn roster_arm(stored: &StoredArm, factors: &[String]) -> RosterArm {
    RosterArm {
        id: stored.arm_id,
        levels: levels_of(&stored.variant, factors),
        variant: stored.variant.clone(),
        status: ArmStatus::parse(&stored.status).unwrap_or(ArmStatus::Active),
        since_us: stored.since_us,
        reason: stored.reason.clone(),
        started_us: stored.started_us.or(Some(stored.since_us)),
        initial: stored.initial,
        origin: if stored.origin == "generated" {
            Origin::Generated
        } else {
            Origin::Definition
        },
    }
}

fn stored_arm(arm: &RosterArm) -> StoredArm {
    StoredArm {
        arm_id: arm.id,
        variant: arm.variant.clone(),
        status: arm.status.as_str().into(),
        since_us: arm.since_us,
        reason: arm.reason.clone(),
        started_us: arm.started_us,
        initial: arm.initial,
        origin: match arm.origin {
            Origin::Definition => "definition",
            Origin::Generated => "generated",
        }
        .into(),
    }
}

/// Whether levels of the defined factors form a combination the definition excludes.
fn is_excluded(optimization: &Optimization, levels: &[String]) -> bool {
    levels.len() == optimization.factors.len()
        && levels
            .iter()
            .zip(&optimization.factors)
            .all(|(level, factor)| factor.levels.contains(level))
        && !optimization.variants.iter().any(|v| v.0 == levels)
}

/// Sums of one context (or of all, pooled): per arm (raw for the report, decay-weighted for the
/// posterior), for the holdout, and per stratum of equal served holdout share for the lift.
#[derive(Default)]
struct Cell {
    raw: BTreeMap<u32, Sums>,
    decayed: BTreeMap<u32, Sums>,
    holdout_raw: Sums,
    holdout_decayed: Sums,
    /// Holdout sums per stratum (the served holdout share in millionths; `None`: not known).
    holdout_strata: BTreeMap<Option<i64>, Sums>,
    /// Arm sums per (arm, stratum).
    arm_strata: BTreeMap<(u32, Option<i64>), Sums>,
}

/// The stored and scanned batches, pooled and per context cell (cells only for contextual models).
struct Tally {
    pooled: Cell,
    cells: BTreeMap<String, Cell>,
}

impl Tally {
    fn collect(
        batches: &[BatchRow],
        served: &[Served],
        as_of_us: i64,
        half_life_us: Option<i64>,
        batch_us: i64,
    ) -> Tally {
        let mut tally = Tally {
            pooled: Cell::default(),
            cells: BTreeMap::new(),
        };
        for b in batches {
            let sums = Sums {
                units: b.units as f64,
                conversions: b.conversions as f64,
                value_sum: b.value_sum,
                value_sq_sum: b.value_sq_sum,
            };
            let weight = model::decay_weight(as_of_us - b.batch_start_us, half_life_us);
            let stratum = served_during(served, b.batch_start_us, batch_us).map(|s| {
                let share = s
                    .for_context("*")
                    .and_then(|w| w.get(HOLDOUT_ID))
                    .copied()
                    .unwrap_or(0.0);
                (share * 1e6).round() as i64
            });
            tally.pooled.add(b, &sums, weight, stratum);
            if b.context != "*" {
                tally
                    .cells
                    .entry(b.context.clone())
                    .or_default()
                    .add(b, &sums, weight, stratum);
            }
        }
        tally
    }
}

impl Cell {
    fn add(&mut self, b: &BatchRow, sums: &Sums, weight: f64, stratum: Option<i64>) {
        if b.holdout {
            self.holdout_raw.add(sums, 1.0);
            self.holdout_decayed.add(sums, weight);
            self.holdout_strata
                .entry(stratum)
                .or_default()
                .add(sums, 1.0);
        } else {
            self.raw.entry(b.arm_id).or_default().add(sums, 1.0);
            self.decayed.entry(b.arm_id).or_default().add(sums, weight);
            self.arm_strata
                .entry((b.arm_id, stratum))
                .or_default()
                .add(sums, 1.0);
        }
    }

    fn bandit_units(&self) -> f64 {
        self.raw.values().map(|s| s.units).sum()
    }

    fn decayed(&self, id: u32) -> Sums {
        self.decayed.get(&id).copied().unwrap_or_default()
    }

    fn raw(&self, id: u32) -> Sums {
        self.raw.get(&id).copied().unwrap_or_default()
    }

    /// The strata of `arms` (all bandit arms when `None`) against the holdout.
    fn strata(&self, arm: Option<u32>) -> Vec<model::Stratum> {
        let mut strata: BTreeMap<Option<i64>, model::Stratum> = self
            .holdout_strata
            .iter()
            .map(|(key, sums)| {
                (
                    *key,
                    model::Stratum {
                        treated: Sums::default(),
                        holdout: *sums,
                    },
                )
            })
            .collect();
        for ((id, key), sums) in &self.arm_strata {
            if arm.is_none_or(|a| a == *id) {
                strata.entry(*key).or_default().treated.add(sums, 1.0);
            }
        }
        strata.into_values().collect()
    }
}

/// The arm id of the holdout row in allocations and reports.
const HOLDOUT_ID: &str = "holdout";

/// The allocation that served the whole batch starting at `batch_start_us`: the newest one published
/// at or before it, when no other was published during the batch.
fn served_during(served: &[Served], batch_start_us: i64, batch_us: i64) -> Option<&Served> {
    let next = served.partition_point(|s| s.as_of_us <= batch_start_us);
    if next == 0 {
        return None;
    }
    match served.get(next) {
        Some(later) if later.as_of_us < batch_start_us + batch_us => None,
        _ => Some(&served[next - 1]),
    }
}

/// Units of one batch by context, then by arm id (or `holdout`).
type UnitsByContext<'a> = BTreeMap<&'a str, BTreeMap<String, f64>>;

/// How many of the newest complete batches the sample-ratio test covers.
const SRM_BATCHES: usize = 24;

/// The sample-ratio-mismatch test over the newest complete batches (every unit mature) that one
/// allocation served throughout: units per arm and holdout against the weights served then.
fn sample_ratio(
    batches: &[BatchRow],
    served: &[Served],
    as_of_us: i64,
    batch_us: i64,
    window_us: i64,
) -> (Option<model::Srm>, String) {
    // Units per (batch, context) and arm (or holdout): each context was served its own rows (or `*`).
    let mut per_batch: BTreeMap<i64, UnitsByContext> = BTreeMap::new();
    for b in batches
        .iter()
        .filter(|b| b.batch_start_us + batch_us + window_us <= as_of_us)
    {
        let key = if b.holdout {
            HOLDOUT_ID.to_string()
        } else {
            b.arm_id.to_string()
        };
        *per_batch
            .entry(b.batch_start_us)
            .or_default()
            .entry(b.context.as_str())
            .or_default()
            .entry(key)
            .or_default() += b.units as f64;
    }
    let chosen: Vec<(i64, &UnitsByContext, &Served)> = per_batch
        .iter()
        .rev()
        .filter_map(|(start, counts)| {
            served_during(served, *start, batch_us).map(|s| (*start, counts, s))
        })
        .take(SRM_BATCHES)
        .collect();
    if chosen.is_empty() {
        return (
            None,
            "no complete batch was served by a recorded allocation yet".into(),
        );
    }
    let mut observed: BTreeMap<String, f64> = BTreeMap::new();
    let mut expected: BTreeMap<String, f64> = BTreeMap::new();
    for (_, contexts, allocation) in &chosen {
        for (context, counts) in *contexts {
            let total: f64 = counts.values().sum();
            for (key, units) in counts {
                *observed.entry(key.clone()).or_default() += units;
                expected.entry(key.clone()).or_default();
            }
            for (key, weight) in allocation.for_context(context).into_iter().flatten() {
                *expected.entry(key.clone()).or_default() += total * weight;
                observed.entry(key.clone()).or_default();
            }
        }
    }
    let o: Vec<f64> = observed.values().copied().collect();
    let e: Vec<f64> = expected.values().copied().collect();
    let first = chosen.last().map_or(0, |c| c.0);
    let last = chosen.first().map_or(0, |c| c.0);
    let covered = format!(
        "{} batches from {} to {}, {} units",
        chosen.len(),
        rfc3339(first),
        rfc3339(last),
        o.iter().sum::<f64>()
    );
    match model::srm(&o, &e) {
        Ok(test) => (Some(test), covered),
        Err(why) => (None, format!("not tested over {covered}: {why}")),
    }
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
    let batches: Vec<BatchRow> = stored.iter().chain(&scan.rows).cloned().collect();
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

    let served = store.served(name)?;
    let half_life = model_settings.decay_half_life.map(|h| h.micros());
    let tally = Tally::collect(&batches, &served, as_of_us, half_life, batch_us);
    let pooled = &tally.pooled;
    let kind = optimization.reward.kind;
    let numeric_prior = model::NumericPrior::pooled(
        &roster
            .arms
            .iter()
            .map(|a| pooled.decayed.get(&a.id).copied().unwrap_or_default())
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
        .map(|a| {
            (
                a.id,
                fit(&pooled.decayed.get(&a.id).copied().unwrap_or_default()),
            )
        })
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
    let mut cells: Vec<(&String, &Cell)> = tally.cells.iter().collect();
    cells.sort_by(|a, b| {
        b.1.bandit_units()
            .total_cmp(&a.1.bandit_units())
            .then(a.0.cmp(b.0))
    });
    if cells.len() > model_settings.max_contexts {
        warnings.push(format!(
            "{} of {} contexts have their own allocation (model.max_contexts); the others are served `*`",
            model_settings.max_contexts,
            cells.len()
        ));
    }
    let strength = model::prior_strength(
        &roster
            .arms
            .iter()
            .map(|a| cells.iter().map(|(_, c)| c.decayed(a.id)).collect())
            .collect::<Vec<_>>(),
        kind == MetricKind::Bool,
    )
    .unwrap_or(f64::INFINITY);
    let cell_settings = Settings {
        locked_winner: views[0].decision.phase.winner().or(settings.locked_winner),
        ..settings
    };
    for (context, cell) in cells.into_iter().take(model_settings.max_contexts) {
        let shrink = |pooled_fit: &model::Fitted, pooled_units: f64, sums: &Sums| match kind {
            MetricKind::Bool => model::fit_bool_cell(pooled_fit, strength, sums),
            MetricKind::Numeric => {
                model::fit_numeric_cell(&numeric_prior, pooled_fit, pooled_units, strength, sums)
            }
        };
        let cell_fitted: BTreeMap<u32, model::Fitted> = fitted
            .iter()
            .map(|(id, f)| {
                (
                    *id,
                    shrink(f, pooled.decayed(*id).units, &cell.decayed(*id)),
                )
            })
            .collect();
        let comparison = Serving::compare(
            &roster,
            &cell_fitted,
            stream_seed(seed, &format!("{name}|{context}")),
        );
        let decision = allocation::decide(
            &comparison.states(&roster, cell, baseline_id),
            &cell_settings,
        );
        views.push(View {
            context: context.clone(),
            cell,
            holdout_fit: shrink(
                &views[0].holdout_fit,
                pooled.holdout_decayed.units,
                &cell.holdout_decayed,
            ),
            fitted: cell_fitted,
            comparison,
            decision,
        });
    }
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

    let seq = store.next_seq(name)?;
    let run_id = format!("{}-{seq:04}", options.as_of.format("%Y%m%dT%H%M%SZ"));
    let winner = winner.map(|w| Winner {
        decided_run: if w.decided_run.is_empty() {
            run_id.clone()
        } else {
            w.decided_run
        },
        ..w
    });
    let trained_at = options.trained_at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let previous = store.last_weights(name)?;
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
        let edit = matches!(
            event.reason.as_str(),
            "added to the definition"
                | "back in the definition"
                | "its combination is now excluded"
                | "a level or factor of it left the definition"
        );
        if edit {
            warnings.push(format!(
                "arm {} is now {}: {} (the definition changed)",
                event.arm_id, event.status, event.reason
            ));
        }
    }
    let (srm, srm_note) = sample_ratio(&batches, &served, as_of_us, batch_us, window_us);
    if let Some(test) = srm.filter(|t| t.flagged) {
        warnings.push(format!(
            "sample-ratio mismatch: the units per arm do not follow the served weights (chi-square {:.1}, p = {:.2e}, {srm_note}): check that the serving side reads allocation.csv and logs every exposure",
            test.statistic, test.p_value
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

    let mut allocation_rows = Vec::new();
    let mut arm_reports = Vec::new();
    let baseline_json = optimization
        .variants
        .first()
        .map(|v| optimization.variant_json(v))
        .unwrap_or_default();
    for view in &views {
        let states = view.comparison.states(&roster, view.cell, baseline_id);
        let weight_of: BTreeMap<u32, f64> = states
            .iter()
            .zip(&view.decision.weights)
            .map(|(s, w)| (s.id, *w))
            .collect();
        let mut rows: Vec<Row> = roster
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
                optimization: name.clone(),
                run_id: run_id.clone(),
                trained_at: trained_at.clone(),
                context: view.context.clone(),
                arm_id: arm_id.clone(),
                role: role.into(),
                variant: variant.clone(),
                weight,
                status: status.clone(),
            });
            let rate = (counts.units > 0.0).then(|| match kind {
                MetricKind::Bool => counts.conversions / counts.units,
                MetricKind::Numeric => counts.value_sum / counts.units,
            });
            let arm_lift = match (bandit_id, model_settings.holdout) {
                (Some(id), Some(_)) => model::lift(&view.cell.strata(Some(id)), bool_reward).ok(),
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
        },
        winner,
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
struct Serving {
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

    fn p_best(&self, id: u32) -> Option<f64> {
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

/// What generation may rank new arms by.
struct Evidence<'a> {
    fitted: &'a BTreeMap<u32, model::Fitted>,
    tally: &'a Cell,
    comparison: &'a Serving,
}

/// Fills the free places under `generation.max_active_arms`: from the proposed arms (ranked by the
/// additive per-factor model for `factorial`, in level order for `command`), then, for `command`,
/// with the variants the command proposes. A failing command is a warning.
fn generate(
    optimization: &Optimization,
    generation: &Generation,
    roster: &mut Roster,
    evidence: &Evidence<'_>,
    now_us: i64,
    warnings: &mut Vec<String>,
) {
    let cap = generation.max_active_arms;
    if roster.serving_count() >= cap {
        return;
    }
    let proposed: Vec<&RosterArm> = roster
        .arms
        .iter()
        .filter(|a| a.status == ArmStatus::Proposed)
        .collect();
    match &generation.strategy {
        Strategy::Factorial => {
            let observed: Vec<model::Observed> = roster
                .arms
                .iter()
                .filter(|a| evidence.tally.raw(a.id).units > 0.0)
                .map(|a| {
                    let posterior = evidence.fitted[&a.id].posterior;
                    model::Observed {
                        levels: a.levels.clone(),
                        mean: posterior.mean(),
                        spread: posterior.spread(),
                    }
                })
                .collect();
            let baseline = optimization
                .variants
                .first()
                .map(|v| v.0.clone())
                .unwrap_or_default();
            let candidates: Vec<Vec<String>> = proposed.iter().map(|a| a.levels.clone()).collect();
            let predicted = model::predict_additive(&observed, &candidates, &baseline);
            let mut ranked: Vec<(u32, f64)> = proposed
                .iter()
                .zip(predicted)
                .map(|(a, p)| (a.id, p))
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let order: Vec<u32> = ranked.iter().map(|r| r.0).collect();
            roster.start_proposed(
                &order,
                cap,
                "a place was free: ranked first among the proposed arms by the additive per-factor model",
                now_us,
            );
        }
        Strategy::Command { argv, timeout, dir } => {
            let order: Vec<u32> = proposed.iter().map(|a| a.id).collect();
            roster.start_proposed(&order, cap, "a place was free", now_us);
            let wanted = cap.saturating_sub(roster.serving_count());
            if wanted == 0 {
                return;
            }
            let input = history_json(optimization, roster, evidence, wanted, now_us);
            let timeout = Duration::from_micros(timeout.micros() as u64);
            let factor_names: Vec<String> = optimization
                .factors
                .iter()
                .map(|f| f.name.clone())
                .collect();
            let answer = generator::run(argv, dir, &input, timeout)
                .and_then(|out| generator::parse(&out, &factor_names));
            let (variants, refused) = match answer {
                Ok(answer) => answer,
                Err(why) => {
                    warnings.push(format!(
                        "generation command: {why}; no new arm this run (the places stay free)"
                    ));
                    return;
                }
            };
            let mut refused = refused;
            let mut added = 0;
            for levels in variants {
                if added == wanted {
                    refused.push(format!("more than the {wanted} variants asked for"));
                    break;
                }
                if is_excluded(optimization, &levels) {
                    refused.push(format!("{levels:?} is an excluded combination"));
                    continue;
                }
                let json = optimization.variant_json(&crate::config::Variant(levels.clone()));
                match roster.add_generated(
                    levels.clone(),
                    json,
                    "proposed by the generation command",
                    now_us,
                ) {
                    Some(_) => added += 1,
                    None => refused.push(format!(
                        "{levels:?} is already an arm (ids are never reused)"
                    )),
                }
            }
            if !refused.is_empty() {
                warnings.push(format!(
                    "generation command: refused {}",
                    refused.join("; ")
                ));
            }
        }
    }
}

/// The input of a generation command (protocol version 1, docs/generation.md).
fn history_json(
    optimization: &Optimization,
    roster: &Roster,
    evidence: &Evidence<'_>,
    wanted: usize,
    now_us: i64,
) -> String {
    let arms: Vec<serde_json::Value> = roster
        .arms
        .iter()
        .map(|a| {
            let sums = evidence.tally.raw(a.id);
            let posterior = evidence.fitted[&a.id].posterior;
            let interval = posterior.interval(0.95);
            serde_json::json!({
                "arm_id": a.id,
                "variant": serde_json::from_str::<serde_json::Value>(&a.variant).unwrap_or_default(),
                "status": a.status.as_str(),
                "units": sums.units,
                "conversions": sums.conversions,
                "value_sum": sums.value_sum,
                "mean": posterior.mean(),
                "ci_low": interval.low,
                "ci_high": interval.high,
                "p_best": evidence.comparison.p_best(a.id),
            })
        })
        .collect();
    serde_json::json!({
        "protocol": 1,
        "optimization": optimization.name,
        "as_of": rfc3339(now_us),
        "wanted": wanted,
        "metric": {"name": optimization.reward.name, "type": optimization.reward.kind},
        "factors": optimization.factors.iter().map(|f| serde_json::json!({"name": f.name, "levels": f.levels})).collect::<Vec<_>>(),
        "arms": arms,
    })
    .to_string()
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
