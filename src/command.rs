//! The imperative shell: parses the command line, reads the clock, runs a command and maps its
//! result to an exit status.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use chrono::{DateTime, Utc};
use clap::Parser;

use crate::cli::{
    AssignArgs, AssignFormat, Cli, Command, GenerateArgs, ReportArgs, ReportFormat, SimulateArgs,
    TrainArgs, ValidateArgs, ValidateFormat,
};
use crate::config;
use crate::domain::{ArmId, ContextKey, Role};
use crate::exit::{ExitStatus, Failure};
use crate::output::{Format, Printer};
use crate::time::Span;
use crate::train::{self, Outcome, TrainOptions};

/// Runs levered with these arguments (the first is the program name).
pub fn run<I, T>(args: I) -> ExitStatus
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return if error.use_stderr() {
                ExitStatus::Usage
            } else {
                ExitStatus::Success
            };
        }
    };
    let format = match &cli.command {
        Command::Train(args) => args.format,
        Command::Validate(args) if args.format == ValidateFormat::Json => Format::Json,
        Command::Report(args) if args.format == ReportFormat::Json => Format::Json,
        Command::History(args) if args.format == ReportFormat::Json => Format::Json,
        Command::Assign(args) if args.format == AssignFormat::Json => Format::Json,
        Command::Simulate(args) if args.format == AssignFormat::Json => Format::Json,
        Command::Validate(_)
        | Command::Report(_)
        | Command::History(_)
        | Command::Assign(_)
        | Command::Simulate(_)
        | Command::Generate(_) => Format::Text,
    };
    let printer = Printer::new(cli.quiet, cli.no_progress, format);
    let result = match cli.command {
        Command::Train(args) => train_command(args, &printer),
        Command::Validate(args) => validate_command(args, &printer),
        Command::Report(args) => report_command(args, &printer),
        Command::History(args) => history_command(args, &printer),
        Command::Assign(args) => assign_command(args, &printer),
        Command::Simulate(args) => simulate_command(args, &printer),
        Command::Generate(args) => generate_command(args, &printer),
    };
    match result {
        Ok(status) => status,
        Err(failure) => {
            printer.error(&failure.error);
            failure.status
        }
    }
}

fn usage(message: String) -> Failure {
    Failure::new(ExitStatus::Usage, anyhow!(message))
}

/// The definitions file: `--config`, else `optimizations.yaml`, else the bundled example with a note.
fn config_path(given: Option<PathBuf>, printer: &Printer) -> Result<PathBuf, Failure> {
    if let Some(path) = given {
        return Ok(path);
    }
    let default = Path::new("optimizations.yaml");
    if default.exists() {
        return Ok(default.to_path_buf());
    }
    let example = Path::new("optimizations.example.yaml");
    if example.exists() {
        printer.warn("optimizations.yaml not found here; using optimizations.example.yaml (pass --config to choose)");
        return Ok(example.to_path_buf());
    }
    Err(usage(
        "no definitions file: optimizations.yaml is not in the current folder\n  hint: pass --config PATH".into(),
    ))
}

/// The definitions file (`--config` or the default) loaded and checked; invalid → exit 3.
fn load_config(given: Option<PathBuf>, printer: &Printer) -> Result<config::Config, Failure> {
    let path = config_path(given, printer)?;
    config::load(&path).map_err(|e| Failure::new(ExitStatus::InvalidDefinition, e))
}

/// `--lock-timeout` as a duration.
fn lock_timeout(text: &str) -> Result<std::time::Duration, Failure> {
    Ok(Span::parse(text)
        .map_err(|e| usage(format!("--lock-timeout: {e}")))?
        .as_chrono()
        .to_std()
        .unwrap_or_default())
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            usage(format!(
                "--as-of `{text}` is not an RFC 3339 time ({e})\n  hint: e.g. 2026-01-03T13:00:00Z"
            ))
        })
}

