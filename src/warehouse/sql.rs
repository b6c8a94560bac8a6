//! The aggregation query levered generates around the user's exposure source and metric SQL
//! (DESIGN §4.2). Values are bound as named parameters; the only text levered splices in is the user's
//! own SQL (as a subquery), quoted identifiers and the choice between fixed expressions.
//!
//! Shape: exposures are tagged with a small integer arm key (the variant JSON is matched once per
//! distinct string) and deduplicated to units with `QUALIFY row_number() = 1`. Rewards, pre-aggregated
//! per (visitor, time), are joined to the units of their visitor inside the window, and each reward
//! keeps the latest (or earliest) unit; the few credited units are joined back to all units. One
//! grouping then yields the aggregates, the unmatched counts and the exposure time range, so the
//! exposure source is read once.

use crate::config::{ExposureSource, MetricKind, Optimization, Touch, Unit};

/// Why an exposure row did not become a unit. The code is what the query returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    NullId = 1,
    NullTimestamp = 2,
    Future = 3,
    UnknownVariant = 4,
}

impl Unmatched {
    pub fn from_code(code: i32) -> Option<Unmatched> {
        match code {
            1 => Some(Unmatched::NullId),
            2 => Some(Unmatched::NullTimestamp),
            3 => Some(Unmatched::Future),
            4 => Some(Unmatched::UnknownVariant),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Unmatched::NullId => "null_id",
            Unmatched::NullTimestamp => "null_timestamp",
            Unmatched::Future => "future",
            Unmatched::UnknownVariant => "unknown_variant",
        }
    }
}

/// Quotes an identifier, or a dotted path of identifiers (`lake.web.exposures`).
pub fn quote_path(path: &str) -> String {
    path.split('.')
        .map(quote_identifier)
        .collect::<Vec<_>>()
        .join(".")
}

pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The key a variant is matched by: `factor<US>level` pairs sorted by factor, joined by `<RS>`.
/// The query computes the same key from each distinct variant JSON, so key order and whitespace in
/// the warehouse do not matter.
pub fn canonical_variant(factors: &[String], levels: &[String]) -> String {
    let mut pairs: Vec<(&String, &String)> = factors.iter().zip(levels).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(f, l)| format!("{f}\u{1f}{l}"))
        .collect::<Vec<_>>()
        .join("\u{1e}")
}

/// The exposure source as a relation: a (mapped) table, or the user's SQL as a subquery.
pub fn exposure_relation(
    optimization: &Optimization,
    table_for: impl Fn(&str) -> String,
) -> String {
    match &optimization.exposures.source {
        ExposureSource::Table(table) => table_for(table),
        ExposureSource::Sql(sql) => format!("(\n{sql}\n)"),
    }
}

