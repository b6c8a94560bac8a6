//! Beta intervals, P(best), expected loss and P(harm) against independent scipy/mpmath values
//! (fixtures/oracles, copied from the shared oracles).

use std::collections::BTreeMap;

use levered::model::{
    by_quadrature, compare, monte_carlo, p_harm_by_quadrature, Better, Harm, Method, Posterior,
    Tolerance,
};

use crate::support::{read_csv, repo};

fn number(row: &BTreeMap<String, String>, key: &str) -> f64 {
    row[key]
        .parse()
        .unwrap_or_else(|_| panic!("{key} in {row:?}"))
}

fn close(actual: f64, expected: f64, relative: f64, absolute: f64) -> bool {
    (actual - expected).abs() <= relative * expected.abs() + absolute
}

#[test]
fn beta_means_and_intervals_match_scipy() {
    let rows = read_csv(&repo().join("fixtures/oracles/beta_intervals.csv"));
    assert_eq!(rows.len(), 10);
    for row in rows {
        let posterior = Posterior::Beta {
            alpha: number(&row, "alpha"),
            beta: number(&row, "beta"),
        };
        assert!(
            close(posterior.mean(), number(&row, "mean"), 1e-11, 0.0),
            "{row:?}"
        );
        for (level, low, high) in [
            (0.95, "ci95_low", "ci95_high"),
            (0.90, "ci90_low", "ci90_high"),
        ] {
            let interval = posterior.interval(level);
            // Tolerance: relative 1e-8 (the oracle has 12 significant digits).
            assert!(
                close(interval.low, number(&row, low), 1e-8, 1e-15),
                "{low} {interval:?} {row:?}"
            );
            assert!(
                close(interval.high, number(&row, high), 1e-8, 1e-15),
                "{high} {interval:?} {row:?}"
            );
        }
    }
}

/// The rows of an oracle file, grouped by their `case` column; `count` cases are expected.
fn cases_in(file: &str, count: usize) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut cases: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for row in read_csv(&repo().join("fixtures/oracles").join(file)) {
        cases.entry(row["case"].clone()).or_default().push(row);
    }
    assert_eq!(cases.len(), count, "{file}");
    cases
}

fn cases() -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    cases_in("p_best.csv", 6)
}

fn posteriors(rows: &[BTreeMap<String, String>]) -> Vec<Posterior> {
    rows.iter()
        .map(|r| Posterior::Beta {
            alpha: number(r, "alpha"),
            beta: number(r, "beta"),
        })
        .collect()
}

#[test]
fn quadrature_p_best_and_loss_match_the_oracle() {
    for (case, rows) in cases() {
        let result =
            by_quadrature(&posteriors(&rows)).unwrap_or_else(|| panic!("{case}: no convergence"));
        assert_eq!(result.method, Method::Quadrature);
        for (i, row) in rows.iter().enumerate() {
            // Deterministic quadrature: relative 1e-6 (absolute 1e-10 for the smallest values).
            assert!(
                close(result.p_best[i], number(row, "p_best"), 1e-6, 1e-10),
                "{case} arm {i}: p_best {} vs {}",
                result.p_best[i],
                row["p_best"]
            );
            assert!(
                close(
                    result.expected_loss[i],
                    number(row, "expected_loss"),
                    1e-6,
                    1e-10
                ),
                "{case} arm {i}: loss {} vs {}",
                result.expected_loss[i],
                row["expected_loss"]
            );
        }
    }
}

#[test]
fn mixed_small_matches_exact_fractions() {
    let arms = [
        Posterior::Beta {
            alpha: 2.0,
            beta: 4.0,
        },
        Posterior::Beta {
            alpha: 3.0,
            beta: 2.0,
        },
        Posterior::Beta {
            alpha: 1.0,
            beta: 1.0,
        },
    ];
    let result = by_quadrature(&arms).unwrap();
    for (p, exact) in result
        .p_best
        .iter()
        .zip([11.0 / 126.0, 113.0 / 210.0, 118.0 / 315.0])
    {
        assert!((p - exact).abs() < 1e-9, "{p} vs {exact}");
    }
}

