"""Independent reference values for levered's Student-t (numeric reward) posteriors.

Writes fixtures/oracles/student_t.csv: for each case, every arm's t posterior (df, location, scale),
its equal-tailed 95% interval (scipy.stats.t.ppf), P(arm is best) and expected loss, both by adaptive
quadrature of the exact integrals (scipy.integrate.quad), cross-checked with mpmath at 30 digits.
Run: python3 scripts/student_t_oracles.py  (needs scipy and mpmath)
"""
import csv
import math
import sys

import mpmath
from scipy import stats

import oracle_quadrature

CASES = {
    "revenue_three": [(9.0, 4.0, 0.5), (31.0, 4.6, 0.3), (5.0, 3.9, 0.9)],
    "revenue_close": [(2001.0, 5.20, 0.04), (2001.0, 5.25, 0.04)],
    "heavy_tails": [(3.0, 0.0, 1.0), (4.0, 0.5, 2.0)],
}


def p_best_and_loss(arms):
    dists = [stats.t(df, loc=loc, scale=scale) for df, loc, scale in arms]
    lo = max(d.ppf(1e-13) for d in dists)
    hi = max(d.ppf(1 - 1e-13) for d in dists)
    points = sorted({d.mean() for d in dists if lo < d.mean() < hi})
    return oracle_quadrature.p_best_and_loss(dists, lo, hi, points, limit=500, epsabs=1e-14, epsrel=1e-12)


def mp_p_best(arms, k):
    mpmath.mp.dps = 30

    def pdf(x, df, loc, scale):
        z = (x - loc) / scale
        return mpmath.gamma((df + 1) / 2) / (mpmath.sqrt(df * mpmath.pi) * mpmath.gamma(df / 2) * scale) * (1 + z * z / df) ** (-(df + 1) / 2)

    def cdf(x, df, loc, scale):
        z = (x - loc) / scale
        tail = mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, df / (df + z * z), regularized=True) / 2
        return 1 - tail if z > 0 else tail

    def f(x):
        v = pdf(x, *arms[k])
        for j, a in enumerate(arms):
            if j != k:
                v *= cdf(x, *a)
        return v

    spots = sorted([-mpmath.inf] + [mpmath.mpf(a[1]) for a in arms] + [mpmath.inf])
    return float(mpmath.quad(f, spots))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fixtures/oracles/student_t.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "arm", "df", "location", "scale", "ci95_low", "ci95_high", "p_best", "expected_loss"])
        for case, arms in CASES.items():
            p, loss = p_best_and_loss(arms)
            for k, (df, loc, scale) in enumerate(arms):
                check = mp_p_best(arms, k)
                assert math.isclose(check, p[k], rel_tol=1e-7, abs_tol=1e-12), (case, k, check, p[k])
                low, high = stats.t.ppf([0.025, 0.975], df, loc=loc, scale=scale)
                writer.writerow([case, k, df, loc, scale] + [repr(float(v)) for v in (low, high, p[k], loss[k])])


if __name__ == "__main__":
    main()
