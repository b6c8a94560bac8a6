//! Every (repetition, policy) of a scenario, in parallel, each in its own temporary folder.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::Context;

use crate::output::Printer;
use crate::report::Staged;

use super::run::{run, Trace};
use super::scenario::Scenario;
use super::summary::{self, PolicySummary};

/// Runs the scenario (`fast`: through the in-memory engine) and writes `hourly.csv` and `summary.csv` (and the HTML page) into `out`.
pub fn simulate(
    scenario: &Scenario,
    out: &Path,
    html: Option<&Path>,
    jobs: usize,
    fast: bool,
    printer: &Printer,
) -> anyhow::Result<Vec<PolicySummary>> {
    let work: Vec<(u32, super::scenario::Policy)> = (0..scenario.repetitions)
        .flat_map(|r| scenario.policies.iter().map(move |p| (r, *p)))
        .collect();
    let bar = printer.progress(work.len() as u64, format!("simulating {}", scenario.name));
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<anyhow::Result<Trace>>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, work.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(repetition, policy)) = work.get(i) else {
                    break;
                };
                let result = tempfile::tempdir()
                    .context("cannot create a temporary folder")
                    .and_then(|dir| run(scenario, policy, repetition, dir.path(), fast))
                    .with_context(|| format!("repetition {repetition}, policy {}", policy.name()));
                results.lock().expect("no worker panicked").push(result);
                bar.inc(1);
            });
        }
    });
    bar.finish_and_clear();
    let mut traces = results
        .into_inner()
        .expect("no worker panicked")
        .into_iter()
        .collect::<anyhow::Result<Vec<Trace>>>()?;
    traces.sort_by_key(|t| (t.policy, t.repetition));
    let summaries = summary::summarize(&traces);
    let mut staged = Staged::new();
    staged.add(&out.join("hourly.csv"), &summary::hourly_csv(&traces))?;
    staged.add(&out.join("summary.csv"), &summary::summary_csv(&summaries))?;
    if let Some(file) = html {
        staged.add(file, &super::page::html(scenario, &traces, &summaries))?;
    }
    staged.publish()?;
    Ok(summaries)
}