/// How far past the clock an `as_of` may lie without `--allow-future` (clocks of two machines
/// differ by seconds; a typo in the year by decades).
const FUTURE_MARGIN: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Refuses an `as_of` past the clock: every later run would be "earlier than the last run" until a
/// `--full` backfill (README, "Security and operations").
fn check_not_future(
    as_of: DateTime<Utc>,
    now: DateTime<Utc>,
    allowed: bool,
) -> Result<(), Failure> {
    if allowed || as_of <= now + FUTURE_MARGIN {
        return Ok(());
    }
    Err(usage(format!(
        "--as-of {} is {} past the clock ({})\n  hint: a run's as_of is normally now or earlier; pass --allow-future if this time is meant",
        as_of.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        how_far(as_of - now),
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    )))
}

/// A time past the margin, in words: minutes under two hours, hours under two days, else days
/// (always more than one of the unit, so always plural).
fn how_far(ahead: chrono::TimeDelta) -> String {
    if ahead.num_minutes() < 120 {
        format!("{} minutes", ahead.num_minutes())
    } else if ahead.num_hours() < 48 {
        format!("{} hours", ahead.num_hours())
    } else {
        format!("{} days", ahead.num_days())
    }
}

fn train_command(args: TrainArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let now = Utc::now();
    let as_of = args
        .as_of
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or(now);
    check_not_future(as_of, now, args.allow_future)?;
    let lock_timeout = lock_timeout(&args.lock_timeout)?;
    let config = load_config(args.config, printer)?;
    let options = TrainOptions {
        optimizations: args.optimizations,
        all: args.all,
        as_of,
        trained_at: now,
        seed: args.seed,
        dry_run: args.dry_run,
        full: args.full,
        lock_timeout,
    };
    crate::interrupt::catch();
    let outcomes = train::train(&config, &options, printer)?;
    let mut json = Vec::new();
    let (mut trained, mut failed, mut invalid) = (0, 0, 0);
    for outcome in &outcomes {
        match outcome {
            Outcome::Trained(report) => {
                trained += 1;
                for warning in &report.warnings {
                    printer.warn(&format!("{}: {warning}", report.optimization));
                }
                printer.summary(&summary_line(report, options.dry_run, &config.output_dir));
                if options.dry_run {
                    printer.result(&crate::report::table(
                        &format!(
                            "{} (run {}, as of {})",
                            report.optimization, report.run_id, report.as_of
                        ),
                        &report.arms,
                    ));
                }
                json.push(serde_json::json!({"optimization": report.optimization, "outcome": "trained", "run": report}));
            }
            Outcome::Skipped {
                optimization,
                reason,
            } => {
                // After a signal, what was not started is said even under --all.
                if !options.all || crate::interrupt::received().is_some() {
                    printer.summary(&format!("{optimization}: nothing ran: {reason}"));
                }
                json.push(serde_json::json!({"optimization": optimization, "outcome": "skipped", "reason": reason}));
            }
            Outcome::Failed {
                optimization,
                error,
            } => {
                failed += 1;
                invalid += usize::from(matches!(
                    error.downcast_ref::<crate::warehouse::WarehouseError>(),
                    Some(crate::warehouse::WarehouseError::MissingHoldout { .. })
                ));
                printer.error(&anyhow!("{optimization}: training failed: {error:#}"));
                json.push(serde_json::json!({"optimization": optimization, "outcome": "failed", "error": format!("{error:#}")}));
            }
        }
    }
    printer.json(&serde_json::Value::Array(json));
    if let Some(signal) = crate::interrupt::received() {
        return Ok(ExitStatus::stopped_by(signal));
    }
    Ok(match (trained, failed) {
        (_, 0) => ExitStatus::Success,
        (0, _) if invalid == failed => ExitStatus::InvalidDefinition,
        (0, _) => ExitStatus::Data,
        _ => ExitStatus::Partial,
    })
}

