//! The arm roster as the state store keeps it, and the definition's view of variants.

use crate::allocation::RosterArm;
use crate::config::Optimization;
use crate::domain::ArmStatus;
use crate::state::StoredArm;

/// The levels of a stored variant JSON object, in factor order; a factor it lacks gets a
/// placeholder no level equals, so that an arm of an older factor set matches nothing.
pub(super) fn levels_of(json: &str, factors: &[String]) -> Vec<String> {
    let object = match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    factors
        .iter()
        .map(|f| match object.get(f) {
            Some(v) => v.as_str().map_or_else(|| v.to_string(), str::to_string),
            None => "\u{0}absent".into(),
        })
        .collect()
}

pub(super) fn roster_arm(stored: &StoredArm, factors: &[String]) -> RosterArm {
    RosterArm {
        id: stored.arm_id,
        levels: levels_of(&stored.variant, factors),
        variant: stored.variant.clone(),
        status: stored.status,
        since: stored.since,
        reason: stored.reason.clone(),
        // Stores from before the lifecycle have no start: a serving arm started at its `since`.
        started: stored.started.or_else(|| {
            matches!(stored.status, ArmStatus::Active | ArmStatus::Incubating)
                .then_some(stored.since)
        }),
        initial: stored.initial,
        origin: stored.origin,
    }
}

pub(super) fn stored_arm(arm: &RosterArm) -> StoredArm {
    StoredArm {
        arm_id: arm.id,
        variant: arm.variant.clone(),
        status: arm.status,
        since: arm.since,
        reason: arm.reason.clone(),
        started: arm.started,
        initial: arm.initial,
        origin: arm.origin,
    }
}

/// Whether levels of the defined factors form a combination the definition excludes.
pub(super) fn is_excluded(optimization: &Optimization, levels: &[String]) -> bool {
    levels.len() == optimization.factors.len()
        && levels
            .iter()
            .zip(&optimization.factors)
            .all(|(level, factor)| factor.levels.contains(level))
        && !optimization.variants.iter().any(|v| v.0 == levels)
}
