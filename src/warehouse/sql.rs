//! The aggregation query levered generates around the user's exposure source and metric SQL
//! (docs/design.md §2.12): the templates of the `sql/` folder, filled with the dialect's names and
//! the optimization's columns and model. Values are bound as named parameters; the only text levered
//! splices in is the user's own SQL (as a subquery), quoted identifiers and the choice between fixed
//! expressions. `sql/aggregation.sql` says how the query is shaped and why.

use crate::config::{ExposureSource, Metric, MetricKind, Optimization, Touch, Unit};

use super::template::render;

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
    /// The same of a guardrail metric (the query's code is 10·i + 5 for guardrail i).
    GuardrailNullValue = 8,
}

impl Unmatched {
    pub fn from_code(code: i32) -> Option<Unmatched> {
        match code {
            1 => Some(Unmatched::NullId),
            2 => Some(Unmatched::NullTimestamp),
            3 => Some(Unmatched::Future),
            4 => Some(Unmatched::UnknownVariant),
            5 => Some(Unmatched::NullValue),
            code if code > 10 && code % 10 == 5 => Some(Unmatched::GuardrailNullValue),
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
            Unmatched::GuardrailNullValue => "guardrail_null_value",
        }
    }

    /// Whether the reason counts rows of the metric rather than exposure rows.
    pub fn is_metric_row(self) -> bool {
        matches!(self, Unmatched::NullValue | Unmatched::GuardrailNullValue)
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
    /// The bad value a result row counts, and the index of its metric (0 the reward, i guardrail
    /// i, whose codes are 10·i + 6 and 7).
    pub fn from_code(code: i32) -> Option<(usize, BadValue)> {
        let metric = usize::try_from(code / 10).ok()?;
        match code % 10 {
            6 => Some((metric, BadValue::NonFinite)),
            7 => Some((metric, BadValue::OutOfRange)),
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

    /// Integer division truncating toward zero.
    fn divide(self) -> &'static str {
        match self {
            Dialect::DuckDb => "//",
            Dialect::Spark => "div",
        }
    }

    /// The dialect's names in the templates: types, operators and functions. `once` marks a CTE
    /// the engine should compute once (a few rows joined to every exposure); `epoch_us` gives the
    /// microseconds since the epoch of a TIMESTAMP, `timestamp_of_us` the TIMESTAMP of microseconds.
    fn names(self) -> [(&'static str, &'static str); 6] {
        let (once, epoch_us, timestamp_of_us) = match self {
            Dialect::DuckDb => (" MATERIALIZED", "epoch_us", "make_timestamp"),
            Dialect::Spark => ("", "unix_micros", "timestamp_micros"),
        };
        [
            ("text", self.text()),
            ("wide", self.wide_integer()),
            ("div", self.divide()),
            ("once", once),
            ("epoch_us", epoch_us),
            ("timestamp_of_us", timestamp_of_us),
        ]
    }

    /// One of the dialect's own fragments (`sql/duckdb/` or `sql/spark/`), filled with its names.
    fn fragment(self, fragment: Fragment) -> String {
        let text = match (self, fragment) {
            (Dialect::DuckDb, Fragment::Arms) => include_str!("../../sql/duckdb/arms.sql"),
            (Dialect::DuckDb, Fragment::VariantKeys) => {
                include_str!("../../sql/duckdb/variant_keys.sql")
            }
            (Dialect::DuckDb, Fragment::ContextKeys) => {
                include_str!("../../sql/duckdb/context_keys.sql")
            }
            (Dialect::Spark, Fragment::Arms) => include_str!("../../sql/spark/arms.sql"),
            (Dialect::Spark, Fragment::VariantKeys) => {
                include_str!("../../sql/spark/variant_keys.sql")
            }
            (Dialect::Spark, Fragment::ContextKeys) => {
                include_str!("../../sql/spark/context_keys.sql")
            }
        };
        render(text, &self.names())
    }

    /// Whether the visitor `id` (a text expression) is in part `$part` of `$parts`: its hash modulo
    /// `$parts`, a NULL hash counting as 0, so that every row (a NULL id too) is in exactly one part.
    fn in_part(self, id: &str) -> String {
        let hash = match self {
            Dialect::DuckDb => format!("hash({id}) % CAST($parts AS UBIGINT)"),
            Dialect::Spark => format!("pmod(xxhash64({id}), CAST($parts AS BIGINT))"),
        };
        let part = match self {
            Dialect::DuckDb => "CAST($part AS UBIGINT)",
            Dialect::Spark => "CAST($part AS BIGINT)",
        };
        format!("\n      AND coalesce({hash}, 0) = {part}")
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
}

/// The SQL each dialect writes its own way: `$arms` as rows, the variant keys, the context keys.
#[derive(Debug, Clone, Copy)]
enum Fragment {
    Arms,
    VariantKeys,
    ContextKeys,
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
        Shape::whole(holdout_column),
    )
}

/// What the text of one aggregation query depends on besides the optimization: whether the
/// exposures have a holdout column, and which part of a split scan it reads (docs/design.md
/// §2.14).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    pub holdout_column: bool,
    /// A part of a hash split: the visitors of part `$part` of `$parts`.
    pub hash_part: bool,
    /// A time part after the first: rows without a timestamp belong to the first, and under
    /// `first_touch` the units of the batches before `$owned_from` only compete for rewards.
    pub later: bool,
    /// A time part before the last: the rows from `$late_from_us` to `$rivals_until_us` only
    /// compete for rewards; they are counted by the parts they belong to.
    pub earlier: bool,
}

impl Shape {
    /// The query of a whole scan.
    pub fn whole(holdout_column: bool) -> Shape {
        Shape {
            holdout_column,
            hash_part: false,
            later: false,
            earlier: false,
        }
    }
}

/// The exposure rows a scan deduplicates into units, per batch (`sql/batch_counts.sql`; parameters
/// `$optimization`, `$exposures_from_us`, `$late_from_us` and `$batch_us` as in
/// [`aggregation_in`]). Rows: `batch, exposures`.
pub fn batch_counts(
    dialect: Dialect,
    optimization: &Optimization,
    exposure_relation: &str,
) -> String {
    let template = include_str!("../../sql/batch_counts.sql");
    side_query(template, dialect, optimization, exposure_relation, &[])
}

/// The visitor ids of a sample of the rows a scan deduplicates (`sql/id_lengths.sql`; parameters as
/// [`batch_counts`]). One row: `ids, heap_bytes`.
pub fn id_lengths(
    dialect: Dialect,
    optimization: &Optimization,
    exposure_relation: &str,
) -> String {
    let template = include_str!("../../sql/id_lengths.sql");
    side_query(template, dialect, optimization, exposure_relation, &[])
}

/// A few of the values behind unmatched exposure rows (`sql/unmatched_samples.sql`; parameters
/// `$optimization`, `$arms`, `$exposures_from_us` and `$as_of_us` as in [`aggregation_in`]).
/// Rows: `kind, value`.
pub fn unmatched_samples(
    dialect: Dialect,
    optimization: &Optimization,
    exposure_relation: &str,
) -> String {
    let arms = dialect.fragment(Fragment::Arms);
    let variant_keys = dialect.fragment(Fragment::VariantKeys);
    let template = include_str!("../../sql/unmatched_samples.sql");
    let extra = [("arms", arms.as_str()), ("variant_keys", &variant_keys)];
    side_query(template, dialect, optimization, exposure_relation, &extra)
}

/// A query beside the aggregation, over the exposure relation: `template` with the dialect's
/// names, the exposure columns quoted and `extra`.
fn side_query(
    template: &str,
    dialect: Dialect,
    optimization: &Optimization,
    exposure_relation: &str,
    extra: &[(&str, &str)],
) -> String {
    let c = &optimization.exposures.columns;
    let columns = [
        ("anonymous_id", &c.anonymous_id),
        ("optimization_id", &c.optimization_id),
        ("timestamp", &c.timestamp),
        ("variant", &c.variant),
    ]
    .map(|(name, column)| (name, dialect.quote_identifier(column)));
    let mut values = dialect.names().to_vec();
    values.push(("exposure_relation", exposure_relation));
    values.extend(
        columns
            .iter()
            .map(|(name, quoted)| (*name, quoted.as_str())),
    );
    values.extend_from_slice(extra);
    render(template, &values) + "\n"
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
/// `$owned_from`/`$owned_until` (TIMESTAMP) bound the rows whose problems the query counts (the
/// unmatched rows before `$owned_from` under `first_touch`, and the bad values of a numeric
/// metric), so that a time part counts only its own. A part of a split scan ([`Shape`]) also binds
/// `$part`/`$parts` (a hash part) or `$rivals_until_us` (a time part before the last); the parts'
/// aggregates sum to the unsplit ones.
///
/// Rows: `reason, counted, batch, arm_key, exposures, units, conversions, value_sum, value_sq_sum,
/// first_us, last_us, context`: the sums as the text of whole micro-units (and their squares), the
/// context key of counted rows (`*` without context factors).
/// `reason = 0` rows with `counted` are the aggregates; `reason = 0` rows without it are units that
/// are immature or lie before `$from_batch_us`, and the late rows (only their time range is used);
/// other reasons count unmatched exposure rows.
pub fn aggregation_in(
    dialect: Dialect,
    optimization: &Optimization,
    exposure_relation: &str,
    shape: Shape,
) -> String {
    let c = &optimization.exposures.columns;
    let quote = |name: &str| dialect.quote_identifier(name);
    let holdout = if shape.holdout_column {
        format!("coalesce(CAST(e.{} AS BOOLEAN), false)", quote(&c.holdout))
    } else {
        "false".to_string()
    };
    let columns = [
        quote(&c.anonymous_id),
        quote(&c.timestamp),
        quote(&c.optimization_id),
        quote(&c.variant),
    ];
    let in_part = |id: &str| {
        if shape.hash_part {
            dialect.in_part(&format!("CAST({id} AS {})", dialect.text()))
        } else {
            String::new()
        }
    };
    let exposure_part = in_part(&format!("e.{}", columns[0]));
    let metric_part = in_part("m.anonymous_id");
    let time_parts = time_part_texts(dialect, optimization, shape);
    let context = contextual_parts(dialect, optimization);
    // The value bound in whole micro-units, as the sums count them.
    let bound_micro = format!("{}", VALUE_BOUND * 1e6);
    let metrics = metric_parts(dialect, optimization, &bound_micro, &metric_part);
    let guardrails = guardrail_parts(dialect, optimization);
    let arms = dialect.fragment(Fragment::Arms);
    let variant_keys = dialect.fragment(Fragment::VariantKeys);
    let mut values = dialect.names().to_vec();
    values.extend([
        ("anonymous_id", columns[0].as_str()),
        ("timestamp", &columns[1]),
        ("optimization_id", &columns[2]),
        ("variant", &columns[3]),
        ("exposure_relation", exposure_relation),
        ("holdout", &holdout),
        (
            "unit_partition",
            match optimization.attribution.unit {
                Unit::VisitorBatch => "anonymous_id, batch",
                Unit::Visitor => "anonymous_id",
            },
        ),
        (
            "touch",
            match optimization.attribution.touch {
                Touch::LastTouch => "max",
                Touch::FirstTouch => "min",
            },
        ),
        ("bound_micro", &bound_micro),
        ("arms", &arms),
        ("variant_keys", &variant_keys),
        ("rewards", &metrics.rewards),
        ("all_rewards", &metrics.guardrail_rewards),
        ("value_checks", &metrics.value_checks),
        ("value_check_rows", &metrics.value_check_rows),
        ("exposure_part", &exposure_part),
    ]);
    values.extend(
        guardrails
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    values.extend(
        time_parts
            .iter()
            .map(|(name, value)| (*name, value.as_str())),
    );
    values.extend(context.iter().map(|(name, value)| (*name, value.as_str())));
    render(include_str!("../../sql/aggregation.sql"), &values) + "\n"
}

/// The parts of the aggregation that differ between the time parts of a split scan ([`Shape`]).
fn time_part_texts(
    dialect: Dialect,
    optimization: &Optimization,
    shape: Shape,
) -> [(&'static str, String); 4] {
    let timestamp = dialect.quote_identifier(&optimization.exposures.columns.timestamp);
    let zero_sums = guardrail_zero_sums(optimization);
    let mut names = dialect.names().to_vec();
    names.push(("timestamp", &timestamp));
    names.push(("guardrail_zero_sums", &zero_sums));
    let first_touch = optimization.attribution.touch == Touch::FirstTouch;
    let text = |on: bool, text: &str| {
        if on {
            render(text, &names)
        } else {
            String::new()
        }
    };
    [
        (
            "null_timestamps",
            text(!shape.later, " OR e.{{timestamp}} IS NULL"),
        ),
        (
            "rivals_until",
            text(
                shape.earlier,
                "\n      AND e.{{timestamp}} < {{timestamp_of_us}}(CAST($rivals_until_us AS BIGINT))",
            ),
        ),
        (
            "lookback_unmatched",
            text(
                shape.later && first_touch,
                "\n    WHERE reason = 0 OR ts >= {{epoch_us}}(CAST($owned_from AS TIMESTAMP))",
            ),
        ),
        (
            "late_rows",
            if shape.earlier {
                String::new()
            } else {
                format!("\n{}", render(include_str!("../../sql/late_rows.sql"), &names))
            },
        ),
    ]
}

/// The parts of the aggregation that contextual models add (`sql/contexts.sql`, the context column,
/// its join and its term in the arm key, `arm_key = 2·arm_id + holdout + $arm_span · context_id`),
/// and the context key of an aggregate row (`*` without context factors).
fn contextual_parts(dialect: Dialect, optimization: &Optimization) -> [(&'static str, String); 5] {
    if optimization.context_factors.is_empty() {
        return [
            ("context_column", String::new()),
            ("contexts", String::new()),
            ("context_join", String::new()),
            ("context_term", String::new()),
            ("context_out", "'*'".to_string()),
        ];
    }
    let text = dialect.text();
    let div = dialect.divide();
    let context_keys = dialect.fragment(Fragment::ContextKeys);
    let mut values = dialect.names().to_vec();
    values.push(("context_keys", &context_keys));
    let context = dialect.quote_identifier(&optimization.exposures.columns.context);
    [
        (
            "context_column",
            format!(",\n        coalesce(CAST(e.{context} AS {text}), '') AS context"),
        ),
        (
            "contexts",
            format!("\n{}", render(include_str!("../../sql/contexts.sql"), &values)),
        ),
        (
            "context_join",
            "\n    LEFT JOIN contexts AS x ON s.context = x.context".to_string(),
        ),
        (
            "context_term",
            " + CAST($arm_span AS BIGINT) * x.context_id".to_string(),
        ),
        (
            "context_out",
            format!(
                "(SELECT any_value(key) FROM contexts WHERE context_id = arm_key {div} CAST($arm_span AS BIGINT))"
            ),
        ),
    ]
}

/// The metric parts of the aggregation: the reward's rewards CTEs, every guardrail's and the
/// relation of all of them (`all_rewards`), and the value checks of the numeric ones.
struct MetricParts {
    rewards: String,
    guardrail_rewards: String,
    value_checks: String,
    value_check_rows: String,
}

/// The metrics of an optimization in the order the query numbers them: 0 the reward, then its
/// guardrails from 1.
pub fn metrics(optimization: &Optimization) -> impl Iterator<Item = &Metric> {
    std::iter::once(&optimization.reward).chain(optimization.guardrails.iter().map(|g| &g.metric))
}

/// The rewards CTEs of every metric (`sql/rewards_bool.sql` or `sql/rewards_numeric.sql`), and
/// for a numeric metric its value checks (`sql/value_checks.sql`) and the result rows that report
/// them (`sql/value_check_rows.sql`, reasons 5, 6, 7 plus 10 per guardrail index).
fn metric_parts(
    dialect: Dialect,
    optimization: &Optimization,
    bound_micro: &str,
    metric_part: &str,
) -> MetricParts {
    let is_finite = dialect.is_finite("CAST(m.value AS DOUBLE)");
    let value_bound = format!("{VALUE_BOUND:e}");
    let zero_sums = guardrail_zero_sums(optimization);
    let guarded = !optimization.guardrails.is_empty();
    let mut parts = MetricParts {
        rewards: String::new(),
        guardrail_rewards: String::new(),
        value_checks: String::new(),
        value_check_rows: String::new(),
    };
    for (index, metric) in metrics(optimization).enumerate() {
        let names = MetricNames::of(index);
        let credited_metric = if guarded {
            format!(" AND metric = {index}")
        } else {
            String::new()
        };
        let codes = [5, 6, 7].map(|code| (code + 10 * index).to_string());
        let mut values = dialect.names().to_vec();
        values.extend([
            ("metric_sql", metric.sql.as_str()),
            ("is_finite", &is_finite),
            ("value_bound", &value_bound),
            ("bound_micro", bound_micro),
            ("metric_part", metric_part),
            ("rows_cte", &names.rows),
            ("rewards_cte", &names.rewards),
            ("checks_cte", &names.checks),
            ("credited_metric", &credited_metric),
            ("null_code", &codes[0]),
            ("non_finite_code", &codes[1]),
            ("range_code", &codes[2]),
            ("guardrail_zero_sums", &zero_sums),
        ]);
        let rewards = match metric.kind {
            MetricKind::Bool => render(include_str!("../../sql/rewards_bool.sql"), &values),
            MetricKind::Numeric => {
                let checks = render(include_str!("../../sql/value_checks.sql"), &values);
                let rows = render(include_str!("../../sql/value_check_rows.sql"), &values);
                parts.value_checks.push_str(&format!("\n{checks}"));
                parts.value_check_rows.push_str(&format!("\n{rows}"));
                render(include_str!("../../sql/rewards_numeric.sql"), &values)
            }
        };
        if index == 0 {
            parts.rewards = rewards;
        } else {
            parts.guardrail_rewards.push_str(&format!("\n{rewards}"));
        }
    }
    if guarded {
        let relations: Vec<String> = (0..=optimization.guardrails.len())
            .map(|i| {
                let metric = if i == 0 { " AS metric" } else { "" };
                format!(
                    "    SELECT {i}{metric}, anonymous_id, ts, value FROM {}",
                    MetricNames::of(i).rewards
                )
            })
            .collect();
        parts.guardrail_rewards.push_str(&format!(
            "\nall_rewards AS (\n{}\n),",
            relations.join("\n    UNION ALL\n")
        ));
    }
    parts
}

/// The CTE names of metric `index`: the reward's (0) or guardrail `index`'s.
struct MetricNames {
    rows: String,
    rewards: String,
    checks: String,
}

impl MetricNames {
    fn of(index: usize) -> MetricNames {
        if index == 0 {
            return MetricNames {
                rows: "reward_rows".into(),
                rewards: "rewards".into(),
                checks: "value_checks".into(),
            };
        }
        MetricNames {
            rows: format!("guardrail_{index}_rows"),
            rewards: format!("guardrail_{index}"),
            checks: format!("guardrail_{index}_checks"),
        }
    }
}

/// Three zero sums per guardrail (conversions, value_sum, value_sq_sum), for result rows that
/// carry none.
fn guardrail_zero_sums(optimization: &Optimization) -> String {
    ", CAST(0 AS BIGINT), '0', '0'".repeat(optimization.guardrails.len())
}

/// The parts of the aggregation that attribute every metric in one pass when there are guardrails
/// (see `sql/aggregation.sql`), and a credited unit's value: a credited unit has at least one
/// reward, so it is a conversion, and under a bool metric it is worth 1 (in micro-units).
fn guardrail_parts(dialect: Dialect, optimization: &Optimization) -> [(&'static str, String); 9] {
    let wide = dialect.wide_integer();
    let text = dialect.text();
    let value_of = |metric: &Metric| match metric.kind {
        MetricKind::Numeric => format!("coalesce(sum(value), CAST(0 AS {wide}))"),
        MetricKind::Bool => format!("CAST(1000000 AS {wide})"),
    };
    let count = optimization.guardrails.len();
    if count == 0 {
        return [
            ("metric_of_r", String::new()),
            ("reward_relation", "rewards".into()),
            ("metric", String::new()),
            ("unit_value", value_of(&optimization.reward)),
            ("reward_conversion", "1".into()),
            ("reward_value", "unit_value".into()),
            ("guardrail_values", String::new()),
            ("guardrail_zeros", String::new()),
            ("guardrail_sums", String::new()),
        ];
    }
    let cases: String = metrics(optimization)
        .enumerate()
        .map(|(i, m)| format!(" WHEN {i} THEN {}", value_of(m)))
        .collect();
    let of_metric = |i: usize| {
        format!(
            "CASE WHEN metric = {i} THEN 1 ELSE 0 END AS g{i}_conversion, CASE WHEN metric = {i} THEN unit_value ELSE CAST(0 AS {wide}) END AS g{i}_value"
        )
    };
    let bound = format!("CAST({} AS {wide})", VALUE_BOUND * 1e6);
    let sums = |i: usize| {
        format!(
            ",\n           CAST(sum(g{i}_conversion) AS BIGINT) AS g{i}_conversions, CAST(sum(g{i}_value) AS {text}) AS g{i}_value_sum,\n           CAST(coalesce(sum(CASE WHEN abs(g{i}_value) <= {bound} THEN g{i}_value * g{i}_value END), 0) AS {text}) AS g{i}_value_sq_sum"
        )
    };
    [
        ("metric_of_r", ", r.metric".into()),
        ("reward_relation", "all_rewards".into()),
        ("metric", ", metric".into()),
        ("unit_value", format!("CASE metric{cases} END")),
        (
            "reward_conversion",
            "CASE WHEN metric = 0 THEN 1 ELSE 0 END".into(),
        ),
        (
            "reward_value",
            format!("CASE WHEN metric = 0 THEN unit_value ELSE CAST(0 AS {wide}) END"),
        ),
        (
            "guardrail_values",
            (1..=count).map(|i| format!(", {}", of_metric(i))).collect(),
        ),
        (
            "guardrail_zeros",
            format!(", 0, CAST(0 AS {wide})").repeat(count),
        ),
        ("guardrail_sums", (1..=count).map(sums).collect()),
    ]
}

#[cfg(test)]
mod tests {
    use super::{
        aggregation_in, batch_counts, canonical_variant, exposure_relation, id_lengths,
        spark_parameters, Dialect, Shape,
    };

    fn optimization(kind: &str, model: &str) -> crate::config::Optimization {
        let value = if kind == "numeric" { ", value" } else { "" };
        let yaml = format!(
            "warehouse: {{path: warehouse}}
metrics:
  m: {{type: {kind}, sql: 'SELECT anonymous_id, at AS timestamp{value} FROM orders'}}
optimizations:
  hero:
    status: live
    design_factors: {{color: [red, blue]}}
    reward: m
    exposures: {{sql: 'SELECT * FROM ex -- {{{{arms}}}}'}}
    attribution: {{conversion_window: 2h, unit: visitor_batch}}
    model: {model}
"
        );
        let path = std::path::Path::new("levered.yaml");
        let mut config = crate::config::parse(path, &yaml).unwrap();
        config.optimizations.remove("hero").unwrap()
    }

    #[test]
    fn every_template_is_filled_and_user_sql_is_not_read_for_placeholders() {
        let models = [
            "{kind: mab}",
            "{kind: cmab}\n    context_factors: [country]",
        ];
        for dialect in [Dialect::DuckDb, Dialect::Spark] {
            for kind in ["bool", "numeric"] {
                for model in models {
                    let o = optimization(kind, model);
                    let relation = exposure_relation(&o, |t| dialect.relation(t));
                    for (hash_part, later, earlier) in [
                        (false, false, false),
                        (true, false, false),
                        (false, true, true),
                    ] {
                        let shape = Shape {
                            holdout_column: true,
                            hash_part,
                            later,
                            earlier,
                        };
                        let sql = aggregation_in(dialect, &o, &relation, shape);
                        let left = sql.replace("-- {{arms}}", "");
                        assert!(!left.contains("{{"), "{dialect:?} {kind} {model}: {sql}");
                        assert_eq!(sql.contains("$part"), hash_part);
                        assert_eq!(sql.contains("$rivals_until_us"), earlier);
                    }
                    for text in [
                        batch_counts(dialect, &o, &relation),
                        id_lengths(dialect, &o, &relation),
                    ] {
                        assert!(!text.replace("-- {{arms}}", "").contains("{{"), "{text}");
                    }
                    let sql = aggregation_in(dialect, &o, &relation, Shape::whole(true));
                    assert!(
                        sql.contains("-- {{arms}}"),
                        "the user's SQL is kept as written"
                    );
                    assert!(
                        !sql.contains("\n--"),
                        "no template header reaches the query"
                    );
                }
            }
        }
    }

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
