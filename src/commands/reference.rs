//! `levered completions` and `levered man`: the shell completion script and the man page, both
//! generated from the clap definition of the command line (src/cli.rs), so they never disagree
//! with `--help`; `levered schema`: the JSON Schema of the definitions file
//! (docs/definitions.schema.json, which a test keeps in step with the checked keys).

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;

pub(super) fn completions_command(
    args: CompletionsArgs,
    printer: &Printer,
) -> Result<ExitStatus, Failure> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "levered", &mut script);
    printer.out(&String::from_utf8_lossy(&script));
    Ok(ExitStatus::Success)
}

pub(super) fn man_command(printer: &Printer) -> Result<ExitStatus, Failure> {
    let mut page = Vec::new();
    // Rendering into memory fails only on a broken clap definition: a bug, not a usage error.
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .expect("the man page renders into memory");
    printer.out(&String::from_utf8_lossy(&page));
    Ok(ExitStatus::Success)
}

/// The JSON Schema of the definitions file.
pub const DEFINITIONS_SCHEMA: &str = include_str!("../../docs/definitions.schema.json");

pub(super) fn schema_command(printer: &Printer) -> Result<ExitStatus, Failure> {
    printer.out(DEFINITIONS_SCHEMA);
    Ok(ExitStatus::Success)
}
