//! The fast path: an engine that aggregates the simulated units in memory instead of writing them to
//! a warehouse and running SQL. Every simulated visitor is new and has one exposure, so the
//! aggregation of docs/design.md §2
//! reduces to: a unit per visitor, counted when mature, converted when its reward came before
//! `as_of`. The training code that consumes the aggregates is the real one; a test checks that both
//! paths give the same simulation.

use std::collections::BTreeMap;

use crate::domain::ContextKey;
use crate::time::Instant;
use crate::warehouse::{
    batch_rows, CellKey, CellSums, Engine, MetricMicros, ScanPlan, ScanResult, WarehouseError,
};

/// One simulated visitor's exposure and its conversion, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub exposure: Instant,
    /// One level per design factor, in factor order.
    pub levels: Vec<String>,
    /// The context key (`*` for a model without context factors).
    pub context: ContextKey,
    pub holdout: bool,
    /// When the reward lands and its value.
    pub reward: Option<(Instant, f64)>,
    /// When each guardrail metric's event lands, in the scenario's order.
    pub guardrails: Vec<Option<Instant>>,
}

#[derive(Debug, Default)]
pub struct Memory {
    pub units: Vec<Unit>,
}

impl Engine for Memory {
    fn aggregate(&self, plan: &ScanPlan<'_>) -> Result<ScanResult, WarehouseError> {
        let (batch, window, as_of) = (plan.batch(), plan.window(), plan.as_of);
        let from = plan.from_batch.unwrap_or(Instant::BEGINNING);
        let arm_of: BTreeMap<&Vec<String>, u32> =
            plan.arms.iter().map(|(id, levels)| (levels, *id)).collect();
        let bool_reward = plan.optimization.reward.kind == crate::config::MetricKind::Bool;
        // The optimization's guardrails are the scenario's, in its order (bool metrics), or none.
        let guardrails: Vec<&str> = plan
            .optimization
            .guardrails
            .iter()
            .map(|g| g.metric.name.as_str())
            .collect();
        let mut cells: BTreeMap<CellKey, CellSums> = BTreeMap::new();
        let mut result = ScanResult {
            parts: 1,
            ..ScanResult::default()
        };
        let exposures_from = plan.exposures_from();
        for unit in self
            .units
            .iter()
            .filter(|u| u.exposure >= exposures_from && u.exposure < as_of)
        {
            let Some(&arm) = arm_of.get(&unit.levels) else {
                *result
                    .unmatched
                    .entry(crate::warehouse::Unmatched::UnknownVariant)
                    .or_default() += 1;
                continue;
            };
            result.first_exposure = Some(
                result
                    .first_exposure
                    .map_or(unit.exposure, |f| f.min(unit.exposure)),
            );
            result.newest_exposure = result.newest_exposure.max(Some(unit.exposure));
            let batch_start = unit.exposure.floor_to(batch);
            if batch_start < from || unit.exposure + window > as_of {
                continue;
            }
            let value = unit.reward.and_then(|(at, value)| {
                (at >= unit.exposure && at <= unit.exposure + window && at < as_of).then_some(value)
            });
            let micros: i128 = match value {
                None => 0,
                Some(_) if bool_reward => 1_000_000,
                Some(v) => (v * 1e6).round() as i128,
            };
            let cell = cells
                .entry((batch_start, unit.context.clone(), arm, unit.holdout))
                .or_default();
            cell.units += 1;
            cell.conversions += i64::from(value.is_some());
            cell.value_micros += micros;
            cell.value_sq_micros += micros * micros;
            let counted = |at: &Option<Instant>| {
                at.is_some_and(|at| {
                    at >= unit.exposure && at <= unit.exposure + window && at < as_of
                })
            };
            cell.guardrails
                .resize(guardrails.len(), MetricMicros::default());
            for (sums, at) in cell.guardrails.iter_mut().zip(&unit.guardrails) {
                if counted(at) {
                    sums.add(&MetricMicros {
                        conversions: 1,
                        value_micros: 1_000_000,
                        value_sq_micros: 1_000_000_000_000,
                    });
                }
            }
        }
        result.rows = batch_rows(cells, &guardrails);
        Ok(result)
    }

    fn version(&self) -> String {
        "simulator memory".into()
    }
}
