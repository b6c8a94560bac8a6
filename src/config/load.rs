//! YAML text → checked definitions, in one place. Every problem names the file, the key path,
//! the line and column where known, and a hint.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_saphyr::{Location, Spanned};

use super::definition::*;
use super::raw::*;
use crate::time::Span;

mod guardrail;

/// One thing wrong with a definitions file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub path: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
    pub hint: Option<String>,
}

/// Everything wrong with a definitions file (all problems at once, not the first only).
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "invalid definitions in {} ({count} problem{})",
            self.file.display(),
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {}", problem.render(&self.file))?;
        }
        Ok(())
    }
}

impl Problem {
    /// `file:line:column: key.path: message (hint: ...)`
    pub fn render(&self, file: &Path) -> String {
        let mut out = file.display().to_string();
        if let Some(line) = self.line {
            out.push_str(&format!(":{line}"));
            if let Some(column) = self.column {
                out.push_str(&format!(":{column}"));
            }
        }
        if !self.path.is_empty() {
            out.push_str(&format!(": {}", self.path));
        }
        out.push_str(&format!(": {}", self.message));
        if let Some(hint) = &self.hint {
            out.push_str(&format!("\n    hint: {hint}"));
        }
        out
    }
}

/// Reads and checks a definitions file.
pub fn load(file: &Path) -> Result<Config, ConfigError> {
    let fail = |problem: Problem| ConfigError {
        file: file.to_path_buf(),
        problems: vec![problem],
    };
    let bytes = std::fs::read(file).map_err(|e| {
        fail(Problem {
            path: String::new(),
            line: None,
            column: None,
            message: format!("cannot read the file: {e}"),
            hint: Some("pass the definitions file with --config".into()),
        })
    })?;
    let text =
        String::from_utf8(bytes).map_err(|e| fail(not_utf8(e.as_bytes(), e.utf8_error())))?;
    parse(file, &text)
}

/// Where a definitions file stops being UTF-8: the line and column (in characters) of the first
/// byte that is not.
fn not_utf8(bytes: &[u8], error: std::str::Utf8Error) -> Problem {
    let good = &bytes[..error.valid_up_to()];
    let valid = String::from_utf8_lossy(good);
    let line = valid.matches('\n').count() + 1;
    let column = valid
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    let text = std::str::from_utf8(good).unwrap_or_default();
    Problem {
        path: key_path_at(text, line),
        line: Some(line as u64),
        column: Some(column as u64),
        message: format!(
            "is not UTF-8 text (byte 0x{:02x})",
            bytes[error.valid_up_to()]
        ),
        hint: Some("save the file as UTF-8".into()),
    }
}

/// Why `name` cannot name an optimization or a metric, if it cannot. Names become folder names
/// (README, "Security and operations"): letters, digits, `_` and `-`, not starting with `-`, at most 100 characters.
pub fn name_problem(name: &str) -> Option<String> {
    let shown = name.escape_debug();
    if name.is_empty() {
        Some("the name is empty".into())
    } else if name.chars().count() > MAX_NAME {
        Some(format!(
            "the name has {} characters, more than {MAX_NAME}",
            name.chars().count()
        ))
    } else if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        Some(format!(
            "`{shown}` is not a name: only letters, digits, `_` and `-`"
        ))
    } else if name.starts_with('-') {
        Some(format!("`{shown}` is not a name: it starts with `-`"))
    } else {
        None
    }
}

const MAX_NAME: usize = 100;
/// The largest metric `sql_file` levered reads.
const MAX_SQL_FILE: u64 = 1 << 20;
/// The most parts `warehouse.scan_parts` may split a scan into (each part reads the exposures once).
pub const MAX_SCAN_PARTS: u32 = 1024;
const NAME_HINT: &str =
    "use letters, digits, `_` and `-` (at most 100 characters, not starting with `-`): the name becomes a folder name";

/// Checks definitions given as text; `file` names them in messages and anchors relative paths.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    let raw: RawFile = serde_saphyr::from_str(text).map_err(|e| ConfigError {
        file: file.to_path_buf(),
        problems: vec![syntax_problem(&e, text)],
    })?;
    let mut checker = Checker {
        base: file.parent().map(Path::to_path_buf).unwrap_or_default(),
        problems: Vec::new(),
        locations: BTreeMap::new(),
    };
    let config = checker.file(file, raw);
    match config {
        Some(config) if checker.problems.is_empty() => Ok(config),
        _ => Err(ConfigError {
            file: file.to_path_buf(),
            problems: checker.problems,
        }),
    }
}

fn syntax_problem(error: &serde_saphyr::Error, text: &str) -> Problem {
    let location = error.location();
    let mut message = first_line(&error.without_snippet().to_string());
    if let Some(l) = location {
        let suffix = format!(" at line {}, column {}", l.line(), l.column());
        if let Some(stripped) = message.strip_suffix(&suffix) {
            message = stripped.to_string();
        }
    }
    let path = location.map_or_else(String::new, |l| key_path_at(text, l.line() as usize));
    let (parent, key) = path.rsplit_once('.').unwrap_or(("", &path));
    let key = key.split_once('[').map_or(key, |(list, _)| list);
    // The unknown key as the message names it (a flow mapping's line has no key of its own).
    let key = message
        .split_once("unknown field `")
        .and_then(|(_, rest)| rest.split_once('`'))
        .map_or(key, |(field, _)| field);
    let sections = sections_with(key);
    let hint = if message.contains("unknown field") && !sections.is_empty() {
        format!("`{key}` is a key of {sections}: check its indentation")
    } else if message.contains("unknown field") {
        "check the spelling; docs/design.md §1.2–§1.5 lists every key".into()
    } else if let Some(member) = member_of(parent).filter(|m| sections.contains(m)) {
        message = format!("`{key}` is written where the name of {member} belongs");
        format!("indent it under the name of {member}, beside its other keys")
    } else if message.contains("expected sequence start") {
        format!("`{key}` takes a list: `[a, b]`, or one `- entry` line per entry")
    } else if message.contains("expected mapping start") {
        format!("`{key}` takes a mapping: `{{key: value}}`, or indented `key: value` lines")
    } else {
        "fix the YAML at this position".into()
    };
    Problem {
        path,
        line: location.map(|l| l.line()),
        column: location.map(|l| l.column()),
        message,
        hint: Some(hint),
    }
}

