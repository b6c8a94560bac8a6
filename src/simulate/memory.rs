//! The fast path: an engine that aggregates the simulated units in memory instead of writing them to
//! a warehouse and running SQL. Every simulated visitor is new and has one exposure, so the
//! aggregation of docs/design.md §2
//! reduces to: a unit per visitor, counted when mature, converted when its reward came before
//! `as_of`. The training code that consumes the aggregates is the real one; a test checks that both
//! paths give the same simulation.

use std::collections::BTreeMap;

use crate::domain::ContextKey;
use crate::warehouse::{
    floor_to, BatchRow, Engine, ScanPlan, ScanResult, WarehouseError, BEGINNING_US,
};

/// One simulated visitor's exposure and its conversion, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct Unit {
    pub exposure_us: i64,
    /// One level per design factor, in factor order.
    pub levels: Vec<String>,
    /// The context key (`*` for a model without context factors).
    pub context: ContextKey,
    pub holdout: bool,
    /// When the reward lands and its value.
    pub reward: Option<(i64, f64)>,
}

#[derive(Debug, Default)]
pub struct Memory {
    pub units: Vec<Unit>,
}

/// Sums of one cell in whole micro-units, as the SQL sums them.
#[derive(Default)]
struct Cell {
    units: i64,
    conversions: i64,
    sum: i128,
    squares: i128,
}

impl Engine for Memory {
    fn aggregate(&self, plan: &ScanPlan<'_>) -> Result<ScanResult, WarehouseError> {
        let batch_us = plan.batch_us();
        let window_us = plan.window_us();
        let from = plan.from_batch_us.unwrap_or(BEGINNING_US);
        let arm_of: BTreeMap<&Vec<String>, u32> =
            plan.arms.iter().map(|(id, levels)| (levels, *id)).collect();
        let bool_reward = plan.optimization.reward.kind == crate::config::MetricKind::Bool;
        let mut cells: BTreeMap<(i64, ContextKey, u32, bool), Cell> = BTreeMap::new();
        let mut result = ScanResult::default();
        for unit in self
            .units
            .iter()
            .filter(|u| u.exposure_us >= plan.exposures_from_us() && u.exposure_us < plan.as_of_us)
        {
            let Some(&arm) = arm_of.get(&unit.levels) else {
                *result
                    .unmatched
                    .entry(crate::warehouse::Unmatched::UnknownVariant)
                    .or_default() += 1;
                continue;
            };
            result.first_exposure_us = Some(
                result
                    .first_exposure_us
                    .map_or(unit.exposure_us, |f| f.min(unit.exposure_us)),
            );
            result.newest_exposure_us = result.newest_exposure_us.max(Some(unit.exposure_us));
            let batch = floor_to(unit.exposure_us, batch_us);
            if batch < from || unit.exposure_us + window_us > plan.as_of_us {
                continue;
            }
            let value = unit.reward.and_then(|(at, value)| {
                (at >= unit.exposure_us && at <= unit.exposure_us + window_us && at < plan.as_of_us)
                    .then_some(value)
            });
            let micros: i128 = match value {
                None => 0,
                Some(_) if bool_reward => 1_000_000,
                Some(v) => (v * 1e6).round() as i128,
            };
            let cell = cells
                .entry((batch, unit.context.clone(), arm, unit.holdout))
                .or_default();
            cell.units += 1;
            cell.conversions += i64::from(value.is_some());
            cell.sum += micros;
            cell.squares += micros * micros;
        }
        result.rows = cells
            .into_iter()
            .map(|((batch_start_us, context, arm_id, holdout), c)| BatchRow {
                batch_start_us,
                context,
                arm_id,
                holdout,
                units: c.units,
                conversions: c.conversions,
                value_sum: c.sum as f64 / 1e6,
                value_sq_sum: c.squares as f64 / 1e12,
            })
            .collect();
        Ok(result)
    }

    fn version(&self) -> String {
        "simulator memory".into()
    }
}