#[test]
fn monte_carlo_is_within_four_standard_errors() {
    let draws = 40_000u64;
    for (case, rows) in cases() {
        let result = monte_carlo(&posteriors(&rows), draws, 11);
        assert_eq!(result.method, Method::MonteCarlo { draws, seed: 11 });
        for (i, row) in rows.iter().enumerate() {
            let p = number(row, "p_best");
            let se = (p * (1.0 - p) / draws as f64)
                .sqrt()
                .max(1.0 / draws as f64);
            assert!(
                (result.p_best[i] - p).abs() <= 4.0 * se,
                "{case} arm {i}: {} vs {p}",
                result.p_best[i]
            );
        }
    }
}

#[test]
fn the_same_seed_gives_the_same_monte_carlo_estimate() {
    let arms = [
        Posterior::Beta {
            alpha: 31.0,
            beta: 971.0,
        },
        Posterior::Beta {
            alpha: 46.0,
            beta: 956.0,
        },
    ];
    assert_eq!(monte_carlo(&arms, 5_000, 3), monte_carlo(&arms, 5_000, 3));
    assert_ne!(
        monte_carlo(&arms, 5_000, 3).p_best,
        monte_carlo(&arms, 5_000, 4).p_best
    );
}

#[test]
fn student_t_intervals_p_best_and_loss_match_scipy() {
    // fixtures/oracles/student_t.csv comes from scripts/student_t_oracles.py (scipy quad, checked
    // against mpmath at 30 digits).
    for (case, rows) in cases_in("student_t.csv", 3) {
        let arms: Vec<Posterior> = rows
            .iter()
            .map(|r| Posterior::StudentT {
                df: number(r, "df"),
                location: number(r, "location"),
                scale: number(r, "scale"),
            })
            .collect();
        let result = compare(&arms, 1);
        assert_eq!(result.method, Method::Quadrature, "{case}");
        for (i, row) in rows.iter().enumerate() {
            let interval = arms[i].interval(0.95);
            assert!(
                close(interval.low, number(row, "ci95_low"), 1e-9, 1e-12),
                "{case} {i} {interval:?}"
            );
            assert!(
                close(interval.high, number(row, "ci95_high"), 1e-9, 1e-12),
                "{case} {i} {interval:?}"
            );
            assert!(
                close(result.p_best[i], number(row, "p_best"), 1e-6, 1e-10),
                "{case} {i} {:?}",
                result.p_best
            );
            assert!(
                close(
                    result.expected_loss[i],
                    number(row, "expected_loss"),
                    1e-6,
                    1e-9
                ),
                "{case} {i} {:?}",
                result.expected_loss
            );
        }
    }
}

#[test]
fn large_counts_and_sparse_cells_match_boost_and_quadrature() {
    // fixtures/oracles/beta_hard.csv comes from scripts/beta_hard_oracles.py (scipy's Boost
    // incomplete beta; quadrature checked against mpmath at 30 digits for the sparse cell).
    for (case, rows) in cases_in("beta_hard.csv", 3) {
        let arms = posteriors(&rows);
        for (arm, row) in arms.iter().zip(&rows) {
            for (x, cdf) in [("x_low", "cdf_low"), ("x_high", "cdf_high")] {
                let got = arm.cdf(number(row, x));
                // A CDF to 1e-12 relative: at a million units a naive ln Γ normalization is off by ~1e-9.
                assert!(
                    close(got, number(row, cdf), 1e-12, 0.0),
                    "{case} {arm:?} {cdf}: {got} vs {}",
                    row[cdf]
                );
            }
            let interval = arm.interval(0.95);
            assert!(
                close(interval.low, number(row, "ci95_low"), 1e-10, 0.0)
                    && close(interval.high, number(row, "ci95_high"), 1e-10, 0.0),
                "{case} {arm:?} {interval:?}"
            );
        }
        let result = compare(&arms, 1);
        assert_eq!(result.method, Method::Quadrature, "{case}");
        for (i, row) in rows.iter().enumerate() {
            assert!(
                close(result.p_best[i], number(row, "p_best"), 1e-8, 1e-12),
                "{case} {i}: {:?}",
                result.p_best
            );
            assert!(
                close(
                    result.expected_loss[i],
                    number(row, "expected_loss"),
                    1e-7,
                    1e-13
                ),
                "{case} {i}: {:?}",
                result.expected_loss
            );
        }
    }
}

