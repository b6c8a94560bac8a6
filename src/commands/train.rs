//! `levered train`: trains the selected optimizations and prints one summary line each.

use std::path::Path;

use anyhow::anyhow;
use chrono::Utc;

use crate::cli::TrainArgs;
use crate::domain::Role;
use crate::exit::{ExitStatus, Failure};
use crate::output::Printer;
use crate::train::{self, Outcome, TrainOptions};

use super::settings::{check_not_future, load_config, lock_timeout, parse_time};

pub(super) fn train_command(args: TrainArgs, printer: &Printer) -> Result<ExitStatus, Failure> {
    let now = Utc::now();
    let as_of = args
        .as_of
        .as_deref()
        .map(parse_time)
        .transpose()?
        .unwrap_or(now);
    check_not_future(as_of, now, args.allow_future)?;
    let lock_timeout = lock_timeout(&args.lock_timeout)?;
    let config = load_config(args.config)?;
    let options = TrainOptions {
        optimizations: args.optimizations,
        all: args.all,
        as_of,
        trained_at: now,
        seed: args.seed,
        dry_run: args.dry_run,
        full: args.full,
        lock_timeout,
    };
    crate::interrupt::catch();
    let outcomes = train::train(&config, &options, printer)?;
    let mut json = Vec::new();
    let mut trained = 0;
    // The exit codes of the failed runs.
    let mut failed = Vec::new();
    for outcome in &outcomes {
        match outcome {
            Outcome::Trained(report) => {
                trained += 1;
                let repeated = &report.diagnostics.repeated_warnings;
                for warning in &report.warnings {
                    if !(printer.quiet && repeated.contains(warning)) {
                        printer.warn(&format!("{}: {warning}", report.optimization));
                    }
                }
                printer.summary(&summary_line(report, options.dry_run, &config.output_dir));
                if options.dry_run {
                    printer.result(&crate::report::table(
                        &format!(
                            "{} (run {}, as of {})",
                            report.optimization, report.run_id, report.as_of
                        ),
                        &report.arms,
                    ));
                }
                json.push(serde_json::json!({"optimization": report.optimization, "outcome": "trained", "run": report}));
            }
            Outcome::Skipped {
                optimization,
                reason,
            } => {
                // After a signal, what was not started is said even under --all.
                if !options.all || crate::interrupt::received().is_some() {
                    printer.summary(&format!("{optimization}: nothing ran: {reason}"));
                }
                json.push(serde_json::json!({"optimization": optimization, "outcome": "skipped", "reason": reason}));
            }
            Outcome::Failed {
                optimization,
                failure,
            } => {
                failed.push(failure.status());
                let error = &failure.error;
                printer.error(&anyhow!("{optimization}: training failed: {error:#}"));
                json.push(serde_json::json!({"optimization": optimization, "outcome": "failed", "error": format!("{error:#}")}));
            }
        }
    }
    printer.json(&serde_json::Value::Array(json));
    if let Some(signal) = crate::interrupt::received() {
        return Ok(ExitStatus::stopped_by(signal));
    }
    // Nothing trained: the failures' code when they share one, else a data error.
    Ok(match (trained, failed.as_slice()) {
        (_, []) => ExitStatus::Success,
        (0, [first, rest @ ..]) if rest.iter().all(|s| s == first) => *first,
        (0, _) => ExitStatus::Data,
        _ => ExitStatus::Partial,
    })
}

fn summary_line(report: &crate::report::RunReport, dry_run: bool, output_dir: &Path) -> String {
    use crate::allocation::Phase;
    let phase = match &report.phase {
        Phase::Completed { winner } => format!("completed, arm {winner} serves all traffic"),
        Phase::BurnIn { reason } => format!("burn-in (equal split: {reason})"),
        Phase::Bandit => {
            let best = report
                .arms
                .iter()
                .filter(|a| a.context.is_pooled())
                .max_by(|a, b| a.p_best.unwrap_or(0.0).total_cmp(&b.p_best.unwrap_or(0.0)));
            best.map_or_else(String::new, |b| {
                format!(
                    "bandit, leading arm {} with P(best) {:.3}",
                    b.arm_id,
                    b.p_best.unwrap_or(0.0)
                )
            })
        }
    };
    let lift = report.diagnostics.lift.map_or_else(String::new, |l| {
        format!(
            "; lift vs holdout {:+.4} (95% {:+.4} to {:+.4})",
            l.difference, l.difference_low, l.difference_high
        )
    });
    let cells = report
        .allocation
        .iter()
        .filter(|a| !a.context.is_pooled())
        .map(|a| a.context.as_str())
        .collect::<std::collections::BTreeSet<_>>()
        .len();
    let contexts = if cells > 0 {
        format!(" in {cells} contexts and `*`")
    } else {
        String::new()
    };
    let written = if dry_run {
        "dry run, nothing written".to_string()
    } else {
        format!("wrote {}", output_dir.join(&report.optimization).display())
    };
    let parts = match report.scan.parts {
        0 | 1 => String::new(),
        parts => format!(" in {parts} parts"),
    };
    let guarded = guardrail_note(report);
    format!(
        "{}: run {} as of {}: {} arms{contexts}, {} mature units, {} scan{parts}; {phase}{lift}{guarded}; {written}",
        report.optimization,
        report.run_id,
        report.as_of,
        report
            .arms
            .iter()
            .filter(|a| a.context.is_pooled() && a.role == Role::Bandit)
            .count(),
        report.scan.mature_units,
        report.scan.mode
    )
}

/// The pooled arms a guardrail holds at the floor, and those it dropped in this run (served
/// before, dropped now), as `; …` parts of the summary line.
fn guardrail_note(report: &crate::report::RunReport) -> String {
    use crate::domain::ArmStatus;
    let harmful = report
        .arms
        .iter()
        .filter(|a| a.context.is_pooled() && a.guardrails.iter().any(|g| g.harmful));
    let (mut held, mut dropped) = (Vec::new(), Vec::new());
    for arm in harmful {
        match arm.status {
            ArmStatus::Dropped if arm.weight_prev.is_none_or(|w| w > 0.0) => {
                dropped.push(arm.arm_id.to_string())
            }
            ArmStatus::Dropped | ArmStatus::Retired | ArmStatus::Proposed => {}
            _ => held.push(arm.arm_id.to_string()),
        }
    }
    let mut note = String::new();
    if !dropped.is_empty() {
        note += &format!("; dropped by a guardrail: arm {}", dropped.join(", "));
    }
    if !held.is_empty() {
        note += &format!(
            "; held at the floor by a guardrail: arm {}",
            held.join(", ")
        );
    }
    note
}
