//! `levered completions` and `levered man`: the shell completion script and the man page, both
//! generated from the clap definition of the command line (src/cli.rs), so they never disagree
//! with `--help`.

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
    clap_mangen::Man::new(Cli::command())
        .render(&mut page)
        .map_err(Failure::data)?;
    printer.out(&String::from_utf8_lossy(&page));
    Ok(ExitStatus::Success)
}
