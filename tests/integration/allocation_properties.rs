//! Invariants of the allocation rule, for any P(best) vector.

use levered::allocation::{decide, drops, ArmState, Phase, Settings};
use levered::config::Status;
use proptest::prelude::*;

fn arms_strategy() -> impl Strategy<Value = Vec<ArmState>> {
    // Arms after the baseline may be harmful on a guardrail (held at the floor).
    prop::collection::vec((0.0f64..1.0, 0u64..500, prop::bool::weighted(0.2)), 2..12).prop_map(
        |raw| {
            let total: f64 = raw.iter().map(|r| r.0).sum::<f64>().max(1e-12);
            raw.iter()
                .enumerate()
                .map(|(i, &(p, units, harmful))| ArmState {
                    id: i as u32 + 1,
                    units,
                    p_best: p / total,
                    initial: true,
                    droppable: i > 0,
                    harmful: i > 0 && harmful,
                })
                .collect()
        },
    )
}

fn settings(floor: f64, burn_in_elapsed: bool, min_units: u64) -> Settings {
    Settings {
        status: Status::Live,
        burn_in_elapsed,
        min_units_per_arm: min_units,
        floor,
        locked_winner: None,
        holdout: 0.0,
    }
}

fn arm(id: u32, units: u64, p_best: f64) -> ArmState {
    ArmState {
        id,
        units,
        p_best,
        initial: true,
        droppable: true,
        harmful: false,
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
    fn the_holdout_scales_the_bandit_rows(arms in arms_strategy(), floor in 0.0f64..0.05, holdout in 0.0f64..0.9, elapsed: bool) {
        let mut s = settings(floor, elapsed, 100);
        s.holdout = holdout;
        let with = decide(&arms, &s);
        let without = decide(&arms, &settings(floor, elapsed, 100));
        prop_assert_eq!(with.holdout, holdout);
        let total: f64 = with.weights.iter().sum::<f64>() + with.holdout;
        prop_assert!((total - 1.0).abs() < 1e-12, "sum {total}");
        for (w, v) in with.weights.iter().zip(&without.weights) {
            prop_assert!((w - (1.0 - holdout) * v).abs() < 1e-15);
        }
    }

    #[test]
    fn drops_keep_two_arms_and_spare_the_baseline(arms in arms_strategy(), below in 0.0f64..1.0) {
        let dropped = drops(&arms, &settings(0.0, true, 0), below);
        prop_assert!(arms.len() - dropped.len() >= 2);
        prop_assert!(!dropped.contains(&1), "arm 1 is the baseline (not droppable)");
        for id in &dropped {
            let arm = arms.iter().find(|a| a.id == *id).unwrap();
            prop_assert!(arm.p_best < below);
        }
    }

    #[test]
    fn the_same_input_gives_the_same_output(arms in arms_strategy(), floor in 0.0f64..0.05) {
        prop_assert_eq!(decide(&arms, &settings(floor, true, 0)), decide(&arms, &settings(floor, true, 0)));
    }
}

#[test]
fn burn_in_splits_equally_until_every_arm_has_enough_units() {
    let arms = [arm(1, 500, 0.9), arm(2, 99, 0.1)];
    let decision = decide(&arms, &settings(0.01, true, 100));
    assert_eq!(decision.weights, vec![0.5, 0.5]);
    assert!(matches!(decision.phase, Phase::BurnIn { .. }));
    let decision = decide(&arms, &settings(0.01, false, 0));
    assert_eq!(decision.weights, vec![0.5, 0.5]);
}

#[test]
fn the_floor_is_additive() {
    let arms = [arm(1, 500, 0.75), arm(2, 500, 0.25)];
    let decision = decide(&arms, &settings(0.1, true, 100));
    // p_i = f + (1 - n f) w_i = 0.1 + 0.8 w_i
    assert!((decision.weights[0] - 0.7).abs() < 1e-15);
    assert!((decision.weights[1] - 0.3).abs() < 1e-15);
    assert_eq!(decision.phase, Phase::Bandit);
}

#[test]
fn a_completed_optimization_serves_its_winner() {
    let arms = [arm(4, 500, 0.3), arm(7, 500, 0.7)];
    let mut s = settings(0.1, true, 100);
    s.status = Status::Completed;
    let decision = decide(&arms, &s);
    assert_eq!(decision.weights, vec![0.0, 1.0]);
    assert_eq!(decision.phase, Phase::Completed { winner: 7 });
    s.locked_winner = Some(4);
    assert_eq!(decide(&arms, &s).weights, vec![1.0, 0.0]);
}

#[test]
fn the_lowest_arms_go_first_and_two_stay() {
    let arms = [arm(1, 500, 0.001), arm(2, 500, 0.002), arm(3, 500, 0.003)];
    // All three are under the threshold; only one may go, the lowest.
    assert_eq!(drops(&arms, &settings(0.0, true, 100), 0.02), vec![1]);
    // During burn-in nothing is dropped.
    assert!(drops(&arms, &settings(0.0, false, 100), 0.02).is_empty());
    let mut incubating = arms;
    incubating[0].droppable = false;
    assert_eq!(drops(&incubating, &settings(0.0, true, 100), 0.02), vec![2]);
}

#[test]
fn an_arm_added_later_gets_at_least_one_nth_until_it_has_units() {
    let mut young = arm(9, 10, 0.0);
    young.initial = false;
    let arms = [arm(1, 500, 0.8), arm(2, 500, 0.2), young];
    let decision = decide(&arms, &settings(0.01, true, 100));
    assert_eq!(
        decision.phase,
        Phase::Bandit,
        "a later arm never restarts burn-in"
    );
    assert!((decision.weights[2] - 1.0 / 3.0).abs() < 1e-15);
    // The others share 2/3 as floor + free · P(best): 0.01 + (2/3 − 0.02) · 0.8.
    assert!((decision.weights[0] - (0.01 + (2.0 / 3.0 - 0.02) * 0.8)).abs() < 1e-15);
    let total: f64 = decision.weights.iter().sum();
    assert!((total - 1.0).abs() < 1e-15);
}

#[test]
fn a_harmful_arm_is_held_at_the_floor_and_never_wins() {
    let harmful = ArmState {
        harmful: true,
        ..arm(2, 500, 0.7)
    };
    let arms = [arm(1, 500, 0.2), harmful, arm(3, 500, 0.1)];
    let decision = decide(&arms, &settings(0.05, true, 100));
    // The floor for arm 2; arms 1 and 3 share the rest, 0.85, as 0.2 : 0.1 on top of the floor.
    assert_eq!(decision.weights[1], 0.05);
    assert!((decision.weights[0] - (0.05 + 0.85 * 2.0 / 3.0)).abs() < 1e-15);
    assert!((decision.weights[2] - (0.05 + 0.85 / 3.0)).abs() < 1e-15);
    let mut s = settings(0.05, true, 100);
    s.status = Status::Completed;
    assert_eq!(decide(&arms, &s).phase, Phase::Completed { winner: 1 });
}
