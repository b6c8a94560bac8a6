//! What every SQL engine shares: the parameters levered binds, the run of the aggregation, and the
//! conversion of its rows into a [`ScanResult`]. An engine only prepares, binds and runs SQL text
//! ([`Backend`]); it never decides what the SQL says or what the rows mean.

use std::collections::BTreeMap;

use crate::config::{Metric, Optimization};
use crate::domain::ContextKey;
use crate::time::{Instant, Span};

use super::contract;
use super::scan::{
    batch_rows, CellKey, CellSums, MetricMicros, ScanPlan, ScanResult, UnmatchedSamples,
};
use super::split::{self, Part, Split};
use super::sql::{self, BadValue, Dialect, Unmatched, VALUE_BOUND};
use super::{ColumnKind, EngineError, WarehouseError};

/// A value bound to a named parameter marker.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Text(String),
    BigInt(i64),
    /// Bound as a TIMESTAMP (UTC).
    Timestamp(Instant),
}

/// The named parameters of one statement.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(&'static str, Param)>);

impl Params {
    /// `$start`/`$end`, all that user SQL may use.
    pub fn reward_range(start: Instant, end: Instant) -> Params {
        Params(vec![
            ("start", Param::Timestamp(start)),
            ("end", Param::Timestamp(end)),
        ])
    }

    /// Everything the aggregation of `part` binds (see [`sql::aggregation_in`]).
    fn of_scan(plan: &ScanPlan<'_>, arm_span: i64, part: &Part) -> Params {
        let bounds = part.bounds(plan);
        let optimization = plan.optimization;
        let factor_names: Vec<String> = optimization
            .factors
            .iter()
            .map(|f| f.name.clone())
            .collect();
        let arms: Vec<serde_json::Value> = plan
            .arms
            .iter()
            .map(|(id, levels)| {
                serde_json::json!({"arm_id": id, "canonical": sql::canonical_variant(&factor_names, levels)})
            })
            .collect();
        let mut params = Params::reward_range(bounds.start, bounds.end);
        params.0.extend([
            ("optimization", Param::Text(optimization.name.clone())),
            (
                "arms",
                Param::Text(serde_json::Value::Array(arms).to_string()),
            ),
            ("as_of_us", Param::BigInt(plan.as_of.micros())),
            (
                "exposures_from_us",
                Param::BigInt(bounds.exposures_from.micros()),
            ),
            ("late_from_us", Param::BigInt(bounds.late_from.micros())),
            (
                "rivals_until_us",
                Param::BigInt(bounds.rivals_until.micros()),
            ),
            (
                "from_batch_us",
                Param::BigInt(bounds.from_batch.unwrap_or(Instant::BEGINNING).micros()),
            ),
            ("owned_from", Param::Timestamp(bounds.owned_from)),
            ("owned_until", Param::Timestamp(bounds.owned_until)),
            ("window_us", Param::BigInt(plan.window().micros())),
            ("batch_us", Param::BigInt(plan.batch().micros())),
            (
                "context_factors",
                Param::Text(
                    serde_json::Value::from(optimization.context_factors.clone()).to_string(),
                ),
            ),
            ("arm_span", Param::BigInt(arm_span)),
            ("part", Param::BigInt(i64::from(part.index))),
            ("parts", Param::BigInt(i64::from(part.of))),
        ]);
        params
    }

    /// The value of a marker the SQL uses; any other name is an error naming it.
    pub fn get(&self, name: &str) -> Result<&Param, EngineError> {
        self.0
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value)
            .ok_or_else(|| EngineError::UnknownParameter(name.to_string()))
    }
}

/// One row of the aggregation, in the engine-neutral form every engine converts its rows into.
#[derive(Debug, Clone, PartialEq)]
pub struct AggregateRow {
    pub reason: i32,
    pub counted: bool,
    pub batch: Option<i64>,
    pub arm_key: Option<i64>,
    pub exposures: i64,
    pub units: i64,
    pub conversions: i64,
    /// The sum of the units' values in whole micro-units, exactly.
    pub value_micros: i128,
    /// The sum of their squares in squared micro-units, exactly.
    pub value_sq_micros: i128,
    pub first_us: Option<i64>,
    pub last_us: Option<i64>,
    pub context: Option<String>,
    /// Per guardrail, in the definition's order: the columns between `last_us` and `context`.
    pub guardrails: Vec<MetricMicros>,
}

/// A row of two text columns; SQL NULL is `None`.
pub type TextPair = (Option<String>, Option<String>);

