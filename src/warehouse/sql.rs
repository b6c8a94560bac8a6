//! The aggregation query levered generates around the user's exposure source and metric SQL
//! (README, "What `train` does"). Values are bound as named parameters; the only text levered splices in is the user's
//! own SQL (as a subquery), quoted identifiers and the choice between fixed expressions.
//!
//! Shape: exposures are tagged with a small integer arm key (the variant JSON is matched once per
//! distinct string) and deduplicated to units with `QUALIFY row_number() = 1`, except the late
//! rows, whose units cannot be mature yet: they only rival for rewards, as plain rows. Rewards,
//! pre-aggregated per (visitor, time), are joined to the units (and late rows) of their visitor
//! inside the window, and each reward keeps the latest (or earliest) one with its arm key. The
//! credited units then join the units in one grouping (a union, not a join back to all units), which
//! yields the aggregates, the unmatched counts and the exposure time range; a small one gives the
//! late rows' counts. So each exposure row is read once by the heavy steps, and the units are joined
//! to nothing but the rewards. On an hourly run the late rows are nearly all the rows scanned (the
//! newest day, against the two or three hours whose units are maturing), which halves the query's
//! cost.

use crate::config::{ExposureSource, MetricKind, Optimization, Touch, Unit};

/// Why an exposure row did not become a unit. The code is what the query returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmatched {
    NullId = 1,
    NullTimestamp = 2,
    Future = 3,
    UnknownVariant = 4,
    /// A row of a numeric metric whose value is NULL: not a reward (never a silent 0).
    NullValue = 5,
}

impl Unmatched {
    pub fn from_code(code: i32) -> Option<Unmatched> {
        match code {
            1 => Some(Unmatched::NullId),
            2 => Some(Unmatched::NullTimestamp),
            3 => Some(Unmatched::Future),
            4 => Some(Unmatched::UnknownVariant),
            5 => Some(Unmatched::NullValue),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Unmatched::NullId => "null_id",
            Unmatched::NullTimestamp => "null_timestamp",
            Unmatched::Future => "future",
            Unmatched::UnknownVariant => "unknown_variant",
            Unmatched::NullValue => "null_value",
        }
    }

    /// Whether the reason counts rows of the metric rather than exposure rows.
    pub fn is_metric_row(self) -> bool {
        self == Unmatched::NullValue
    }
}

/// A metric value levered refuses to sum: the run fails with an error naming the metric and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadValue {
    /// NaN or ±infinity.
    NonFinite = 6,
    /// A row's value, or a unit's (the sum of its attributed values), beyond ±[`VALUE_BOUND`].
    OutOfRange = 7,
}

/// The largest magnitude of a value that levered sums exactly. Sums are whole micro-units in a
/// 128-bit integer (38 digits); a unit's squared value is then at most 1e30, so that a batch's sum
/// of squares holds at least 1e8 units at the bound.
pub const VALUE_BOUND: f64 = 1e9;

impl BadValue {
    pub fn from_code(code: i32) -> Option<BadValue> {
        match code {
            6 => Some(BadValue::NonFinite),
            7 => Some(BadValue::OutOfRange),
            _ => None,
        }
    }
}

/// The SQL dialect of an engine. Everything that differs between engines in the generated SQL is
/// decided here: quoting, types, time arithmetic, JSON access and parameter markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    Spark,
}

impl Dialect {
    pub fn quote_identifier(self, name: &str) -> String {
        match self {
            Dialect::DuckDb => format!("\"{}\"", name.replace('"', "\"\"")),
            Dialect::Spark => format!("`{}`", name.replace('`', "``")),
        }
    }

    /// The relation a `warehouse.tables` target names: a dotted table path (`lake.web.exposures`), or
    /// on Spark a path the cluster reads as Parquet (any target with a `/`).
    pub fn relation(self, target: &str) -> String {
        if self == Dialect::Spark && target.contains('/') {
            return format!("parquet.{}", self.quote_identifier(target));
        }
        target
            .split('.')
            .map(|part| self.quote_identifier(part))
            .collect::<Vec<_>>()
            .join(".")
    }

