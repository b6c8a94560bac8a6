//! The decision rule: which share of traffic each arm gets next batch.

use crate::config::Status;

/// What the rule knows about one arm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmState {
    pub id: u32,
    /// Mature bandit units (holdout excluded).
    pub units: u64,
    pub p_best: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    pub status: Status,
    /// Whether `burn_in` has passed since the first valid exposure.
    pub burn_in_elapsed: bool,
    pub min_units_per_arm: u64,
    pub floor: f64,
    /// A winner recorded by an earlier run of a completed optimization.
    pub locked_winner: Option<u32>,
}

/// Why the weights are what they are.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The optimization is completed: the winner serves all traffic.
    Completed { winner: u32 },
    /// Not enough evidence yet: equal split.
    BurnIn { reason: String },
    /// Thompson-style weights: P(best) with the additive floor.
    Bandit,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    /// One weight per input arm, in input order; they sum to 1.
    pub weights: Vec<f64>,
    pub phase: Phase,
}

pub fn decide(arms: &[ArmState], settings: &Settings) -> Decision {
    let n = arms.len();
    if settings.status == Status::Completed {
        let winner = settings
            .locked_winner
            .filter(|w| arms.iter().any(|a| a.id == *w))
            .unwrap_or_else(|| best(arms));
        return Decision {
            weights: arms
                .iter()
                .map(|a| f64::from(u8::from(a.id == winner)))
                .collect(),
            phase: Phase::Completed { winner },
        };
    }
    let short: Vec<u32> = arms
        .iter()
        .filter(|a| a.units < settings.min_units_per_arm)
        .map(|a| a.id)
        .collect();
    if !settings.burn_in_elapsed || !short.is_empty() {
        let reason = if !settings.burn_in_elapsed {
            "burn_in has not passed since the first exposure".to_string()
        } else {
            format!(
                "arm(s) {} have fewer than {} mature units",
                short
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                settings.min_units_per_arm
            )
        };
        return Decision {
            weights: vec![1.0 / n as f64; n],
            phase: Phase::BurnIn { reason },
        };
    }
    let total: f64 = arms.iter().map(|a| a.p_best.max(0.0)).sum();
    let floor = settings.floor;
    let free = (1.0 - n as f64 * floor).max(0.0);
    let weights = arms
        .iter()
        .map(|a| {
            let w = if total > 0.0 {
                a.p_best.max(0.0) / total
            } else {
                1.0 / n as f64
            };
            floor + free * w
        })
        .collect();
    Decision {
        weights,
        phase: Phase::Bandit,
    }
}

/// The arm with the highest P(best); ties go to the lowest id, so input order does not matter.
fn best(arms: &[ArmState]) -> u32 {
    arms.iter()
        .max_by(|a, b| a.p_best.total_cmp(&b.p_best).then(b.id.cmp(&a.id)))
        .map_or(0, |a| a.id)
}
