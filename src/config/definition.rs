//! The checked definitions every later stage works with.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::model::Harm;
use crate::time::Span;

/// A whole definitions file, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub warehouse: Warehouse,
    pub state: PathBuf,
    pub output_dir: PathBuf,
    pub keep_runs: u32,
    pub metrics: BTreeMap<String, Metric>,
    pub optimizations: BTreeMap<String, Optimization>,
    /// Where keys are written in the file (`metrics.signup.sql` → line, column), for messages.
    pub locations: BTreeMap<String, (u64, u64)>,
}

/// A name given on the command line that the definitions file does not define.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} defines no optimization `{name}`\n  hint: known optimizations: {}", file.display(), known.join(", "))]
pub struct UnknownOptimization {
    pub file: std::path::PathBuf,
    pub name: String,
    pub known: Vec<String>,
}

impl Config {
    /// The named optimizations (all of them when `names` is empty), or an error naming the unknown.
    pub fn select(&self, names: &[String]) -> Result<Vec<&Optimization>, UnknownOptimization> {
        if names.is_empty() {
            return Ok(self.optimizations.values().collect());
        }
        names
            .iter()
            .map(|name| {
                self.optimizations
                    .get(name)
                    .ok_or_else(|| UnknownOptimization {
                        file: self.file.clone(),
                        name: name.clone(),
                        known: self.optimizations.keys().cloned().collect(),
                    })
            })
            .collect()
    }

