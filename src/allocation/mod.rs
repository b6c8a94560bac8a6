//! The allocation rule (pure): completed → winner, burn-in → equal split, else P(best), drop rule,
//! generation, additive floor and holdout; and the arm lifecycle it acts on.

mod lifecycle;
mod rule;
mod serve;

pub use lifecycle::{ArmEvent, Roster, RosterArm};
pub use rule::{decide, drops, phase, ArmState, Decision, Phase, Settings};
pub use serve::{assign, context_key, unit_hash, Assignment, ServingRow};
