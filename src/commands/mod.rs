//! The commands: one file each, `fn(args, printer) -> Result<ExitStatus, Failure>`, dispatched by
//! `run`, with the settings they share resolved in `settings`.

mod assign;
mod generate;
mod history;
mod reference;
mod report;
mod run;
mod settings;
mod simulate;
mod train;
mod validate;

pub use run::run;
