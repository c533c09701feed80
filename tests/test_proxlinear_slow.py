"""Prox-linear rank-one sensing at the dimensions of the reference values (d up to 1000): map vs
Monte Carlo (docs/proxlinear.md, "Reference values").

Slow on a CPU (minutes); run with ``pytest -m slow tests/test_proxlinear_slow.py``. Smaller
versions of every check run by default in tests/test_proxlinear.py.
"""

import jax
import numpy as np
import pytest

from hdsgd import compare, predict, simulate
from hdsgd.proxlinear import ProxLinearSensing

START = (0.7, 0.6, 0.8, 0.5)
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("fields, horizon, checks, seeds", [
    # the reference rows: the Monte Carlo means of docs/proxlinear.md, "Reference values"
    (dict(dim_left=1000, dim_right=1000, batch_size=20, step_size=0.02, noise_std=0.1), 400,
     {100: 0.3597, 200: 0.1925, 400: 5.33e-2}, 32),
    (dict(dim_left=400, dim_right=1000, batch_size=500, step_size=1.5, noise_std=0.2), 10,
     {4: 0.2403, 10: 6.84e-2}, 16),
    (dict(dim_left=1000, dim_right=1000, batch_size=1000, step_size=1.0, noise_std=0.0), 14,
     {5: 0.1288, 10: 1.839e-2, 14: 3.732e-3}, 8),
])
def test_reference_rows_against_monte_carlo(fields, horizon, checks, seeds):
    setup = ProxLinearSensing(initial_state=START, **fields)
    times = np.unique(np.concatenate([np.linspace(0, horizon, 41).round(), list(checks)]))
    theory = predict(setup, horizon, times=times, method="map")
    mc = simulate(setup, horizon, key=jax.random.key(11), seeds=seeds, times=times,
                  progress=False)
    agreement = compare(theory, mc)
    assert agreement.ok(sem_tol=4.5), agreement.summary()
    mean = dict(zip(mc.time.astype(int), mc.mean()["error_sq"]))
    for t, ref in checks.items():  # our Monte Carlo agrees with the reference's to a few percent
        assert abs(mean[t] - ref) < 0.08 * ref, (t, mean[t], ref)


def test_small_batch_m1_against_monte_carlo_and_ode():
    setup = ProxLinearSensing(dim_left=1000, dim_right=1000, batch_size=1, step_size=1e-3,
                              noise_std=0.1, initial_state=START)
    horizon = 15000
    theory = predict(setup, horizon, method="map")
    ode = predict(setup, horizon, method="ode")
    mc = simulate(setup, horizon, key=jax.random.key(12), seeds=16, progress=False)
    assert compare(theory, mc).ok(sem_tol=4.5)
    assert compare(ode, mc).ok(sem_tol=4.5)
    np.testing.assert_allclose(ode["error_sq"], theory["error_sq"], rtol=2e-3)


def test_gap_shrinks_with_dimension_large():
    rel = []
    for d in (50, 400):
        setup = ProxLinearSensing(dim_left=d, dim_right=d, batch_size=d // 2, step_size=1.0,
                                  noise_std=0.1, initial_state=START)
        theory = predict(setup, 10, method="map")
        mc = simulate(setup, 10, key=jax.random.key(13), seeds=32, progress=False)
        a = compare(theory, mc, "error_sq")
        assert a.ok(sem_tol=4.5), a.summary()
        rel.append(a["error_sq"].max_rel_gap)
    assert rel[1] < 0.5 * rel[0], rel
