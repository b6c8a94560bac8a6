//! The command line: parsed by clap, then turned into the library's typed options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "levered",
    version,
    about = "Keeps product decisions optimized with multi-armed bandits, using data already in your warehouse",
    after_help = crate::exit::TABLE
)]
pub struct Cli {
    /// Print no summaries or progress: a successful train prints nothing (the answers of report,
    /// history and assign still go to stdout; warnings and errors to stderr, except an
    /// unmatched-rows warning the last run gave too).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Never show progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train optimizations: aggregate in the warehouse, update posteriors, write the allocation.
    #[command(after_help = crate::exit::TABLE)]
    Train(TrainArgs),
    /// Check the definitions and bind every SQL in the warehouse, for CI.
    #[command(after_help = VALIDATE_EXIT)]
    Validate(ValidateArgs),
    /// Show the latest stored report of an optimization, without retraining or querying the warehouse.
    #[command(after_help = READER_EXIT)]
    Report(ReportArgs),
    /// Show the allocation history of an optimization: every stored run's weights and P(best).
    #[command(after_help = READER_EXIT)]
    History(ReportArgs),
    /// The reference serving decision for one visitor, from the current allocation.csv.
    #[command(after_help = ASSIGN_EXIT)]
    Assign(AssignArgs),
    /// Simulate the real pipeline against a synthetic warehouse: regret, traffic on the best arm, lift.
    #[command(after_help = SIMULATE_EXIT)]
    Simulate(SimulateArgs),
    /// Write a deterministic synthetic warehouse (Parquet) from known true rates.
    #[command(after_help = GENERATE_EXIT)]
    Generate(GenerateArgs),
    /// Print the shell completion script of levered, e.g. `levered completions bash >
    /// ~/.local/share/bash-completion/completions/levered`.
    #[command(after_help = PRINT_EXIT)]
    Completions(CompletionsArgs),
    /// Print levered's man page (roff), e.g. `levered man > ~/.local/share/man/man1/levered.1`.
    #[command(after_help = PRINT_EXIT)]
    Man,
    /// Print the JSON Schema of the definitions file, for editors with yaml-language-server, e.g.
    /// `levered schema > levered.schema.json` and `# yaml-language-server: $schema=levered.schema.json`
    /// as the YAML's first line.
    #[command(after_help = PRINT_EXIT)]
    Schema,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("selection").required(true).args(["optimizations", "all"])))]
pub struct TrainArgs {
    /// The definitions file [default: optimizations.yaml].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// An optimization to train (repeatable).
    #[arg(
        long = "optimization",
        short = 'o',
        value_name = "NAME",
        required_unless_present = "all"
    )]
    pub optimizations: Vec<String>,
    /// Train every optimization that is not archived.
    #[arg(long, conflicts_with = "optimizations")]
    pub all: bool,
    /// The run's point in time, RFC 3339 (e.g. 2026-01-03T13:00:00Z) [default: now].
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// Accept an --as-of more than an hour past the clock (refused otherwise: every later run
    /// would be earlier than it).
    #[arg(long, requires = "as_of")]
    pub allow_future: bool,
    /// Seed of the run's random streams [default: model.seed, else drawn and recorded].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Compute and print, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Recompute every batch instead of the non-final ones.
    #[arg(long)]
    pub full: bool,
    /// How long to wait for another run holding the state store.
    #[arg(long, default_value = "60s", value_name = "DURATION")]
    pub lock_timeout: String,
    /// text: summary lines on stderr; json: every outcome, with its run record, on stdout.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
}

pub const VALIDATE_EXIT: &str = "\
Exit codes:
  0  valid (warnings may be printed)
  2  usage error
  3  invalid: at least one error was found
  4  the warehouse cannot be opened (engine checks need it; --offline skips them)";

pub const READER_EXIT: &str = "\
Exit codes:
  0  success
  2  usage error (also: a --context factor the optimization does not have)
  3  invalid definition (YAML file)
  4  no stored run, or the state store cannot be read";

