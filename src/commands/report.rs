//! `levered report`: the latest stored run of an optimization, from the state store's snapshot;
//! and what `history` shares with it.

use std::path::Path;

use anyhow::anyhow;

use crate::cli::{ReportArgs, ReportFormat};
use crate::domain::ContextKey;
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;
use crate::report::{ArmReport, HistoryRow, RunInfo};

use super::settings::{context_factors, load_config};

/// Keeps the report rows of the asked contexts: every pair given must appear in the row's context key.
fn in_context(context: &ContextKey, wanted: &[String]) -> bool {
    wanted.is_empty()
        || wanted
            .iter()
            .all(|pair| pair == "*" && context.is_pooled() || context.pairs().any(|p| p == pair))
}

/// The state store opened for reading, and the baseline arm's variant (JSON text) of the
/// optimization's definition, which the HTML page compares the arms with.
pub(super) struct Stored {
    pub(super) store: crate::state::StateStore,
    pub(super) baseline: Option<String>,
}

/// Opens the state store of the definitions for reading: its snapshot, without waiting for a
/// training run and without writing anything (so it works on read-only media too).
pub(super) fn stored(args: &ReportArgs) -> Result<Stored, Failure> {
    let config = load_config(args.config.clone())?;
    let selected = config
        .select(std::slice::from_ref(&args.optimization))
        .map_err(Failure::usage)?;
    let optimization = selected[0];
    check_contexts(optimization, &args.context)?;
    if !config.state.exists() {
        return Err(no_runs(&args.optimization, &config.state));
    }
    Ok(Stored {
        store: crate::state::StateStore::open_for_reading(&config.state)?,
        baseline: optimization
            .variants
            .first()
            .map(|v| optimization.variant_json(v)),
    })
}

/// Writes the HTML page of the latest run and the history (`--html` of report and history).
pub(super) fn write_page(
    file: &Path,
    (optimization, baseline): (&str, Option<&str>),
    (run, arms, history): (&RunInfo, &[ArmReport], &[HistoryRow]),
    printer: &Printer,
) -> Result<ExitStatus, Failure> {
    let mut staged = crate::report::Staged::new();
    staged
        .add(
            file,
            &crate::report::html_page(run, arms, history, baseline),
        )
        .and_then(|()| staged.publish())
        .map_err(Failure::data)?;
    printer.summary(&format!("{optimization}: wrote {}", file.display()));
    Ok(ExitStatus::Success)
}

/// Refuses a `--context` that cannot match: a pair whose factor is not a context factor of the
/// optimization (every pair but `*` on a model without contexts).
fn check_contexts(
    optimization: &crate::config::Optimization,
    wanted: &[String],
) -> Result<(), Failure> {
    let factors = &optimization.context_factors;
    for pair in wanted.iter().filter(|p| *p != "*") {
        let factor = pair.split_once('=').map(|(f, _)| f);
        if factor.is_none_or(|f| !factors.iter().any(|known| known == f)) {
            return Err(Failure::usage(format!(
                "--context `{pair}` is not FACTOR=VALUE of a context factor of `{}`\n  hint: its context factors: {}",
                optimization.name,
                context_factors(optimization)
            )));
        }
    }
    Ok(())
}

pub(super) fn no_runs(optimization: &str, state: &Path) -> Failure {
    Failure::data(anyhow!(
        "no run of `{optimization}` is stored in {}\n  hint: run levered train first",
        state.display()
    ))
}

/// The latest stored run and its report rows of the asked contexts.
pub(super) fn latest(
    store: &crate::state::StateStore,
    args: &ReportArgs,
) -> Result<(RunInfo, Vec<ArmReport>), Failure> {
    let (run, arms) = store
        .latest_report(&args.optimization)?
        .ok_or_else(|| no_runs(&args.optimization, Path::new("the state store")))?;
    let arms = arms
        .into_iter()
        .filter(|a| in_context(&a.context, &args.context))
        .collect();
    Ok((run, arms))
}

/// The stored allocation history, oldest first, of the asked contexts.
pub(super) fn history_of(
    store: &crate::state::StateStore,
    args: &ReportArgs,
) -> Result<Vec<HistoryRow>, Failure> {
    Ok(store
        .history(&args.optimization)?
        .into_iter()
        .filter(|h| in_context(&h.context, &args.context))
        .collect())
}

pub(super) fn report_command(args: ReportArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let Stored { store, baseline } = stored(&args)?;
    let (run, arms) = latest(&store, &args)?;
    if let Some(file) = &args.html {
        let history = history_of(&store, &args)?;
        let names = (args.optimization.as_str(), baseline.as_deref());
        return write_page(file, names, (&run, &arms, &history), printer);
    }
    match args.format.unwrap_or(ReportFormat::Table) {
        ReportFormat::Table => {
            printer.result(&crate::report::table(
                &format!(
                    "{} (run {}, as of {})",
                    run.optimization,
                    run.run_id,
                    run.as_of.rfc3339()
                ),
                &arms,
            ));
            if let Some(diagnostics) = &run.diagnostics {
                printer.result(&crate::report::diagnostics_text(diagnostics));
            }
        }
        ReportFormat::Csv => {
            let as_of = run.as_of.rfc3339();
            let origin = crate::report::Origin {
                optimization: &run.optimization,
                run_id: &run.run_id,
                as_of: &as_of,
                metric: run.metric.as_deref().unwrap_or_default(),
            };
            printer.result(&crate::report::report_csv(&origin, &arms));
        }
        ReportFormat::Json => printer.json(&serde_json::json!({"run": run, "arms": arms})),
    }
    Ok(ExitStatus::Success)
}
