//! `levered validate`: everything that can be checked before the hourly job runs, all at once.
//! Static checks come from `config::load`; engine checks bind every exposure source and metric SQL in
//! the warehouse (reading no data) and check the columns and types against the contract.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::{Config, ConfigError, Optimization};
use crate::time::{Instant, Span};
use crate::warehouse::{
    contract, hint_for, ColumnKind, EngineError, ScanPlan, ScanResult, SqlEngine, Unmatched,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing validation found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    /// The file the finding is in when it is not the definitions file: a metric's `sql_file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub path: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
    pub hint: Option<String>,
}

/// What `--sample` saw for one optimization over the last day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub optimization: String,
    pub from: String,
    pub mature_units: i64,
    pub conversions: i64,
    pub unmatched: BTreeMap<String, i64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Validation {
    pub findings: Vec<Finding>,
    pub samples: Vec<Sample>,
}

impl Validation {
    pub fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == Severity::Error)
            .count()
    }

    /// Records that the warehouse cannot be opened: an error like any other in every format (the
    /// exit code, 4, tells it apart).
    pub fn unreachable(&mut self, config: &Config, error: &str) {
        let (message, hint) = match error.split_once("\n  hint: ") {
            Some((message, hint)) => (message, Some(hint)),
            None => (error, None),
        };
        self.add(
            config,
            Severity::Error,
            "warehouse".into(),
            message.to_string(),
            hint,
        );
    }

    fn add(
        &mut self,
        config: &Config,
        severity: Severity,
        path: String,
        message: String,
        hint: Option<&str>,
    ) {
        let at = config.location(&path);
        self.findings.push(Finding {
            severity,
            file: None,
            path,
            line: at.map(|a| a.0),
            column: at.map(|a| a.1),
            message,
            hint: hint.map(str::to_string),
        });
    }
}

/// The findings of a file that did not even load.
pub fn from_config_error(error: &ConfigError) -> Validation {
    Validation {
        findings: error
            .problems
            .iter()
            .map(|p| Finding {
                severity: Severity::Error,
                file: None,
                path: p.path.clone(),
                line: p.line,
                column: p.column,
                message: p.message.clone(),
                hint: p.hint.clone(),
            })
            .collect(),
        samples: Vec::new(),
    }
}

/// Checks that need no engine, beyond those of `config::load`.
pub fn static_checks(config: &Config) -> Validation {
    let mut v = Validation::default();
    for (name, metric) in &config.metrics {
        let path = format!("metrics.{name}.sql");
        let (start, end) = (metric.sql.contains("$start"), metric.sql.contains("$end"));
        if !start || !end {
            v.add(
                config,
                Severity::Warning,
                path,
                format!(
                    "the SQL does not filter on {}: every run reads the whole table",
                    match (start, end) {
                        (false, false) => "$start and $end",
                        (false, true) => "$start",
                        _ => "$end",
                    }
                ),
                Some("add WHERE <time> >= $start AND <time> < $end"),
            );
            if let (Some(file), Some(finding)) = (&metric.file, v.findings.last_mut()) {
                in_sql_file(finding, file, &metric.sql);
            }
        }
        if !config
            .optimizations
            .values()
            .any(|o| &o.reward.name == name || o.guardrails.iter().any(|g| &g.metric.name == name))
        {
            v.add(
                config,
                Severity::Warning,
                format!("metrics.{name}"),
                "is neither the reward nor a guardrail of any optimization".into(),
                None,
            );
        }
    }
    v
}

/// Points a finding about a metric's SQL at its `sql_file`: at the first name the engine's message
/// quotes that the SQL contains (such as an unknown column or table), else at the file's first line.
fn in_sql_file(finding: &mut Finding, file: &std::path::Path, sql: &str) {
    let quoted = finding
        .message
        .split(['"', '`', '\''])
        .skip(1)
        .step_by(2)
        .filter(|word| !word.is_empty() && word.chars().all(|c| c.is_alphanumeric() || c == '_'));
    let (line, column) = quoted
        .filter_map(|word| position_of_name(sql, word))
        .next()
        .unwrap_or((1, 1));
    finding.file = Some(file.display().to_string());
    finding.line = Some(line);
    finding.column = Some(column);
}