    fn text(self) -> &'static str {
        match self {
            Dialect::DuckDb => "VARCHAR",
            Dialect::Spark => "STRING",
        }
    }

    /// Exact integers wide enough for sums of squared micro-units.
    fn wide_integer(self) -> &'static str {
        match self {
            Dialect::DuckDb => "HUGEINT",
            Dialect::Spark => "DECIMAL(38,0)",
        }
    }

    /// Microseconds since the epoch of a timestamp expression.
    fn epoch_us(self, timestamp: &str) -> String {
        match self {
            Dialect::DuckDb => format!("epoch_us(CAST({timestamp} AS TIMESTAMP))"),
            Dialect::Spark => format!("unix_micros(CAST({timestamp} AS TIMESTAMP))"),
        }
    }

    /// Whether a DOUBLE expression is finite (not NaN, not infinite).
    fn is_finite(self, value: &str) -> String {
        match self {
            Dialect::DuckDb => format!("isfinite({value})"),
            Dialect::Spark => {
                format!("(NOT isnan({value}) AND abs({value}) < double('Infinity'))")
            }
        }
    }

    /// The timestamp of a number of microseconds since the epoch.
    fn timestamp_of_us(self, micros: &str) -> String {
        match self {
            Dialect::DuckDb => format!("make_timestamp({micros})"),
            Dialect::Spark => format!("timestamp_micros({micros})"),
        }
    }

    /// Integer division truncating toward zero.
    fn divide(self) -> &'static str {
        match self {
            Dialect::DuckDb => "//",
            Dialect::Spark => "div",
        }
    }

    /// A CTE that the engine should compute once (a few rows joined to every exposure).
    fn once(self) -> &'static str {
        match self {
            Dialect::DuckDb => " MATERIALIZED",
            Dialect::Spark => "",
        }
    }

    /// `$arms` (a JSON list of `{arm_id, canonical}`) as rows.
    fn arms(self) -> &'static str {
        match self {
            Dialect::DuckDb => {
                r#"SELECT a.arm_id, a.canonical
    FROM (SELECT unnest(from_json(CAST($arms AS VARCHAR), '[{"arm_id":"INTEGER","canonical":"VARCHAR"}]')) AS a)"#
            }
            Dialect::Spark => {
                r#"SELECT arm_id, canonical
    FROM (SELECT inline(from_json(CAST($arms AS STRING), 'array<struct<arm_id:int,canonical:string>>')))"#
            }
        }
    }

    /// Each distinct variant string that is a JSON object, with its canonical key (see
    /// [`canonical_variant`]): pairs sorted by key, each written as its lengths and texts; a value is
    /// its JSON text (strings unquoted), a JSON null is `~` (no level is null). An object with a
    /// repeated key matches no arm.
    fn variant_keys(self) -> &'static str {
        match self {
            Dialect::DuckDb => {
                r#"SELECT d.variant,
           string_agg(CAST(length(j.key) AS VARCHAR) || ':' || j.key
                      || coalesce(CAST(length(json_extract_string(j.value, '$')) AS VARCHAR) || ':' || json_extract_string(j.value, '$'), '~'),
                      '' ORDER BY j.key) AS canonical
    FROM (
        SELECT DISTINCT variant FROM shown
        WHERE CASE WHEN json_valid(variant) THEN json_type(CAST(variant AS JSON)) = 'OBJECT' ELSE false END
    ) AS d, json_each(CAST(d.variant AS JSON)) AS j
    GROUP BY d.variant"#
            }
            Dialect::Spark => {
                r#"SELECT variant,
           array_join(transform(array_sort(map_entries(pairs)), p -> concat(length(p.key), ':', p.key, coalesce(concat(length(p.value), ':', p.value), '~'))), '') AS canonical
    FROM (
        SELECT variant, json_object_keys(variant) AS keys, from_json(variant, 'map<string,string>') AS pairs
        FROM (SELECT DISTINCT variant FROM shown)
    )
    WHERE keys IS NOT NULL AND size(keys) = size(pairs)"#
            }
        }
    }

    /// Each distinct context string with its key: `factor=value` pairs in `$context_factors` order,
    /// joined by `|`; a missing value (or a context that is not a JSON object) is empty.
    fn context_keys(self) -> &'static str {
        match self {
            Dialect::DuckDb => {
                r#"context_factors AS (
    SELECT unnest(f) AS name, generate_subscripts(f, 1) AS position
    FROM (SELECT from_json(CAST($context_factors AS VARCHAR), '["VARCHAR"]') AS f)
),
context_keys AS (
    SELECT d.context,
           string_agg(f.name || '=' || coalesce(
               CASE WHEN CASE WHEN json_valid(d.context) THEN json_type(CAST(d.context AS JSON)) = 'OBJECT' ELSE false END
                    THEN CAST(d.context AS JSON) ->> f.name END, ''), '|' ORDER BY f.position) AS key
    FROM (SELECT DISTINCT context FROM shown) AS d, context_factors AS f
    GROUP BY d.context
),"#
            }
            Dialect::Spark => {
                r#"context_keys AS (
    SELECT context,
           array_join(transform(from_json(CAST($context_factors AS STRING), 'array<string>'),
               f -> concat(f, '=', coalesce(CASE WHEN json_object_keys(context) IS NOT NULL
                   THEN try_element_at(from_json(context, 'map<string,string>'), f) END, ''))), '|') AS key
    FROM (SELECT DISTINCT context FROM shown)
),"#
            }
        }
    }
}

