//! The stored and scanned batch aggregates, summed per arm, holdout, context and stratum, with each
//! arm's evidence restated on the whole traffic's mix of periods; and the sample-ratio-mismatch test
//! over the newest complete batches.

use std::collections::BTreeMap;

use crate::config::{MetricKind, Optimization};
use crate::domain::{ArmId, ContextKey};
use crate::model::{self, Sums};
use crate::state::Served;
use crate::time::{Instant, Span};
use crate::warehouse::BatchRow;

/// Sums of one context (or of all, pooled): per arm (raw for the report; decay-weighted and
/// restated on the whole traffic's mix of periods for the posterior), for the holdout, and per
/// stratum of equal served holdout share for the lift.
#[derive(Default)]
pub(super) struct Cell {
    pub(super) raw: BTreeMap<u32, Sums>,
    /// The posterior's evidence: decay-weighted, then standardized (see [`Tally::collect`]).
    evidence: BTreeMap<u32, Sums>,
    /// Decay-weighted arm sums per (batch start, arm): each batch is one period, served by one
    /// allocation (docs/statistics.md, "Period effects").
    periods: BTreeMap<(Instant, u32), Sums>,
    pub(super) holdout_raw: Sums,
    pub(super) holdout_decayed: Sums,
    /// Holdout sums per stratum (the served holdout share in millionths; `None`: not known).
    pub(super) holdout_strata: BTreeMap<Option<i64>, Sums>,
    /// Arm sums per (arm, stratum).
    pub(super) arm_strata: BTreeMap<(u32, Option<i64>), Sums>,
    /// Arm sums per (arm, guardrail index): raw, and decay-weighted for the posterior.
    guardrail_raw: BTreeMap<(u32, usize), Sums>,
    guardrail_evidence: BTreeMap<(u32, usize), Sums>,
}

/// The stored and scanned batches, pooled and per context cell (cells only for contextual models).
pub(super) struct Tally {
    pub(super) pooled: Cell,
    pub(super) cells: BTreeMap<ContextKey, Cell>,
}