pub const ASSIGN_EXIT: &str = "\
Exit codes:
  0  success
  2  usage error (also: a --context factor the optimization does not have)
  3  invalid definition (YAML file)
  4  allocation.csv is missing or unreadable, or has no row to serve";

pub const SIMULATE_EXIT: &str = "\
Exit codes:
  0  success
  2  usage error
  3  invalid scenario
  4  the simulated pipeline failed";

pub const GENERATE_EXIT: &str = "\
Exit codes:
  0  success
  2  usage error
  4  the warehouse could not be written";

pub const PRINT_EXIT: &str = "\
Exit codes:
  0  success
  2  usage error";

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ValidateFormat {
    Text,
    Json,
    /// GitHub Actions workflow commands (`::error file=...,line=...::message`).
    Github,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The definitions file [default: optimizations.yaml].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Check only these optimizations' exposure sources (repeatable); metrics are always checked.
    #[arg(long = "optimization", short = 'o', value_name = "NAME")]
    pub optimizations: Vec<String>,
    /// Static checks only: do not open the warehouse.
    #[arg(long)]
    pub offline: bool,
    /// Also run each optimization's aggregation over the last day and report counts.
    #[arg(long, conflicts_with = "offline")]
    pub sample: bool,
    /// The end of the sampled day, RFC 3339 [default: now].
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
    /// text: findings with their line; json: the findings as a list, for CI annotations.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ValidateFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The definitions file [default: optimizations.yaml].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The optimization to show.
    #[arg(long = "optimization", short = 'o', value_name = "NAME")]
    pub optimization: String,
    /// Only rows of this context, as factor=value (repeatable; `*` is the pooled context).
    #[arg(long, value_name = "FACTOR=VALUE")]
    pub context: Vec<String>,
    /// How to print [default: table for report, csv for history].
    #[arg(long, value_enum)]
    pub format: Option<ReportFormat>,
    /// Write a self-contained HTML page with charts to this file instead.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Accepted and ignored: readers take no lock (they read the snapshot), so scripts written
    /// for older versions keep working.
    #[arg(long, hide = true, value_name = "DURATION")]
    pub lock_timeout: Option<String>,
}

#[derive(Debug, Args)]
pub struct AssignArgs {
    /// The definitions file [default: optimizations.yaml].
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The optimization to serve.
    #[arg(long = "optimization", short = 'o', value_name = "NAME")]
    pub optimization: String,
    /// The visitor's anonymous id.
    #[arg(long, value_name = "VISITOR")]
    pub unit: String,
    /// A context value of the visitor, as factor=value (repeatable).
    #[arg(long, value_name = "FACTOR=VALUE")]
    pub context: Vec<String>,
    /// When the visitor is served, RFC 3339 [default: now]; picks the batch.
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// text: one line; json: an object.
    #[arg(long, value_enum, default_value = "text")]
    pub format: AssignFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AssignFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// The scenario file (see examples/scenarios/).
    pub scenario: PathBuf,
    /// The folder for hourly.csv and summary.csv [default: simulation/<scenario name>].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Also write a self-contained HTML page with the regret chart.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Repetitions and policies run in parallel [default: the number of cores].
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Override the scenario's number of repetitions (at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub repetitions: Option<u32>,
    /// Aggregate the simulated units in memory instead of writing a warehouse and running SQL (the
    /// same training code otherwise, and the same results).
    #[arg(long)]
    pub fast: bool,
    /// text: one line; json: an object.
    #[arg(long, value_enum, default_value = "text")]
    pub format: AssignFormat,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The folder to write the Parquet tables into (created; existing tables are replaced).
    #[arg(long, default_value = "fixtures/warehouse")]
    pub out: PathBuf,
    /// Visits to generate; each exposes `hero`, and about 30% also `checkout`.
    #[arg(long, default_value_t = 60_000)]
    pub exposures: u64,
    /// Days of traffic, ending at 2026-01-08T00:00:00Z (1 to 3650).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// The seed of the generated data: the same seed and sizes give the same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
