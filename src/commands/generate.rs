//! `levered generate`: a synthetic warehouse with known truth.

use crate::cli::GenerateArgs;
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;

pub(super) fn generate_command(
    args: GenerateArgs,
    printer: &Printer,
) -> Result<ExitStatus, Failure> {
    let summary =
        crate::synth::write_example_warehouse(&args.out, args.exposures, args.days, args.seed)
            .map_err(Failure::data)?;
    printer.summary(&summary);
    Ok(ExitStatus::Success)
}