/// The 1-based line and column of the first occurrence of `name` in `sql` as a whole word,
/// compared case-insensitively.
fn position_of_name(sql: &str, name: &str) -> Option<(u64, u64)> {
    let is_word = |c: char| c.is_alphanumeric() || c == '_';
    let wanted = name.to_lowercase();
    for (index, line) in sql.lines().enumerate() {
        let lower = line.to_lowercase();
        let mut from = 0;
        while let Some(found) = lower[from..].find(&wanted) {
            let start = from + found;
            let end = start + wanted.len();
            let before = lower[..start].chars().next_back();
            let after = lower[end..].chars().next();
            if !before.is_some_and(is_word) && !after.is_some_and(is_word) {
                return Some((index as u64 + 1, lower[..start].chars().count() as u64 + 1));
            }
            from = end;
        }
    }
    None
}

/// Adds a finding at `path` when the engine rejects a relation (`what`), else one for every breach
/// of the warehouse contract by its columns.
fn check_relation(
    v: &mut Validation,
    config: &Config,
    path: &str,
    what: &str,
    columns: Result<Vec<(String, ColumnKind)>, EngineError>,
    required: &[contract::Required],
) {
    let columns = match columns {
        Ok(columns) => columns,
        Err(error) => {
            let message = error.to_string();
            let hint = hint_for(&message);
            let message = format!("the engine rejects {what}: {message}");
            v.add(
                config,
                Severity::Error,
                path.to_string(),
                message,
                Some(&hint),
            );
            return;
        }
    };
    for breach in contract::check(&columns, required) {
        v.add(
            config,
            Severity::Error,
            path.to_string(),
            breach.to_string(),
            Some(&breach.hint()),
        );
    }
}

/// Binds every exposure source and every metric's SQL in the warehouse and checks their columns;
/// with `sample_as_of`, also runs each optimization's aggregation over the day of units that matured
/// last (exposures from one window plus one day before it).
pub fn engine_checks(
    config: &Config,
    engine: &dyn SqlEngine,
    selected: &[&Optimization],
    sample_as_of: Option<Instant>,
) -> Validation {
    let mut v = Validation::default();
    let end = sample_as_of.unwrap_or(Instant::from_micros(0));
    for (name, metric) in &config.metrics {
        let path = format!("metrics.{name}.sql");
        let columns = engine.columns(&format!("(\n{}\n)", metric.sql), Instant::BEGINNING, end);
        let required = contract::metric_columns(metric.kind);
        let before = v.findings.len();
        check_relation(&mut v, config, &path, "the SQL", columns, &required);
        if let Some(file) = &metric.file {
            for finding in &mut v.findings[before..] {
                in_sql_file(finding, file, &metric.sql);
            }
        }
    }
    for optimization in selected {
        let path = format!("optimizations.{}.exposures", optimization.name);
        let before = v.errors();
        let columns = engine.columns(
            &engine.exposure_relation(optimization),
            Instant::BEGINNING,
            end,
        );
        let required = contract::exposure_columns(optimization);
        check_relation(
            &mut v,
            config,
            &path,
            "the exposure source",
            columns,
            &required,
        );
        let metrics_ok = !v.findings.iter().any(|f| {
            f.severity == Severity::Error
                && std::iter::once(&optimization.reward)
                    .chain(optimization.guardrails.iter().map(|g| &g.metric))
                    .any(|m| f.path == format!("metrics.{}.sql", m.name))
        });
        if let (Some(as_of), true, true) = (sample_as_of, v.errors() == before, metrics_ok) {
            let day = Span::from_seconds(86_400);
            let from =
                (as_of - optimization.attribution.window - day).floor_to(optimization.model.batch);
            let arms = optimization.numbered_variants();
            let plan = ScanPlan {
                optimization,
                arms,
                as_of,
                from_batch: Some(from),
            };
            match engine.aggregate(&plan) {
                Err(e) => v.add(config, Severity::Error, path, e.to_string(), None),
                Ok(scan) => {
                    sample_warnings(config, &mut v, optimization, &scan, from);
                    v.samples.push(Sample {
                        optimization: optimization.name.clone(),
                        from: from.rfc3339(),
                        mature_units: scan.rows.iter().map(|r| r.units).sum(),
                        conversions: scan.rows.iter().map(|r| r.conversions).sum(),
                        unmatched: scan
                            .unmatched
                            .iter()
                            .map(|(r, n)| (r.label().to_string(), *n))
                            .collect(),
                    })
                }
            }
        }
    }
    v
}

