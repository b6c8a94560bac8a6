//! One simulated deployment: each hour, visitors are served by the serving contract from the
//! current allocation, their exposures and (delayed) conversions land in a DuckDB warehouse, and the
//! real `levered train` runs on it, so that the simulation exercises the product, not a model of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, Context};
use duckdb::types::{TimeUnit, Value};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::allocation::{assign, context_key, ServingRow};
use crate::config;
use crate::domain::{ArmId, ContextKey, Role};
use crate::output::{Format, Printer};
use crate::report::RunReport;
use crate::state::MemoryStore;
use crate::time::{Instant, Span};
use crate::train::{train, train_in, Outcome, TrainOptions};

use super::memory::{Memory, Unit};
use super::scenario::{Policy, Scenario};

const OPTIMIZATION: &str = "sim";

/// What one repetition of one policy measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub policy: Policy,
    pub repetition: u32,
    /// Cumulative expected regret at the end of each hour, against the best arm per context.
    pub regret: Vec<f64>,
    /// Share of each hour's visitors served the best arm of their context.
    pub best_share: Vec<f64>,
    /// The last allocation's pooled bandit weights, by variant JSON.
    pub final_weights: BTreeMap<String, f64>,
    /// The last run's lift of the bandit over the holdout (difference of rates) and its truth.
    pub lift: Option<(f64, f64)>,
    /// With guardrails: the share of all visitors served an arm whose true guardrail rates harm,
    /// and the last allocation's pooled weight of those arms.
    pub harm: Option<(f64, f64)>,
}

fn timestamp(t: Instant) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, t.micros())
}

fn rows(report: &RunReport) -> Vec<ServingRow> {
    report
        .allocation
        .iter()
        .map(|a| ServingRow {
            context: a.context.clone(),
            arm_id: a.arm_id,
            role: a.role,
            variant: a.variant.clone(),
            weight: a.weight,
        })
        .collect()
}

/// A served unit, for the true lift.
struct ServedUnit {
    exposure: Instant,
    stratum: i64,
    holdout: bool,
    expected: f64,
}

/// One policy's deployment of one repetition: the definitions, the engine its units go to, and
/// the serving side's view of the variants.
struct Deployment<'s> {
    scenario: &'s Scenario,
    policy: Policy,
    repetition: u32,
    config: config::Config,
    optimization: config::Optimization,
    factors: Vec<String>,
    /// Every variant as factor → level, in definition order.
    variants: Vec<BTreeMap<String, String>>,
    /// The DuckDB warehouse (without `fast`).
    warehouse: PathBuf,
    /// The in-memory engine and state store (with `fast`).
    memory: Option<(Memory, MemoryStore)>,
    printer: Printer,
}

/// One served visitor: the unit the engine receives, its id, variant and context JSON for the
/// warehouse, and what it was worth.
struct Visit {
    unit: Unit,
    names: (String, String, String),
    served: ServedUnit,
    /// The expected reward of the visitor's best arm minus that of the arm served.
    regret: f64,
    /// Whether the arm served is (within 1e-12) the visitor's best.
    best: bool,
    /// Whether the arm served truly harms a guardrail.
    harmful: bool,
}