/// Spark's spelling of levered's `$name` parameter markers (`:name`; DuckDB binds `$name` as it
/// is), rewritten outside string literals (with Spark's backslash escapes), quoted identifiers and
/// comments; also the names, in order of appearance.
#[cfg(any(feature = "spark", test))]
pub fn spark_parameters(text: &str) -> (String, Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let rest = &chars[i..];
        let skip_to = |end: &dyn Fn(usize) -> bool, from: usize| {
            let mut j = from;
            while j < chars.len() && !end(j) {
                j += 1;
            }
            j
        };
        let end = match c {
            '\'' | '"' | '`' => {
                // Quoted: up to the closing quote; a doubled quote (or, on Spark, a backslash
                // escape) stays inside.
                let mut j = i + 1;
                while j < chars.len() {
                    let escaped = chars[j] == '\\' && c != '`';
                    if escaped || (chars[j] == c && chars.get(j + 1) == Some(&c)) {
                        j += 2;
                    } else if chars[j] == c {
                        j += 1;
                        break;
                    } else {
                        j += 1;
                    }
                }
                j.min(chars.len())
            }
            '-' if rest.get(1) == Some(&'-') => skip_to(&|j| chars[j] == '\n', i),
            '/' if rest.get(1) == Some(&'*') => (skip_to(
                &|j| j >= i + 2 && chars[j - 1] == '*' && chars[j] == '/',
                i + 2,
            ) + 1)
                .min(chars.len()),
            '$' if rest
                .get(1)
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_') =>
            {
                let end = skip_to(
                    &|j| !(chars[j].is_ascii_alphanumeric() || chars[j] == '_'),
                    i + 1,
                );
                names.push(chars[i + 1..end].iter().collect());
                out.push(':');
                out.extend(&chars[i + 1..end]);
                i = end;
                continue;
            }
            _ => i + 1,
        };
        out.extend(&chars[i..end]);
        i = end;
    }
    (out, names)
}

/// The key a variant is matched by: its `factor, level` pairs sorted by factor, each written as
/// `<characters of factor>:<factor><characters of level>:<level>`. The lengths make the key
/// collision-free for any text (no separator a level could contain). The query computes the same key
/// from each distinct variant JSON, so key order and whitespace in the warehouse do not matter.
pub fn canonical_variant(factors: &[String], levels: &[String]) -> String {
    let mut pairs: Vec<(&String, &String)> = factors.iter().zip(levels).collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(f, l)| format!("{}:{f}{}:{l}", f.chars().count(), l.chars().count()))
        .collect()
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

/// The aggregation query in DuckDB's dialect: what the embedded engine runs, and the text that
/// identifies an optimization's aggregates in the state store (whichever engine computes them).
pub fn aggregation(
    optimization: &Optimization,
    exposure_relation: &str,
    holdout_column: bool,
) -> String {
    aggregation_in(
        Dialect::DuckDb,
        optimization,
        exposure_relation,
        holdout_column,
    )
}