/// The aggregation query. Parameters: `$optimization` (text), `$arms` (JSON list of
/// `{arm_id, canonical}`), `$as_of_us`, `$exposures_from_us`, `$from_batch_us`, `$window_us`,
/// `$batch_us` (BIGINT microseconds since the epoch, or lengths), and `$start`/`$end` (TIMESTAMP, the
/// reward range, which the user's metric SQL may use too); contextual models also `$context_factors`
/// (JSON list of names) and `$arm_span` (a multiple of 2 above every arm key).
///
/// The heavy steps carry one small integer per exposure, `arm_key = 2 · arm_id + holdout`, where
/// `holdout` is the exposure's holdout flag (false when the source has no holdout column).
///
/// Numeric values are counted at a resolution of 1e-6 (summed exactly as integers of micro-units).
///
/// Rows: `reason, counted, batch, arm_key, exposures, units, conversions, value_sum, value_sq_sum,
/// first_us, last_us, context` (the context key of counted rows; `*` without context factors). `reason = 0` rows with `counted` are the aggregates; `reason = 0` rows without
/// it are units that are immature or lie before `$from_batch_us` (only their time range is used);
/// other reasons count unmatched exposure rows.
pub fn aggregation(
    optimization: &Optimization,
    exposure_relation: &str,
    holdout_column: bool,
) -> String {
    let c = &optimization.exposures.columns;
    let id = quote_identifier(&c.anonymous_id);
    let ts = quote_identifier(&c.timestamp);
    let opt = quote_identifier(&c.optimization_id);
    let variant = quote_identifier(&c.variant);
    let holdout = if holdout_column {
        format!(
            "coalesce(CAST(e.{} AS BOOLEAN), false)",
            quote_identifier(&c.holdout)
        )
    } else {
        "false".to_string()
    };
    let unit_partition = match optimization.attribution.unit {
        Unit::VisitorBatch => "anonymous_id, batch",
        Unit::Visitor => "anonymous_id",
    };
    // The unit a reward goes to: the latest (last touch) or earliest (first touch) unit of the same
    // visitor with `t <= reward <= t + window`.
    let touch_pick = match optimization.attribution.touch {
        Touch::LastTouch => "max",
        Touch::FirstTouch => "min",
    };
    // Values are summed exactly, as whole micro-units in HUGEINT, so that the sums do not depend on
    // the order the engine adds them in (a double sum does, in its last bits); a bool unit is worth 1.
    let (reward_value, unit_value) = match optimization.reward.kind {
        MetricKind::Bool => (
            "CAST(NULL AS HUGEINT)",
            "CASE WHEN c.rewards > 0 THEN CAST(1000000 AS HUGEINT) ELSE CAST(0 AS HUGEINT) END",
        ),
        MetricKind::Numeric => (
            "sum(CAST(round(CAST(m.value AS DOUBLE) * 1000000) AS HUGEINT))",
            "coalesce(c.value, CAST(0 AS HUGEINT))",
        ),
    };
    let metric_sql = &optimization.reward.sql;
    // Contextual models: each distinct context JSON string gets its key (`factor=value` pairs in
    // `context_factors` order, joined by `|`; a missing value is empty) and a small integer id once,
    // and the id rides inside the arm key: `arm_key = 2·arm_id + holdout + $arm_span · context_id`.
    let contextual = !optimization.context_factors.is_empty();
    let (context_column, context_ctes, context_join, context_term, context_out) = if contextual {
        (
            format!(
                ",\n        coalesce(CAST(e.{} AS VARCHAR), '') AS context",
                quote_identifier(&c.context)
            ),
            r#"
context_factors AS (
    SELECT unnest(f) AS name, generate_subscripts(f, 1) AS position
    FROM (SELECT from_json(CAST($context_factors AS VARCHAR), '["VARCHAR"]') AS f)
),
context_keys AS (
    SELECT d.context,
           string_agg(f.name || '=' || coalesce(
               CASE WHEN CASE WHEN json_valid(d.context) THEN json_type(CAST(d.context AS JSON)) = 'OBJECT' ELSE false END
                    THEN CAST(d.context AS JSON) ->> f.name END, ''), '|' ORDER BY f.position) AS key
    FROM (SELECT DISTINCT context FROM source) AS d, context_factors AS f
    GROUP BY d.context
),
contexts AS MATERIALIZED (
    SELECT context, key, CAST(dense_rank() OVER (ORDER BY key) AS INTEGER) AS context_id FROM context_keys
),"#
            .to_string(),
            "
    LEFT JOIN contexts AS x ON s.context = x.context".to_string(),
            " + CAST($arm_span AS BIGINT) * x.context_id".to_string(),
            "(SELECT any_value(key) FROM contexts WHERE context_id = arm_key // CAST($arm_span AS BIGINT))"
                .to_string(),
        )
    } else {
        (
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            "'*'".to_string(),
        )
    };
    format!(
        r#"WITH
arms AS (
    SELECT a.arm_id, a.canonical
    FROM (SELECT unnest(from_json(CAST($arms AS VARCHAR), '[{{"arm_id":"INTEGER","canonical":"VARCHAR"}}]')) AS a)
),
source AS (
    SELECT
        CAST(e.{id} AS VARCHAR) AS anonymous_id,
        epoch_us(CAST(e.{ts} AS TIMESTAMP)) AS ts,
        CAST(e.{variant} AS VARCHAR) AS variant,
        {holdout} AS holdout{context_column}
    FROM {exposure_relation} AS e
    WHERE CAST(e.{opt} AS VARCHAR) = CAST($optimization AS VARCHAR)
      AND (e.{ts} >= make_timestamp(CAST($exposures_from_us AS BIGINT)) OR e.{ts} IS NULL)
),
variant_keys AS (
    SELECT d.variant,
           string_agg(j.key || chr(31) || coalesce(json_extract_string(j.value, '$'), ''), chr(30) ORDER BY j.key) AS canonical
    FROM (
        SELECT DISTINCT variant FROM source
        WHERE CASE WHEN json_valid(variant) THEN json_type(CAST(variant AS JSON)) = 'OBJECT' ELSE false END
    ) AS d, json_each(CAST(d.variant AS JSON)) AS j
    GROUP BY d.variant
),
variants AS MATERIALIZED (
    SELECT k.variant, a.arm_id FROM variant_keys AS k JOIN arms AS a ON a.canonical = k.canonical
),{context_ctes}
tagged AS (
    SELECT s.anonymous_id, s.ts, s.ts // CAST($batch_us AS BIGINT) AS batch,
           2 * v.arm_id + CAST(s.holdout AS INTEGER){context_term} AS arm_key,
           CASE WHEN s.anonymous_id IS NULL THEN 1
                WHEN s.ts IS NULL THEN 2
                WHEN s.ts >= CAST($as_of_us AS BIGINT) THEN 3
                WHEN v.arm_id IS NULL THEN 4
                ELSE 0 END AS reason
    FROM source AS s LEFT JOIN variants AS v ON s.variant = v.variant{context_join}
),
exposed AS (
    SELECT anonymous_id, ts, batch, arm_key, reason FROM tagged
    QUALIFY reason <> 0 OR row_number() OVER (PARTITION BY reason, {unit_partition} ORDER BY ts, arm_key) = 1
),
rewards AS (
    SELECT CAST(m.anonymous_id AS VARCHAR) AS anonymous_id,
           epoch_us(CAST(m.timestamp AS TIMESTAMP)) AS ts,
           count(*) AS rewards,
           {reward_value} AS value
    FROM (
{metric_sql}
    ) AS m
    WHERE m.anonymous_id IS NOT NULL
      AND m.timestamp >= CAST($start AS TIMESTAMP) AND m.timestamp < CAST($end AS TIMESTAMP)
    GROUP BY 1, 2
),
attributed AS (
    SELECT r.anonymous_id, {touch_pick}(u.ts) AS unit_ts, any_value(r.rewards) AS rewards, any_value(r.value) AS value
    FROM rewards AS r JOIN exposed AS u
      ON u.anonymous_id = r.anonymous_id AND u.reason = 0
     AND u.ts <= r.ts AND r.ts <= u.ts + CAST($window_us AS BIGINT)
    GROUP BY r.anonymous_id, r.ts
),
credited AS (
    SELECT anonymous_id, unit_ts, sum(rewards) AS rewards, sum(value) AS value
    FROM attributed
    GROUP BY anonymous_id, unit_ts
),
valued AS (
    SELECT e.reason, e.batch, e.arm_key, e.ts AS unit_ts, coalesce(c.rewards, 0) AS rewards,
           {unit_value} AS unit_value,
           e.reason = 0
               AND e.ts + CAST($window_us AS BIGINT) <= CAST($as_of_us AS BIGINT)
               AND e.batch * CAST($batch_us AS BIGINT) >= CAST($from_batch_us AS BIGINT) AS counted
    FROM exposed AS e
    LEFT JOIN credited AS c ON e.reason = 0 AND c.anonymous_id = e.anonymous_id AND c.unit_ts = e.ts
),
aggregated AS (
    SELECT reason,
           counted,
           CASE WHEN reason = 0 THEN batch END AS batch,
           CASE WHEN reason = 0 THEN arm_key END AS arm_key,
           count(*)::BIGINT AS exposures,
           count(*)::BIGINT AS units,
           (count(*) FILTER (WHERE rewards > 0))::BIGINT AS conversions,
           CAST(sum(unit_value) AS DOUBLE) / 1e6 AS value_sum,
           CAST(sum(unit_value * unit_value) AS DOUBLE) / 1e12 AS value_sq_sum,
           min(unit_ts) AS first_us,
           max(unit_ts) AS last_us
    FROM valued
    GROUP BY ALL
)
SELECT *, CASE WHEN reason = 0 AND counted THEN {context_out} END AS context
FROM aggregated
ORDER BY reason, counted, batch, arm_key
"#
    )
}