fn summary_line(report: &crate::report::RunReport, dry_run: bool, output_dir: &Path) -> String {
    use crate::allocation::Phase;
    let phase = match &report.phase {
        Phase::Completed { winner } => format!("completed, arm {winner} serves all traffic"),
        Phase::BurnIn { reason } => format!("burn-in (equal split: {reason})"),
        Phase::Bandit => {
            let best = report
                .arms
                .iter()
                .filter(|a| a.context.is_pooled())
                .max_by(|a, b| a.p_best.unwrap_or(0.0).total_cmp(&b.p_best.unwrap_or(0.0)));
            best.map_or_else(String::new, |b| {
                format!(
                    "bandit, leading arm {} with P(best) {:.3}",
                    b.arm_id,
                    b.p_best.unwrap_or(0.0)
                )
            })
        }
    };
    let lift = report.diagnostics.lift.map_or_else(String::new, |l| {
        format!(
            "; lift vs holdout {:+.4} (95% {:+.4} to {:+.4})",
            l.difference, l.difference_low, l.difference_high
        )
    });
    let cells = report
        .allocation
        .iter()
        .filter(|a| !a.context.is_pooled())
        .map(|a| a.context.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let contexts = if cells > 0 {
        format!(" in {cells} contexts and `*`")
    } else {
        String::new()
    };
    let written = if dry_run {
        "dry run, nothing written".to_string()
    } else {
        format!("wrote {}", output_dir.join(&report.optimization).display())
    };
    format!(
        "{}: run {} as of {}: {} arms{contexts}, {} mature units, {} scan; {phase}{lift}; {written}",
        report.optimization,
        report.run_id,
        report.as_of,
        report
            .arms
            .iter()
            .filter(|a| a.context.is_pooled() && a.role == Role::Bandit)
            .count(),
        report.scan.mature_units,
        report.scan.mode
    )
}

fn validate_command(args: ValidateArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    use crate::validate;
    let as_of = args
        .as_of
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(Utc::now);
    let path = config_path(args.config, printer)?;
    let (validation, unreachable) = match config::load(&path) {
        Err(error) => (validate::from_config_error(&error), None),
        Ok(config) => {
            let selected = config.select(&args.optimizations).map_err(usage)?;
            let mut validation = validate::static_checks(&config);
            let mut unreachable = None;
            if !args.offline {
                match crate::warehouse::open(&config.warehouse) {
                    Err(error) => {
                        validation.unreachable(&config, &error.to_string());
                        unreachable = Some(error);
                    }
                    Ok(engine) => {
                        let sample = args.sample.then(|| as_of.timestamp_micros());
                        let found =
                            validate::engine_checks(&config, engine.as_ref(), &selected, sample);
                        validation.findings.extend(found.findings);
                        validation.samples = found.samples;
                    }
                }
            }
            (validation, unreachable)
        }
    };
    let file = path.display().to_string();
    match args.format {
        ValidateFormat::Text => {
            if !(printer.quiet && validation.findings.is_empty()) {
                printer.out(&validate::render_text(&file, &validation));
            }
        }
        ValidateFormat::Json => printer.json(&serde_json::json!({
            "file": file,
            "valid": validation.errors() == 0 && unreachable.is_none(),
            "errors": validation.errors(),
            "findings": validation.findings,
            "samples": validation.samples,
            "warehouse_error": unreachable.as_ref().map(ToString::to_string),
        })),
        ValidateFormat::Github => printer.out(&validate::render_github(&file, &validation)),
    }
    Ok(if unreachable.is_some() {
        ExitStatus::Data
    } else if validation.errors() > 0 {
        ExitStatus::InvalidDefinition
    } else {
        ExitStatus::Success
    })
}

/// Keeps the report rows of the asked contexts: every pair given must appear in the row's context key.
fn in_context(context: &ContextKey, wanted: &[String]) -> bool {
    wanted.is_empty()
        || wanted
            .iter()
            .all(|pair| pair == "*" && context.is_pooled() || context.pairs().any(|p| p == pair))
}

/// Opens the state store of the definitions for reading: its snapshot, without waiting for a
/// training run and without writing anything (so it works on read-only media too).
fn stored(args: &ReportArgs, printer: &Printer) -> Result<crate::state::StateStore, Failure> {
    let config = load_config(args.config.clone(), printer)?;
    config
        .select(std::slice::from_ref(&args.optimization))
        .map_err(usage)?;
    if !config.state.exists() {
        return Err(no_runs(&args.optimization, &config.state));
    }
    crate::state::StateStore::open_for_reading(&config.state)
        .map_err(|e| Failure::new(ExitStatus::Data, e))
}

fn no_runs(optimization: &str, state: &Path) -> Failure {
    Failure::new(
        ExitStatus::Data,
        anyhow!(
            "no run of `{optimization}` is stored in {}\n  hint: run levered train first",
            state.display()
        ),
    )
}

fn report_command(args: ReportArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let store = stored(&args, printer)?;
    let (run, arms) = store
        .latest_report(&args.optimization)
        .map_err(|e| Failure::new(ExitStatus::Data, e))?
        .ok_or_else(|| no_runs(&args.optimization, Path::new("the state store")))?;
    let arms: Vec<_> = arms
        .into_iter()
        .filter(|a| in_context(&a.context, &args.context))
        .collect();
    if let Some(file) = &args.html {
        let history = store
            .history(&args.optimization)
            .map_err(|e| Failure::new(ExitStatus::Data, e))?;
        let mut staged = crate::report::Staged::new();
        staged
            .add(file, &crate::report::html_page(&run, &arms, &history))
            .and_then(|()| staged.publish())
            .map_err(|e| Failure::new(ExitStatus::Data, e))?;
        printer.summary(&format!("{}: wrote {}", args.optimization, file.display()));
        return Ok(ExitStatus::Success);
    }
    match args.format {
        ReportFormat::Table => {
            printer.result(&crate::report::table(
                &format!(
                    "{} (run {}, as of {})",
                    run.optimization,
                    run.run_id,
                    crate::time::rfc3339(run.as_of_us)
                ),
                &arms,
            ));
            if let Some(diagnostics) = &run.diagnostics {
                printer.result(&crate::report::diagnostics_text(diagnostics));
            }
        }
        ReportFormat::Csv => printer.result(&crate::report::report_csv(&arms)),
        ReportFormat::Json => printer.json(&serde_json::json!({"run": run, "arms": arms})),
    }
    Ok(ExitStatus::Success)
}

fn history_command(args: ReportArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let store = stored(&args, printer)?;
    let rows: Vec<_> = store
        .history(&args.optimization)
        .map_err(|e| Failure::new(ExitStatus::Data, e))?
        .into_iter()
        .filter(|h| in_context(&h.context, &args.context))
        .collect();
    if rows.is_empty() {
        return Err(no_runs(&args.optimization, Path::new("the state store")));
    }
    match args.format {
        ReportFormat::Json => printer.json(&serde_json::to_value(&rows).unwrap_or_default()),
        ReportFormat::Table | ReportFormat::Csv => {
            printer.result(&crate::report::history_csv(&rows));
        }
    }
    Ok(ExitStatus::Success)
}

fn assign_command(args: AssignArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    use crate::allocation::{assign, context_key};
    let config = load_config(args.config, printer)?;
    let optimization = config
        .select(std::slice::from_ref(&args.optimization))
        .map_err(usage)?[0];
    let at = args
        .at
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or_else(Utc::now);
    let factors = &optimization.context_factors;
    let mut pairs = Vec::new();
    for given in &args.context {
        let Some((factor, value)) = given.split_once('=') else {
            return Err(usage(format!(
                "--context `{given}` is not FACTOR=VALUE\n  hint: e.g. --context country=US"
            )));
        };
        if !factors.iter().any(|f| f == factor) {
            return Err(usage(format!(
                "`{factor}` is not a context factor of `{}`\n  hint: its context factors: {}",
                optimization.name,
                if factors.is_empty() {
                    "none (a mab model)".to_string()
                } else {
                    factors.join(", ")
                }
            )));
        }
        pairs.push((factor.to_string(), value.to_string()));
    }
    let path = config
        .output_dir
        .join(&optimization.name)
        .join("allocation.csv");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Failure::new(
            ExitStatus::Data,
            anyhow!(
                "cannot read {}: {e}\n  hint: run levered train first",
                path.display()
            ),
        )
    })?;
    let rows = serving_rows(&text).map_err(|why| {
        Failure::new(
            ExitStatus::Data,
            anyhow!(
                "{}: {why:#}\n  hint: run levered train to rewrite it",
                path.display()
            ),
        )
    })?;
    let batch = (optimization.model.batch.micros() / 1_000_000).max(1);
    let batch_start = at.timestamp().div_euclid(batch) * batch;
    let key = context_key(factors, &pairs);
    let served =
        assign(&rows, &optimization.name, &args.unit, &key, batch_start).ok_or_else(|| {
            Failure::new(
                ExitStatus::Data,
                anyhow!("{} has no row for context `{key}` nor `*`", path.display()),
            )
        })?;
    let mut json = serde_json::json!({"optimization": optimization.name, "unit": args.unit});
    if let (Some(object), serde_json::Value::Object(fields)) = (
        json.as_object_mut(),
        serde_json::to_value(&served).unwrap_or_default(),
    ) {
        object.extend(fields);
    }
    printer.json(&json);
    printer.result(&format!(
        "{} {} (weight {}, context {}, batch from {})\n",
        if served.holdout {
            "holdout".to_string()
        } else {
            format!("arm {}", served.arm_id)
        },
        served.variant,
        crate::report::sig17(served.weight),
        served.context,
        crate::time::rfc3339(served.batch_start * 1_000_000)
    ));
    Ok(ExitStatus::Success)
}