/// The sections of a definitions file and their keys, to tell a mis-indented key from a misspelt
/// one (docs/design.md §1.2–§1.5).
const SECTIONS: &[(&str, &[&str])] = &[
    (
        "the file's top level",
        &[
            "warehouse",
            "state",
            "output_dir",
            "keep_runs",
            "metrics",
            "optimizations",
        ],
    ),
    (
        "warehouse",
        &[
            "path",
            "engine",
            "remote",
            "tables",
            "memory_limit",
            "threads",
            "scan_parts",
            "stale_after",
            "on_stale",
        ],
    ),
    ("a metric", &["type", "sql", "sql_file"]),
    (
        "an optimization",
        &[
            "status",
            "design_factors",
            "excluded_combinations",
            "context_factors",
            "reward",
            "exposures",
            "attribution",
            "model",
            "generation",
            "guardrails",
        ],
    ),
    (
        "a guardrail",
        &["metric", "better", "tolerance", "confidence"],
    ),
    ("tolerance", &["relative", "absolute"]),
    ("exposures", &["table", "sql", "columns"]),
    (
        "exposures.columns",
        &[
            "anonymous_id",
            "timestamp",
            "optimization_id",
            "variant",
            "context",
            "holdout",
        ],
    ),
    (
        "attribution",
        &["type", "conversion_window", "unit", "late_grace"],
    ),
    (
        "model",
        &[
            "kind",
            "batch",
            "prior",
            "burn_in",
            "min_units_per_arm",
            "floor",
            "max_contexts",
            "holdout",
            "drop",
            "decay_half_life",
            "seed",
        ],
    ),
    (
        "generation",
        &["strategy", "max_active_arms", "command", "timeout"],
    ),
];

/// The sections that have a key `key`, e.g. "an optimization" or "a metric or attribution".
fn sections_with(key: &str) -> String {
    let names: Vec<&str> = SECTIONS
        .iter()
        .filter(|(_, keys)| keys.contains(&key))
        .map(|(name, _)| *name)
        .collect();
    names.join(" or ")
}

/// The section each entry of the map at `path` is: the names under `metrics` and `optimizations`.
fn member_of(path: &str) -> Option<&'static str> {
    match path {
        "metrics" => Some("a metric"),
        "optimizations" => Some("an optimization"),
        _ => None,
    }
}

/// The dotted path of block-style keys that encloses line `line` (1-based): the key on that line,
/// then each key above it with a smaller indentation. A list item (`- key: value`) encloses the
/// lines indented under it; its own key is a sibling of theirs, not a parent, and the list's key
/// takes the item's index (`guardrails[1].metric`).
fn key_path_at(text: &str, line: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut keys = Vec::new();
    let mut indent = usize::MAX;
    // The list item passed last: its indentation and how many items come before it.
    let mut item: Option<(usize, usize)> = None;
    let key_of = |body: &str| -> Option<String> {
        let (key, _) = body.split_once(':')?;
        (!key.is_empty() && !key.contains([' ', '{', '[', '"', '\''])).then(|| key.to_string())
    };
    for (i, raw) in lines.iter().take(line).enumerate().rev() {
        let body = raw.trim_start();
        let here = raw.len() - body.len();
        if body.is_empty() || body.starts_with('#') {
            continue;
        }
        match &mut item {
            // Above an item: its earlier siblings, then the list's key, at or left of it.
            Some((at, before)) if here >= *at => {
                if here == *at && body.starts_with("- ") {
                    *before += 1;
                }
                if here > *at || body.starts_with("- ") {
                    continue;
                }
            }
            None if here >= indent => continue,
            _ => {}
        }
        let target = i + 1 == line;
        match body.strip_prefix("- ") {
            // The item's key sits two columns in: a parent only of the item's own line.
            Some(rest) => {
                if target {
                    keys.extend(key_of(rest));
                }
                item = Some((here, 0));
                indent = here;
            }
            None => {
                if let Some(key) = key_of(body) {
                    keys.push(match item.take() {
                        Some((_, before)) => format!("{key}[{before}]"),
                        None => key,
                    });
                    indent = here;
                } else if target {
                    indent = here;
                }
            }
        }
        if here == 0 && item.is_none() {
            break;
        }
    }
    keys.reverse();
    keys.join(".")
}

fn first_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().trim().to_string()
}

/// What a required key holds and an example of it: the message and the hint when it is missing.
fn required_key(key: &str) -> (&'static str, &'static str) {
    match key {
        "warehouse" => ("where the data is", "e.g. warehouse: {path: warehouse.duckdb} (a DuckDB file or a folder of Parquet files)"),
        "optimizations" => ("the optimizations to train", "add `optimizations:` with one optimization per name; optimizations.example.yaml shows two"),
        "type" => ("the kind of metric", "type: bool (any row is a conversion) or type: numeric (the sum of `value`)"),
        "status" => ("whether the optimization is trained", "status: live (or completed, archived)"),
        "design_factors" => ("the factors and their levels", "e.g. design_factors: {color: [red, blue]}"),
        "reward" => ("the metric the optimization maximizes", "reward: the name of a metric under `metrics:`"),
        "exposures" => ("where the exposures are", "e.g. exposures: {table: exposures}"),
        "attribution" => ("how rewards are attributed to exposures", "e.g. attribution: {type: last_touch, conversion_window: 24h}"),
        "model" => ("the model that allocates the traffic", "e.g. model: {kind: mab}"),
        "kind" => ("the kind of model", "kind: mab, or kind: cmab with context_factors"),
        "metric" => ("the metric the guardrail watches", "metric: the name of a metric under `metrics:`"),
        "better" => ("which way the guardrail metric is better", "better: higher or better: lower"),
        _ => ("a required key", "docs/design.md §1.2–§1.5 lists every key"),
    }
}