impl Tally {
    /// Sums `batches` (decay-weighted as of `as_of`) and restates every arm's posterior evidence on
    /// the whole traffic's mix of periods: the period levels are fitted on the pooled sums, and
    /// each cell's arms are standardized with that cell's own traffic.
    pub(super) fn collect(
        batches: &[BatchRow],
        served: &[Served],
        as_of: Instant,
        optimization: &Optimization,
    ) -> Tally {
        let (half_life, batch) = (optimization.model.decay_half_life, optimization.model.batch);
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
            let weight = model::decay_weight(
                as_of.micros_since(b.batch_start),
                half_life.map(Span::micros),
            );
            let stratum = served_during(served, b.batch_start, batch).map(|s| {
                let share = s
                    .for_context(&ContextKey::pooled())
                    .and_then(|w| w.get(&ArmId::Holdout))
                    .copied()
                    .unwrap_or(0.0);
                (share * 1e6).round() as i64
            });
            tally.pooled.add(b, &sums, weight, stratum);
            tally.pooled.add_guardrails(b, optimization, weight);
            if !b.context.is_pooled() {
                let cell = tally.cells.entry(b.context.clone()).or_default();
                cell.add(b, &sums, weight, stratum);
                cell.add_guardrails(b, optimization, weight);
            }
        }
        let outcome = match optimization.reward.kind {
            MetricKind::Bool => |s: &Sums| s.conversions,
            MetricKind::Numeric => |s: &Sums| s.value_sum,
        };
        let cells: BTreeMap<(Instant, u32), model::PeriodCell> = tally
            .pooled
            .periods
            .iter()
            .map(|(key, s)| {
                let cell = model::PeriodCell {
                    units: s.units,
                    outcome: outcome(s),
                };
                (*key, cell)
            })
            .collect();
        let levels = model::period_levels(&cells);
        tally.pooled.standardize(&levels);
        for cell in tally.cells.values_mut() {
            cell.standardize(&levels);
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
            self.evidence.entry(b.arm_id).or_default().add(sums, weight);
            self.periods
                .entry((b.batch_start, b.arm_id))
                .or_default()
                .add(sums, weight);
            self.arm_strata
                .entry((b.arm_id, stratum))
                .or_default()
                .add(sums, 1.0);
        }
    }

    /// Adds the guardrail sums of an arm's batch row (the holdout's are not estimated).
    fn add_guardrails(&mut self, b: &BatchRow, optimization: &Optimization, weight: f64) {
        if b.holdout {
            return;
        }
        for sums in &b.guardrails {
            let Some(index) = optimization
                .guardrails
                .iter()
                .position(|g| g.metric.name == sums.metric)
            else {
                continue;
            };
            let sums_of = Sums {
                units: b.units as f64,
                conversions: sums.conversions as f64,
                value_sum: sums.value_sum,
                value_sq_sum: sums.value_sq_sum,
            };
            let key = (b.arm_id, index);
            self.guardrail_raw
                .entry(key)
                .or_default()
                .add(&sums_of, 1.0);
            self.guardrail_evidence
                .entry(key)
                .or_default()
                .add(&sums_of, weight);
        }
    }

    /// An arm's sums on guardrail `index`: raw (for the report) and decay-weighted.
    pub(super) fn guardrail(&self, id: u32, index: usize) -> (Sums, Sums) {
        let key = (id, index);
        (
            self.guardrail_raw.get(&key).copied().unwrap_or_default(),
            self.guardrail_evidence
                .get(&key)
                .copied()
                .unwrap_or_default(),
        )
    }

    pub(super) fn bandit_units(&self) -> f64 {
        self.raw.values().map(|s| s.units).sum()
    }

    /// Restates each arm's decay-weighted sums on the cell's mix of periods under `levels`.
    fn standardize(&mut self, levels: &BTreeMap<Instant, f64>) {
        let traffic = self
            .periods
            .iter()
            .map(|(key, s)| (*key, s.units))
            .collect();
        let factors = model::mix_factors(levels, &traffic);
        for (arm, sums) in self.evidence.iter_mut() {
            *sums = model::standardize(sums, factors.get(arm).copied().unwrap_or(1.0));
        }
    }

    /// An arm's posterior evidence: decay-weighted, on the whole traffic's mix of periods.
    pub(super) fn evidence(&self, id: u32) -> Sums {
        self.evidence.get(&id).copied().unwrap_or_default()
    }

    pub(super) fn raw(&self, id: u32) -> Sums {
        self.raw.get(&id).copied().unwrap_or_default()
    }

    /// The strata of `arms` (all bandit arms when `None`) against the holdout.
    pub(super) fn strata(&self, arm: Option<u32>) -> Vec<model::Stratum> {
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

/// The allocation that served the whole batch starting at `batch_start`: the newest one published
/// at or before it, when no other was published during the batch.
fn served_during(served: &[Served], batch_start: Instant, batch: Span) -> Option<&Served> {
    let next = served.partition_point(|s| s.as_of <= batch_start);
    if next == 0 {
        return None;
    }
    match served.get(next) {
        Some(later) if later.as_of < batch_start + batch => None,
        _ => Some(&served[next - 1]),
    }
}

/// Units of one batch by context, then by arm id (or `holdout`).
type UnitsByContext<'a> = BTreeMap<&'a ContextKey, BTreeMap<ArmId, f64>>;

/// How many of the newest complete batches the sample-ratio test covers.
pub(super) const SRM_BATCHES: usize = 24;

/// The sample-ratio-mismatch test over the newest complete batches (every unit mature) that one
/// allocation served throughout: units per arm and holdout against the weights served then.
pub(super) fn sample_ratio(
    batches: &[BatchRow],
    served: &[Served],
    as_of: Instant,
    batch: Span,
    window: Span,
) -> (Option<model::Srm>, String) {
    // Units per (batch, context) and arm (or holdout): each context was served its own rows (or `*`).
    let mut per_batch: BTreeMap<Instant, UnitsByContext> = BTreeMap::new();
    for b in batches
        .iter()
        .filter(|b| b.batch_start + batch + window <= as_of)
    {
        let key = if b.holdout {
            ArmId::Holdout
        } else {
            ArmId::Arm(b.arm_id)
        };
        *per_batch
            .entry(b.batch_start)
            .or_default()
            .entry(&b.context)
            .or_default()
            .entry(key)
            .or_default() += b.units as f64;
    }
    let chosen: Vec<(Instant, &UnitsByContext, &Served)> = per_batch
        .iter()
        .rev()
        .filter_map(|(start, counts)| {
            served_during(served, *start, batch)
                .filter(|s| s.complete)
                .map(|s| (*start, counts, s))
        })
        .take(SRM_BATCHES)
        .collect();
    if chosen.is_empty() {
        return (
            None,
            "no complete batch was served by a recorded allocation yet".into(),
        );
    }
    let mut observed: BTreeMap<ArmId, f64> = BTreeMap::new();
    let mut expected: BTreeMap<ArmId, f64> = BTreeMap::new();
    for (_, contexts, allocation) in &chosen {
        for (context, counts) in *contexts {
            let total: f64 = counts.values().sum();
            for (key, units) in counts {
                *observed.entry(*key).or_default() += units;
                expected.entry(*key).or_default();
            }
            for (key, weight) in allocation.for_context(context).into_iter().flatten() {
                *expected.entry(*key).or_default() += total * weight;
                observed.entry(*key).or_default();
            }
        }
    }
    let o: Vec<f64> = observed.values().copied().collect();
    let e: Vec<f64> = expected.values().copied().collect();
    // Newest first: `chosen` is not empty here.
    let (first, last) = (chosen[chosen.len() - 1].0, chosen[0].0);
    let covered = format!(
        "{} batches from {} to {}, {} units",
        chosen.len(),
        first.rfc3339(),
        last.rfc3339(),
        o.iter().sum::<f64>()
    );
    match model::srm(&o, &e) {
        Ok(test) => (Some(test), covered),
        Err(why) => (None, format!("not tested over {covered}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::plan::tests::optimization;

    #[test]
    fn an_arm_served_in_the_better_batch_is_restated_on_the_traffics_mix() {
        let hour = Span::from_seconds(3_600);
        let start = Instant::from_micros(0);
        // The second batch converts three times as well; arm 2 got 90% of it, arm 1 90% of the first.
        let row = |batch: i64, arm_id, units, conversions| BatchRow {
            batch_start: start + hour * batch,
            context: ContextKey::pooled(),
            arm_id,
            holdout: false,
            units,
            conversions,
            value_sum: conversions as f64,
            value_sq_sum: conversions as f64,
            guardrails: Vec::new(),
        };
        let batches = [
            row(0, 1, 900, 18),
            row(0, 2, 100, 4),
            row(1, 1, 100, 6),
            row(1, 2, 900, 108),
        ];
        let hero = optimization("visitor_batch", "live");
        let tally = Tally::collect(&batches, &[], start + hour * 9, &hero);
        let (one, two) = (tally.pooled.evidence(1), tally.pooled.evidence(2));
        // Mix factors 0.6 and 1.4 (the periods' levels are 1 and 3, the traffic's mean level 2):
        // rates 4% and 8%, where the pooled counts say 2.4% and 11.2%.
        assert!((one.units - 600.0).abs() < 1e-9 && (two.units - 1400.0).abs() < 1e-9);
        assert_eq!((one.conversions, two.conversions), (24.0, 112.0));
        assert_eq!(
            tally.pooled.raw(1).units,
            1000.0,
            "the report's counts stay as observed"
        );
    }
}
