//! Invariants of the allocation rule, for any P(best) vector.

use levered::allocation::{decide, ArmState, Phase, Settings};
use levered::config::Status;
use proptest::prelude::*;

fn arms_strategy() -> impl Strategy<Value = Vec<ArmState>> {
    prop::collection::vec((0.0f64..1.0, 0u64..500), 2..12).prop_map(|raw| {
        let total: f64 = raw.iter().map(|r| r.0).sum::<f64>().max(1e-12);
        raw.iter()
            .enumerate()
            .map(|(i, &(p, units))| ArmState {
                id: i as u32 + 1,
                units,
                p_best: p / total,
            })
            .collect()
    })
}

fn settings(floor: f64, burn_in_elapsed: bool, min_units: u64) -> Settings {
    Settings {
        status: Status::Live,
        burn_in_elapsed,
        min_units_per_arm: min_units,
        floor,
        locked_winner: None,
    }
}

proptest! {
    #[test]
    fn weights_sum_to_one_and_respect_the_floor(arms in arms_strategy(), floor_share in 0.0f64..1.0, elapsed: bool, min_units in 0u64..300) {
        let floor = floor_share / arms.len() as f64;
        let decision = decide(&arms, &settings(floor, elapsed, min_units));
        let total: f64 = decision.weights.iter().sum();
        prop_assert!((total - 1.0).abs() < 1e-12, "sum {total}");
        for w in &decision.weights {
            prop_assert!(*w >= floor - 1e-15, "{w} < floor {floor}");
        }
    }

    #[test]
    fn arm_order_does_not_change_weights(arms in arms_strategy(), floor in 0.0f64..0.05, rotate in 0usize..12) {
        let decision = decide(&arms, &settings(floor, true, 0));
        let mut shuffled = arms.clone();
        let k = rotate % arms.len();
        shuffled.rotate_left(k);
        shuffled.reverse();
        let other = decide(&shuffled, &settings(floor, true, 0));
        for (arm, weight) in shuffled.iter().zip(&other.weights) {
            let original = arms.iter().position(|a| a.id == arm.id).unwrap();
            prop_assert!((decision.weights[original] - weight).abs() < 1e-15);
        }
    }

    #[test]
    fn the_same_input_gives_the_same_output(arms in arms_strategy(), floor in 0.0f64..0.05) {
        prop_assert_eq!(decide(&arms, &settings(floor, true, 0)), decide(&arms, &settings(floor, true, 0)));
    }
}

#[test]
fn burn_in_splits_equally_until_every_arm_has_enough_units() {
    let arms = [
        ArmState {
            id: 1,
            units: 500,
            p_best: 0.9,
        },
        ArmState {
            id: 2,
            units: 99,
            p_best: 0.1,
        },
    ];
    let decision = decide(&arms, &settings(0.01, true, 100));
    assert_eq!(decision.weights, vec![0.5, 0.5]);
    assert!(matches!(decision.phase, Phase::BurnIn { .. }));
    let decision = decide(&arms, &settings(0.01, false, 0));
    assert_eq!(decision.weights, vec![0.5, 0.5]);
}

#[test]
fn the_floor_is_additive() {
    let arms = [
        ArmState {
            id: 1,
            units: 500,
            p_best: 0.75,
        },
        ArmState {
            id: 2,
            units: 500,
            p_best: 0.25,
        },
    ];
    let decision = decide(&arms, &settings(0.1, true, 100));
    // p_i = f + (1 - n f) w_i = 0.1 + 0.8 w_i
    assert!((decision.weights[0] - 0.7).abs() < 1e-15);
    assert!((decision.weights[1] - 0.3).abs() < 1e-15);
    assert_eq!(decision.phase, Phase::Bandit);
}

#[test]
fn a_completed_optimization_serves_its_winner() {
    let arms = [
        ArmState {
            id: 4,
            units: 500,
            p_best: 0.3,
        },
        ArmState {
            id: 7,
            units: 500,
            p_best: 0.7,
        },
    ];
    let mut s = settings(0.1, true, 100);
    s.status = Status::Completed;
    let decision = decide(&arms, &s);
    assert_eq!(decision.weights, vec![0.0, 1.0]);
    assert_eq!(decision.phase, Phase::Completed { winner: 7 });
    s.locked_winner = Some(4);
    assert_eq!(decide(&arms, &s).weights, vec![1.0, 0.0]);
}
