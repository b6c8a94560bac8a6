//! Generation: filling the places freed under `generation.max_active_arms`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::allocation::{Roster, RosterArm};
use crate::config::{Generation, Optimization, Strategy};
use crate::domain::ArmStatus;
use crate::generator;
use crate::model;
use crate::time::Instant;

use super::roster::is_excluded;
use super::tally::Cell;
use super::ArmComparison;

/// What generation may rank new arms by.
pub(super) struct Evidence<'a> {
    pub(super) fitted: &'a BTreeMap<u32, model::Fitted>,
    pub(super) tally: &'a Cell,
    pub(super) comparison: &'a ArmComparison,
}

/// Fills the free places under `generation.max_active_arms`: from the proposed arms (ranked by the
/// additive per-factor model for `factorial`, in level order for `command`), then, for `command`,
/// with the variants the command proposes. A failing command is a warning.
pub(super) fn propose_arms(
    optimization: &Optimization,
    generation: &Generation,
    roster: &mut Roster,
    evidence: &Evidence<'_>,
    now: Instant,
    warnings: &mut Vec<String>,
) {
    let cap = generation.max_active_arms;
    if roster.serving_count() >= cap {
        return;
    }
    let proposed: Vec<&RosterArm> = roster
        .arms
        .iter()
        .filter(|a| a.status == ArmStatus::Proposed)
        .collect();
    match &generation.strategy {
        Strategy::Factorial => {
            let observed: Vec<model::Observed> = roster
                .arms
                .iter()
                .filter(|a| evidence.tally.raw(a.id).units > 0.0)
                .map(|a| {
                    let posterior = evidence.fitted[&a.id].posterior;
                    model::Observed {
                        levels: a.levels.clone(),
                        mean: posterior.mean(),
                        spread: posterior.spread(),
                    }
                })
                .collect();
            let baseline = optimization
                .variants
                .first()
                .map(|v| v.0.clone())
                .unwrap_or_default();
            let candidates: Vec<Vec<String>> = proposed.iter().map(|a| a.levels.clone()).collect();
            let predicted = model::predict_additive(&observed, &candidates, &baseline);
            let mut ranked: Vec<(u32, f64)> = proposed
                .iter()
                .zip(predicted)
                .map(|(a, p)| (a.id, p))
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            let order: Vec<u32> = ranked.iter().map(|r| r.0).collect();
            roster.start_proposed(
                &order,
                cap,
                "a place was free: ranked first among the proposed arms by the additive per-factor model",
                now,
            );
        }
        Strategy::Command { argv, timeout, dir } => {
            let order: Vec<u32> = proposed.iter().map(|a| a.id).collect();
            roster.start_proposed(&order, cap, "a place was free", now);
            let wanted = cap.saturating_sub(roster.serving_count());
            if wanted == 0 {
                return;
            }
            let input = history_json(optimization, roster, evidence, wanted, now);
            let timeout = Duration::from_micros(timeout.micros() as u64);
            let factor_names: Vec<String> = optimization
                .factors
                .iter()
                .map(|f| f.name.clone())
                .collect();
            let answer = generator::run(argv, dir, &input, timeout)
                .and_then(|out| generator::parse(&out, &factor_names));
            let (variants, refused) = match answer {
                Ok(answer) => answer,
                Err(why) => {
                    warnings.push(format!(
                        "generation command: {why}; no new arm this run (the places stay free)"
                    ));
                    return;
                }
            };
            let mut refused = refused;
            let mut added = 0;
            for levels in variants {
                if added == wanted {
                    refused.push(format!("more than the {wanted} variants asked for"));
                    break;
                }
                if is_excluded(optimization, &levels) {
                    refused.push(format!("{levels:?} is an excluded combination"));
                    continue;
                }
                let json = optimization.variant_json(&crate::config::Variant(levels.clone()));
                match roster.add_generated(
                    levels.clone(),
                    json,
                    "proposed by the generation command",
                    now,
                ) {
                    Some(_) => added += 1,
                    None => refused.push(format!(
                        "{levels:?} is already an arm (ids are never reused)"
                    )),
                }
            }
            if !refused.is_empty() {
                warnings.push(format!(
                    "generation command: refused {}",
                    refused.join("; ")
                ));
            }
        }
    }
}

/// The input of a generation command (protocol version 1, docs/generation.md).
fn history_json(
    optimization: &Optimization,
    roster: &Roster,
    evidence: &Evidence<'_>,
    wanted: usize,
    now: Instant,
) -> String {
    let arms: Vec<serde_json::Value> = roster
        .arms
        .iter()
        .map(|a| {
            let sums = evidence.tally.raw(a.id);
            let posterior = evidence.fitted[&a.id].posterior;
            let interval = posterior.interval(0.95);
            serde_json::json!({
                "arm_id": a.id,
                "variant": serde_json::from_str::<serde_json::Value>(&a.variant).unwrap_or_default(),
                "status": a.status.as_str(),
                "units": sums.units,
                "conversions": sums.conversions,
                "value_sum": sums.value_sum,
                "mean": posterior.mean(),
                "ci_low": interval.low,
                "ci_high": interval.high,
                "p_best": evidence.comparison.p_best(a.id),
            })
        })
        .collect();
    serde_json::json!({
        "protocol": 1,
        "optimization": optimization.name,
        "as_of": now.rfc3339(),
        "wanted": wanted,
        "metric": {"name": optimization.reward.name, "type": optimization.reward.kind},
        "factors": optimization.factors.iter().map(|f| serde_json::json!({"name": f.name, "levels": f.levels})).collect::<Vec<_>>(),
        "arms": arms,
    })
    .to_string()
}