/// What an SQL engine provides. Text comes with levered's `$name` markers; the engine binds each
/// from [`Params::get`] (Spark first spells them `:name`, see [`sql::spark_parameters`]).
pub trait Backend {
    fn dialect(&self) -> Dialect;
    /// `warehouse.tables`: logical table name → engine table.
    fn tables(&self) -> &BTreeMap<String, String>;
    /// The result columns of a query, without reading data.
    fn schema(&self, text: &str, params: &Params)
        -> Result<Vec<(String, ColumnKind)>, EngineError>;
    /// Runs the aggregation and returns its rows.
    fn rows(&self, text: &str, params: &Params) -> Result<Vec<AggregateRow>, EngineError>;
    /// How the engine's scans are split ([`split`](super::split)).
    fn split(&self) -> Split;
    /// Runs a query of two BIGINT columns (`sql/batch_counts.sql`, `sql/id_lengths.sql`); rows
    /// whose first column is NULL are left out.
    fn integer_pairs(&self, text: &str, params: &Params) -> Result<Vec<(i64, i64)>, EngineError>;
    /// Runs a query of two text columns, such as `sql/unmatched_samples.sql`.
    fn text_pairs(&self, text: &str, params: &Params) -> Result<Vec<TextPair>, EngineError>;
    fn version(&self) -> String;
    /// See `Engine::canceller`.
    fn canceller(&self) -> Option<super::Cancel> {
        None
    }
}

/// The relation of an optimization's exposure source, after `warehouse.tables`.
pub fn exposure_relation(backend: &impl Backend, optimization: &Optimization) -> String {
    sql::exposure_relation(optimization, |logical| {
        let target = backend
            .tables()
            .get(logical)
            .map_or(logical, String::as_str);
        backend.dialect().relation(target)
    })
}

/// The columns of a user relation (`exposures.table`/`exposures.sql` or a metric's SQL), found by
/// binding levered's own `SELECT * FROM (...) LIMIT 0` around it, so user SQL is never sent alone.
pub fn columns(
    backend: &impl Backend,
    relation: &str,
    start: Instant,
    end: Instant,
) -> Result<Vec<(String, ColumnKind)>, EngineError> {
    backend.schema(
        &format!("SELECT * FROM {relation} AS q LIMIT 0"),
        &Params::reward_range(start, end),
    )
}

/// Runs the aggregation of one optimization (docs/design.md §2) on any engine, in the parts the
/// engine's [`Split`] asks for, and sums the parts' aggregates.
pub fn aggregate(
    backend: &impl Backend,
    plan: &ScanPlan<'_>,
) -> Result<ScanResult, WarehouseError> {
    let optimization = plan.optimization;
    let relation = exposure_relation(backend, optimization);
    let holdout_column = check_sources(backend, plan, &relation)?;
    let arm_span = 2 * (i64::from(plan.arms.iter().map(|(id, _)| *id).max().unwrap_or(0)) + 1);
    let parts =
        scan_parts(backend, plan, &relation, arm_span).map_err(|e| query_error(optimization, e))?;
    let mut rows = Vec::new();
    for part in &parts {
        let text = sql::aggregation_in(
            backend.dialect(),
            optimization,
            &relation,
            part.shape(holdout_column),
        );
        rows.extend(
            backend
                .rows(&text, &Params::of_scan(plan, arm_span, part))
                .map_err(|e| query_error(optimization, e))?,
        );
    }
    for (index, metric) in sql::metrics(optimization).enumerate() {
        for bad in [BadValue::NonFinite, BadValue::OutOfRange] {
            let count: i64 = rows
                .iter()
                .filter(|r| BadValue::from_code(r.reason) == Some((index, bad)))
                .map(|r| r.exposures)
                .sum();
            if count > 0 {
                return Err(bad_value_error(optimization, metric, bad, count));
            }
        }
    }
    let guardrails: Vec<&str> = optimization
        .guardrails
        .iter()
        .map(|g| g.metric.name.as_str())
        .collect();
    let mut result = ScanResult {
        parts: parts.len() as u32,
        ..scan_result(rows, plan.batch(), arm_span, &guardrails)
    };
    result.samples = unmatched_samples(backend, plan, &relation, arm_span, &result)
        .map_err(|e| query_error(optimization, e))?;
    Ok(result)
}

/// A few of the values behind the scan's unmatched rows, when there is something to show: the
/// variants no arm has, or (for a scan that found no row at all) the optimization ids the source
/// has instead.
fn unmatched_samples(
    backend: &impl Backend,
    plan: &ScanPlan<'_>,
    relation: &str,
    arm_span: i64,
    result: &ScanResult,
) -> Result<UnmatchedSamples, EngineError> {
    let unknown = result.unmatched.contains_key(&Unmatched::UnknownVariant);
    let nothing = result.unmatched.is_empty() && result.newest_exposure.is_none();
    let mut samples = UnmatchedSamples::default();
    if !(unknown || nothing) {
        return Ok(samples);
    }
    let text = sql::unmatched_samples(backend.dialect(), plan.optimization, relation);
    let params = Params::of_scan(plan, arm_span, &Part::WHOLE);
    for (kind, value) in backend.text_pairs(&text, &params)? {
        match kind.as_deref() {
            Some("variant") => samples.variants.push(value),
            Some("optimization_id") => samples.optimization_ids.push(value),
            other => {
                return Err(EngineError::Unexpected(format!(
                    "a sample of kind {other:?}"
                )))
            }
        }
    }
    Ok(samples)
}

