//! The only module that prints. Results go to stdout; progress, summaries and warnings to stderr.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct Printer {
    pub quiet: bool,
    pub progress: bool,
    pub format: Format,
}

impl Printer {
    pub fn new(quiet: bool, no_progress: bool, format: Format) -> Printer {
        Printer {
            quiet,
            progress: !quiet && !no_progress && std::io::stderr().is_terminal(),
            format,
        }
    }

    /// A result on stdout (text format): the answer the command was asked for, so `-q` (which
    /// silences summaries and progress) does not hide it.
    pub fn result(&self, text: &str) {
        if self.format == Format::Text {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
        }
    }

    /// A result on stdout whatever the format (the command chose the rendering).
    pub fn out(&self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
    }

    /// A machine-readable result on stdout (`--format json`).
    pub fn json(&self, value: &serde_json::Value) {
        if self.format == Format::Json {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(
                out,
                "{}",
                serde_json::to_string_pretty(value).unwrap_or_default()
            );
        }
    }

    /// A summary line on stderr; silent with `-q`.
    pub fn summary(&self, line: &str) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }

    /// A warning on stderr, even with `-q` (cron mails it).
    pub fn warn(&self, line: &str) {
        eprintln!("warning: {line}");
    }

    /// An error on stderr, with its cause chain.
    pub fn error(&self, error: &anyhow::Error) {
        eprintln!("error: {error:#}");
    }

    /// A progress bar on stderr; hidden off a terminal or with `-q`.
    pub fn progress(&self, length: u64, message: String) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(length);
        bar.set_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(message);
        bar
    }

    /// A spinner on stderr while a query runs; hidden off a terminal or with `-q`.
    pub fn spinner(&self, message: String) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new_spinner();
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message);
        bar.enable_steady_tick(Duration::from_millis(100));
        bar
    }
}
