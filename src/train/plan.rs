//! Stage 1 of a training run: what to scan. The roster of arms (stored arms reconciled with the
//! definition), whether every batch must be recomputed and why, and the scan plan.

use std::collections::BTreeMap;

use anyhow::anyhow;
use sha2::{Digest, Sha256};

use crate::allocation::Roster;
use crate::config::{Config, Optimization};
use crate::state::{LastRun, Store};
use crate::warehouse::{self, ScanPlan};

use super::roster::{is_excluded, roster_arm};
use super::TrainOptions;
use crate::time::Instant;

/// The run's starting point: the last run, the arms and the scan.
pub(super) struct Planned<'a> {
    pub(super) last: Option<LastRun>,
    pub(super) roster: Roster,
    pub(super) scan: ScanPlan<'a>,
    /// Why every batch is recomputed; `None` for an incremental run.
    pub(super) full_reason: Option<String>,
    pub(super) sql_hash: String,
    pub(super) definition_hash: String,
}

/// Plans the run of `optimization` as of `options.as_of`; an `as_of` earlier than the last run's is
/// refused unless `--full`.
pub(super) fn plan<'a>(
    config: &Config,
    optimization: &'a Optimization,
    store: &dyn Store,
    options: &TrainOptions,
) -> anyhow::Result<Planned<'a>> {
    let name = &optimization.name;
    let as_of = Instant::from_utc(options.as_of);
    let last = store.last_run(name)?;
    let roster = reconcile(optimization, store, as_of)?;
    let probe = ScanPlan {
        optimization,
        arms: roster
            .arms
            .iter()
            .map(|a| (a.id, a.levels.clone()))
            .collect(),
        as_of,
        from_batch: None,
    };
    let sql_hash = sql_hash(optimization, &config.warehouse.tables, &probe);
    let definition_hash = sha256_hex(&serde_json::to_string(optimization).unwrap_or_default());
    if let Some(last) = &last {
        if as_of < last.as_of && !options.full {
            return Err(anyhow!(
                "the run's as_of {} is earlier than the last run's ({}, run {})\n  hint: to train as of this time, add --full once (every batch is recomputed up to it); if the last run's as_of was a mistake (a typo, a time in the future), one `levered train --full` without --as-of puts the optimization back on the clock",
                as_of.rfc3339(),
                last.as_of.rfc3339(),
                last.run_id
            ));
        }
    }
    let full_reason = full_reason(optimization, options.full, last.as_ref(), &sql_hash);
    let from_batch = match (&full_reason, &last) {
        (None, Some(last)) => last.final_until,
        _ => None,
    };
    Ok(Planned {
        last,
        roster,
        scan: ScanPlan {
            from_batch,
            ..probe
        },
        full_reason,
        sql_hash,
        definition_hash,
    })
}

/// The stored arms reconciled with the definition's variants, under the generation cap.
pub(super) fn reconcile(
    optimization: &Optimization,
    store: &dyn Store,
    as_of: Instant,
) -> anyhow::Result<Roster> {
    let factor_names: Vec<String> = optimization
        .factors
        .iter()
        .map(|f| f.name.clone())
        .collect();
    let defined: Vec<(Vec<String>, String)> = optimization
        .variants
        .iter()
        .map(|v| (v.0.clone(), optimization.variant_json(v)))
        .collect();
    let cap = optimization
        .generation
        .as_ref()
        .map_or(usize::MAX, |g| g.max_active_arms);
    Ok(Roster::reconcile(
        store
            .arms(&optimization.name)?
            .iter()
            .map(|a| roster_arm(a, &factor_names))
            .collect(),
        &defined,
        |levels| is_excluded(optimization, levels),
        cap,
        as_of,
    ))
}

/// Why this run must recompute every batch, if it must.
fn full_reason(
    optimization: &Optimization,
    full: bool,
    last: Option<&LastRun>,
    sql_hash: &str,
) -> Option<String> {
    if full {
        return Some("--full".into());
    }
    let Some(last) = last else {
        return Some("first run".into());
    };
    if last.sql_hash != sql_hash {
        return Some(
            "the SQL or a data-affecting setting (arms, window, batch, unit, attribution, guardrail metrics) changed"
                .into(),
        );
    }
    if optimization.attribution.unit == crate::config::Unit::Visitor {
        return Some("unit: visitor reads every visitor's first exposure".into());
    }
    last.final_until
        .is_none()
        .then(|| "no batch is final yet".into())
}

/// Identifies everything that determines the stored aggregates: the generated SQL (with the user's
/// SQL inside), the arms, the lengths and the context factors bound into it.
fn sql_hash(
    optimization: &Optimization,
    tables: &BTreeMap<String, String>,
    plan: &ScanPlan<'_>,
) -> String {
    let source = format!("{:?} {tables:?}", optimization.exposures.source);
    let sql = warehouse::aggregation(optimization, &source, true);
    let a = &optimization.attribution;
    sha256_hex(&format!(
        "{sql}\n{:?}\n{}\n{}\n{}\n{}\n{:?}",
        plan.arms,
        a.window.micros(),
        a.late_grace.micros(),
        optimization.model.batch.micros(),
        optimization.name,
        optimization.context_factors
    ))
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

#[cfg(test)]
pub(super) mod tests {
    use std::path::Path;

    use super::*;

    /// A two-arm optimization `hero` with `attribution.unit: unit` and the given `status`.
    pub(in crate::train) fn optimization(unit: &str, status: &str) -> Optimization {
        let yaml = format!(
            "warehouse: {{path: warehouse}}
metrics:
  signup: {{type: bool, sql: 'SELECT anonymous_id, created_at AS timestamp FROM signups'}}
optimizations:
  hero:
    status: {status}
    design_factors: {{color: [red, blue]}}
    reward: signup
    exposures: {{table: exposures}}
    attribution: {{conversion_window: 2h, unit: {unit}}}
    model: {{kind: mab}}
"
        );
        let mut config = crate::config::parse(Path::new("levered.yaml"), &yaml).unwrap();
        config.optimizations.remove("hero").unwrap()
    }

    fn last(sql_hash: &str, final_until: Option<Instant>) -> LastRun {
        LastRun {
            run_id: "20260101T000000Z-0001".into(),
            as_of: Instant::from_micros(0),
            sql_hash: sql_hash.into(),
            final_until,
            first_exposure: None,
            newest_exposure: None,
            winner_arm_id: None,
            winner: None,
            unmatched: Default::default(),
        }
    }

    #[test]
    fn a_run_is_incremental_only_when_nothing_that_shapes_the_batches_changed() {
        let hero = optimization("visitor_batch", "live");
        let same = last("abc", Some(Instant::from_micros(3_600_000_000)));
        assert_eq!(full_reason(&hero, false, Some(&same), "abc"), None);
        assert_eq!(
            full_reason(&hero, true, Some(&same), "abc").as_deref(),
            Some("--full")
        );
        assert_eq!(
            full_reason(&hero, false, None, "abc").as_deref(),
            Some("first run")
        );
        assert!(full_reason(&hero, false, Some(&same), "other")
            .unwrap()
            .starts_with("the SQL or a data-affecting setting"));
        assert_eq!(
            full_reason(&hero, false, Some(&last("abc", None)), "abc").as_deref(),
            Some("no batch is final yet")
        );
        let visitor = optimization("visitor", "live");
        assert!(full_reason(&visitor, false, Some(&same), "abc")
            .unwrap()
            .starts_with("unit: visitor"));
    }
}