/// A `Spanned` value's text.
fn text(value: &Option<Spanned<String>>) -> Option<&str> {
    value.as_ref().map(|v| v.value.as_str())
}

/// Where a value is written, or else its section `parent`.
fn place<'a, T>(value: &'a Option<Spanned<T>>, parent: &'a Location) -> &'a Location {
    value.as_ref().map_or(parent, |v| &v.referenced)
}

struct Checker {
    base: PathBuf,
    problems: Vec<Problem>,
    locations: BTreeMap<String, (u64, u64)>,
}

impl Checker {
    fn report(&mut self, path: &str, at: Option<&Location>, message: String, hint: Option<&str>) {
        self.problems.push(Problem {
            path: path.to_string(),
            line: at.map(|l| l.line()),
            column: at.map(|l| l.column()),
            message,
            hint: hint.map(str::to_string),
        });
    }

    /// `value`, or a report that the required `key` of the section at `path` (written at `at`) is
    /// missing.
    fn required<'a, T>(
        &mut self,
        path: &str,
        at: Option<&Location>,
        key: &str,
        value: &'a Option<T>,
    ) -> Option<&'a T> {
        if value.is_none() {
            let (what, hint) = required_key(key);
            let path = if path.is_empty() {
                key.to_string()
            } else {
                format!("{path}.{key}")
            };
            self.report(&path, at, format!("missing: {what}"), Some(hint));
        }
        value.as_ref()
    }

    /// `span` of an optional `Spanned` duration, reported at its own key.
    fn duration(
        &mut self,
        path: &str,
        value: &Option<Spanned<String>>,
        parent: &Location,
        default: Span,
    ) -> Span {
        self.span(path, place(value, parent), text(value), default)
    }

    fn span(&mut self, path: &str, at: &Location, text: Option<&str>, default: Span) -> Span {
        match text {
            None => default,
            Some(text) => match Span::parse(text) {
                Ok(span) => span,
                Err(error) => {
                    self.report(
                        path,
                        Some(at),
                        error.to_string(),
                        Some("write a duration like 30m, 1h or 5d"),
                    );
                    default
                }
            },
        }
    }

    fn resolve(&self, path: &str) -> PathBuf {
        let path = Path::new(path);
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    fn file(&mut self, file: &Path, raw: RawFile) -> Option<Config> {
        let warehouse = self
            .required("", None, "warehouse", &raw.warehouse)
            .and_then(|w| self.warehouse(w));
        let metrics: BTreeMap<String, Metric> = raw
            .metrics
            .iter()
            .filter_map(|(name, metric)| self.metric(name, metric))
            .collect();
        let keep_runs = raw.keep_runs.as_ref().map_or(168, |k| k.value);
        if keep_runs == 0 {
            let at = raw.keep_runs.as_ref().map(|k| &k.referenced);
            self.report("keep_runs", at, "must be at least 1".into(), None);
        }
        let raw_optimizations = self.required("", None, "optimizations", &raw.optimizations);
        if let Some(o) = raw_optimizations.filter(|o| o.value.is_empty()) {
            self.report(
                "optimizations",
                Some(&o.referenced),
                "defines no optimization".into(),
                Some("add at least one optimization"),
            );
        }
        let optimizations = raw_optimizations
            .map(|o| &o.value)
            .into_iter()
            .flatten()
            .filter_map(|(name, opt)| {
                self.optimization(name, opt, &metrics)
                    .map(|o| (name.clone(), o))
            })
            .collect();
        Some(Config {
            file: file.to_path_buf(),
            warehouse: warehouse?,
            state: self.resolve(
                raw.state
                    .as_ref()
                    .map_or(".levered/state.duckdb", |s| s.value.as_str()),
            ),
            output_dir: self.resolve(raw.output_dir.as_ref().map_or("out", |s| s.value.as_str())),
            keep_runs,
            metrics,
            optimizations,
            locations: std::mem::take(&mut self.locations),
        })
    }

    fn warehouse(&mut self, raw: &Spanned<RawWarehouse>) -> Option<Warehouse> {
        let at = &raw.referenced;
        self.locate("warehouse", at);
        let w = &raw.value;
        let spark = match text(&w.engine).unwrap_or("duckdb") {
            "duckdb" => false,
            "spark" => true,
            other => {
                self.report(
                    "warehouse.engine",
                    Some(place(&w.engine, at)),
                    format!("unknown engine `{other}`"),
                    Some("use engine: duckdb (the default, embedded) or engine: spark (Spark Connect)"),
                );
                return None;
            }
        };
        if !spark && w.remote.is_some() {
            self.report(
                "warehouse.remote",
                Some(place(&w.remote, at)),
                "`remote` needs engine: spark; the duckdb engine reads `path`".into(),
                Some("remove `remote`, or set engine: spark"),
            );
        }
        let stale_after = self.duration(
            "warehouse.stale_after",
            &w.stale_after,
            at,
            Span::from_seconds(6 * 3600),
        );
        let fail_when_stale = match text(&w.on_stale) {
            None | Some("warn") => false,
            Some("fail") => true,
            Some(other) => {
                self.report(
                    "warehouse.on_stale",
                    Some(place(&w.on_stale, at)),
                    format!("unknown choice `{other}`"),
                    Some("use warn (the default) or fail (the run fails, so that cron reports it)"),
                );
                false
            }
        };
        let threads = w.threads.as_ref().map(|t| t.value);
        let scan_parts = w.scan_parts.as_ref().map(|p| p.value);
        if threads == Some(0) {
            self.report(
                "warehouse.threads",
                Some(place(&w.threads, at)),
                "must be at least 1".into(),
                None,
            );
        }
        if scan_parts.is_some_and(|n| !(1..=MAX_SCAN_PARTS).contains(&n)) {
            self.report(
                "warehouse.scan_parts",
                Some(place(&w.scan_parts, at)),
                format!("must be between 1 and {MAX_SCAN_PARTS}"),
                Some("leave it out to let levered choose the parts from the data and warehouse.memory_limit"),
            );
        }
        if spark {
            return self.spark_warehouse(w, at, (stale_after, fail_when_stale));
        }
        let Some(path) = text(&w.path) else {
            self.report(
                "warehouse.path",
                Some(at),
                "missing: the warehouse needs a path".into(),
                Some("a .duckdb file, or a folder of Parquet files"),
            );
            return None;
        };
        let resolved = self.resolve(path);
        let is_file = resolved
            .extension()
            .is_some_and(|e| e == "duckdb" || e == "db")
            || resolved.is_file();
        Some(Warehouse {
            source: if is_file {
                WarehouseSource::DuckDbFile(resolved)
            } else {
                WarehouseSource::ParquetFolder(resolved)
            },
            tables: w.tables.clone(),
            memory_limit: text(&w.memory_limit).map(str::to_string),
            threads,
            scan_parts,
            stale_after,
            fail_when_stale,
        })
    }

    /// `engine: spark`: the Spark Connect address is `SPARK_REMOTE` when set (as in Spark's own
    /// clients), else `remote`. The embedded engine's settings do not apply to a cluster.
    fn spark_warehouse(
        &mut self,
        w: &RawWarehouse,
        at: &Location,
        (stale_after, fail_when_stale): (Span, bool),
    ) -> Option<Warehouse> {
        for (key, given) in [
            ("path", w.path.as_ref().map(|v| &v.referenced)),
            (
                "memory_limit",
                w.memory_limit.as_ref().map(|v| &v.referenced),
            ),
            ("threads", w.threads.as_ref().map(|v| &v.referenced)),
        ] {
            if let Some(given) = given {
                self.report(
                    &format!("warehouse.{key}"),
                    Some(given),
                    format!("`{key}` belongs to the embedded duckdb engine, not to engine: spark"),
                    Some("remove it; the Spark cluster's own settings apply"),
                );
            }
        }
        let remote = std::env::var("SPARK_REMOTE")
            .ok()
            .filter(|r| !r.is_empty())
            .or_else(|| text(&w.remote).map(str::to_string));
        let Some(remote) = remote else {
            self.report(
                "warehouse.remote",
                Some(at),
                "missing: engine: spark needs the Spark Connect address".into(),
                Some("remote: \"sc://spark-host:15002\" (or set SPARK_REMOTE)"),
            );
            return None;
        };
        if !remote.starts_with("sc://") {
            self.report(
                "warehouse.remote",
                Some(place(&w.remote, at)),
                format!("`{remote}` is not a Spark Connect address"),
                Some("write it as sc://host:port, e.g. sc://spark-host:15002"),
            );
            return None;
        }
        Some(Warehouse {
            source: WarehouseSource::Spark { remote },
            tables: w.tables.clone(),
            memory_limit: None,
            threads: None,
            scan_parts: w.scan_parts.as_ref().map(|p| p.value),
            stale_after,
            fail_when_stale,
        })
    }

    fn locate(&mut self, path: &str, at: &Location) {
        self.locations
            .insert(path.to_string(), (at.line(), at.column()));
    }

    /// Reports a name that cannot be a folder name; `section` is `metrics` or `optimizations`.
    fn name(&mut self, section: &str, name: &str, at: &Location) {
        if let Some(message) = name_problem(name) {
            let path = format!("{section}.{}", name.escape_debug());
            self.report(&path, Some(at), message, Some(NAME_HINT));
        }
    }

    fn metric(&mut self, name: &str, raw: &Spanned<RawMetric>) -> Option<(String, Metric)> {
        self.name("metrics", name, &raw.referenced);
        let path = format!("metrics.{name}");
        let at = &raw.referenced;
        self.locate(&path, at);
        let kind = self.required(&path, Some(at), "type", &raw.value.kind);
        let sql = self.metric_sql(&path, at, &raw.value);
        let (kind, (sql, file)) = (kind?, sql?);
        let kind = match kind.value.as_str() {
            "bool" => MetricKind::Bool,
            "numeric" => MetricKind::Numeric,
            other => {
                self.report(
                    &format!("{path}.type"),
                    Some(&kind.referenced),
                    format!("unknown metric type `{other}`"),
                    Some("use `bool` (any row is a conversion) or `numeric` (sum of value)"),
                );
                return None;
            }
        };
        if sql.value.trim().is_empty() {
            let key = if file.is_some() { "sql_file" } else { "sql" };
            self.report(
                &format!("{path}.{key}"),
                Some(&sql.referenced),
                "is empty".into(),
                Some("write a SELECT returning anonymous_id, timestamp (and value for numeric)"),
            );
            return None;
        }
        Some((
            name.to_string(),
            Metric {
                name: name.to_string(),
                kind,
                sql: sql.value,
                file,
            },
        ))
    }

    /// A metric's SQL: `sql`, or the text of `sql_file` (exactly one of them), with the file's path.
    fn metric_sql(
        &mut self,
        path: &str,
        at: &Location,
        raw: &RawMetric,
    ) -> Option<(Spanned<String>, Option<PathBuf>)> {
        match (&raw.sql, &raw.sql_file) {
            (Some(sql), None) => Some((sql.clone(), None)),
            (None, Some(file)) => {
                let resolved = self.resolve(&file.value);
                let text = self.sql_file(&format!("{path}.sql_file"), file, &resolved)?;
                let sql = Spanned {
                    value: text,
                    ..file.clone()
                };
                Some((sql, Some(resolved)))
            }
            (Some(_), Some(file)) => {
                self.report(
                    path,
                    Some(&file.referenced),
                    "has both `sql` and `sql_file`".into(),
                    Some("keep one: the SQL inline, or the path of a .sql file"),
                );
                None
            }
            (None, None) => {
                self.report(
                    &format!("{path}.sql"),
                    Some(at),
                    "missing: the SQL that returns the metric's rows".into(),
                    Some("e.g. sql: SELECT anonymous_id, created_at AS timestamp FROM signups, or sql_file: sql/metrics/signup.sql"),
                );
                None
            }
        }
    }

    /// The text of a metric's `sql_file` (at `resolved`), which must be a UTF-8 file of at most
    /// [`MAX_SQL_FILE`] bytes inside the definitions file's folder (symbolic links resolved).
    fn sql_file(&mut self, path: &str, raw: &Spanned<String>, resolved: &Path) -> Option<String> {
        let at = Some(&raw.referenced);
        let hint = "give a .sql file inside the definitions file's folder, relative to it, e.g. sql/metrics/signup.sql";
        let folder = std::fs::canonicalize(if self.base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            &self.base
        });
        let file = match (folder, std::fs::canonicalize(resolved)) {
            (Ok(folder), Ok(file)) if file.starts_with(&folder) && file.is_file() => file,
            (_, Err(e)) => {
                let message = format!("cannot read `{}`: {e}", raw.value);
                self.report(path, at, message, Some(hint));
                return None;
            }
            _ => {
                let message = format!(
                    "`{}` is not a file inside the definitions file's folder",
                    raw.value
                );
                self.report(path, at, message, Some(hint));
                return None;
            }
        };
        let read = std::fs::File::open(file).and_then(|file| {
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut std::io::Read::take(file, MAX_SQL_FILE + 1), &mut bytes)
                .map(|_| bytes)
        });
        let problem = match read {
            Err(e) => format!("cannot read `{}`: {e}", raw.value),
            Ok(bytes) if bytes.len() as u64 > MAX_SQL_FILE => {
                format!("`{}` is larger than {MAX_SQL_FILE} bytes", raw.value)
            }
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => return Some(text),
                Err(_) => format!("`{}` is not UTF-8 text", raw.value),
            },
        };
        self.report(path, at, problem, Some(hint));
        None
    }

    fn optimization(
        &mut self,
        name: &str,
        raw: &Spanned<RawOptimization>,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<Optimization> {
        let path = format!("optimizations.{name}");
        let at = &raw.referenced;
        let o = &raw.value;
        let before = self.problems.len();
        self.name("optimizations", name, at);
        self.locate(&path, at);
        let status = self
            .required(&path, Some(at), "status", &o.status)
            .map(|s| self.status(&path, s));
        let factors = self
            .required(&path, Some(at), "design_factors", &o.design_factors)
            .map(|f| self.factors(&path, f))
            .unwrap_or_default();
        let variants = if factors.is_empty() {
            Vec::new()
        } else {
            self.variants(&path, &factors, &o.excluded_combinations)
        };
        let reward = self
            .required(&path, Some(at), "reward", &o.reward)
            .and_then(|r| self.reward(&path, r, metrics));
        let exposures = self
            .required(&path, Some(at), "exposures", &o.exposures)
            .and_then(|e| self.exposures(&path, e));
        let attribution = self
            .required(&path, Some(at), "attribution", &o.attribution)
            .and_then(|a| self.attribution(&path, a));
        let generation = o
            .generation
            .as_ref()
            .and_then(|g| self.generation(&path, g, variants.len()));
        let serving = match &generation {
            None => variants.len(),
            Some(g) if g.strategy == Strategy::Factorial => g.max_active_arms.min(variants.len()),
            Some(g) => g.max_active_arms,
        };
        let raw_model = self.required(&path, Some(at), "model", &o.model);
        let model = raw_model.and_then(|m| self.model(&path, m, serving));
        let context_factors = raw_model
            .map(|m| self.context_factors(&path, o.context_factors.as_ref(), m))
            .unwrap_or_default();
        let reward_name = reward.as_ref().map(|r| r.name.as_str());
        let guardrails = self.guardrails(&path, &o.guardrails, metrics, reward_name);
        if self.problems.len() > before {
            return None;
        }
        Some(Optimization {
            name: name.to_string(),
            status: status?,
            factors,
            variants,
            reward: reward?,
            exposures: exposures?,
            attribution: attribution?,
            model: model?,
            generation,
            context_factors,
            guardrails,
        })
    }

    fn status(&mut self, path: &str, raw: &Spanned<String>) -> Status {
        match raw.value.as_str() {
            "live" => Status::Live,
            "completed" => Status::Completed,
            "archived" => Status::Archived,
            other => {
                self.report(
                    &format!("{path}.status"),
                    Some(&raw.referenced),
                    format!("unknown status `{other}`"),
                    Some("use live, completed or archived"),
                );
                Status::Live
            }
        }
    }

    fn reward(
        &mut self,
        path: &str,
        raw: &Spanned<String>,
        metrics: &BTreeMap<String, Metric>,
    ) -> Option<Metric> {
        self.known_metric(&format!("{path}.reward"), raw, metrics)
    }

    fn factors(
        &mut self,
        path: &str,
        raw: &Spanned<indexmap::IndexMap<String, Vec<Level>>>,
    ) -> Vec<Factor> {
        let path = format!("{path}.design_factors");
        if raw.value.is_empty() {
            self.report(
                &path,
                Some(&raw.referenced),
                "defines no factor".into(),
                Some("add a factor with at least two levels"),
            );
        }
        let mut factors = Vec::new();
        for (name, levels) in &raw.value {
            let levels: Vec<String> = levels.iter().map(Level::text).collect();
            if name.trim().is_empty() {
                self.report(
                    &path,
                    Some(&raw.referenced),
                    "a factor has an empty name".into(),
                    None,
                );
            }
            if levels.is_empty() {
                self.report(
                    &format!("{path}.{name}"),
                    Some(&raw.referenced),
                    "has no level".into(),
                    Some("list at least one level; the first is the baseline"),
                );
            }
            let mut seen = BTreeSet::new();
            for level in &levels {
                if !seen.insert(level) {
                    self.report(
                        &format!("{path}.{name}"),
                        Some(&raw.referenced),
                        format!("level `{level}` is listed twice"),
                        Some("each level of a factor must be distinct"),
                    );
                }
            }
            factors.push(Factor {
                name: name.clone(),
                levels,
            });
        }
        factors
    }

    fn variants(
        &mut self,
        path: &str,
        factors: &[Factor],
        excluded: &[Spanned<indexmap::IndexMap<String, Level>>],
    ) -> Vec<Variant> {
        if factors.is_empty() || factors.iter().any(|f| f.levels.is_empty()) {
            return Vec::new();
        }
        let mut exclusions: Vec<Vec<(usize, String)>> = Vec::new();
        for (i, combination) in excluded.iter().enumerate() {
            let key = format!("{path}.excluded_combinations[{i}]");
            let mut pairs = Vec::new();
            for (factor, level) in &combination.value {
                let level = level.text();
                match factors.iter().position(|f| &f.name == factor) {
                    None => self.report(
                        &key,
                        Some(&combination.referenced),
                        format!("`{factor}` is not a design factor"),
                        Some(&format!("factors: {}", names(factors))),
                    ),
                    Some(f) if !factors[f].levels.contains(&level) => self.report(
                        &key,
                        Some(&combination.referenced),
                        format!("`{level}` is not a level of `{factor}`"),
                        Some(&format!("levels: {}", factors[f].levels.join(", "))),
                    ),
                    Some(f) => pairs.push((f, level)),
                }
            }
            if pairs.is_empty() {
                self.report(
                    &key,
                    Some(&combination.referenced),
                    "excludes nothing".into(),
                    Some("name at least one factor: level pair"),
                );
                continue;
            }
            if pairs
                .iter()
                .all(|(f, level)| &factors[*f].levels[0] == level)
            {
                self.report(
                    &key,
                    Some(&combination.referenced),
                    "excludes the baseline (the first level of every factor)".into(),
                    Some("the baseline cannot be excluded; reorder the levels to change it"),
                );
            }
            exclusions.push(pairs);
        }
        let mut variants = vec![Variant(Vec::new())];
        for factor in factors {
            variants = variants
                .into_iter()
                .flat_map(|prefix| {
                    factor.levels.iter().map(move |level| {
                        let mut next = prefix.0.clone();
                        next.push(level.clone());
                        Variant(next)
                    })
                })
                .collect();
        }
        variants.retain(|v| {
            !exclusions
                .iter()
                .any(|pairs| pairs.iter().all(|(f, level)| &v.0[*f] == level))
        });
        if variants.len() < 2 {
            self.report(
                &format!("{path}.design_factors"),
                None,
                format!(
                    "leaves {} arm(s) after exclusions; a bandit needs at least 2",
                    variants.len()
                ),
                Some("add levels or remove exclusions"),
            );
        }
        variants
    }

    fn exposures(&mut self, path: &str, raw: &Spanned<RawExposures>) -> Option<Exposures> {
        let path = format!("{path}.exposures");
        self.locate(&path, &raw.referenced);
        let e = &raw.value;
        let source = match (&e.table, &e.sql) {
            (Some(table), None) if !table.trim().is_empty() => ExposureSource::Table(table.clone()),
            (None, Some(sql)) if !sql.trim().is_empty() => ExposureSource::Sql(sql.clone()),
            _ => {
                self.report(
                    &path,
                    Some(&raw.referenced),
                    "needs exactly one of `table` or `sql`".into(),
                    Some("e.g. exposures: {table: exposures}"),
                );
                return None;
            }
        };
        let c = &e.columns;
        let pick =
            |v: &Option<String>, default: &str| v.clone().unwrap_or_else(|| default.to_string());
        Some(Exposures {
            source,
            columns: Columns {
                anonymous_id: pick(&c.anonymous_id, "anonymous_id"),
                timestamp: pick(&c.timestamp, "timestamp"),
                optimization_id: pick(&c.optimization_id, "optimization_id"),
                variant: pick(&c.variant, "variant"),
                context: pick(&c.context, "context"),
                holdout: pick(&c.holdout, "holdout"),
            },
        })
    }

    fn attribution(&mut self, path: &str, raw: &Spanned<RawAttribution>) -> Option<Attribution> {
        let path = format!("{path}.attribution");
        let at = &raw.referenced;
        let a = &raw.value;
        let touch = match text(&a.kind) {
            None | Some("last_touch") => Touch::LastTouch,
            Some("first_touch") => Touch::FirstTouch,
            Some(other) => {
                self.report(
                    &format!("{path}.type"),
                    Some(place(&a.kind, at)),
                    format!("unknown attribution `{other}`"),
                    Some("use last_touch or first_touch"),
                );
                Touch::LastTouch
            }
        };
        let unit = match text(&a.unit) {
            None | Some("visitor_batch") => Unit::VisitorBatch,
            Some("visitor") => Unit::Visitor,
            Some(other) => {
                self.report(
                    &format!("{path}.unit"),
                    Some(place(&a.unit, at)),
                    format!("unknown unit `{other}`"),
                    Some("use visitor_batch or visitor"),
                );
                Unit::VisitorBatch
            }
        };
        if a.conversion_window.is_none() {
            self.report(
                &format!("{path}.conversion_window"),
                Some(at),
                "missing: how long after an exposure a reward still counts".into(),
                Some("e.g. conversion_window: 24h"),
            );
            return None;
        }
        let window = self.duration(
            &format!("{path}.conversion_window"),
            &a.conversion_window,
            at,
            Span::ZERO,
        );
        let late_grace = self.duration(
            &format!("{path}.late_grace"),
            &a.late_grace,
            at,
            Span::from_seconds(3600),
        );
        Some(Attribution {
            touch,
            window,
            unit,
            late_grace,
        })
    }

    fn model(&mut self, path: &str, raw: &Spanned<RawModel>, arms: usize) -> Option<Model> {
        let path = format!("{path}.model");
        let at = &raw.referenced;
        let m = &raw.value;
        match self.required(&path, Some(at), "kind", &m.kind) {
            Some(kind) if ["mab", "cmab"].contains(&kind.value.as_str()) => {}
            Some(kind) => self.report(
                &format!("{path}.kind"),
                Some(&kind.referenced),
                format!("unknown model `{}`", kind.value),
                Some("use mab, or cmab with context_factors"),
            ),
            None => {}
        }
        let batch = self.duration(
            &format!("{path}.batch"),
            &m.batch,
            at,
            Span::from_seconds(3600),
        );
        if batch == Span::ZERO {
            self.report(
                &format!("{path}.batch"),
                Some(place(&m.batch, at)),
                "must be longer than zero".into(),
                Some("e.g. batch: 1h"),
            );
        }
        let burn_in = self.duration(
            &format!("{path}.burn_in"),
            &m.burn_in,
            at,
            Span::from_seconds(24 * 3600),
        );
        let prior = m.prior.as_ref().map_or(
            Prior {
                alpha: 1.0,
                beta: 1.0,
            },
            |p| Prior {
                alpha: p.value.alpha,
                beta: p.value.beta,
            },
        );
        if !(prior.alpha > 0.0
            && prior.beta > 0.0
            && prior.alpha.is_finite()
            && prior.beta.is_finite())
        {
            self.report(
                &format!("{path}.prior"),
                Some(place(&m.prior, at)),
                "alpha and beta must be positive".into(),
                Some("prior: {alpha: 1, beta: 1} is uniform"),
            );
        }
        let floor_value = m.floor.as_ref().map_or(0.01, |f| f.value);
        let floor = Probability::new(floor_value);
        if floor.is_none() {
            self.report(
                &format!("{path}.floor"),
                Some(place(&m.floor, at)),
                format!("{floor_value} is not in [0, 1]"),
                None,
            );
        } else if floor_value * arms as f64 > 1.0 + 1e-12 {
            self.report(
                &format!("{path}.floor"),
                Some(place(&m.floor, at)),
                format!("floor {floor_value} × {arms} arms exceeds 1"),
                Some(&format!(
                    "use a floor of at most {}",
                    1.0 / arms.max(1) as f64
                )),
            );
        }
        let decay_half_life = m.decay_half_life.as_ref().map(|_| {
            self.duration(
                &format!("{path}.decay_half_life"),
                &m.decay_half_life,
                at,
                Span::ZERO,
            )
        });
        if decay_half_life == Some(Span::ZERO) {
            self.report(
                &format!("{path}.decay_half_life"),
                Some(place(&m.decay_half_life, at)),
                "must be longer than zero".into(),
                Some("omit it for no decay"),
            );
        }
        let holdout = m.holdout.as_ref().and_then(|h| self.holdout(&path, h));
        let drop = m.drop.as_ref().and_then(|d| {
            let path = format!("{path}.drop");
            let below = self.probability(&format!("{path}.below"), &d.referenced, d.value.below);
            let incubation = self.span(
                &format!("{path}.incubation"),
                &d.referenced,
                d.value.incubation.as_deref(),
                burn_in,
            );
            Some(DropRule {
                below: below?,
                incubation,
            })
        });
        Some(Model {
            batch,
            prior,
            burn_in,
            min_units_per_arm: m.min_units_per_arm.unwrap_or(100),
            floor: floor?,
            decay_half_life,
            seed: m.seed,
            holdout,
            drop,
            max_contexts: m.max_contexts.as_ref().map_or(50, |n| n.value as usize),
        })
    }

    /// The context factors of a contextual model; empty for `kind: mab`.
    fn context_factors(
        &mut self,
        path: &str,
        raw: Option<&Spanned<Vec<String>>>,
        model: &Spanned<RawModel>,
    ) -> Vec<String> {
        let at = &model.referenced;
        let factors = raw.map_or(Vec::new(), |c| c.value.clone());
        let where_ = raw.map_or(at, |c| &c.referenced);
        let kind = text(&model.value.kind).unwrap_or_default();
        match (kind, factors.is_empty()) {
            ("cmab", true) => self.report(
                &format!("{path}.context_factors"),
                Some(at),
                "model.kind: cmab needs context_factors".into(),
                Some("e.g. context_factors: [country, device], read from the exposures' context JSON"),
            ),
            ("mab", false) => self.report(
                &format!("{path}.context_factors"),
                Some(where_),
                "context_factors need model.kind: cmab".into(),
                Some("use kind: cmab, or remove context_factors"),
            ),
            _ => {}
        }
        let mut seen = BTreeSet::new();
        for factor in &factors {
            if factor.trim().is_empty() || !seen.insert(factor.as_str()) {
                self.report(
                    &format!("{path}.context_factors"),
                    Some(where_),
                    format!("`{factor}` is empty or listed twice"),
                    None,
                );
            }
        }
        if let Some(max) = model.value.max_contexts.as_ref().filter(|m| m.value == 0) {
            self.report(
                &format!("{path}.model.max_contexts"),
                Some(&max.referenced),
                "must be at least 1".into(),
                Some("the most frequent contexts get their own allocation; the rest use `*`"),
            );
        }
        if kind == "cmab" {
            factors
        } else {
            Vec::new()
        }
    }

    fn probability(&mut self, path: &str, at: &Location, value: f64) -> Option<Probability> {
        let p = Probability::new(value);
        if p.is_none() {
            self.report(path, Some(at), format!("{value} is not in [0, 1]"), None);
        }
        p
    }

    fn holdout(&mut self, path: &str, raw: &Spanned<RawHoldout>) -> Option<Holdout> {
        let path = format!("{path}.holdout");
        let at = &raw.referenced;
        let h = &raw.value;
        let below_one = |checker: &mut Checker, key: &str, value: f64| {
            let p = checker.probability(&format!("{path}.{key}"), at, value)?;
            if p.get() >= 1.0 {
                checker.report(
                    &format!("{path}.{key}"),
                    Some(at),
                    "a holdout of the whole traffic leaves nothing to optimize".into(),
                    Some("use a share below 1, e.g. 0.1"),
                );
                return None;
            }
            Some(p)
        };
        match (h.share, h.initial, h.min, h.until_units) {
            (Some(share), None, None, None) => {
                let share = below_one(self, "share", share)?;
                if share.get() == 0.0 {
                    self.report(
                        &format!("{path}.share"),
                        Some(at),
                        "a holdout share of 0 holds nothing out".into(),
                        Some("remove `holdout`, or give a share above 0"),
                    );
                    return None;
                }
                Some(Holdout::Fixed { share })
            }
            (None, Some(initial), Some(min), Some(until_units)) => {
                let initial = below_one(self, "initial", initial);
                let min = below_one(self, "min", min);
                let (initial, min) = (initial?, min?);
                if min > initial {
                    self.report(
                        &format!("{path}.min"),
                        Some(at),
                        format!("min {} is above initial {}", min.get(), initial.get()),
                        Some("the share falls from initial to min"),
                    );
                    return None;
                }
                if until_units == 0 {
                    self.report(
                        &format!("{path}.until_units"),
                        Some(at),
                        "must be at least 1".into(),
                        Some("the number of holdout units after which the share stays at min"),
                    );
                    return None;
                }
                Some(Holdout::Adaptive {
                    initial,
                    min,
                    until_units,
                })
            }
            _ => {
                self.report(
                    &path,
                    Some(at),
                    "give either `share` (fixed) or all of `initial`, `min` and `until_units` (adaptive)".into(),
                    Some("e.g. holdout: {share: 0.1} or holdout: {initial: 0.2, min: 0.05, until_units: 2000}"),
                );
                None
            }
        }
    }

    fn generation(
        &mut self,
        path: &str,
        raw: &Spanned<RawGeneration>,
        arms: usize,
    ) -> Option<Generation> {
        let path = format!("{path}.generation");
        let at = &raw.referenced;
        let g = &raw.value;
        let strategy = match (g.strategy.as_str(), &g.command) {
            ("factorial", None) if g.timeout.is_none() => Strategy::Factorial,
            ("factorial", _) => {
                self.report(
                    &path,
                    Some(at),
                    "`command` and `timeout` belong to strategy: command".into(),
                    Some("remove them, or use strategy: command"),
                );
                return None;
            }
            ("command", Some(argv)) if !argv.is_empty() && !argv[0].is_empty() => {
                let timeout = self.span(
                    &format!("{path}.timeout"),
                    at,
                    g.timeout.as_deref(),
                    Span::from_seconds(30),
                );
                if timeout == Span::ZERO {
                    self.report(
                        &format!("{path}.timeout"),
                        Some(at),
                        "must be longer than zero".into(),
                        Some("e.g. timeout: 30s"),
                    );
                }
                Strategy::Command {
                    argv: argv.clone(),
                    timeout,
                    dir: self.base.clone(),
                }
            }
            ("command", _) => {
                self.report(
                    &format!("{path}.command"),
                    Some(at),
                    "strategy: command needs a non-empty `command` list".into(),
                    Some("e.g. command: [python3, scripts/propose.py]"),
                );
                return None;
            }
            (other, _) => {
                self.report(
                    &format!("{path}.strategy"),
                    Some(at),
                    format!("unknown strategy `{other}`"),
                    Some("use factorial or command"),
                );
                return None;
            }
        };
        let max_active_arms = g.max_active_arms.map_or(arms, |n| n as usize);
        if max_active_arms < 2 {
            self.report(
                &format!("{path}.max_active_arms"),
                Some(at),
                format!("{max_active_arms} leaves no choice: at least 2 arms stay active"),
                Some("use max_active_arms: 2 or more"),
            );
            return None;
        }
        Some(Generation {
            strategy,
            max_active_arms,
        })
    }
}