/// The parts of a scan: one, unless the engine's [`Split`] asks for more, which are then cut from
/// the exposure rows per batch.
fn scan_parts(
    backend: &impl Backend,
    plan: &ScanPlan<'_>,
    relation: &str,
    arm_span: i64,
) -> Result<Vec<Part>, EngineError> {
    let split = backend.split();
    if !split.counts_rows() {
        return Ok(vec![Part::WHOLE]);
    }
    let params = Params::of_scan(plan, arm_span, &Part::WHOLE);
    let dialect = backend.dialect();
    let counts = backend.integer_pairs(
        &sql::batch_counts(dialect, plan.optimization, relation),
        &params,
    )?;
    // Only levered's own choice of the parts depends on the ids.
    let heap_bytes = match split.parts {
        Some(_) => 0.0,
        None => {
            let text = sql::id_lengths(dialect, plan.optimization, relation);
            match backend.integer_pairs(&text, &params)?.first() {
                Some(&(ids, bytes)) if ids > 0 => bytes as f64 / ids as f64,
                _ => 0.0,
            }
        }
    };
    Ok(split::parts(plan, split, &counts, heap_bytes))
}

/// A failed query of the aggregation, with a hint for the commonest causes.
fn query_error(optimization: &Optimization, error: EngineError) -> WarehouseError {
    metric_error(optimization, &optimization.reward, error)
}

/// A failed query of `metric`'s SQL (the reward's or a guardrail's), with a hint.
fn metric_error(
    optimization: &Optimization,
    metric: &Metric,
    error: EngineError,
) -> WarehouseError {
    let message = error.to_string();
    WarehouseError::Query {
        optimization: optimization.name.clone(),
        metric: metric.name.clone(),
        hint: hint_for(&message),
        message,
    }
}

