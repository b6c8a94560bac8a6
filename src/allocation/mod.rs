//! The allocation rule (pure): completed → winner, burn-in → equal split, else P(best), drop rule,
//! generation, additive floor and holdout; and the arm lifecycle it acts on.

mod lifecycle;
mod rule;

pub use lifecycle::{ArmEvent, ArmStatus, Origin, Roster, RosterArm};
pub use rule::{decide, drops, phase, ArmState, Decision, Phase, Settings};