/// A variant's JSON object as factor → level.
fn levels_of(variant: &serde_json::Value) -> BTreeMap<String, String> {
    variant
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str().map_or_else(|| v.to_string(), str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

impl<'s> Deployment<'s> {
    /// Writes the scenario's definitions for `policy` into the (empty) folder `dir`, and the empty
    /// warehouse tables unless `fast`.
    fn new(
        scenario: &'s Scenario,
        policy: Policy,
        repetition: u32,
        dir: &Path,
        fast: bool,
    ) -> anyhow::Result<Self> {
        let file = dir.join("levered.yaml");
        let text = scenario.definitions(policy);
        std::fs::write(&file, &text).with_context(|| format!("cannot write {}", file.display()))?;
        let config =
            config::parse(&file, &text).map_err(|e| anyhow!("the scenario's optimization: {e}"))?;
        let optimization = config.optimizations[OPTIMIZATION].clone();
        let warehouse = dir.join("warehouse.duckdb");
        if !fast {
            duckdb::Connection::open(&warehouse)?.execute_batch(
                "CREATE TABLE exposures (anonymous_id VARCHAR, timestamp TIMESTAMP, optimization_id VARCHAR,
                                         variant VARCHAR, context VARCHAR, holdout BOOLEAN);
                 CREATE TABLE rewards (anonymous_id VARCHAR, timestamp TIMESTAMP, value DOUBLE);
                 CREATE TABLE guardrail_events (anonymous_id VARCHAR, timestamp TIMESTAMP, metric VARCHAR);",
            )?;
        }
        let factors: Vec<String> = optimization
            .factors
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let variants = optimization
            .variants
            .iter()
            .map(|v| factors.iter().cloned().zip(v.0.iter().cloned()).collect())
            .collect();
        Ok(Deployment {
            scenario,
            policy,
            repetition,
            config,
            optimization,
            factors,
            variants,
            warehouse,
            memory: fast.then(|| (Memory::default(), MemoryStore::new())),
            printer: Printer::new(true, true, Format::Text),
        })
    }

    /// Runs the real `levered train` as of `as_of`.
    fn train_at(&mut self, as_of: chrono::DateTime<chrono::Utc>) -> anyhow::Result<RunReport> {
        let options = TrainOptions {
            optimizations: Vec::new(),
            all: true,
            as_of,
            trained_at: as_of,
            seed: Some(
                self.scenario
                    .seed
                    .wrapping_mul(1_000_003)
                    .wrapping_add(u64::from(self.repetition)),
            ),
            dry_run: false,
            full: false,
            lock_timeout: Duration::from_secs(60),
        };
        if let Some((memory, store)) = &mut self.memory {
            return train_in(&self.config, &options, &self.printer, memory, store);
        }
        match train(&self.config, &options, &self.printer)
            .map_err(|f| f.error)?
            .pop()
        {
            Some(Outcome::Trained(report)) => Ok(*report),
            Some(Outcome::Failed { failure, .. }) => Err(failure.error),
            other => Err(anyhow!("the simulated run did not train: {other:?}")),
        }
    }

    /// The first allocation: the uniform policy's equal split, else the first run's.
    fn first_allocation(&mut self) -> anyhow::Result<Vec<ServingRow>> {
        if self.policy != Policy::Uniform {
            return Ok(rows(&self.train_at(self.scenario.start)?));
        }
        let variants = &self.optimization.variants;
        Ok(variants
            .iter()
            .enumerate()
            .map(|(i, v)| ServingRow {
                context: ContextKey::pooled(),
                arm_id: ArmId::Arm(i as u32 + 1),
                role: Role::Bandit,
                variant: self.optimization.variant_json(v),
                weight: 1.0 / variants.len() as f64,
            })
            .collect())
    }

    /// Hands the new units to the engine (at each batch boundary, before the run there).
    fn flush(&mut self, pending: &mut Vec<(Unit, (String, String, String))>) -> anyhow::Result<()> {
        let (units, names): (Vec<Unit>, Vec<(String, String, String)>) = pending.drain(..).unzip();
        match &mut self.memory {
            Some((memory, _)) => memory.units.extend(units),
            None => append(&self.warehouse, &units, &names, self.scenario)?,
        }
        Ok(())
    }

    /// Serves visitor `unit` at `t` from `allocation` and draws its context and reward.
    fn visit(
        &self,
        allocation: &[ServingRow],
        rng: &mut ChaCha8Rng,
        (unit, t): (String, Instant),
    ) -> anyhow::Result<Visit> {
        let scenario = self.scenario;
        let optimization = &self.optimization;
        let batch_start = t
            .floor_to(optimization.model.batch)
            .micros()
            .div_euclid(1_000_000);
        let holdout_share = allocation
            .iter()
            .find(|r| r.context.is_pooled() && r.role == Role::Holdout)
            .map_or(0.0, |r| r.weight);
        let total_share: f64 = scenario.contexts.iter().map(|c| c.share).sum();
        let pick: f64 = rng.random::<f64>() * total_share;
        let (u, delay, noise): (f64, f64, f64) = (rng.random(), rng.random(), rng.random());
        let mut acc = 0.0;
        let context = scenario
            .contexts
            .iter()
            .find(|c| {
                acc += c.share;
                pick < acc
            })
            .or(scenario.contexts.last())
            .map(|c| c.values.clone())
            .unwrap_or_default();
        let pairs: Vec<(String, String)> = context.clone().into_iter().collect();
        let key = context_key(&optimization.context_factors, &pairs);
        let served = assign(allocation, OPTIMIZATION, &unit, &key, batch_start)
            .ok_or_else(|| anyhow!("the allocation has no row to serve"))?;
        let variant = levels_of(&served.variant);
        let at = Span::from_micros(t.micros_since(Instant::from_utc(scenario.start)));
        let truth = scenario
            .truth(&variant, &context, at)
            .ok_or_else(|| anyhow!("the scenario gives no true rate for {variant:?}"))?;
        let best_value = self
            .variants
            .iter()
            .filter_map(|v| scenario.truth(v, &context, at))
            .map(|t| t.expected())
            .fold(f64::MIN, f64::max);
        let mut reward = None;
        if u < truth.rate {
            let value = if scenario.numeric {
                let normal = Normal::new(truth.value_mean, truth.value_sd.max(1e-12))
                    .map_err(|e| anyhow!("value distribution: {e}"))?;
                normal.inverse_cdf(noise).max(0.0)
            } else {
                1.0
            };
            reward = Some((t + self.delay(delay), value));
        }
        // Two draws per guardrail whatever the arm, so every policy sees the same visitors.
        let rates = scenario.guardrail_rates(&variant);
        let guardrails = (0..scenario.guardrails.len())
            .map(|g| {
                let (u, delay): (f64, f64) = (rng.random(), rng.random());
                (u < rates.get(g).copied().unwrap_or(0.0)).then(|| t + self.delay(delay))
            })
            .collect();
        let levels = self
            .factors
            .iter()
            .map(|f| variant.get(f).cloned().unwrap_or_default())
            .collect();
        Ok(Visit {
            names: (
                unit,
                served.variant.to_string(),
                serde_json::to_string(&context)?,
            ),
            unit: Unit {
                exposure: t,
                levels,
                context: key,
                holdout: served.holdout,
                reward,
                guardrails,
            },
            served: ServedUnit {
                exposure: t,
                stratum: (holdout_share * 1e6).round() as i64,
                holdout: served.holdout,
                expected: truth.expected(),
            },
            regret: best_value - truth.expected(),
            best: truth.expected() >= best_value - 1e-12,
            harmful: scenario.harmful.contains(&variant),
        })
    }

    /// When a visitor's reward or guardrail event lands: a share `draw` of the longest delay.
    fn delay(&self, draw: f64) -> Span {
        let longest = self
            .scenario
            .delay_max
            .min(self.optimization.attribution.window);
        Span::from_micros((draw * longest.micros() as f64) as i64)
    }
}

/// Runs `policy` for repetition `repetition` in the (empty) folder `dir`; with `fast`, the units go
/// to an in-memory engine instead of a DuckDB warehouse and SQL.
pub fn run(
    scenario: &Scenario,
    policy: Policy,
    repetition: u32,
    dir: &Path,
    fast: bool,
) -> anyhow::Result<Trace> {
    let mut deployment = Deployment::new(scenario, policy, repetition, dir, fast)?;
    let mut allocation = deployment.first_allocation()?;
    // The same visitors, contexts and random draws for every policy of a repetition.
    let mut rng = ChaCha8Rng::seed_from_u64(scenario.seed ^ (u64::from(repetition) << 32));
    let start = Instant::from_utc(scenario.start);
    let hour = Span::from_seconds(3_600);
    let window = deployment.optimization.attribution.window;
    let n = scenario.visitors_per_hour.max(1);
    let (mut regret, mut cumulative, mut best_share) = (Vec::new(), 0.0, Vec::new());
    let mut served_units = Vec::new();
    let mut harmful_units = 0usize;
    let mut last_report = None;
    let batch = deployment.optimization.model.batch;
    let mut next_train = start.floor_to(batch) + batch;
    let mut pending = Vec::new();
    let as_time = |t: Instant| t.to_utc().unwrap_or(scenario.start);
    // The hour after the horizon has no visitors: its start only closes the last batches.
    for h in 0..=scenario.hours {
        let hour_start = start + hour * i64::from(h);
        let closing = h == scenario.hours;
        let mut best = 0usize;
        for i in 0..if closing { 1 } else { n } {
            let t = hour_start + Span::from_micros(i64::from(i) * hour.micros() / i64::from(n));
            // Allocations change only between batches: train at every batch boundary passed.
            while t >= next_train {
                deployment.flush(&mut pending)?;
                if policy != Policy::Uniform {
                    let report = deployment.train_at(as_time(next_train))?;
                    allocation = rows(&report);
                    last_report = Some(report);
                }
                next_train = next_train + batch;
            }
            if closing {
                break;
            }
            let id = format!("r{repetition}-{h}-{i}");
            let visit = deployment.visit(&allocation, &mut rng, (id, t))?;
            cumulative += visit.regret;
            best += usize::from(visit.best);
            harmful_units += usize::from(visit.harmful);
            served_units.push(visit.served);
            pending.push((visit.unit, visit.names));
        }
        if !closing {
            regret.push(cumulative);
            best_share.push(best as f64 / f64::from(n));
        }
    }
    let end = start + hour * i64::from(scenario.hours);
    let lift = last_report
        .as_ref()
        .and_then(|r| r.diagnostics.lift)
        .map(|estimate| (estimate.difference, true_lift(&served_units, end, window)));
    let final_weights = allocation
        .iter()
        .filter(|r| r.context.is_pooled() && r.role == Role::Bandit)
        .map(|r| (r.variant.clone(), r.weight))
        .collect();
    let harmful_weight: f64 = allocation
        .iter()
        .filter(|r| r.context.is_pooled() && r.role == Role::Bandit)
        .filter(|r| {
            let variant = serde_json::from_str(&r.variant).unwrap_or_default();
            scenario.harmful.contains(&levels_of(&variant))
        })
        .map(|r| r.weight)
        .sum();
    let harm = (!scenario.guardrails.is_empty()).then(|| {
        let served = served_units.len().max(1) as f64;
        (harmful_units as f64 / served, harmful_weight)
    });
    Ok(Trace {
        policy,
        repetition,
        regret,
        best_share,
        final_weights,
        lift,
        harm,
    })
}

/// Appends one hour's units to the warehouse: exposures, and rewards (future ones too: a run sees
/// only rewards before its `as_of`). `names` holds each unit's id, variant JSON and context JSON.
fn append(
    warehouse: &Path,
    units: &[Unit],
    names: &[(String, String, String)],
    scenario: &Scenario,
) -> anyhow::Result<()> {
    let connection = duckdb::Connection::open(warehouse)?;
    let mut exposures = connection.appender("exposures")?;
    for (unit, (id, variant, context)) in units.iter().zip(names) {
        exposures.append_row(duckdb::params![
            id,
            timestamp(unit.exposure),
            OPTIMIZATION,
            variant,
            context,
            unit.holdout
        ])?;
    }
    exposures.flush()?;
    drop(exposures);
    let mut rewards = connection.appender("rewards")?;
    for (unit, (id, _, _)) in units.iter().zip(names) {
        if let Some((at, value)) = unit.reward {
            rewards.append_row(duckdb::params![id, timestamp(at), value])?;
        }
    }
    rewards.flush()?;
    drop(rewards);
    let mut events = connection.appender("guardrail_events")?;
    for (unit, (id, _, _)) in units.iter().zip(names) {
        for ((metric, _), at) in scenario.guardrails.iter().zip(&unit.guardrails) {
            if let Some(at) = at {
                events.append_row(duckdb::params![id, timestamp(*at), metric])?;
            }
        }
    }
    events.flush()?;
    Ok(())
}

/// The lift the stratified estimator targets, from true expected rewards: per stratum (served holdout
/// share), treated minus holdout mean, weighted by the stratum's mature units.
fn true_lift(units: &[ServedUnit], end: Instant, window: Span) -> f64 {
    let mut strata: BTreeMap<i64, [(f64, f64); 2]> = BTreeMap::new();
    for u in units.iter().filter(|u| u.exposure + window <= end) {
        let side = &mut strata.entry(u.stratum).or_default()[usize::from(u.holdout)];
        side.0 += 1.0;
        side.1 += u.expected;
    }
    let both: Vec<&[(f64, f64); 2]> = strata
        .values()
        .filter(|s| s[0].0 > 0.0 && s[1].0 > 0.0)
        .collect();
    let total: f64 = both.iter().map(|s| s[0].0 + s[1].0).sum();
    both.iter()
        .map(|s| (s[0].0 + s[1].0) / total * (s[0].1 / s[0].0 - s[1].1 / s[1].0))
        .sum()
}
