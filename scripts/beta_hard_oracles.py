"""Independent reference values for Beta posteriors where double precision is hard to keep.

Writes fixtures/oracles/beta_hard.csv: for each case, every arm's Beta(alpha, beta) posterior, its CDF
at two points (the mean minus two standard deviations, or half the mean when that is negative, and
the mean plus two standard deviations), its equal-tailed 95% interval, P(arm is best) and
expected loss. Cases: a million and ten million units per arm (where ln Γ of the counts is 10⁷–10⁸ and
a naive normalization loses seven or eight digits), and a sparse cell whose shrunk prior leaves
alpha < 1 (a density unbounded at 0). CDFs and intervals from scipy.special (Boost's incomplete beta);
P(best) and E[max] by adaptive quadrature (scipy.integrate.quad), cross-checked by quadrature in mpmath
at 30 digits for the small cases.
Run: python3 scripts/beta_hard_oracles.py > fixtures/oracles/beta_hard.csv  (needs scipy and mpmath)
"""
import csv
import sys

import mpmath
from scipy import special, stats

import oracle_quadrature

CASES = {
    "million_units": [(50001.0, 950001.0), (50251.0, 949751.0), (49901.0, 950101.0)],
    "ten_million_units": [(500001.0, 9500001.0), (500801.0, 9499201.0)],
    "sparse_cell": [(0.4, 19.6), (1.4, 49.6), (0.4, 69.6)],
}


def p_best_and_loss(arms):
    dists = [stats.beta(a, b) for a, b in arms]
    lo = max(d.ppf(1e-15) for d in dists)
    hi = max(d.ppf(1 - 1e-15) for d in dists)
    points = sorted({d.mean() for d in dists if lo < d.mean() < hi})
    # Panels graded towards 0 when a density is unbounded there.
    if lo < 1e-6:
        points = sorted(set(points) | {10.0 ** -k for k in range(1, 40) if lo < 10.0 ** -k < hi})
    return oracle_quadrature.p_best_and_loss(dists, lo, hi, points, limit=2000, epsabs=1e-15, epsrel=1e-13)


def mp_p_best(arms, k):
    mpmath.mp.dps = 30

    def f(x):
        v = x ** (arms[k][0] - 1) * (1 - x) ** (arms[k][1] - 1) / mpmath.beta(*arms[k])
        for j, (a, b) in enumerate(arms):
            if j != k:
                v *= mpmath.betainc(a, b, 0, x, regularized=True)
        return v

    return mpmath.quad(f, [0] + [mpmath.mpf(10) ** -e for e in range(12, 0, -1)] + [1])


def main():
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["case", "arm", "alpha", "beta", "x_low", "cdf_low", "x_high", "cdf_high",
                     "ci95_low", "ci95_high", "p_best", "expected_loss"])
    for case, arms in CASES.items():
        probabilities, losses = p_best_and_loss(arms)
        assert abs(sum(probabilities) - 1) < 1e-10, (case, sum(probabilities))
        if case == "sparse_cell":
            for k in range(len(arms)):
                check = float(mp_p_best(arms, k))
                assert abs(check - probabilities[k]) < 1e-10, (case, k, check, probabilities[k])
        for k, (a, b) in enumerate(arms):
            d = stats.beta(a, b)
            sd = d.std()
            xs = [d.mean() - 2 * sd if d.mean() > 2 * sd else d.mean() / 2, d.mean() + 2 * sd]
            cells = [f"{v:.17e}" for x in xs for v in (x, special.betainc(a, b, x))]
            writer.writerow([case, k, repr(a), repr(b), *cells,
                             f"{d.ppf(0.025):.15e}", f"{d.ppf(0.975):.15e}",
                             f"{probabilities[k]:.15e}", f"{losses[k]:.15e}"])


if __name__ == "__main__":
    main()
