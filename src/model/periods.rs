//! Period effects. Visitors convert differently by hour and by day, and a bandit moves traffic
//! between arms as it learns, so an arm's pooled rate depends on when it was served. Within a
//! period served by one allocation every arm sees the same visitors in fixed shares; the model
//! `E[outcome of arm a in period p] = units · λ_p · θ_a` compares the arms within periods, and each
//! arm's sums are restated as if it had been served the whole traffic's mix of periods
//! (docs/statistics.md, "Period effects").

use std::collections::BTreeMap;

use super::fit::Sums;

/// The most rounds of iterative proportional fitting; it converges long before on real designs.
const MAX_ROUNDS: usize = 10_000;
/// Rounds stop once no arm's effect moves by more than this, relatively.
const TOLERANCE: f64 = 1e-14;

/// One arm's (decay-weighted) units and outcome total (conversions, or the value sum) in a period.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PeriodCell {
    pub units: f64,
    pub outcome: f64,
}

/// The level `λ_p` of every period: the maximum of the Poisson likelihood of the two-way model
/// above, by iterative proportional fitting (alternately `λ_p = Y_p / Σ_a n_pa θ_a` and
/// `θ_a = Y_a / Σ_p n_pa λ_p`, from `θ = 1`). A period without outcome has level 0. Empty when
/// an outcome is negative: the multiplicative model does not apply, and no arm is adjusted.
pub fn period_levels<P: Ord + Clone>(cells: &BTreeMap<(P, u32), PeriodCell>) -> BTreeMap<P, f64> {
    if cells.values().any(|c| c.outcome < 0.0 || c.units < 0.0) {
        return BTreeMap::new();
    }
    // Dense indices: the rounds run over plain vectors.
    let periods: Vec<&P> = {
        let mut p: Vec<&P> = cells.keys().map(|(p, _)| p).collect();
        p.dedup();
        p
    };
    let arms: Vec<u32> = {
        let mut a: Vec<u32> = cells.keys().map(|(_, a)| *a).collect();
        a.sort_unstable();
        a.dedup();
        a
    };
    let mut period_index = 0;
    let table: Vec<(usize, usize, f64)> = cells
        .iter()
        .map(|((p, a), c)| {
            while periods[period_index] != p {
                period_index += 1;
            }
            let arm = arms.binary_search(a).unwrap_or_default();
            (period_index, arm, c.units)
        })
        .collect();
    let mut period_total = vec![0.0; periods.len()];
    let mut arm_total = vec![0.0; arms.len()];
    for (&(p, a, _), cell) in table.iter().zip(cells.values()) {
        period_total[p] += cell.outcome;
        arm_total[a] += cell.outcome;
    }
    let mut effect = vec![1.0; arms.len()];
    let levels_for = |effect: &[f64]| {
        let mut expected = vec![0.0; periods.len()];
        for &(p, a, n) in &table {
            expected[p] += n * effect[a];
        }
        period_total
            .iter()
            .zip(expected)
            .map(|(total, e)| {
                if *total > 0.0 && e > 0.0 {
                    total / e
                } else {
                    0.0
                }
            })
            .collect::<Vec<f64>>()
    };
    for _ in 0..MAX_ROUNDS {
        let levels = levels_for(&effect);
        let mut exposure = vec![0.0; arms.len()];
        for &(p, a, n) in &table {
            exposure[a] += n * levels[p];
        }
        let mut moved: f64 = 0.0;
        for (a, value) in effect.iter_mut().enumerate() {
            let next = if exposure[a] > 0.0 {
                arm_total[a] / exposure[a]
            } else {
                *value
            };
            if next > 0.0 {
                moved = moved.max((next - *value).abs() / next);
            }
            *value = next;
        }
        if moved <= TOLERANCE {
            break;
        }
    }
    let levels = levels_for(&effect);
    periods.into_iter().cloned().zip(levels).collect()
}

