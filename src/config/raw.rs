//! The YAML file exactly as written: serde structs that reject unknown keys.
//! Nothing past `config::load` sees these; they become the checked types of `definition.rs`.
//! Required keys are optional here, so that `config::load` reports every missing key at once, and
//! the values it checks are `Spanned`, so that a problem points at its own key.

use std::collections::BTreeMap;

use indexmap::IndexMap;
use serde::Deserialize;
use serde_saphyr::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub warehouse: Option<Spanned<RawWarehouse>>,
    pub state: Option<Spanned<String>>,
    pub output_dir: Option<Spanned<String>>,
    pub keep_runs: Option<Spanned<u32>>,
    #[serde(default)]
    pub metrics: BTreeMap<String, Spanned<RawMetric>>,
    pub optimizations: Option<Spanned<BTreeMap<String, Spanned<RawOptimization>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarehouse {
    pub path: Option<Spanned<String>>,
    pub engine: Option<Spanned<String>>,
    pub remote: Option<Spanned<String>>,
    #[serde(default)]
    pub tables: BTreeMap<String, String>,
    pub memory_limit: Option<Spanned<String>>,
    pub threads: Option<Spanned<u32>>,
    pub scan_parts: Option<Spanned<u32>>,
    pub stale_after: Option<Spanned<String>>,
    pub on_stale: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMetric {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub sql: Option<Spanned<String>>,
    pub sql_file: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOptimization {
    pub status: Option<Spanned<String>>,
    pub design_factors: Option<Spanned<IndexMap<String, Vec<Level>>>>,
    #[serde(default)]
    pub excluded_combinations: Vec<Spanned<IndexMap<String, Level>>>,
    pub context_factors: Option<Spanned<Vec<String>>>,
    pub reward: Option<Spanned<String>>,
    pub exposures: Option<Spanned<RawExposures>>,
    pub attribution: Option<Spanned<RawAttribution>>,
    pub model: Option<Spanned<RawModel>>,
    pub generation: Option<Spanned<RawGeneration>>,
    #[serde(default)]
    pub guardrails: Vec<Spanned<RawGuardrail>>,
}

/// A metric an arm must not harm (docs/design.md §3.21).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuardrail {
    pub metric: Option<Spanned<String>>,
    pub better: Option<Spanned<String>>,
    pub tolerance: Option<Spanned<RawTolerance>>,
    pub confidence: Option<Spanned<f64>>,
}

/// `{relative: 0.05}` or `{absolute: 0.002}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTolerance {
    pub relative: Option<f64>,
    pub absolute: Option<f64>,
}

/// A factor level: the scalar's text exactly as written. A plain `9.90`, `no` or `on` stays
/// `9.90`, `no` or `on` (YAML would retype them to 9.9 and booleans), so the level matches the text
/// the exposures log.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct Level(String);

impl Level {
    pub fn text(&self) -> String {
        self.0.clone()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExposures {
    pub table: Option<String>,
    pub sql: Option<String>,
    #[serde(default)]
    pub columns: RawColumns,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumns {
    pub anonymous_id: Option<String>,
    pub timestamp: Option<String>,
    pub optimization_id: Option<String>,
    pub variant: Option<String>,
    pub context: Option<String>,
    pub holdout: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAttribution {
    #[serde(rename = "type")]
    pub kind: Option<Spanned<String>>,
    pub conversion_window: Option<Spanned<String>>,
    pub unit: Option<Spanned<String>>,
    pub late_grace: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub kind: Option<Spanned<String>>,
    pub batch: Option<Spanned<String>>,
    pub prior: Option<Spanned<RawPrior>>,
    pub burn_in: Option<Spanned<String>>,
    pub min_units_per_arm: Option<u64>,
    pub floor: Option<Spanned<f64>>,
    pub max_contexts: Option<Spanned<u32>>,
    pub holdout: Option<Spanned<RawHoldout>>,
    pub drop: Option<Spanned<RawDrop>>,
    pub decay_half_life: Option<Spanned<String>>,
    pub seed: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrior {
    pub alpha: f64,
    pub beta: f64,
}

/// `{share}` (fixed) or `{initial, min, until_units}` (adaptive).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHoldout {
    pub share: Option<f64>,
    pub initial: Option<f64>,
    pub min: Option<f64>,
    pub until_units: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDrop {
    pub below: f64,
    pub incubation: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeneration {
    pub strategy: String,
    pub max_active_arms: Option<u32>,
    pub command: Option<Vec<String>>,
    pub timeout: Option<String>,
}
