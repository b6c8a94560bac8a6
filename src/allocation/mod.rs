//! The allocation rule (pure): completed → winner, burn-in → equal split, else P(best) + floor.

mod rule;

pub use rule::{decide, ArmState, Decision, Phase, Settings};