    /// The line and column of a key path, or of its nearest enclosing key that has one.
    pub fn location(&self, path: &str) -> Option<(u64, u64)> {
        let mut path = path;
        loop {
            if let Some(at) = self.locations.get(path) {
                return Some(*at);
            }
            path = &path[..path.rfind('.')?];
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Warehouse {
    pub source: WarehouseSource,
    /// Logical table name (as used in `exposures.table` and metric SQL) → engine table.
    pub tables: BTreeMap<String, String>,
    pub memory_limit: Option<String>,
    pub threads: Option<u32>,
    /// `warehouse.scan_parts`: the number of hash parts of every aggregation; `None` lets the
    /// engine choose (docs/design.md §2.14).
    pub scan_parts: Option<u32>,
    pub stale_after: Span,
    /// `warehouse.on_stale: fail`: a run whose newest exposure is older than `stale_after` fails
    /// instead of warning.
    pub fail_when_stale: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum WarehouseSource {
    /// A DuckDB database file, opened read-only.
    DuckDbFile(PathBuf),
    /// A folder whose `x.parquet` files and `x/` folders of Parquet files are tables named `x`.
    ParquetFolder(PathBuf),
    /// A Spark Connect endpoint (`sc://host:port`); tables are the cluster's.
    Spark { remote: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Any reward row is a conversion.
    Bool,
    /// The reward is the sum of `value`.
    Numeric,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub name: String,
    pub kind: MetricKind,
    /// The SQL text, written under `sql` or read from `sql_file`.
    pub sql: String,
    /// `sql_file`, resolved against the definitions file's folder, when the SQL came from it.
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Live,
    Completed,
    Archived,
}

#[derive(Debug, Clone, Serialize)]
pub struct Factor {
    pub name: String,
    pub levels: Vec<String>,
}

/// One combination of levels, one per factor in factor order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Variant(pub Vec<String>);

#[derive(Debug, Clone, Serialize)]
pub struct Optimization {
    pub name: String,
    pub status: Status,
    pub factors: Vec<Factor>,
    /// The arms in level order (baseline first), after exclusions.
    pub variants: Vec<Variant>,
    pub reward: Metric,
    pub exposures: Exposures,
    pub attribution: Attribution,
    pub model: Model,
    pub generation: Option<Generation>,
    /// Visitor attributes a contextual model (`kind: cmab`) personalizes on; empty for `mab`.
    pub context_factors: Vec<String>,
    /// Metrics an arm must not harm against the baseline, in the order written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub guardrails: Vec<Guardrail>,
}

/// A metric an arm must not make worse than the baseline arm by more than a tolerance.
#[derive(Debug, Clone, Serialize)]
pub struct Guardrail {
    pub metric: Metric,
    pub harm: Harm,
    /// An arm whose P(harm) is at least this is harmful.
    pub confidence: Probability,
}

impl Optimization {
    /// The variants numbered 1, 2, … in level order: the arm ids a fresh state store gives them.
    pub fn numbered_variants(&self) -> Vec<(u32, Vec<String>)> {
        (1..)
            .zip(&self.variants)
            .map(|(id, variant)| (id, variant.0.clone()))
            .collect()
    }

    /// The variant as the JSON object text the warehouse and the serving side use.
    pub fn variant_json(&self, variant: &Variant) -> String {
        let object: serde_json::Map<String, serde_json::Value> = self
            .factors
            .iter()
            .zip(&variant.0)
            .map(|(factor, level)| (factor.name.clone(), serde_json::Value::from(level.clone())))
            .collect();
        serde_json::Value::Object(object).to_string()
    }
}

#[derive(Debug, Clone, Serialize)]
pub enum ExposureSource {
    Table(String),
    Sql(String),
}

/// Column names of the exposure source.
#[derive(Debug, Clone, Serialize)]
pub struct Columns {
    pub anonymous_id: String,
    pub timestamp: String,
    pub optimization_id: String,
    pub variant: String,
    pub context: String,
    pub holdout: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exposures {
    pub source: ExposureSource,
    pub columns: Columns,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Touch {
    LastTouch,
    FirstTouch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// The first exposure of a visitor in each batch.
    VisitorBatch,
    /// The first exposure of a visitor, ever.
    Visitor,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Attribution {
    pub touch: Touch,
    pub window: Span,
    pub unit: Unit,
    pub late_grace: Span,
}

/// A number known to lie in `[0, 1]`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
pub struct Probability(f64);

impl Probability {
    pub fn new(value: f64) -> Option<Probability> {
        (0.0..=1.0).contains(&value).then_some(Probability(value))
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Prior {
    pub alpha: f64,
    pub beta: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Model {
    pub batch: Span,
    pub prior: Prior,
    pub burn_in: Span,
    pub min_units_per_arm: u64,
    pub floor: Probability,
    pub decay_half_life: Option<Span>,
    pub seed: Option<u64>,
    pub holdout: Option<Holdout>,
    pub drop: Option<DropRule>,
    /// At most this many context cells get their own allocation (most units first); the rest use `*`.
    pub max_contexts: usize,
}

/// The share of traffic that is always served the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Holdout {
    /// The same share on every run (Levered's convention).
    Fixed { share: Probability },
    /// A share that falls linearly from `initial` to `min` as the holdout accumulates
    /// `until_units` mature units, then stays at `min` (Coframe's convention).
    Adaptive {
        initial: Probability,
        min: Probability,
        until_units: u64,
    },
}

impl Holdout {
    /// The share for the next batch, given the holdout's mature units so far.
    pub fn share(&self, holdout_units: u64) -> f64 {
        match *self {
            Holdout::Fixed { share } => share.get(),
            Holdout::Adaptive {
                initial,
                min,
                until_units,
            } => {
                let progress = (holdout_units as f64 / until_units as f64).min(1.0);
                initial.get() - (initial.get() - min.get()) * progress
            }
        }
    }
}

/// Arms whose P(best) stays under `below` after `incubation` are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DropRule {
    pub below: Probability,
    pub incubation: Span,
}

/// Where new arms come from when places are free.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "strategy", rename_all = "snake_case")]
pub enum Strategy {
    /// Untested combinations of the defined levels, ranked by an additive per-factor model.
    Factorial,
    /// A user command that reads the history as JSON on stdin and prints variants on stdout; it
    /// runs in the definitions file's folder.
    Command {
        argv: Vec<String>,
        timeout: Span,
        dir: PathBuf,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Generation {
    pub strategy: Strategy,
    /// At most this many arms serve at once; the others wait as `proposed`.
    pub max_active_arms: usize,
}