/// Checks the columns of the exposure source and of the metric SQL against the warehouse contract
/// before anything is aggregated; returns whether the exposures have a holdout column.
fn check_sources(
    backend: &impl Backend,
    plan: &ScanPlan<'_>,
    relation: &str,
) -> Result<bool, WarehouseError> {
    let optimization = plan.optimization;
    let source_error = |metric: &Metric, source: String, error: EngineError| {
        metric_error(
            optimization,
            metric,
            EngineError::Failed(format!("{source}: {error}")),
        )
    };
    let (from, as_of) = (plan.rewards_from(), plan.as_of);
    let exposure_columns = columns(backend, relation, from, as_of)
        .map_err(|e| source_error(&optimization.reward, "the exposure source".into(), e))?;
    let metric_columns = sql::metrics(optimization)
        .map(|metric| {
            columns(backend, &format!("(\n{}\n)", metric.sql), from, as_of)
                .map(|columns| (metric, columns))
                .map_err(|e| {
                    source_error(metric, format!("the SQL of metric `{}`", metric.name), e)
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let holdout_column = exposure_columns
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case(&optimization.exposures.columns.holdout));
    if optimization.model.holdout.is_some() && !holdout_column {
        return Err(WarehouseError::MissingHoldout {
            optimization: optimization.name.clone(),
            column: optimization.exposures.columns.holdout.clone(),
        });
    }
    let exposure_breaches =
        contract::check(&exposure_columns, &contract::exposure_columns(optimization));
    let first_breach = exposure_breaches
        .into_iter()
        .next()
        .map(|b| ("the exposure source", &optimization.reward, b))
        .or_else(|| {
            metric_columns.iter().find_map(|(metric, columns)| {
                let breaches = contract::check(columns, &contract::metric_columns(metric.kind));
                breaches
                    .into_iter()
                    .next()
                    .map(|b| ("the SQL of the metric", *metric, b))
            })
        });
    if let Some((source, metric, breach)) = first_breach {
        return Err(WarehouseError::Query {
            optimization: optimization.name.clone(),
            metric: metric.name.clone(),
            message: format!("{source}: {breach}"),
            hint: breach.hint(),
        });
    }
    Ok(holdout_column)
}

fn plural(count: i64) -> &'static str {
    if count == 1 {
        ""
    } else {
        "s"
    }
}

/// The error for values of a numeric metric that levered refuses to sum.
fn bad_value_error(
    optimization: &Optimization,
    metric: &Metric,
    bad: BadValue,
    count: i64,
) -> WarehouseError {
    let (message, hint) = match bad {
        BadValue::NonFinite => (
            format!("column `value` is NaN or infinite in {count} row{}", plural(count)),
            "levered sums finite values only: filter such rows out in the metric SQL (e.g. WHERE isfinite(value)) or replace them".to_string(),
        ),
        BadValue::OutOfRange => (
            format!("column `value` lies beyond ±{VALUE_BOUND:e} in {count} row{s} or unit{s} (a unit's value is the sum of the values attributed to it)", s = plural(count)),
            format!("levered sums values up to ±{VALUE_BOUND:e} exactly: rescale the metric in its SQL (e.g. value / 1000)"),
        ),
    };
    WarehouseError::Query {
        optimization: optimization.name.clone(),
        metric: metric.name.clone(),
        message,
        hint,
    }
}

/// Folds the aggregation's rows (of one part or several) into aggregates, unmatched counts and the
/// exposure time range. The parts' rows of one (batch, context, arm, holdout) cell are summed as
/// integers, so a split scan gives the aggregates of an unsplit one exactly.
fn scan_result(
    rows: Vec<AggregateRow>,
    batch_length: Span,
    arm_span: i64,
    guardrails: &[&str],
) -> ScanResult {
    let mut result = ScanResult::default();
    let mut cells: BTreeMap<CellKey, CellSums> = BTreeMap::new();
    for row in rows {
        if let Some(reason) = Unmatched::from_code(row.reason) {
            *result.unmatched.entry(reason).or_default() += row.exposures;
            continue;
        }
        let (first, last) = (
            row.first_us.map(Instant::from_micros),
            row.last_us.map(Instant::from_micros),
        );
        result.first_exposure = min_option(result.first_exposure, first);
        result.newest_exposure = result.newest_exposure.max(last);
        if let (true, Some(batch), Some(arm_key)) = (row.counted, row.batch, row.arm_key) {
            let arm_key = arm_key % arm_span;
            let key = (
                Instant::from_micros(batch * batch_length.micros()),
                row.context.map_or_else(ContextKey::pooled, ContextKey::new),
                (arm_key / 2) as u32,
                arm_key % 2 == 1,
            );
            let sums = cells.entry(key).or_default();
            sums.units += row.units;
            sums.conversions += row.conversions;
            sums.value_micros += row.value_micros;
            sums.value_sq_micros += row.value_sq_micros;
            sums.guardrails.resize(
                row.guardrails.len().max(sums.guardrails.len()),
                MetricMicros::default(),
            );
            for (sum, row) in sums.guardrails.iter_mut().zip(&row.guardrails) {
                sum.add(row);
            }
        }
    }
    result.rows = batch_rows(cells, guardrails);
    result
}

/// The text of a whole number of micro-units (a sum column of the aggregation) as an integer.
pub fn micros(text: Option<&str>) -> Result<i128, EngineError> {
    text.map_or(Ok(0), |text| {
        text.trim().parse().map_err(|_| {
            EngineError::Unexpected(format!("the aggregation returned `{text}` for a sum"))
        })
    })
}

fn min_option(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A hint for the commonest engine errors (DuckDB's wording, then Spark's error classes).
pub fn hint_for(message: &str) -> String {
    let has = |needles: &[&str]| needles.iter().any(|n| message.contains(n));
    if message.contains("refused: ") {
        "levered wraps the metric and exposure SQL as a subquery of its own SELECT: write one SELECT, without `;` and without statements that write".into()
    } else if has(&["TABLE_OR_VIEW_NOT_FOUND", "PATH_NOT_FOUND"])
        || (message.contains("does not exist") && message.contains("Table"))
    {
        "check the table name; a Parquet folder exposes each x.parquet or x/ as table x, and warehouse.tables maps names to engine tables".into()
    } else if has(&[
        "not found in FROM clause",
        "Referenced column",
        "UNRESOLVED_COLUMN",
    ]) {
        "the exposures need anonymous_id, timestamp, optimization_id and variant (map other names under exposures.columns); metric SQL returns anonymous_id, timestamp (and value for numeric metrics)".into()
    } else if has(&["Parser Error", "syntax error", "PARSE_SYNTAX_ERROR"]) {
        "the metric or exposure SQL must be one SELECT statement".into()
    } else if has(&[
        "Conversion Error",
        "Could not convert",
        "CAST_INVALID_INPUT",
        "DATATYPE_MISMATCH",
    ]) {
        "timestamp must be a TIMESTAMP and value numeric".into()
    } else {
        "run the metric SQL on its own to check it".into()
    }
}
