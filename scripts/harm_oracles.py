"""Independent reference values for levered's P(harm) on guardrail metrics.

Writes fixtures/oracles/p_harm.csv: for each case, the arm's and the baseline's posterior (Beta a, b
or Student-t df, location, scale), which way the metric is better, the tolerance (relative or
absolute) and P(harm) = P(arm worse than the baseline by more than the tolerance), an integral over
the baseline's density computed by mpmath at 30 digits and cross-checked with scipy.integrate.quad.
Run: python3 scripts/harm_oracles.py  (needs scipy and mpmath)
"""
import csv
import sys

import mpmath
from scipy import integrate, stats

# name: (family, arm parameters, baseline parameters, better, tolerance kind, tolerance)
CASES = {
    "refund_rate_up": ("beta", (121.0, 881.0), (101.0, 901.0), "lower", "relative", 0.1),
    "signup_rate_absolute": ("beta", (46.0, 956.0), (61.0, 941.0), "higher", "absolute", 0.01),
    "small_counts": ("beta", (1.0, 20.0), (2.0, 30.0), "higher", "relative", 0.0),
    "certain_harm": ("beta", (301.0, 701.0), (101.0, 901.0), "lower", "relative", 0.1),
    "negligible_harm": ("beta", (101.0, 901.0), (301.0, 701.0), "lower", "relative", 0.1),
    "unbounded_density": ("beta", (3.5, 47.5), (0.5, 50.5), "lower", "absolute", 0.01),
    "revenue_relative": ("t", (40.0, 9.4, 0.8), (60.0, 10.0, 0.5), "higher", "relative", 0.05),
    "latency_absolute": ("t", (500.0, 212.0, 3.0), (800.0, 205.0, 2.0), "lower", "absolute", 5.0),
    "heavy_tails": ("t", (3.0, 0.9, 0.4), (4.0, 1.0, 0.3), "higher", "relative", 0.2),
    "negative_values": ("t", (100.0, -2.3, 0.1), (100.0, -2.0, 0.1), "higher", "relative", 0.1),
    "lopsided_spreads": ("t", (2000.0, 4.9, 0.01), (9.0, 5.0, 0.6), "higher", "relative", 0.05),
}


def threshold(x, better, kind, tol):
    margin = tol * abs(x) if kind == "relative" else tol
    return x - margin if better == "higher" else x + margin


def mp_p_harm(family, arm, base, better, kind, tol):
    mpmath.mp.dps = 30
    if family == "beta":
        def pdf(x, a, b):
            return x ** (a - 1) * (1 - x) ** (b - 1) / mpmath.beta(a, b)

        def cdf(y, a, b):
            if y <= 0:
                return mpmath.mpf(0)
            if y >= 1:
                return mpmath.mpf(1)
            return mpmath.betainc(a, b, 0, y, regularized=True)
        support = [mpmath.mpf(0), mpmath.mpf(1)]
        means = [base[0] / (base[0] + base[1]), arm[0] / (arm[0] + arm[1])]
    else:
        def pdf(x, df, loc, scale):
            z = (x - loc) / scale
            return mpmath.gamma((df + 1) / 2) / (mpmath.sqrt(df * mpmath.pi) * mpmath.gamma(df / 2) * scale) * (1 + z * z / df) ** (-(df + 1) / 2)

        def cdf(y, df, loc, scale):
            z = (y - loc) / scale
            tail = mpmath.betainc(df / 2, mpmath.mpf(1) / 2, 0, df / (df + z * z), regularized=True) / 2
            return 1 - tail if z > 0 else tail
        support = [-mpmath.inf, mpmath.inf]
        # Heavy tails: split the baseline's axis at growing distances so each piece is smooth.
        means = [base[1], arm[1]] + [base[1] + s * k * base[2] for k in (1, 4, 16, 64, 256, 1024) for s in (-1, 1)]

    def f(x):
        below = cdf(threshold(x, better, kind, tol), *arm)
        return pdf(x, *base) * (below if better == "higher" else 1 - below)

    spots = sorted(set([support[0]] + [mpmath.mpf(m) for m in means] + [support[1]]))
    return float(mpmath.quad(f, spots, maxdegree=10))


def scipy_p_harm(family, arm, base, better, kind, tol):
    a_dist = stats.beta(*arm) if family == "beta" else stats.t(arm[0], loc=arm[1], scale=arm[2])
    b_dist = stats.beta(*base) if family == "beta" else stats.t(base[0], loc=base[1], scale=base[2])

    def f(x):
        y = threshold(x, better, kind, tol)
        g = a_dist.cdf(y) if better == "higher" else a_dist.sf(y)
        return b_dist.pdf(x) * g
    lo, hi = b_dist.ppf(1e-15), b_dist.ppf(1 - 1e-15)
    points = sorted({b_dist.mean(), a_dist.mean()} & set(x for x in [b_dist.mean(), a_dist.mean()] if lo < x < hi))
    value, _ = integrate.quad(f, lo, hi, points=points or None, limit=500, epsabs=1e-14, epsrel=1e-12)
    return value


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "fixtures/oracles/p_harm.csv"
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case", "family", "arm_1", "arm_2", "arm_3", "base_1", "base_2", "base_3", "better", "tolerance_kind", "tolerance", "p_harm"])
        for case, (family, arm, base, better, kind, tol) in CASES.items():
            exact = mp_p_harm(family, arm, base, better, kind, tol)
            check = scipy_p_harm(family, arm, base, better, kind, tol)
            if abs(exact - check) > 1e-11:
                raise SystemExit(f"{case}: mpmath {exact} and scipy {check} disagree")
            pad = lambda p: list(p) + [""] * (3 - len(p))
            writer.writerow([case, family] + pad(arm) + pad(base) + [better, kind, tol, repr(exact)])


if __name__ == "__main__":
    main()
