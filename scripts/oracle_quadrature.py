"""The integrals shared by the oracle scripts: P(arm is best) = ∫ f_k Π_{j≠k} F_j and expected loss
E[max] − E[θ_k], by adaptive quadrature (scipy.integrate.quad) over [lo, hi] split at `points`."""
from scipy import integrate


def p_best_and_loss(dists, lo, hi, points, **quad_options):
    probabilities = []
    e_max = 0.0
    for k, dk in enumerate(dists):
        def f(x, k=k, dk=dk):
            v = dk.pdf(x)
            for j, dj in enumerate(dists):
                if j != k:
                    v *= dj.cdf(x)
            return v
        p, _ = integrate.quad(f, lo, hi, points=points, **quad_options)
        m, _ = integrate.quad(lambda x: x * f(x), lo, hi, points=points, **quad_options)
        probabilities.append(p)
        e_max += m
    return probabilities, [e_max - d.mean() for d in dists]
