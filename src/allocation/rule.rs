//! The decision rule: which share of traffic each serving arm and the holdout get next batch.

use crate::config::Status;

/// What the rule knows about one serving arm (incubating or active).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ArmState {
    pub id: u32,
    /// Mature bandit units (holdout excluded).
    pub units: u64,
    /// P(best) among the serving arms.
    pub p_best: f64,
    /// Served since the optimization's first run: burn-in waits for its units.
    pub initial: bool,
    /// Neither the baseline nor still incubating: the drop rule may remove it.
    pub droppable: bool,
    /// Harmful on a guardrail (docs/design.md §3.21): held at the floor, never the winner.
    pub harmful: bool,
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
    /// The holdout's share of traffic (0 without a holdout).
    pub holdout: f64,
}

/// Why the weights are what they are.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// The optimization is completed: the winner serves all traffic.
    Completed {
        #[serde(rename = "winner_arm_id")]
        winner: u32,
    },
    /// Not enough evidence yet: equal split.
    BurnIn {
        #[serde(rename = "phase_reason")]
        reason: String,
    },
    /// Thompson-style weights: P(best) with the additive floor.
    Bandit,
}

impl Phase {
    /// The winner of a completed optimization.
    pub fn winner(&self) -> Option<u32> {
        match self {
            Phase::Completed { winner } => Some(*winner),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Decision {
    /// One weight per input arm, in input order, already scaled by `1 - holdout`.
    pub weights: Vec<f64>,
    /// The holdout's share; `weights` and `holdout` sum to 1.
    pub holdout: f64,
    pub phase: Phase,
}

/// The phase the optimization is in, before any weight is computed.
pub fn phase(arms: &[ArmState], settings: &Settings) -> Phase {
    if settings.status == Status::Completed {
        let winner = settings
            .locked_winner
            .filter(|w| arms.iter().any(|a| a.id == *w))
            .unwrap_or_else(|| best(arms));
        return Phase::Completed { winner };
    }
    if !settings.burn_in_elapsed {
        return Phase::BurnIn {
            reason: "burn_in has not passed since the first exposure".into(),
        };
    }
    let short: Vec<String> = arms
        .iter()
        .filter(|a| a.initial && a.units < settings.min_units_per_arm)
        .map(|a| a.id.to_string())
        .collect();
    if short.is_empty() {
        Phase::Bandit
    } else {
        Phase::BurnIn {
            reason: format!(
                "arm(s) {} have fewer than {} mature units",
                short.join(", "),
                settings.min_units_per_arm
            ),
        }
    }
}

/// The arms the drop rule removes: droppable arms under `below`, lowest P(best) first (ties: the
/// newest arm first), while more than two serving arms remain. Only in the bandit phase.
pub fn drops(arms: &[ArmState], settings: &Settings, below: f64) -> Vec<u32> {
    if phase(arms, settings) != Phase::Bandit {
        return Vec::new();
    }
    let mut candidates: Vec<&ArmState> = arms
        .iter()
        .filter(|a| a.droppable && a.p_best < below)
        .collect();
    candidates.sort_by(|a, b| a.p_best.total_cmp(&b.p_best).then(b.id.cmp(&a.id)));
    let removable = arms.len().saturating_sub(2);
    candidates
        .into_iter()
        .take(removable)
        .map(|a| a.id)
        .collect()
}

/// The weights of the serving arms and the holdout.
///
/// In the bandit phase an arm with fewer than `min_units_per_arm` units (one added after the start)
/// gets `max(floor, 1/n)`; an arm harmful on a guardrail gets the floor; the others share the rest
/// as `floor + free · P(best) / Σ P(best)`.
pub fn decide(arms: &[ArmState], settings: &Settings) -> Decision {
    let n = arms.len();
    let phase = phase(arms, settings);
    let bandit: Vec<f64> = match &phase {
        Phase::Completed { winner } => {
            return Decision {
                weights: arms
                    .iter()
                    .map(|a| f64::from(u8::from(a.id == *winner)))
                    .collect(),
                holdout: 0.0,
                phase,
            }
        }
        Phase::BurnIn { .. } => vec![1.0 / n as f64; n],
        Phase::Bandit => {
            let floor = settings.floor;
            // Harmful arms are held at the floor, unless no other arm could take their share.
            let grown_harmless = arms
                .iter()
                .any(|a| !a.harmful && a.units >= settings.min_units_per_arm);
            let held = |a: &ArmState| a.harmful && grown_harmless;
            let young = |a: &ArmState| !held(a) && a.units < settings.min_units_per_arm;
            let guaranteed = floor.max(1.0 / n as f64);
            let n_young = arms.iter().filter(|a| young(a)).count();
            let n_grown = n - n_young;
            let sharing = |a: &&ArmState| !young(a) && !held(a);
            let n_sharing = arms.iter().filter(sharing).count();
            let total: f64 = arms.iter().filter(sharing).map(|a| a.p_best.max(0.0)).sum();
            let free = (1.0 - n_young as f64 * guaranteed - n_grown as f64 * floor).max(0.0);
            arms.iter()
                .map(|a| {
                    if young(a) {
                        guaranteed
                    } else if held(a) {
                        floor
                    } else if total > 0.0 {
                        floor + free * a.p_best.max(0.0) / total
                    } else {
                        floor + free / n_sharing as f64
                    }
                })
                .collect()
        }
    };
    let holdout = settings.holdout;
    Decision {
        weights: bandit.iter().map(|w| w * (1.0 - holdout)).collect(),
        holdout,
        phase,
    }
}

/// The arm with the highest P(best) among those not harmful on a guardrail (among all, when
/// every arm is); ties go to the lowest id, so input order does not matter.
fn best(arms: &[ArmState]) -> u32 {
    let harmless = arms.iter().any(|a| !a.harmful);
    arms.iter()
        .filter(|a| !(harmless && a.harmful))
        .max_by(|a, b| a.p_best.total_cmp(&b.p_best).then(b.id.cmp(&a.id)))
        .map_or(0, |a| a.id)
}
