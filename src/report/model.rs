//! The one report structure every renderer reads.

use serde::Serialize;

/// One row of `allocation.csv`: the traffic weight the serving side reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocationRow {
    pub optimization: String,
    pub run_id: String,
    pub trained_at: String,
    pub context: String,
    pub arm_id: String,
    pub role: String,
    pub variant: String,
    pub weight: f64,
    pub status: String,
}

/// One row of `report.csv`: an arm's data, posterior and weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub context: String,
    pub arm_id: String,
    pub role: String,
    pub variant: String,
    pub status: String,
    pub units: i64,
    pub conversions: i64,
    /// Conversions per unit (bool) or mean value per unit (numeric); blank without units.
    pub rate: Option<f64>,
    pub alpha: f64,
    pub beta: f64,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub p_best: Option<f64>,
    pub expected_loss: Option<f64>,
    pub weight_prev: Option<f64>,
    pub weight_new: Option<f64>,
    pub lift_vs_holdout: Option<f64>,
    pub lift_ci_low: Option<f64>,
    pub lift_ci_high: Option<f64>,
}

/// Everything one training run of one optimization produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub optimization: String,
    pub run_id: String,
    pub as_of: String,
    pub trained_at: String,
    pub seed: u64,
    pub phase: crate::allocation::Phase,
    pub p_best_method: crate::model::Method,
    pub scan: ScanSummary,
    pub warnings: Vec<String>,
    pub allocation: Vec<AllocationRow>,
    pub arms: Vec<ArmReport>,
}

/// What the warehouse scan covered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScanSummary {
    /// `full`, or `incremental`.
    pub mode: String,
    /// Why the run recomputed everything, when it did.
    pub full_reason: Option<String>,
    /// The first batch recomputed (RFC 3339), on incremental runs.
    pub from_batch: Option<String>,
    pub batches_recomputed: usize,
    pub mature_units: i64,
    pub unmatched: std::collections::BTreeMap<String, i64>,
    pub newest_exposure: Option<String>,
}