/// The aggregation query. Parameters: `$optimization` (text), `$arms` (JSON list of
/// `{arm_id, canonical}`), `$as_of_us`, `$exposures_from_us`, `$late_from_us`, `$from_batch_us`,
/// `$window_us`, `$batch_us` (BIGINT microseconds since the epoch, or lengths), and `$start`/`$end`
/// (TIMESTAMP, the reward range, which the user's metric SQL may use too); contextual models also
/// `$context_factors` (JSON list of names) and `$arm_span` (a multiple of 2 above every arm key). The
/// markers are levered's `$name`; [`spark_parameters`] spells them for Spark.
///
/// The heavy steps carry one small integer per exposure, `arm_key = 2 · arm_id + holdout`, where
/// `holdout` is the exposure's holdout flag (false when the source has no holdout column).
///
/// Numeric values are counted at a resolution of 1e-6 (summed exactly as integers of micro-units).
///
/// Rows: `reason, counted, batch, arm_key, exposures, units, conversions, value_sum, value_sq_sum,
/// first_us, last_us, context` (the context key of counted rows; `*` without context factors).
/// `reason = 0` rows with `counted` are the aggregates; `reason = 0` rows without it are units that
/// are immature or lie before `$from_batch_us`, and the late rows (only their time range is used);
/// other reasons count unmatched exposure rows.
pub fn aggregation_in(
    dialect: Dialect,
    optimization: &Optimization,
    exposure_relation: &str,
    holdout_column: bool,
) -> String {
    let c = &optimization.exposures.columns;
    let quote = |name: &str| dialect.quote_identifier(name);
    let id = quote(&c.anonymous_id);
    let ts = quote(&c.timestamp);
    let opt = quote(&c.optimization_id);
    let variant = quote(&c.variant);
    let text = dialect.text();
    let wide = dialect.wide_integer();
    let div = dialect.divide();
    let once = dialect.once();
    let holdout = if holdout_column {
        format!("coalesce(CAST(e.{} AS BOOLEAN), false)", quote(&c.holdout))
    } else {
        "false".to_string()
    };
    let unit_partition = match optimization.attribution.unit {
        Unit::VisitorBatch => "anonymous_id, batch",
        Unit::Visitor => "anonymous_id",
    };
    // The unit a reward goes to: the latest (last touch) or earliest (first touch) unit of the same
    // visitor with `t <= reward <= t + window`, with its arm key (`max_by`/`min_by`; a visitor's
    // units have distinct times). A late row that wins carries the arm key -1 and credits no unit.
    let touch_pick = match optimization.attribution.touch {
        Touch::LastTouch => "max",
        Touch::FirstTouch => "min",
    };
    // Values are summed exactly, as whole micro-units in a wide integer, so that the sums do not
    // depend on the order the engine adds them in (a double sum does, in its last bits). A credited
    // unit has at least one reward, so it is a conversion, and under a bool metric it is worth 1.
    let numeric = optimization.reward.kind == MetricKind::Numeric;
    let unit_value = if numeric {
        format!("coalesce(sum(value), CAST(0 AS {wide}))")
    } else {
        format!("CAST(1000000 AS {wide})")
    };
    let bound_micro = format!("CAST({} AS {wide})", VALUE_BOUND * 1e6);
    let source_ts = dialect.epoch_us(&format!("e.{ts}"));
    let exposures_from = dialect.timestamp_of_us("CAST($exposures_from_us AS BIGINT)");
    // The exposure rows a run reads. The distinct variant (and context) strings come from a pass of
    // their own over these rows, so that the early rows stream through the heavy steps once instead
    // of being held in memory for two readers (at 10M exposures: 21% less peak memory, 10% less time).
    let scanned = format!(
        "CAST(e.{opt} AS {text}) = CAST($optimization AS {text})
      AND (e.{ts} >= {exposures_from} OR e.{ts} IS NULL)"
    );
    let arms = dialect.arms();
    let variant_keys = dialect.variant_keys();
    // Contextual models: each distinct context JSON string gets its key (`factor=value` pairs in
    // `context_factors` order, joined by `|`; a missing value is empty) and a small integer id once,
    // and the id rides inside the arm key: `arm_key = 2·arm_id + holdout + $arm_span · context_id`.
    let contextual = !optimization.context_factors.is_empty();
    let (context_column, context_ctes, context_join, context_term, context_out) = if contextual {
        (
            format!(
                ",\n        coalesce(CAST(e.{} AS {text}), '') AS context",
                quote(&c.context)
            ),
            format!(
                "
{}
contexts AS{once} (
    SELECT context, key, CAST(dense_rank() OVER (ORDER BY key) AS INTEGER) AS context_id FROM context_keys
),",
                dialect.context_keys()
            ),
            "
    LEFT JOIN contexts AS x ON s.context = x.context"
                .to_string(),
            " + CAST($arm_span AS BIGINT) * x.context_id".to_string(),
            format!(
                "(SELECT any_value(key) FROM contexts WHERE context_id = arm_key {div} CAST($arm_span AS BIGINT))"
            ),
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
    let rewards = rewards(dialect, optimization);
    let (value_checks, value_check_rows) = if numeric {
        value_checks(dialect)
    } else {
        (String::new(), String::new())
    };
    let late_from = dialect.timestamp_of_us("CAST($late_from_us AS BIGINT)");
    // The exposure rows are read in two disjoint parts: the early rows, which become units, and the
    // late rows (see `ScanPlan::late_from_us`), which never count. A late row only competes for
    // rewards: it takes a reward from an earlier unit exactly when the unit of its batch would
    // (that unit starts no later than the row and after every earlier unit), so late rows skip
    // deduplication. On an hourly run nearly all rows are late.
    let source = |name: &str, part: &str| {
        format!(
            r#"{name} AS (
    SELECT
        CAST(e.{id} AS {text}) AS anonymous_id,
        {source_ts} AS ts,
        CAST(e.{variant} AS {text}) AS variant,
        {holdout} AS holdout{context_column}
    FROM {exposure_relation} AS e
    WHERE {scanned}
      AND {part}
),"#
        )
    };
    let tagged = |name: &str, source: &str| {
        format!(
            r#"{name} AS (
    SELECT s.anonymous_id, s.ts, s.ts {div} CAST($batch_us AS BIGINT) AS batch,
           2 * v.arm_id + CAST(s.holdout AS INTEGER){context_term} AS arm_key,
           CASE WHEN s.anonymous_id IS NULL THEN 1
                WHEN s.ts IS NULL THEN 2
                WHEN s.ts >= CAST($as_of_us AS BIGINT) THEN 3
                WHEN v.arm_id IS NULL THEN 4
                ELSE 0 END AS reason
    FROM {source} AS s LEFT JOIN variants AS v ON s.variant = v.variant{context_join}
),"#
        )
    };
    let early_source = source(
        "source",
        &format!("(e.{ts} < {late_from} OR e.{ts} IS NULL)"),
    );
    let late_source = source("late_source", &format!("e.{ts} >= {late_from}"));
    let early_tagged = tagged("tagged", "source");
    let late_tagged = tagged("late_tagged", "late_source");
    // `valued` lists the credited units before the units: DuckDB keeps a copy of the units for the
    // attribution, and in the other order it held a second one in 3 of 12 full runs (at 10M
    // exposures a peak of ~1.05 GiB instead of ~0.76 GiB); in this order about one run in eight.
    format!(
        r#"WITH
arms AS (
    {arms}
),
{early_source}
{late_source}
shown AS (
    SELECT DISTINCT CAST(e.{variant} AS {text}) AS variant{context_column}
    FROM {exposure_relation} AS e
    WHERE {scanned}
),
variant_keys AS (
    {variant_keys}
),
variants AS{once} (
    SELECT k.variant, a.arm_id FROM variant_keys AS k JOIN arms AS a ON a.canonical = k.canonical
),{context_ctes}
{early_tagged}
{late_tagged}
exposed AS (
    SELECT anonymous_id, ts, batch, arm_key, reason FROM tagged
    QUALIFY reason <> 0 OR row_number() OVER (PARTITION BY reason, {unit_partition} ORDER BY ts, arm_key) = 1
),
{rewards}
attributed AS (
    SELECT r.anonymous_id, {touch_pick}(u.ts) AS unit_ts, {touch_pick}_by(u.arm_key, u.ts) AS arm_key,
           any_value(r.value) AS value
    FROM rewards AS r JOIN (
        SELECT anonymous_id, ts, arm_key FROM exposed WHERE reason = 0
        UNION ALL
        SELECT anonymous_id, ts, -1 FROM late_tagged WHERE reason = 0
    ) AS u
      ON u.anonymous_id = r.anonymous_id
     AND u.ts <= r.ts AND r.ts <= u.ts + CAST($window_us AS BIGINT)
    GROUP BY r.anonymous_id, r.ts
),
credited AS (
    SELECT unit_ts, arm_key, {unit_value} AS unit_value
    FROM attributed
    WHERE arm_key >= 0
    GROUP BY anonymous_id, unit_ts, arm_key
),{value_checks}
valued AS (
    SELECT 0 AS reason, unit_ts {div} CAST($batch_us AS BIGINT) AS batch, arm_key, unit_ts, 0 AS units, 1 AS conversions, unit_value
    FROM credited
    UNION ALL
    SELECT reason, batch, arm_key, ts, 1, 0, CAST(0 AS {wide})
    FROM exposed
),
aggregated AS (
    SELECT reason,
           reason = 0
               AND unit_ts + CAST($window_us AS BIGINT) <= CAST($as_of_us AS BIGINT)
               AND batch * CAST($batch_us AS BIGINT) >= CAST($from_batch_us AS BIGINT) AS counted,
           CASE WHEN reason = 0 THEN batch END AS batch,
           CASE WHEN reason = 0 THEN arm_key END AS arm_key,
           CAST(sum(units) AS BIGINT) AS exposures,
           CAST(sum(units) AS BIGINT) AS units,
           CAST(sum(conversions) AS BIGINT) AS conversions,
           CAST(sum(unit_value) AS DOUBLE) / 1e6 AS value_sum,
           CAST(coalesce(sum(CASE WHEN abs(unit_value) <= {bound_micro} THEN unit_value * unit_value END), 0) AS DOUBLE) / 1e12 AS value_sq_sum,
           min(unit_ts) AS first_us,
           max(unit_ts) AS last_us
    FROM valued
    GROUP BY ALL
    UNION ALL
    SELECT reason, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT),
           CAST(count(*) AS BIGINT), CAST(count(*) AS BIGINT), CAST(0 AS BIGINT),
           CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), min(ts), max(ts)
    FROM late_tagged
    GROUP BY reason{value_check_rows}
)
SELECT *, CASE WHEN reason = 0 AND counted THEN {context_out} END AS context
FROM aggregated
ORDER BY reason, counted, batch, arm_key
"#
    )
}

