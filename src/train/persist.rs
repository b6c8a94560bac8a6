//! Stage 8 of a training run: persistence. The report files are staged, the run is committed to the
//! state store in one transaction, then the files are published and old run folders pruned; a
//! signal before the commit abandons the run whole.

use std::path::Path;

use anyhow::{anyhow, Context};

use crate::config::Config;
use crate::interrupt;
use crate::report::{self, RunReport, Staged};
use crate::state::{RunWrite, Store, StoredArm};
use crate::time::Instant;

use super::evidence::Evidence;
use super::plan::Planned;
use super::roster::stored_arm;
use super::TrainOptions;

/// What the run writes beyond its report.
pub(super) struct Written<'a> {
    pub(super) planned: &'a Planned<'a>,
    pub(super) evidence: &'a Evidence,
    pub(super) duckdb_version: String,
    pub(super) duration_ms: i64,
}

/// Writes `report`: its files under `config.output_dir` and the run in `store`.
pub(super) fn persist(
    config: &Config,
    store: &mut dyn Store,
    report: &RunReport,
    written: &Written<'_>,
    options: &TrainOptions,
) -> anyhow::Result<()> {
    let folder = report::inside(&config.output_dir, &report.optimization)?;
    let mut staged = Staged::new();
    stage_files(&mut staged, &folder, report)?;
    if let Some(signal) = interrupt::received() {
        return Err(anyhow!("stopped by {}", interrupt::name(signal)));
    }
    commit(store, report, written, options)?;
    staged.publish()?;
    report::prune_runs(&folder.join("runs"), config.keep_runs as usize)?;
    Ok(())
}

/// Writes the run to `store` in one transaction.
pub(super) fn commit(
    store: &mut dyn Store,
    report: &RunReport,
    written: &Written<'_>,
    options: &TrainOptions,
) -> anyhow::Result<()> {
    let Written {
        planned, evidence, ..
    } = written;
    let arms: Vec<StoredArm> = planned.roster.arms.iter().map(stored_arm).collect();
    store.commit(&RunWrite {
        report,
        seq: evidence.seq,
        as_of: planned.scan.as_of,
        trained_at: Instant::from_utc(options.trained_at),
        definition_hash: &planned.definition_hash,
        sql_hash: &planned.sql_hash,
        duckdb_version: &written.duckdb_version,
        replaced_from: planned.scan.from_batch,
        final_until: evidence.final_until,
        first_exposure: evidence.first_exposure,
        newest_exposure: evidence.newest_exposure,
        winner_arm_id: report.winner.as_ref().map(|w| w.arm_id),
        new_batches: &evidence.scan.rows,
        arms: &arms,
        events: &planned.roster.events,
        duration_ms: written.duration_ms,
    })?;
    Ok(())
}

fn stage_files(staged: &mut Staged, folder: &Path, report: &RunReport) -> anyhow::Result<()> {
    let allocation = report::allocation_csv(&report.allocation);
    let origin = report::Origin {
        optimization: &report.optimization,
        run_id: &report.run_id,
        as_of: &report.as_of,
        metric: &report.metric,
    };
    let arms = report::report_csv(&origin, &report.arms);
    let runs = folder.join("runs");
    let json = serde_json::to_string_pretty(report).context("cannot render the run as JSON")?;
    // What killed runs staged here is dead: this run holds the state store's lock.
    report::remove_leftovers(folder)?;
    report::remove_leftovers(&runs)?;
    staged.add_folder(
        &report::inside(&runs, &report.run_id)?,
        &[
            ("allocation.csv", &allocation),
            ("report.csv", &arms),
            ("run.json", &json),
        ],
    )?;
    staged.add(&folder.join("allocation.csv"), &allocation)?;
    staged.add(&folder.join("report.csv"), &arms)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::train::fixture::Fixture;
    use crate::train::run::report_of;

    #[test]
    fn a_run_is_written_to_its_files_and_to_the_store() {
        let mut world = Fixture::new("{kind: mab}", 10);
        let report = world.staged(|job, planned, evidence, store| {
            let report = report_of(job, planned, evidence, 7);
            let written = super::Written {
                planned,
                evidence,
                duckdb_version: "test".into(),
                duration_ms: 1,
            };
            super::persist(job.config, store, &report, &written, job.options).unwrap();
            report
        });
        let allocation = std::fs::read_to_string(world.path("out/hero/allocation.csv")).unwrap();
        assert_eq!(
            allocation,
            crate::report::allocation_csv(&report.allocation)
        );
        let folder = world.path(&format!("out/hero/runs/{}", report.run_id));
        for file in ["allocation.csv", "report.csv", "run.json"] {
            assert!(folder.join(file).is_file(), "{file}");
        }
        let last = world
            .store
            .last_run("hero")
            .unwrap()
            .expect("the run is stored");
        assert_eq!(last.run_id, report.run_id);
        assert_eq!(world.store.next_seq("hero").unwrap(), 2);
        assert_eq!(world.store.arms("hero").unwrap().len(), 2);
    }
}
