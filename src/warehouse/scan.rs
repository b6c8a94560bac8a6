//! What a run asks of the warehouse, and what comes back: aggregates only.

use std::collections::BTreeMap;

use crate::config::{Optimization, Touch, Unit};
use crate::domain::ContextKey;
use crate::time::{Instant, Span};

use super::sql::Unmatched;

/// One scan of one optimization.
#[derive(Debug, Clone)]
pub struct ScanPlan<'a> {
    pub optimization: &'a Optimization,
    /// Arm ids (stable across runs) and their variants' level lists.
    pub arms: Vec<(u32, Vec<String>)>,
    /// Exclusive end of time for this run.
    pub as_of: Instant,
    /// The first batch whose aggregates the run recomputes; `None` recomputes everything.
    pub from_batch: Option<Instant>,
}

impl ScanPlan<'_> {
    pub fn window(&self) -> Span {
        self.optimization.attribution.window
    }

    pub fn batch(&self) -> Span {
        self.optimization.model.batch
    }

    /// The earliest exposure the scan needs: the recomputed batches, plus, for `first_touch`, the
    /// whole batches up to one window before them (their units compete for the same rewards).
    /// `unit: visitor` needs every visitor's first exposure ever, so it always reads all history.
    pub fn exposures_from(&self) -> Instant {
        let attribution = &self.optimization.attribution;
        match (self.from_batch, attribution.unit, attribution.touch) {
            (None, _, _) | (_, Unit::Visitor, _) => Instant::BEGINNING,
            (Some(from), _, Touch::LastTouch) => from,
            (Some(from), _, Touch::FirstTouch) => (from - self.window()).floor_to(self.batch()),
        }
    }

    /// The start of the late exposures: those whose units are all still immature at `as_of` (their
    /// batch starts after `as_of - window`) or that lie at or after `as_of`. Such rows never count;
    /// they matter only as rivals for rewards, for the unmatched counts and for the time range, so
    /// the query does not deduplicate them. Under `unit: visitor` a later exposure of a visitor
    /// already seen is no unit at all, so only the rows at or after `as_of` are late.
    pub fn late_from(&self) -> Instant {
        match self.optimization.attribution.unit {
            Unit::VisitorBatch => {
                let all_immature =
                    (self.as_of - self.window()).floor_to(self.batch()) + self.batch();
                all_immature.min(self.as_of)
            }
            Unit::Visitor => self.as_of,
        }
    }

    /// `$start`: the earliest reward time the run needs (docs/design.md §1.12).
    pub fn rewards_from(&self) -> Instant {
        match (self.from_batch, self.optimization.attribution.touch) {
            (None, _) => Instant::BEGINNING,
            (Some(from), Touch::LastTouch) => from,
            (Some(from), Touch::FirstTouch) => from - self.window(),
        }
    }
}

/// Where the final batches end at `as_of`: a batch `[b, b + batch)` is final once
/// `b + batch + window + late_grace <= as_of` (docs/design.md §2.8).
pub fn final_until(optimization: &Optimization, as_of: Instant) -> Instant {
    let batch = optimization.model.batch;
    let attribution = &optimization.attribution;
    (as_of - attribution.window - attribution.late_grace - batch).floor_to(batch) + batch
}

/// Aggregates of one (batch, context, arm, holdout) cell.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BatchRow {
    pub batch_start: Instant,
    /// The context key (`country=US|device=mobile`), or `*` for a model without context factors.
    pub context: ContextKey,
    pub arm_id: u32,
    /// Units of the holdout (served the baseline, never part of an arm's posterior).
    pub holdout: bool,
    pub units: i64,
    pub conversions: i64,
    pub value_sum: f64,
    pub value_sq_sum: f64,
    /// The cell's sums of each guardrail metric, in the definition's order (empty without).
    pub guardrails: Vec<GuardrailSums>,
}

/// The sums of one guardrail metric over a cell's units (docs/design.md §3.21).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GuardrailSums {
    pub metric: String,
    pub conversions: i64,
    pub value_sum: f64,
    pub value_sq_sum: f64,
}

/// The exact sums of one metric, values in whole micro-units as the SQL sums them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricMicros {
    pub conversions: i64,
    pub value_micros: i128,
    pub value_sq_micros: i128,
}

