//! The one report structure every renderer reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{ArmId, ArmStatus, ContextKey, Role};
use crate::time::Instant;

/// A variant, held as its canonical JSON text (what `allocation.csv` carries), written into JSON
/// outputs as the object itself.
fn variant_object<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) => value.serialize(serializer),
        Err(_) => serializer.serialize_str(text),
    }
}

/// Reads a variant written by [`variant_object`] (or, from older stores, as text) back to its text.
fn variant_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::String(text) => text,
        object => object.to_string(),
    })
}

/// One row of `allocation.csv`: the traffic weight the serving side reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AllocationRow {
    pub optimization: String,
    pub run_id: String,
    pub trained_at: String,
    pub context: ContextKey,
    pub arm_id: ArmId,
    pub role: Role,
    #[serde(serialize_with = "variant_object")]
    pub variant: String,
    pub weight: f64,
    pub status: ArmStatus,
}

/// One row of `report.csv`: an arm's data, posterior and weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ArmReport {
    pub context: ContextKey,
    pub arm_id: ArmId,
    pub role: Role,
    #[serde(serialize_with = "variant_object")]
    pub variant: String,
    pub status: ArmStatus,
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
    /// The arm's estimate on each guardrail, in the definition's order (none for the holdout).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<GuardrailEstimate>,
}

/// An arm's estimate on one guardrail metric (docs/design.md §3.21), from the pooled traffic of
/// every context, which is also what the decision reads.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct GuardrailEstimate {
    pub metric: String,
    pub conversions: i64,
    /// The posterior mean: the conversion rate (bool) or the mean value per unit (numeric).
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    /// P(worse than the baseline by more than the tolerance); `None` for the baseline.
    pub p_harm: Option<f64>,
    /// `p_harm` is at least the guardrail's confidence.
    pub harmful: bool,
}

/// Everything one training run of one optimization produced.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub optimization: String,
    pub run_id: String,
    /// The reward metric the run was trained on.
    pub metric: String,
    pub as_of: String,
    pub trained_at: String,
    pub seed: u64,
    /// Written into the run's JSON object: `"phase"` and its `winner_arm_id` or `phase_reason`.
    #[serde(flatten)]
    pub phase: crate::allocation::Phase,
    pub p_best_method: crate::model::Method,
    pub scan: ScanSummary,
    pub diagnostics: Diagnostics,
    /// The winner a completed optimization serves, with the evidence it was chosen on.
    pub winner: Option<Winner>,
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
    pub unmatched: BTreeMap<String, i64>,
    pub newest_exposure: Option<String>,
    /// The parts the engine scanned in (docs/design.md §2.14).
    pub parts: u32,
}

/// What the run measured about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnostics {
    /// The holdout's share in the new allocation; absent without a holdout.
    pub holdout_share: Option<f64>,
    /// The bandit's lift over the holdout, stratified by period.
    pub lift: Option<crate::model::Lift>,
    /// Why `lift` is blank.
    pub lift_note: Option<String>,
    /// The sample-ratio-mismatch test of the served split.
    pub srm: Option<crate::model::Srm>,
    /// Which batches the test covered, or why it did not run.
    pub srm_note: String,
    /// Arms this run started, dropped, retired or added.
    pub arm_changes: Vec<crate::allocation::ArmEvent>,
    /// How many contexts got their own allocation, when `model.max_contexts` left some to `*`.
    #[serde(default)]
    pub context_note: Option<String>,
    /// The warnings that only repeat the last run's (unmatched rows of the same reasons), which
    /// `train -q` does not print; they stay in `warnings`.
    #[serde(skip)]
    pub repeated_warnings: Vec<String>,
}

/// The arm a completed optimization locked in, and the evidence at the time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Winner {
    pub arm_id: u32,
    #[serde(serialize_with = "variant_object", deserialize_with = "variant_text")]
    pub variant: String,
    pub p_best: f64,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
    pub units: i64,
    /// The run that locked it in.
    pub decided_run: String,
    pub decided_as_of: String,
}

/// The header of a stored run, as `levered report` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RunInfo {
    pub optimization: String,
    pub run_id: String,
    /// The reward metric (none for runs stored before levered recorded it).
    pub metric: Option<String>,
    pub as_of: Instant,
    pub trained_at: Instant,
    pub seed: u64,
    pub scan_mode: String,
    pub mature_units: i64,
    pub unmatched: BTreeMap<String, i64>,
    pub warnings: Vec<String>,
    pub diagnostics: Option<Diagnostics>,
}

/// One arm of one run in the allocation history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRow {
    pub run_id: String,
    pub as_of: Instant,
    pub seed: u64,
    pub context: ContextKey,
    pub arm_id: ArmId,
    pub role: Role,
    pub status: ArmStatus,
    /// The arm's status changes in this run (`status: reason`, `; `-separated).
    pub change: Option<String>,
    /// The run's sample-ratio-mismatch p-value, when it was tested.
    pub srm_p_value: Option<f64>,
    #[serde(serialize_with = "variant_object")]
    pub variant: String,
    pub weight: Option<f64>,
    pub p_best: Option<f64>,
    pub mean: f64,
    pub ci_low: f64,
    pub ci_high: f64,
}