fn simulate_command(args: SimulateArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let mut scenario = crate::simulate::Scenario::load(&args.scenario)
        .map_err(|e| Failure::new(ExitStatus::InvalidDefinition, e))?;
    if let Some(n) = args.repetitions {
        scenario.repetitions = n.max(1);
    }
    let out = args
        .out
        .unwrap_or_else(|| Path::new("simulation").join(&scenario.name));
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let summaries = crate::simulate::simulate(
        &scenario,
        &out,
        args.html.as_deref(),
        jobs,
        args.fast,
        printer,
    )
    .map_err(|e| Failure::new(ExitStatus::Data, e))?;
    printer.result(&crate::simulate::table(&scenario.name, &summaries));
    printer.json(&serde_json::to_value(&summaries).unwrap_or_default());
    printer.summary(&format!(
        "{}: wrote {} and {}",
        scenario.name,
        out.join("hourly.csv").display(),
        out.join("summary.csv").display()
    ));
    Ok(ExitStatus::Success)
}

fn generate_command(args: GenerateArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let summary = crate::synth::generate(&args.out, args.exposures, args.days, args.seed)
        .map_err(|e| Failure::new(ExitStatus::Data, e))?;
    printer.summary(&summary);
    Ok(ExitStatus::Success)
}

/// The rows of an `allocation.csv` as the serving side reads them.
fn serving_rows(text: &str) -> anyhow::Result<Vec<crate::allocation::ServingRow>> {
    crate::report::parse_csv(text)
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let record = i + 1;
            let get = |column: &str| {
                row.get(column)
                    .map(String::as_str)
                    .ok_or_else(|| anyhow!("record {record} has no `{column}` column"))
            };
            let weight = get("weight")?;
            Ok(crate::allocation::ServingRow {
                context: ContextKey::new(get("context")?),
                arm_id: ArmId::parse(get("arm_id")?).with_context(|| format!("record {record}"))?,
                role: Role::parse(get("role")?).with_context(|| format!("record {record}"))?,
                variant: get("variant")?.to_string(),
                weight: weight.parse().map_err(|_| {
                    anyhow!("record {record}: the weight `{weight}` is not a number")
                })?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_future_as_of_is_refused_with_how_far_ahead_it_lies() {
        let now: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let message = |as_of: &str| {
            let as_of: DateTime<Utc> = as_of.parse().unwrap();
            check_not_future(as_of, now, false)
                .map(|()| String::new())
                .unwrap_or_else(|f| f.error.to_string())
        };
        assert_eq!(message("2026-01-01T01:00:00Z"), "", "within the margin");
        assert!(message("2026-01-01T01:01:00Z").contains(" is 61 minutes past the clock"));
        assert!(message("2026-01-01T05:00:00Z").contains(" is 5 hours past the clock"));
        assert!(message("2028-09-27T00:00:00Z").contains(" is 1000 days past the clock"));
        let later: DateTime<Utc> = "2062-01-01T00:00:00Z".parse().unwrap();
        assert!(check_not_future(later, now, true).is_ok(), "--allow-future");
    }
}