/// Each arm's mix factor `f_a = (Σ_p n_pa λ_p / n_a) / (Σ_p n_p λ_p / n)`: how much better the
/// periods that served the arm were than those of the whole traffic (`n_p`, `n` over every arm of
/// `traffic`). 1 when the mixes agree, for an arm whose periods have no known level, and for every
/// arm when the traffic spans a single period with a level (a first run: exactly the pooled sums).
pub fn mix_factors<P: Ord>(
    levels: &BTreeMap<P, f64>,
    traffic: &BTreeMap<(P, u32), f64>,
) -> BTreeMap<u32, f64> {
    let level = |p: &P| levels.get(p).copied();
    let mut arms: BTreeMap<u32, (f64, f64)> = BTreeMap::new();
    let (mut weighted, mut units) = (0.0, 0.0);
    for ((period, arm), n) in traffic {
        let a = arms.entry(*arm).or_default();
        if let Some(l) = level(period) {
            a.0 += n * l;
            a.1 += n;
            weighted += n * l;
            units += n;
        }
    }
    let overall = weighted / units;
    let leveled: std::collections::BTreeSet<&P> = traffic
        .keys()
        .map(|(p, _)| p)
        .filter(|p| level(p).is_some_and(|l| l > 0.0))
        .collect();
    if leveled.len() <= 1 {
        // One period: every arm has the whole traffic's mix, exactly.
        return arms.into_keys().map(|arm| (arm, 1.0)).collect();
    }
    arms.into_iter()
        .map(|(arm, (w, n))| {
            let factor = w / n / overall;
            (
                arm,
                if factor.is_finite() && factor > 0.0 {
                    factor
                } else {
                    1.0
                },
            )
        })
        .collect()
}

/// `sums` restated on the whole traffic's mix of periods: the arm's units times its mix factor
/// (its exposure in average periods), so that the mean is `θ_a` times the traffic's mean level; the
/// value squares divided by the factor keep the spread of a unit's value at `1/factor` of the
/// observed one. Conversions and value sums stay as counted.
pub fn standardize(sums: &Sums, factor: f64) -> Sums {
    Sums {
        units: sums.units * factor,
        conversions: sums.conversions,
        value_sum: sums.value_sum,
        value_sq_sum: sums.value_sq_sum / factor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells(rows: &[(u8, u32, f64, f64)]) -> BTreeMap<(u8, u32), PeriodCell> {
        rows.iter()
            .map(|&(p, a, units, outcome)| ((p, a), PeriodCell { units, outcome }))
            .collect()
    }

    #[test]
    fn an_exactly_multiplicative_table_is_recovered_and_its_mix_factors_follow() {
        // λ = (1, 3), θ = (0.02, 0.04): arm 1 served mostly in the good period 2.
        let table = cells(&[
            (1, 1, 900.0, 18.0),
            (1, 2, 100.0, 4.0),
            (2, 1, 100.0, 6.0),
            (2, 2, 900.0, 108.0),
        ]);
        let levels = period_levels(&table);
        let ratio = levels[&2] / levels[&1];
        assert!((ratio - 3.0).abs() < 1e-12, "{ratio}");
        let traffic: BTreeMap<(u8, u32), f64> = table.iter().map(|(k, c)| (*k, c.units)).collect();
        let f = mix_factors(&levels, &traffic);
        // Arm 1: (900·1 + 100·3)/1000 = 1.2; arm 2: 2.8; the whole traffic: 2.
        assert!(
            (f[&1] - 0.6).abs() < 1e-12 && (f[&2] - 1.4).abs() < 1e-12,
            "{f:?}"
        );
        // Restated, the rates are θ times the whole traffic's mean level: 0.04 and 0.08.
        let sums = Sums {
            units: 1000.0,
            conversions: 112.0,
            value_sum: 112.0,
            value_sq_sum: 112.0,
        };
        let restated = standardize(&sums, f[&2]);
        assert!((restated.conversions / restated.units - 0.08).abs() < 1e-12);
        let (mean, square) = (
            restated.value_sum / restated.units,
            restated.value_sq_sum / restated.units,
        );
        let observed = 0.112 - 0.112 * 0.112;
        assert!(((square - mean * mean) - observed / (1.4 * 1.4)).abs() < 1e-15);
    }

    #[test]
    fn equal_mixes_and_negative_values_leave_every_arm_as_it_is() {
        let table = cells(&[
            (1, 1, 10.0, 1.0),
            (1, 2, 20.0, 3.0),
            (2, 1, 5.0, 2.0),
            (2, 2, 10.0, 1.0),
        ]);
        let levels = period_levels(&table);
        let traffic: BTreeMap<(u8, u32), f64> = table.iter().map(|(k, c)| (*k, c.units)).collect();
        for f in mix_factors(&levels, &traffic).values() {
            assert!((f - 1.0).abs() < 1e-12, "{f}");
        }
        let negative = cells(&[(1, 1, 10.0, -1.0), (2, 1, 10.0, 4.0)]);
        assert!(period_levels(&negative).is_empty());
        let unleveled = mix_factors(&BTreeMap::new(), &traffic);
        assert_eq!(unleveled.len(), 2);
        assert!(unleveled.values().all(|f| *f == 1.0));
    }
}