/// The rewards per (visitor, time): for a bool metric, any row; for a numeric metric, the rows with a
/// finite value within ±[`VALUE_BOUND`], summed as micro-units, and per (visitor, time) the counts of
/// rows with a NULL (5, [`Unmatched::NullValue`]), a non-finite (6) or a too large value (7), which
/// are no rewards.
fn rewards(dialect: Dialect, optimization: &Optimization) -> String {
    let text = dialect.text();
    let wide = dialect.wide_integer();
    let metric_sql = &optimization.reward.sql;
    let reward_ts = dialect.epoch_us("m.timestamp");
    let rows = |columns: &str| {
        format!(
            r#"SELECT CAST(m.anonymous_id AS {text}) AS anonymous_id,
           {reward_ts} AS ts{columns}
    FROM (
{metric_sql}
    ) AS m
    WHERE m.anonymous_id IS NOT NULL
      AND m.timestamp >= CAST($start AS TIMESTAMP) AND m.timestamp < CAST($end AS TIMESTAMP)"#
        )
    };
    if optimization.reward.kind == MetricKind::Bool {
        let rows = rows(&format!(",\n           CAST(NULL AS {wide}) AS value"));
        return format!("rewards AS (\n    {rows}\n    GROUP BY 1, 2\n),");
    }
    let finite = dialect.is_finite("CAST(m.value AS DOUBLE)");
    let rows = rows(&format!(
        ",
           CAST(m.value AS DOUBLE) AS v,
           CASE WHEN m.value IS NULL THEN 5
                WHEN NOT {finite} THEN 6
                WHEN abs(CAST(m.value AS DOUBLE)) > {VALUE_BOUND:e} THEN 7
                ELSE 0 END AS problem"
    ));
    format!(
        r#"reward_rows AS (
    SELECT anonymous_id, ts,
           sum(CASE WHEN problem = 0 THEN CAST(round(v * 1000000) AS {wide}) END) AS value,
           sum(CASE WHEN problem = 0 THEN 1 ELSE 0 END) AS valid_rows,
           sum(CASE WHEN problem = 5 THEN 1 ELSE 0 END) AS null_values,
           sum(CASE WHEN problem = 6 THEN 1 ELSE 0 END) AS non_finite,
           sum(CASE WHEN problem = 7 THEN 1 ELSE 0 END) AS out_of_range
    FROM (
    {rows}
    ) AS m
    GROUP BY 1, 2
),
rewards AS (
    SELECT anonymous_id, ts, value FROM reward_rows WHERE valid_rows > 0
),"#
    )
}