fn names(factors: &[Factor]) -> String {
    factors
        .iter()
        .map(|f| f.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::{key_path_at, SECTIONS};

    /// docs/definitions.schema.json, for editors, lists exactly the keys levered checks.
    #[test]
    fn the_json_schema_has_the_keys_of_every_section() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/definitions.schema.json")).unwrap();
        let definitions = &schema["definitions"];
        for (section, keys) in SECTIONS {
            let object = match *section {
                "the file's top level" => &schema,
                "a metric" => &definitions["metric"],
                "an optimization" => &definitions["optimization"],
                "exposures.columns" => &definitions["exposures"]["properties"]["columns"],
                "a guardrail" => &definitions["guardrail"],
                "tolerance" => &definitions["guardrail"]["properties"]["tolerance"],
                name => &definitions[name],
            };
            let mut listed: Vec<&str> = object["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{section}: no properties"))
                .keys()
                .map(String::as_str)
                .collect();
            let mut checked = keys.to_vec();
            listed.sort_unstable();
            checked.sort_unstable();
            assert_eq!(listed, checked, "{section}");
        }
    }

    #[test]
    fn key_paths_follow_indentation() {
        let text = "warehouse:\n  path: x\noptimizations:\n  hero:\n    # a comment\n    model:\n      flor: 1\n";
        assert_eq!(key_path_at(text, 7), "optimizations.hero.model.flor");
        assert_eq!(key_path_at(text, 2), "warehouse.path");
        assert_eq!(key_path_at(text, 1), "warehouse");
        let items = "o:\n  g:\n    - metric: a\n      better: up\n    - {metric: b, colour: x}\n";
        assert_eq!(key_path_at(items, 4), "o.g[0].better");
        assert_eq!(key_path_at(items, 3), "o.g[0].metric");
        assert_eq!(key_path_at(items, 5), "o.g[1]");
        // Items at the list key's own indentation, with nested keys between them.
        let flush = "o:\n  r: x\n  g:\n  - metric: a\n    tolerance:\n      relative: 1\n  - metric: b\n    colour: x\n";
        assert_eq!(key_path_at(flush, 8), "o.g[1].colour");
        assert_eq!(key_path_at(flush, 6), "o.g[0].tolerance.relative");
        assert_eq!(key_path_at(flush, 2), "o.r");
    }
}
