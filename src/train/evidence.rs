//! Stage 2 of a training run: the evidence. The warehouse aggregates the planned batches while the
//! state store is read (the stored batches before them, the served weights, the run's sequence
//! number and the last run's weights).

use std::collections::BTreeMap;

use crate::config::Optimization;
use crate::domain::{ArmId, ContextKey};
use crate::interrupt;
use crate::output::Printer;
use crate::state::{Served, Store};
use crate::time::Instant;
use crate::warehouse::{self, BatchRow, Engine, ScanResult};

use super::plan::Planned;
use super::tally;

/// What the run knows of the traffic.
pub(super) struct Evidence {
    /// The scan of the recomputed batches.
    pub(super) scan: ScanResult,
    /// Every batch: the stored ones before the scan's first batch, then the scanned ones.
    pub(super) batches: Vec<BatchRow>,
    pub(super) served: Vec<Served>,
    /// The run's sequence number among the optimization's runs.
    pub(super) seq: i64,
    /// The last run's weights, by (context, arm id).
    pub(super) previous: BTreeMap<(ContextKey, ArmId), f64>,
    /// The end of the batches that are final after this run.
    pub(super) final_until: Instant,
    pub(super) first_exposure: Option<Instant>,
    pub(super) newest_exposure: Option<Instant>,
}

/// Reads the evidence of `planned`; a signal cancels the warehouse query.
pub(super) fn read(
    optimization: &Optimization,
    engine: &dyn Engine,
    store: &mut dyn Store,
    planned: &Planned<'_>,
    printer: &Printer,
) -> anyhow::Result<Evidence> {
    let name = &optimization.name;
    let as_of = planned.scan.as_of;
    let from_batch = planned.scan.from_batch;
    // The SRM test reads the full weights of the runs that served its newest complete batches.
    let srm_from = as_of
        - optimization.attribution.window
        - optimization.model.batch * (tally::SRM_BATCHES as i64 + 2);
    let spinner = printer.spinner(format!("{name}: aggregating in the warehouse"));
    let (scan, reads) = std::thread::scope(|scope| {
        let store = &mut *store;
        let reads = scope.spawn(move || {
            let stored = match from_batch {
                Some(from) => store.batches(name, Some(from))?,
                None => Vec::new(),
            };
            let served = store.served(name, srm_from)?;
            Ok::<_, crate::state::StateError>((
                stored,
                served,
                store.next_seq(name)?,
                store.last_weights(name)?,
            ))
        });
        let cancel = engine.canceller();
        let scan = interrupt::cancellable(cancel.as_deref(), || engine.aggregate(&planned.scan));
        let reads = reads
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (scan, reads)
    });
    spinner.finish_and_clear();
    let scan = scan?;
    let (stored, served, seq, previous) = reads?;
    let incremental = from_batch.is_some();
    let last = planned.last.as_ref();
    let first_exposure = earliest(
        scan.first_exposure,
        last.and_then(|l| l.first_exposure),
        incremental,
    );
    let newest_exposure = if incremental {
        scan.newest_exposure
            .max(last.and_then(|l| l.newest_exposure))
    } else {
        scan.newest_exposure
    };
    let final_until = warehouse::final_until(optimization, as_of);
    Ok(Evidence {
        batches: stored.iter().chain(&scan.rows).cloned().collect(),
        final_until: from_batch.map_or(final_until, |from| final_until.max(from)),
        first_exposure,
        newest_exposure,
        scan,
        served,
        seq,
        previous,
    })
}

fn earliest(
    scanned: Option<Instant>,
    stored: Option<Instant>,
    incremental: bool,
) -> Option<Instant> {
    match (scanned, stored, incremental) {
        (Some(a), Some(b), true) => Some(a.min(b)),
        (a, b, true) => a.or(b),
        (a, _, false) => a,
    }
}

#[cfg(test)]
mod tests {
    use crate::time::Span;
    use crate::train::fixture::Fixture;
    use crate::warehouse::Unmatched;

    #[test]
    fn the_engine_aggregates_become_the_runs_batches_and_unmatched_rows_are_counted() {
        let mut world = Fixture::new("{kind: mab}", 10);
        let odd = crate::simulate::memory::Unit {
            levels: vec!["green".into()],
            ..world.memory.units[0].clone()
        };
        world.memory.units.push(odd);
        world.staged(|_, planned, evidence, _| {
            // A unit counts once its 2 h window has closed: visitors exposed by as_of - 2 h, one
            // every 6 minutes, i = 0..=220.
            let units: i64 = evidence.batches.iter().map(|b| b.units).sum();
            assert_eq!(units, 221);
            let conversions: i64 = evidence.batches.iter().map(|b| b.conversions).sum();
            // Visitor i is pair i / 2: red (even i, pairs 0..=110) converts at pairs 0, 10, .., 110
            // (12), blue (odd i, pairs 0..=109) at pairs whose last digit is 0, 1 or 2 (33).
            assert_eq!(conversions, 12 + 33);
            assert_eq!(evidence.scan.unmatched[&Unmatched::UnknownVariant], 1);
            assert_eq!(evidence.seq, 1, "the store holds no run yet");
            assert_eq!(
                evidence.newest_exposure,
                Some(planned.scan.as_of - Span::from_seconds(360))
            );
        });
    }
}