/// A numeric metric's value checks: the CTE that counts its NULL, non-finite and too large values
/// (rows, and credited units whose summed value lies beyond the bound), and the rows of the result
/// that report them (reasons 5, 6 and 7).
fn value_checks(dialect: Dialect) -> (String, String) {
    let wide = dialect.wide_integer();
    let bound_micro = format!("CAST({} AS {wide})", VALUE_BOUND * 1e6);
    let cte = format!(
        r#"
value_checks AS (
    SELECT CAST(coalesce(sum(null_values), 0) AS BIGINT) AS null_values,
           CAST(coalesce(sum(non_finite), 0) AS BIGINT) AS non_finite,
           CAST(coalesce(sum(out_of_range), 0)
                + (SELECT count(*) FROM credited WHERE abs(unit_value) > {bound_micro}) AS BIGINT) AS out_of_range
    FROM reward_rows
),"#
    );
    let row = |reason: u8, column: &str| {
        format!(
            "
    UNION ALL
    SELECT {reason}, false, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), {column}, {column}, CAST(0 AS BIGINT),
           CAST(0 AS DOUBLE), CAST(0 AS DOUBLE), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
    FROM value_checks WHERE {column} > 0"
        )
    };
    let rows = [
        row(5, "null_values"),
        row(6, "non_finite"),
        row(7, "out_of_range"),
    ]
    .concat();
    (cte, rows)
}

