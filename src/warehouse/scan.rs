//! What a run asks of the warehouse, and what comes back: aggregates only.

use std::collections::BTreeMap;

use crate::config::{Optimization, Touch, Unit};
use crate::domain::ContextKey;

use super::sql::Unmatched;

/// The beginning of time for a full scan: 0001-01-01T00:00:00Z in microseconds.
pub const BEGINNING_US: i64 = -62_135_596_800_000_000;

/// One scan of one optimization.
#[derive(Debug, Clone)]
pub struct ScanPlan<'a> {
    pub optimization: &'a Optimization,
    /// Arm ids (stable across runs) and their variants' level lists.
    pub arms: Vec<(u32, Vec<String>)>,
    /// Exclusive end of time for this run.
    pub as_of_us: i64,
    /// The first batch whose aggregates the run recomputes; `None` recomputes everything.
    pub from_batch_us: Option<i64>,
}

impl ScanPlan<'_> {
    pub fn window_us(&self) -> i64 {
        self.optimization.attribution.window.micros()
    }

    pub fn batch_us(&self) -> i64 {
        self.optimization.model.batch.micros()
    }

    /// The earliest exposure the scan needs: the recomputed batches, plus, for `first_touch`, the
    /// whole batches up to one window before them (their units compete for the same rewards).
    /// `unit: visitor` needs every visitor's first exposure ever, so it always reads all history.
    pub fn exposures_from_us(&self) -> i64 {
        let attribution = &self.optimization.attribution;
        match (self.from_batch_us, attribution.unit, attribution.touch) {
            (None, _, _) | (_, Unit::Visitor, _) => BEGINNING_US,
            (Some(from), _, Touch::LastTouch) => from,
            (Some(from), _, Touch::FirstTouch) => {
                floor_to(from - self.window_us(), self.batch_us())
            }
        }
    }

    /// The start of the late exposures: those whose units are all still immature at `as_of` (their
    /// batch starts after `as_of - window`) or that lie at or after `as_of`. Such rows never count;
    /// they matter only as rivals for rewards, for the unmatched counts and for the time range, so
    /// the query does not deduplicate them. Under `unit: visitor` a later exposure of a visitor
    /// already seen is no unit at all, so only the rows at or after `as_of` are late.
    pub fn late_from_us(&self) -> i64 {
        match self.optimization.attribution.unit {
            Unit::VisitorBatch => {
                let all_immature =
                    floor_to(self.as_of_us - self.window_us(), self.batch_us()) + self.batch_us();
                all_immature.min(self.as_of_us)
            }
            Unit::Visitor => self.as_of_us,
        }
    }

    /// `$start`: the earliest reward time the run needs (docs/design.md §1.12).
    pub fn rewards_from_us(&self) -> i64 {
        match (self.from_batch_us, self.optimization.attribution.touch) {
            (None, _) => BEGINNING_US,
            (Some(from), Touch::LastTouch) => from,
            (Some(from), Touch::FirstTouch) => from - self.window_us(),
        }
    }
}

/// Where the final batches end at `as_of`: a batch `[b, b + batch)` is final once
/// `b + batch + window + late_grace <= as_of` (docs/design.md §2.8).
pub fn final_until_us(optimization: &Optimization, as_of_us: i64) -> i64 {
    let batch_us = optimization.model.batch.micros();
    let attribution = &optimization.attribution;
    floor_to(
        as_of_us - attribution.window.micros() - attribution.late_grace.micros() - batch_us,
        batch_us,
    ) + batch_us
}

/// `t` rounded down to a multiple of `step` (both in microseconds since the epoch).
pub fn floor_to(t: i64, step: i64) -> i64 {
    t.div_euclid(step) * step
}

/// Aggregates of one (batch, context, arm, holdout) cell.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchRow {
    pub batch_start_us: i64,
    /// The context key (`country=US|device=mobile`), or `*` for a model without context factors.
    pub context: ContextKey,
    pub arm_id: u32,
    /// Units of the holdout (served the baseline, never part of an arm's posterior).
    pub holdout: bool,
    pub units: i64,
    pub conversions: i64,
    pub value_sum: f64,
    pub value_sq_sum: f64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ScanResult {
    /// Mature units of the recomputed batches, by (batch, arm, holdout), in that order.
    pub rows: Vec<BatchRow>,
    /// Exposure rows that could not become units, by reason.
    pub unmatched: BTreeMap<Unmatched, i64>,
    /// The first and the newest valid exposure seen by the scan: the newest late row (see
    /// [`ScanPlan::late_from_us`]), or without one, the newest unit (a unit's first exposure).
    pub first_exposure_us: Option<i64>,
    pub newest_exposure_us: Option<i64>,
}
