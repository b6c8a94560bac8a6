//! The imperative shell: parses the command line, runs a command (one file each in this folder)
//! and maps its result to an exit status.

use std::ffi::OsString;

use clap::Parser;

use crate::cli::{AssignFormat, Cli, Command, ReportFormat, ValidateFormat};
use crate::exit::ExitStatus;
use crate::output::{Format, Printer};

use super::{assign, generate, history, reference, report, simulate, train, validate};

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
        Command::Report(args) if args.format == Some(ReportFormat::Json) => Format::Json,
        Command::History(args) if args.format == Some(ReportFormat::Json) => Format::Json,
        Command::Assign(args) if args.format == AssignFormat::Json => Format::Json,
        Command::Simulate(args) if args.format == AssignFormat::Json => Format::Json,
        Command::Validate(_)
        | Command::Report(_)
        | Command::History(_)
        | Command::Assign(_)
        | Command::Simulate(_)
        | Command::Generate(_)
        | Command::Completions(_)
        | Command::Man
        | Command::Schema => Format::Text,
    };
    let printer = Printer::new(cli.quiet, cli.no_progress, format);
    let result = match cli.command {
        Command::Train(args) => train::train_command(args, &printer),
        Command::Validate(args) => validate::validate_command(args, &printer),
        Command::Report(args) => report::report_command(args, &printer),
        Command::History(args) => history::history_command(args, &printer),
        Command::Assign(args) => assign::assign_command(args, &printer),
        Command::Simulate(args) => simulate::simulate_command(args, &printer),
        Command::Generate(args) => generate::generate_command(args, &printer),
        Command::Completions(args) => reference::completions_command(args, &printer),
        Command::Man => reference::man_command(&printer),
        Command::Schema => reference::schema_command(&printer),
    };
    match result {
        Ok(status) => status,
        Err(failure) => {
            printer.error(&failure.error);
            failure.status()
        }
    }
}