#[test]
fn period_standardized_estimates_match_an_independent_fit() {
    use levered::model::{fit_bool, mix_factors, period_levels, standardize, PeriodCell, Sums};
    // The tables, and their fit by Newton's method on the conditional likelihood
    // (scripts/period_oracles.py); levered fits them by iterative proportional fitting.
    let mut tables: BTreeMap<String, BTreeMap<(i64, u32), PeriodCell>> = BTreeMap::new();
    for row in read_csv(&repo().join("fixtures/oracles/periods_input.csv")) {
        let key = (number(&row, "period") as i64, number(&row, "arm") as u32);
        let cell = PeriodCell {
            units: number(&row, "units"),
            outcome: number(&row, "conversions"),
        };
        tables
            .entry(row["case"].clone())
            .or_default()
            .insert(key, cell);
    }
    let expected = cases_in("periods.csv", 4);
    assert_eq!(tables.len(), 4);
    for (case, rows) in expected {
        let table = &tables[&case];
        let levels = period_levels(table);
        let traffic = table.iter().map(|(k, c)| (*k, c.units)).collect();
        let factors = mix_factors(&levels, &traffic);
        let fitted: Vec<_> = rows
            .iter()
            .map(|row| {
                let arm = number(row, "arm") as u32;
                assert!(
                    close(factors[&arm], number(row, "mix_factor"), 1e-10, 0.0),
                    "{case} arm {arm}: factor {} vs {}",
                    factors[&arm],
                    row["mix_factor"]
                );
                let sums = Sums {
                    units: number(row, "units"),
                    conversions: number(row, "conversions"),
                    ..Sums::default()
                };
                fit_bool(1.0, 1.0, &standardize(&sums, factors[&arm]))
            })
            .collect();
        let comparison = compare(&fitted.iter().map(|f| f.posterior).collect::<Vec<_>>(), 1);
        assert_eq!(comparison.method, Method::Quadrature, "{case}");
        for (i, (row, fit)) in rows.iter().zip(&fitted).enumerate() {
            let interval = fit.posterior.interval(0.95);
            for (what, actual, relative) in [
                ("alpha", fit.alpha, 1e-12),
                ("beta", fit.beta, 1e-10),
                ("mean", fit.posterior.mean(), 1e-10),
                ("ci95_low", interval.low, 1e-8),
                ("ci95_high", interval.high, 1e-8),
            ] {
                assert!(
                    close(actual, number(row, what), relative, 0.0),
                    "{case} arm {i}: {what} {actual} vs {}",
                    row[what]
                );
            }
            assert!(
                close(comparison.p_best[i], number(row, "p_best"), 1e-6, 1e-10),
                "{case} arm {i}: p_best {} vs {}",
                comparison.p_best[i],
                row["p_best"]
            );
            assert!(
                close(
                    comparison.expected_loss[i],
                    number(row, "expected_loss"),
                    1e-6,
                    1e-10
                ),
                "{case} arm {i}: loss {} vs {}",
                comparison.expected_loss[i],
                row["expected_loss"]
            );
        }
    }
}

/// P(harm) of guardrails (scripts/harm_oracles.py: mpmath at 30 digits, checked with scipy).
#[test]
fn p_harm_matches_mpmath() {
    let cases = cases_in("p_harm.csv", 11);
    for (case, rows) in cases {
        let row = &rows[0];
        let posterior = |side: &str| match row["family"].as_str() {
            "beta" => Posterior::Beta {
                alpha: number(row, &format!("{side}_1")),
                beta: number(row, &format!("{side}_2")),
            },
            _ => Posterior::StudentT {
                df: number(row, &format!("{side}_1")),
                location: number(row, &format!("{side}_2")),
                scale: number(row, &format!("{side}_3")),
            },
        };
        let harm = Harm {
            better: match row["better"].as_str() {
                "higher" => Better::Higher,
                _ => Better::Lower,
            },
            tolerance: match row["tolerance_kind"].as_str() {
                "relative" => Tolerance::Relative(number(row, "tolerance")),
                _ => Tolerance::Absolute(number(row, "tolerance")),
            },
        };
        let p = p_harm_by_quadrature(&posterior("arm"), &posterior("base"), &harm)
            .unwrap_or_else(|| panic!("{case}: the quadrature did not resolve"));
        let expected = number(row, "p_harm");
        assert!(
            close(p, expected, 1e-10, 1e-11),
            "{case}: {p} vs {expected}"
        );
    }
}