/// Warns of a sample that matched no exposure row, or rows of variants that no arm has.
fn sample_warnings(
    config: &Config,
    v: &mut Validation,
    optimization: &Optimization,
    scan: &ScanResult,
    from: Instant,
) {
    let path = format!("optimizations.{}.exposures", optimization.name);
    let hint = "exposure rows need optimization_id = the optimization's name and a variant of the design factors (docs/design.md §1.9)";
    let unknown = scan.unmatched.get(&Unmatched::UnknownVariant).copied();
    if scan.newest_exposure.is_none() && scan.unmatched.is_empty() {
        let message = format!(
            "the sample since {} found no exposure row of this optimization{}",
            from.rfc3339(),
            scan.samples.elsewhere(optimization)
        );
        v.add(config, Severity::Warning, path, message, Some(hint));
    } else if let Some(rows) = unknown {
        let message = format!(
            "the sample since {} found {rows} exposure rows whose variant no arm has{}",
            from.rfc3339(),
            scan.samples.unknown_variants(optimization)
        );
        v.add(config, Severity::Warning, path, message, Some(hint));
    }
}

/// Renders findings as text lines `file:line:column: severity: path: message`.
pub fn render_text(file: &str, v: &Validation) -> String {
    let mut out = String::new();
    for f in &v.findings {
        let mut at = f.file.clone().unwrap_or_else(|| file.to_string());
        if let Some(line) = f.line {
            at.push_str(&format!(":{line}"));
            if let Some(column) = f.column {
                at.push_str(&format!(":{column}"));
            }
        }
        let severity = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let path = if f.path.is_empty() {
            String::new()
        } else {
            format!("{}: ", f.path)
        };
        out.push_str(&format!("{at}: {severity}: {path}{}\n", f.message));
        if let Some(hint) = &f.hint {
            out.push_str(&format!("    hint: {hint}\n"));
        }
    }
    for s in &v.samples {
        let unmatched: Vec<String> = s
            .unmatched
            .iter()
            .map(|(r, n)| format!("{r}: {n}"))
            .collect();
        out.push_str(&format!(
            "sample {}: since {}: {} mature units, {} conversions, unmatched rows: {}\n",
            s.optimization,
            s.from,
            s.mature_units,
            s.conversions,
            if unmatched.is_empty() {
                "none".into()
            } else {
                unmatched.join(", ")
            }
        ));
    }
    let errors = v.errors();
    out.push_str(&format!(
        "{}: {} error{}, {} warning{}\n",
        if errors == 0 { "valid" } else { "invalid" },
        errors,
        if errors == 1 { "" } else { "s" },
        v.findings.len() - errors,
        if v.findings.len() - errors == 1 {
            ""
        } else {
            "s"
        },
    ));
    out
}

/// Renders findings as GitHub Actions workflow commands.
pub fn render_github(file: &str, v: &Validation) -> String {
    let escape = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let property = |s: &str| escape(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for f in &v.findings {
        let mut props = format!("file={}", property(f.file.as_deref().unwrap_or(file)));
        if let Some(line) = f.line {
            props.push_str(&format!(",line={line}"));
        }
        if let Some(column) = f.column {
            props.push_str(&format!(",col={column}"));
        }
        props.push_str(&format!(
            ",title={}",
            property(&format!("levered: {}", f.path))
        ));
        let kind = match f.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut message = f.message.clone();
        if let Some(hint) = &f.hint {
            message.push_str(&format!("\nhint: {hint}"));
        }
        out.push_str(&format!("::{kind} {props}::{}\n", escape(&message)));
    }
    out
}