#[cfg(test)]
mod tests {
    use super::{canonical_variant, spark_parameters, Dialect};

    #[test]
    fn canonical_keys_do_not_collide_for_any_text() {
        let key = |f: &[&str], l: &[&str]| {
            let f: Vec<String> = f.iter().map(|s| s.to_string()).collect();
            let l: Vec<String> = l.iter().map(|s| s.to_string()).collect();
            canonical_variant(&f, &l)
        };
        // Two factors whose levels hold the old separators, against one factor that spells them.
        let two = key(&["a", "b"], &["x\u{1e}b\u{1f}y", "z"]);
        let one = key(&["a"], &["x\u{1e}b\u{1f}y\u{1e}b\u{1f}z"]);
        assert_ne!(two, one);
        assert_ne!(key(&["a"], &["1:b"]), key(&["a", "b"], &["", ""]));
        assert_eq!(key(&["b", "a"], &["é", "x"]), "1:a1:x1:b1:é");
    }

    #[test]
    fn parameter_markers_skip_literals_identifiers_and_comments() {
        let text = "SELECT $start, '$end', \"$x\", `$y` -- $z\n, /* $w */ $end_2, 'it''s $no' FROM t WHERE a = $a1";
        let (spark, names) = spark_parameters(text);
        assert_eq!(
            spark,
            "SELECT :start, '$end', \"$x\", `$y` -- $z\n, /* $w */ :end_2, 'it''s $no' FROM t WHERE a = :a1"
        );
        assert_eq!(names, ["start", "end_2", "a1"]);
        let (_, names) = spark_parameters(r"SELECT 'a\'$b' , $c");
        assert_eq!(names, ["c"]);
    }

    #[test]
    fn spark_reads_paths_as_parquet_and_quotes_with_backticks() {
        assert_eq!(
            Dialect::Spark.relation("lake.web.exp`x"),
            "`lake`.`web`.`exp``x`"
        );
        assert_eq!(
            Dialect::Spark.relation("/data/exposures"),
            "parquet.`/data/exposures`"
        );
        assert_eq!(Dialect::DuckDb.relation("a.b"), "\"a\".\"b\"");
    }
}
