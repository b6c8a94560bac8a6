//! `levered simulate`: a scenario's policies against simulated traffic.

use std::path::Path;

use crate::cli::SimulateArgs;
use crate::exit::{ExitStatus, Failure, Kind};
use crate::output::Printer;

pub(super) fn simulate_command(
    args: SimulateArgs,
    printer: &Printer,
) -> Result<ExitStatus, Failure> {
    let mut scenario = crate::simulate::Scenario::load(&args.scenario)
        .map_err(|e| Failure::new(Kind::Definition, e))?;
    if let Some(n) = args.repetitions {
        scenario.repetitions = n;
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
    .map_err(Failure::data)?;
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
