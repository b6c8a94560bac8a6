//! `levered history`: every stored run's weights and P(best) per arm, oldest first.

use std::path::Path;

use crate::cli::{ReportArgs, ReportFormat};
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;

use super::report::{in_context, no_runs, stored};

pub(super) fn history_command(args: ReportArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let store = stored(&args)?;
    let rows: Vec<_> = store
        .history(&args.optimization)?
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