impl MetricMicros {
    pub fn add(&mut self, other: &MetricMicros) {
        self.conversions += other.conversions;
        self.value_micros += other.value_micros;
        self.value_sq_micros += other.value_sq_micros;
    }
}

/// A cell of the aggregates: batch start, context, arm id, holdout.
pub type CellKey = (Instant, ContextKey, u32, bool);

/// The exact sums of one cell, values in whole micro-units as the SQL sums them.
#[derive(Debug, Default)]
pub struct CellSums {
    pub units: i64,
    pub conversions: i64,
    pub value_micros: i128,
    pub value_sq_micros: i128,
    /// Per guardrail, in the definition's order.
    pub guardrails: Vec<MetricMicros>,
}

/// The batch rows of summed cells, in the cells' order; `guardrails` names the guardrail metrics
/// whose sums the cells hold (a cell without them has none of their rewards).
pub fn batch_rows(cells: BTreeMap<CellKey, CellSums>, guardrails: &[&str]) -> Vec<BatchRow> {
    cells
        .into_iter()
        .map(|((batch_start, context, arm_id, holdout), sums)| BatchRow {
            guardrails: guardrails
                .iter()
                .enumerate()
                .map(|(i, metric)| {
                    let g = sums.guardrails.get(i).copied().unwrap_or_default();
                    GuardrailSums {
                        metric: metric.to_string(),
                        conversions: g.conversions,
                        value_sum: g.value_micros as f64 / 1e6,
                        value_sq_sum: g.value_sq_micros as f64 / 1e12,
                    }
                })
                .collect(),
            batch_start,
            context,
            arm_id,
            holdout,
            units: sums.units,
            conversions: sums.conversions,
            value_sum: sums.value_micros as f64 / 1e6,
            value_sq_sum: sums.value_sq_micros as f64 / 1e12,
        })
        .collect()
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct ScanResult {
    /// Mature units of the recomputed batches, by (batch, context, arm, holdout), in that order.
    pub rows: Vec<BatchRow>,
    /// Exposure rows that could not become units, by reason.
    pub unmatched: BTreeMap<Unmatched, i64>,
    /// The first and the newest valid exposure seen by the scan: the newest late row (see
    /// [`ScanPlan::late_from`]), or without one, the newest unit (a unit's first exposure).
    pub first_exposure: Option<Instant>,
    pub newest_exposure: Option<Instant>,
    /// The number of parts the scan ran in (docs/design.md §2.14).
    pub parts: u32,
    /// A few of the values behind the unmatched rows, for the warning that shows them.
    pub samples: UnmatchedSamples,
}

/// A few of the values behind a scan's unmatched exposure rows (`sql/unmatched_samples.sql`): the
/// variants no arm has, and for a source with no row of the optimization, the optimization ids it
/// has. `None` is SQL NULL. Empty unless a scan has unknown variants or no row at all.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct UnmatchedSamples {
    pub variants: Vec<Option<String>>,
    pub optimization_ids: Vec<Option<String>>,
}

impl UnmatchedSamples {
    /// The variants no arm has, as a sentence to append to a warning (empty without any).
    pub fn unknown_variants(&self, optimization: &Optimization) -> String {
        if self.variants.is_empty() {
            return String::new();
        }
        let factors: Vec<String> = optimization
            .factors
            .iter()
            .map(|f| format!("{}: [{}]", f.name, f.levels.join(", ")))
            .collect();
        format!(
            "; variants of optimization_id '{}' that no arm has: {} (a variant is a JSON object of one level per factor of design_factors: {{{}}})",
            optimization.name,
            sample_list(&self.variants),
            factors.join(", ")
        )
    }

    /// The optimization ids the source has instead, as a sentence to append to a warning (empty
    /// without any).
    pub fn elsewhere(&self, optimization: &Optimization) -> String {
        if self.optimization_ids.is_empty() {
            return String::new();
        }
        format!(
            ": no exposure row in the scanned range has optimization_id '{}'; other optimization ids in the source: {} (optimization_id must be the optimization's name in the YAML)",
            optimization.name,
            sample_list(&self.optimization_ids)
        )
    }
}

/// A few values as SQL shows them: text in single quotes, NULL bare.
fn sample_list(values: &[Option<String>]) -> String {
    let shown: Vec<String> = values
        .iter()
        .map(|v| v.as_ref().map_or("NULL".into(), |v| format!("'{v}'")))
        .collect();
    shown.join(", ")
}
