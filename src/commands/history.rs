//! `levered history`: every stored run's weights and P(best) per arm, oldest first.

use std::path::Path;

use crate::cli::{ReportArgs, ReportFormat};
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;

use super::report::{history_of, latest, no_runs, stored, write_page, Stored};

pub(super) fn history_command(args: ReportArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let Stored { store, baseline } = stored(&args)?;
    let rows = history_of(&store, &args)?;
    if rows.is_empty() {
        return Err(if args.context.is_empty() {
            no_runs(&args.optimization, Path::new("the state store"))
        } else {
            Failure::data(anyhow::anyhow!(
                "no stored run of `{}` has rows in context {}\n  hint: `levered report -o {}` lists the contexts of the latest run",
                args.optimization,
                args.context.join(", "),
                args.optimization
            ))
        });
    }
    if let Some(file) = &args.html {
        let (run, arms) = latest(&store, &args)?;
        let names = (args.optimization.as_str(), baseline.as_deref());
        return write_page(file, names, (&run, &arms, &rows), printer);
    }
    match args.format.unwrap_or(ReportFormat::Csv) {
        ReportFormat::Json => printer.json(&serde_json::to_value(&rows).unwrap_or_default()),
        ReportFormat::Csv => printer.result(&crate::report::history_csv(&rows)),
        ReportFormat::Table => printer.result(&crate::report::history_table(
            &format!("{}: allocation history, oldest first", args.optimization),
            &rows,
        )),
    }
    Ok(ExitStatus::Success)
}
