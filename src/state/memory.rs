//! A state store held in memory: what training reads back, kept as Rust values, for the
//! simulator's fast path (thousands of runs a minute, nothing written). It answers every read of
//! [`Store`] as [`StateStore`] answers it for the same writes; a test runs the simulator both ways.

use std::collections::{BTreeMap, BTreeSet};

use crate::domain::{ArmId, ContextKey, Role};
use crate::report::Winner;
use crate::time::Instant;
use crate::warehouse::BatchRow;

use super::store::{LastRun, RunWrite, Served, StateError, StoredArm};
use super::Store;

/// One successful run, as far as training reads it.
#[derive(Debug, Clone)]
struct Run {
    seq: i64,
    run_id: String,
    as_of: Instant,
    sql_hash: String,
    final_until: Instant,
    first_exposure: Option<Instant>,
    newest_exposure: Option<Instant>,
    winner_arm_id: Option<u32>,
    winner: Option<Winner>,
    unmatched: BTreeSet<String>,
    /// The published weights: (context, arm id, role, weight).
    allocation: Vec<(ContextKey, ArmId, Role, f64)>,
}

/// One optimization's state.
#[derive(Debug, Default)]
struct Optimization {
    runs: Vec<Run>,
    arms: Vec<StoredArm>,
    batches: Vec<BatchRow>,
}

#[derive(Debug, Default)]
pub struct MemoryStore {
    optimizations: BTreeMap<String, Optimization>,
}

impl MemoryStore {
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn of(&self, optimization: &str) -> Option<&Optimization> {
        self.optimizations.get(optimization)
    }

    /// The successful runs in the order the store's readers use: by seq.
    fn runs(&self, optimization: &str) -> &[Run] {
        self.of(optimization).map_or(&[], |o| &o.runs)
    }
}

impl Store for MemoryStore {
    fn last_run(&self, optimization: &str) -> Result<Option<LastRun>, StateError> {
        Ok(self.runs(optimization).last().map(|r| LastRun {
            run_id: r.run_id.clone(),
            as_of: r.as_of,
            sql_hash: r.sql_hash.clone(),
            final_until: Some(r.final_until),
            first_exposure: r.first_exposure,
            newest_exposure: r.newest_exposure,
            winner_arm_id: r.winner_arm_id,
            winner: r.winner.clone(),
            unmatched: r.unmatched.clone(),
        }))
    }

    fn next_seq(&self, optimization: &str) -> Result<i64, StateError> {
        Ok(self.runs(optimization).last().map_or(0, |r| r.seq) + 1)
    }

    fn arms(&self, optimization: &str) -> Result<Vec<StoredArm>, StateError> {
        let mut arms = self
            .of(optimization)
            .map_or_else(Vec::new, |o| o.arms.clone());
        arms.sort_by_key(|a| a.arm_id);
        Ok(arms)
    }

    fn batches(
        &self,
        optimization: &str,
        before: Option<Instant>,
    ) -> Result<Vec<BatchRow>, StateError> {
        let mut rows: Vec<BatchRow> = self
            .of(optimization)
            .map_or(&[][..], |o| &o.batches)
            .iter()
            .filter(|b| before.is_none_or(|t| b.batch_start < t))
            .cloned()
            .collect();
        rows.sort_by(|a, b| {
            (a.batch_start, &a.context, a.arm_id, a.holdout).cmp(&(
                b.batch_start,
                &b.context,
                b.arm_id,
                b.holdout,
            ))
        });
        Ok(rows)
    }

    fn last_weights(
        &self,
        optimization: &str,
    ) -> Result<BTreeMap<(ContextKey, ArmId), f64>, StateError> {
        Ok(self
            .runs(optimization)
            .last()
            .map_or_else(BTreeMap::new, |r| {
                r.allocation
                    .iter()
                    .map(|(context, arm, _, weight)| ((context.clone(), *arm), *weight))
                    .collect()
            }))
    }

    fn served(&self, optimization: &str, recent_from: Instant) -> Result<Vec<Served>, StateError> {
        let mut runs: Vec<&Run> = self.runs(optimization).iter().collect();
        runs.sort_by_key(|r| (r.as_of, r.seq));
        let cutoff = runs
            .iter()
            .map(|r| r.as_of)
            .filter(|t| *t <= recent_from)
            .max()
            .unwrap_or(recent_from);
        let mut served: Vec<Served> = Vec::new();
        for run in runs {
            let complete = run.as_of >= cutoff;
            let mut weights: BTreeMap<ContextKey, BTreeMap<ArmId, f64>> = BTreeMap::new();
            for (context, arm, role, weight) in &run.allocation {
                if complete || (context.is_pooled() && *role == Role::Holdout) {
                    weights
                        .entry(context.clone())
                        .or_default()
                        .insert(*arm, *weight);
                }
            }
            // A rerun at the same as_of replaces what the earlier run published.
            if served.last().is_some_and(|last| last.as_of == run.as_of) {
                served.pop();
            }
            served.push(Served {
                as_of: run.as_of,
                complete,
                weights,
            });
        }
        Ok(served)
    }

    fn commit(&mut self, w: &RunWrite<'_>) -> Result<(), StateError> {
        let r = w.report;
        let o = self
            .optimizations
            .entry(r.optimization.clone())
            .or_default();
        match w.replaced_from {
            Some(from) => o.batches.retain(|b| b.batch_start < from),
            None => o.batches.clear(),
        }
        o.batches.extend(w.new_batches.iter().cloned());
        o.arms = w.arms.to_vec();
        o.runs.push(Run {
            seq: w.seq,
            run_id: r.run_id.clone(),
            as_of: w.as_of,
            sql_hash: w.sql_hash.to_string(),
            final_until: w.final_until,
            first_exposure: w.first_exposure,
            newest_exposure: w.newest_exposure,
            winner_arm_id: w.winner_arm_id,
            winner: r.winner.clone(),
            unmatched: r.scan.unmatched.keys().cloned().collect(),
            allocation: r
                .allocation
                .iter()
                .map(|a| (a.context.clone(), a.arm_id, a.role, a.weight))
                .collect(),
        });
        Ok(())
    }
}
