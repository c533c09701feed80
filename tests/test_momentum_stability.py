"""The heavy-ball stability edge of label-noise SGD with momentum (docs/momentum.md, "Stability
edge"): eta lambda_0 = 2 (1 + beta) with lambda_0 the stiffest normal curvature at the start;
theory and Monte Carlo diverge just above it and not just below, and every prediction past it
is inf after the start, finite at t = 0, with a warning naming the edge."""

import math

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd import InnerProductMomentum, MatrixSensingMomentum, TwoParameterMomentum, predict
from hdsgd.momentum import MODEL_METHODS, critical_step_size

# High momentum and weak label noise: at beta = 0.99 a run started at (or near) the flattest
# point has no flatter place to be thrown to, so past the edge the normal oscillation grows
# until the run blows up (at beta = 0.9 it would settle into a bounded oscillation instead;
# docs/momentum.md, "Stability edge").
EDGE_MODELS = {
    "two_parameter": TwoParameterMomentum(momentum=0.99, label_noise=1e-3, initial_coordinate=0.5),
    "inner_product": InnerProductMomentum(momentum=0.99, label_noise=1e-3, initial_coordinate=0.0,
                                          initial_cosine=0.95, dim=4),
    "matrix_sensing": MatrixSensingMomentum(momentum=0.99, label_noise=1e-3, n_samples=20),
}


def test_critical_step_size_formulas():
    two = TwoParameterMomentum(momentum=0.9, initial_coordinate=1.0)
    assert math.isclose(critical_step_size(two), 3.8 / (2 * math.cosh(2.0)), rel_tol=1e-14)
    inner = InnerProductMomentum(momentum=0.5, initial_coordinate=0.3, initial_cosine=0.4)
    w0 = inner.start()
    lam = float(np.sum(w0**2))  # tr Hess L = P + Q
    assert math.isclose(critical_step_size(inner), 3.0 / lam, rel_tol=1e-12)
    # matrix sensing: the top eigenvalue of the Hessian at the interpolating U_0 (numerically)
    sensing = MatrixSensingMomentum(n_samples=20, momentum=0.0)
    problem = hdsgd.momentum.matrix_sensing_problem(sensing)
    a, u0 = problem["a"], problem["u0"]
    jac = 2.0 * np.einsum("nab,bk->nak", a, u0).reshape(a.shape[0], -1)
    hess = jac.T @ jac / a.shape[0]  # + (1/n) sum_i r_i Hess f_i, with r_i = 0 at U_0
    assert math.isclose(critical_step_size(sensing), 2.0 / np.linalg.eigvalsh(hess)[-1],
                        rel_tol=1e-10)
    # along 1 - beta = C eta^gamma beta moves with eta: eta_c lambda_0 = 2 (1 + beta(eta_c))
    family = TwoParameterMomentum(step_size=1e-3, exponent=2 / 3, constant=0.711)
    edge = family.replace(step_size=critical_step_size(family))
    assert math.isclose(edge.step_size * edge.start_curvature(), 2 * (1 + edge.momentum),
                        rel_tol=1e-10)
    # ... and inf when even beta = 0 (the largest step the family allows) is stable
    # (C = 2, gamma = 1, lambda_0 = 2: beta = 0 at eta = 1/2, where eta lambda_0 = 1 < 2)
    assert math.isinf(critical_step_size(TwoParameterMomentum(step_size=1e-3, exponent=1.0,
                                                              constant=2.0,
                                                              initial_coordinate=0.0)))


@pytest.mark.parametrize("name", list(EDGE_MODELS))
def test_theory_and_monte_carlo_diverge_just_above_the_edge_and_not_just_below(name):
    setup = EDGE_MODELS[name]
    eta_c = critical_step_size(setup)
    below, above = setup.replace(step_size=0.95 * eta_c), setup.replace(step_size=1.05 * eta_c)
    times = np.array([0, 1, 2, 5, 10, 20, 50, 100, 200])
    th_below, th_above = (predict(s, 200, times=times) for s in (below, above))
    assert not th_below.any_diverged and "warning" not in th_below.meta
    assert np.all(np.isfinite(th_below["trace_hessian"]))
    assert th_above.diverged[1:].all() and "critical step size" in th_above.meta["warning"]
    mc_below, mc_above = (hdsgd.simulate(s, 200, key=jax.random.PRNGKey(3), seeds=16,
                                         times=times, progress=False) for s in (below, above))
    assert not mc_below.any_diverged
    runs = mc_above.diverged[:, -1].sum()
    # the product models: every run blows up; matrix sensing: about half of them (measured
    # 8 of 16 by step 50), the others are thrown to a flatter interpolant
    assert runs == 16 if name != "matrix_sensing" else runs >= 4, runs


@pytest.mark.parametrize("setup", [
    TwoParameterMomentum(step_size=0.6, momentum=0.0, initial_coordinate=1.0),
    InnerProductMomentum(step_size=0.3, momentum=0.0, dim=4),
    MatrixSensingMomentum(step_size=1.2, momentum=0.0, n_samples=20),
], ids=["two_parameter", "inner_product", "matrix_sensing"])
def test_every_method_past_the_edge_is_inf_after_a_finite_start(setup):
    assert setup.step_size > critical_step_size(setup)
    for method in MODEL_METHODS[type(setup)]:
        curve = predict(setup, 30, method=method, **({"paths": 8} if method == "sde" else {}))
        assert not curve.diverged[0] and curve.time[0] == 0, method
        for name in curve.names:
            assert np.isfinite(curve[name][0]), (method, name)
            assert np.all(np.isinf(curve[name][1:])), (method, name)
        assert curve.diverged[1:].all(), method
        warning = curve.meta["warning"]
        assert "critical step size" in warning and "2 (1 + beta)" in warning, method
        assert math.isclose(curve.meta["critical_step_size"], critical_step_size(setup))
