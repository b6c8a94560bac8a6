"""Independent reference values for period-standardized arm estimates (docs/statistics.md,
"Period effects").

Each case is a table of (period, arm, units, conversions). The model
E[conversions of arm a in period p] = units · λ_p · θ_a is fitted here by Newton's method on the
conditional (multinomial) log-likelihood of the arms' conversions within each period, in log θ with
θ of the first arm fixed at 1; λ_p = Y_p / Σ_a n_pa θ_a then follows. (levered fits the same maximum
by iterative proportional fitting, a different algorithm.) From the fit: each arm's mix factor
f_a = (Σ_p n_pa λ_p / n_a) / (Σ_p n_p λ_p / n), its Beta(1 + C_a, 1 + n_a f_a − C_a) posterior, its
mean and equal-tailed 95% interval (scipy.stats.beta), and P(best) with expected loss by adaptive
quadrature (scipy.integrate.quad).

Run: python3 scripts/period_oracles.py  (needs scipy) — writes fixtures/oracles/periods_input.csv and
fixtures/oracles/periods.csv.
"""
import csv
import math
import os

from scipy import stats

import oracle_quadrature

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "fixtures", "oracles")


def fixture_table():
    """The stage tests' world (src/train/fixture.rs): 221 mature visitors, ten an hour, alternately
    red (arm 1) and blue (arm 2); red converts at pairs 0 mod 10, blue at pairs 0, 1, 2 mod 10."""
    table = {}
    for i in range(221):
        blue = i % 2 == 1
        key = (i // 10, 2 if blue else 1)
        converts = (i // 2) % 10 < (3 if blue else 1)
        units, conversions = table.get(key, (0, 0))
        table[key] = (units + 1, conversions + int(converts))
    return table


def cycle_table():
    """A day of hourly periods, 3x better in the 12 peak hours, where the allocation moves toward
    arm 2 during the peak: the pooled rates favour arm 2 more than its true 10% edge."""
    rates = {1: 0.040, 2: 0.044, 3: 0.036}
    table = {}
    for hour in range(24):
        level = 1.5 if 8 <= hour < 20 else 0.5
        shares = {1: 0.2, 2: 0.7, 3: 0.1} if 8 <= hour < 20 else {1: 0.45, 2: 0.1, 3: 0.45}
        for arm, share in shares.items():
            units = round(4000 * share)
            table[(hour, arm)] = (units, round(units * level * rates[arm]))
    return table


def sparse_table():
    """Five-minute periods with a handful of visitors: most periods have no conversion at all."""
    table = {}
    for p in range(60):
        for arm in (1, 2, 3):
            units = 3 + (p * 7 + arm * 5) % 6
            conversions = 1 if (p * 13 + arm * 3) % 9 == 0 else 0
            if arm == 2 and p % 5 == 0:
                conversions += 1
            table[(p, arm)] = (units, min(conversions, units))
    return table


def zero_arm_table():
    """An arm that never converts, served only in the second half."""
    table = {}
    for p in range(8):
        table[(p, 1)] = (200, 6 + p)
        table[(p, 2)] = (150, 4 + 2 * p)
        if p >= 4:
            table[(p, 3)] = (30, 0)
    return table


CASES = {
    "fixture": fixture_table(),
    "cycle_confounded": cycle_table(),
    "sparse_periods": sparse_table(),
    "zero_arm": zero_arm_table(),
}


def fit(table):
    """log θ by Newton's method on the conditional log-likelihood; returns (θ, λ)."""
    periods = sorted({p for p, _ in table})
    arms = sorted({a for _, a in table})
    # An arm without conversions has θ = 0 at the maximum: it is left out of the Newton step.
    converting = [a for a in arms if sum(table.get((p, a), (0, 0))[1] for p in periods) > 0]
    free = converting[1:]
    log_theta = {a: 0.0 for a in converting}
    for _ in range(200):
        theta = {a: math.exp(log_theta[a]) for a in converting}
        gradient = {a: 0.0 for a in free}
        hessian = {(a, b): 0.0 for a in free for b in free}
        for p in periods:
            cells = {a: table.get((p, a), (0, 0)) for a in converting}
            total = sum(c for _, c in cells.values())
            weight = sum(n * theta[a] for a, (n, _) in cells.items())
            if total == 0 or weight == 0:
                continue
            share = {a: cells[a][0] * theta[a] / weight for a in converting}
            for a in free:
                gradient[a] += cells[a][1] - total * share[a]
                for b in free:
                    hessian[(a, b)] -= total * (share[a] * (a == b) - share[a] * share[b])
        step = solve(free, hessian, gradient)
        for a in free:
            log_theta[a] -= step[a]
        if max((abs(s) for s in step.values()), default=0.0) < 1e-15:
            break
    theta = {a: math.exp(log_theta[a]) if a in log_theta else 0.0 for a in arms}
    levels = {}
    for p in periods:
        total = sum(table.get((p, a), (0, 0))[1] for a in arms)
        weight = sum(table.get((p, a), (0, 0))[0] * theta[a] for a in arms)
        levels[p] = total / weight if total > 0 and weight > 0 else 0.0
    return theta, levels


def solve(keys, matrix, vector):
    """Gaussian elimination of matrix · x = vector (matrix and vector keyed by `keys`)."""
    n = len(keys)
    rows = [[matrix[(keys[i], keys[j])] for j in range(n)] + [vector[keys[i]]] for i in range(n)]
    for i in range(n):
        pivot = max(range(i, n), key=lambda r: abs(rows[r][i]))
        rows[i], rows[pivot] = rows[pivot], rows[i]
        for r in range(n):
            if r != i:
                factor = rows[r][i] / rows[i][i]
                rows[r] = [x - factor * y for x, y in zip(rows[r], rows[i])]
    return {keys[i]: rows[i][n] / rows[i][i] for i in range(n)}


def main():
    with open(os.path.join(FIXTURES, "periods_input.csv"), "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["case", "period", "arm", "units", "conversions"])
        for case, table in CASES.items():
            for (p, a), (n, c) in sorted(table.items()):
                out.writerow([case, p, a, n, c])
    with open(os.path.join(FIXTURES, "periods.csv"), "w", newline="") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["case", "arm", "units", "conversions", "mix_factor", "alpha", "beta",
                      "mean", "ci95_low", "ci95_high", "p_best", "expected_loss"])
        for case, table in CASES.items():
            _, levels = fit(table)
            arms = sorted({a for _, a in table})
            units = {a: sum(n for (p, b), (n, _) in table.items() if b == a) for a in arms}
            conversions = {a: sum(c for (p, b), (_, c) in table.items() if b == a) for a in arms}
            overall = sum(n * levels[p] for (p, _), (n, _) in table.items()) / sum(units.values())
            factor = {a: sum(n * levels[p] for (p, b), (n, _) in table.items() if b == a)
                      / units[a] / overall for a in arms}
            posterior = {a: (1.0 + conversions[a], 1.0 + units[a] * factor[a] - conversions[a])
                         for a in arms}
            dists = [stats.beta(*posterior[a]) for a in arms]
            lo = max(0.0, min(d.ppf(1e-15) for d in dists))
            hi = min(1.0, max(d.ppf(1 - 1e-15) for d in dists))
            points = sorted({d.mean() for d in dists})
            p_best, loss = oracle_quadrature.p_best_and_loss(
                dists, lo, hi, points, limit=500, epsabs=1e-14, epsrel=1e-12)
            for i, a in enumerate(arms):
                d = dists[i]
                values = [factor[a], posterior[a][0], posterior[a][1], d.mean(), d.ppf(0.025),
                          d.ppf(0.975), p_best[i], loss[i]]
                out.writerow([case, a, units[a], conversions[a]] + [repr(float(v)) for v in values])


if __name__ == "__main__":
    main()
