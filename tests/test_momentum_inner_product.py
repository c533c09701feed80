"""Label-noise SGD with momentum on the inner-product model f = <u, v> (docs/momentum.md, "The
inner-product model") in the critical regime 1 - beta = C eta^{2/3}: the reduced SDE in the
ambient coordinates of span(u_0, v_0) (`hdsgd.odes.momentum._inner_product`) against the
Monte Carlo, its deterministic closure rejected there, both right when gamma < 2/3."""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hdsgd import (InnerProductMomentum, LogRange, TwoParameterMomentum, compare, predict,
                   simulate, tune)
from hdsgd.momentum import measured_time_to_target
from hdsgd.odes import momentum as th
from hdsgd.odes.momentum import _inner_product as ip

DELTA = 0.3
KAPPA = 4.0  # d^2 tr H / dl^2 along the slowest curved direction at u = v, ||u|| = 1 (tested)
# gamma = 2/3 at the critical-damping constant C* = (delta^2 kappa)^{1/3} = 0.711, start off
# balance (s_0 = 1) and off parallel (c = 1/2), d = 4
CRITICAL = dict(dim=4, initial_cosine=0.5, step_size=1e-3, exponent=2.0 / 3.0,
                constant=(DELTA**2 * KAPPA) ** (1.0 / 3.0), label_noise=DELTA)
# separated timescales, gamma = 1/2 (the settings of the flow test in test_momentum_models)
SEPARATED = dict(dim=8, initial_cosine=0.5, step_size=2.2e-3, exponent=0.5,
                 constant=0.05 / 2.2e-3**0.5, label_noise=0.5)
# gamma = 2/3 with faster motion along the manifold (eta = 1e-2, 1 - beta = 0.033): the drift from
# s_0 = 1 to the flattest circle takes ~1000 steps (d = 2: the law does not depend on d)
FAST_CRITICAL = dict(dim=2, initial_cosine=0.5, step_size=1e-2, exponent=2.0 / 3.0,
                     constant=(DELTA**2 * KAPPA) ** (1.0 / 3.0), label_noise=DELTA)
OBS = ("manifold_coordinate", "trace_hessian", "distance_to_flattest")
TARGET = 0.1  # sqrt(E s^2) <= 0.1 from s_0 = 1


@functools.lru_cache(maxsize=None)
def _mc(name, horizon, seeds, key, step=25):
    setup = InnerProductMomentum(**globals()[name])
    times = np.unique(np.concatenate([[0, 10, 30, 60], np.arange(0, horizon + 1, step)]))
    return simulate(setup, horizon, key=jax.random.PRNGKey(key), seeds=seeds, times=times,
                    progress=False)


# ----------------------------------------------------------------- geometry
def test_slowest_curvature_at_the_flattest_point():
    """kappa for the inner product, from the Riemannian Hessian of tr H on <u, v> = 1
    at u = v = e_1 (tr H o Retract on the tangent space; exact at a critical point for any
    second-order retraction): eigenvalues {0, 4, 4} (the rotation of the flattest circle, the
    balance direction and the opening direction), so kappa = 4 as for w_1 w_2 and
    C* = (4 delta^2)^{1/3}."""
    with jax.enable_x64(True):
        w_star = jnp.asarray([[1.0, 0.0], [1.0, 0.0]])
        basis = jnp.asarray([[[1, 0], [-1, 0]], [[0, 1], [0, -1]], [[0, 1], [0, 1]]],
                            dtype=jnp.float64) / math.sqrt(2.0)
        for t in basis:  # orthonormal tangent vectors: <grad f, t> = 0
            assert abs(float(jnp.sum(ip._grad_f(w_star) * t))) < 1e-15

        def trace_h(c):
            w = ip.retract(w_star + jnp.tensordot(c, basis, axes=1), iterations=8)
            return jnp.sum(w * w)

        hess = np.asarray(jax.jit(jax.hessian(trace_h))(jnp.zeros(3)))
    eig = np.sort(np.linalg.eigvalsh(hess))
    np.testing.assert_allclose(eig, [0.0, KAPPA, KAPPA], atol=1e-8)
    assert th.SLOW_CURVATURE == KAPPA == th.flattest_curvature(InnerProductMomentum(**CRITICAL))[1]


def test_reduced_step_stays_on_the_manifold():
    """The Euler step with the Gauss-Newton retraction keeps <u, v> = 1 and the velocity
    tangent, and the velocity re-projection keeps its length."""
    setup = InnerProductMomentum(**CRITICAL)
    with jax.enable_x64(True):
        w, q, var = (np.asarray(a[0]) for a in ip.reduced_paths(
            setup, [0, 200, 800, 1600], key=jax.random.PRNGKey(1), paths=64, dt=5.0,
            noise=True))
    np.testing.assert_allclose((w[:, 0] * w[:, 1]).sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose((q * w[:, ::-1]).sum((-2, -1)), 0.0, atol=1e-12)
    assert np.all(var[1:] > 0) and np.abs(q[-1]).max() > 1e-5  # it moved


# ----------------------------------------------------------------- c = 1: the two-parameter model
def test_observables_equal_two_parameter_ones_when_parallel():
    """For u || v the Gaussian observables over the normal fluctuation, with the mean normal
    offset, are the two-parameter ones exactly (same (s, sdot, S)). The random-phase law used
    for the SDE's paths has the same E x^2 (tr H identical) but puts less mass near x = 0:
    at the flattest point the distance, |x|/sqrt(2), is larger by (2 sqrt 2/pi)/sqrt(2/pi)
    = 2/sqrt(pi) = 1.128 than for a Gaussian, and its 12 phases get it within 0.5% (12-point
    Gauss-Hermite overestimates E|x| of a Gaussian by 3.5%: the kink)."""
    eta = 1e-3
    with jax.enable_x64(True):
        s = jnp.asarray([0.9, 0.3, -0.2, 0.0])
        sdot = jnp.asarray([-2e-3, -1e-3, 4e-4, 0.0])
        var = jnp.asarray([3e-3, 6e-3, 7e-3, 6.5e-3])
        w = jnp.stack([jnp.stack([jnp.exp(s), 0 * s], -1), jnp.stack([jnp.exp(-s), 0 * s], -1)],
                      -2)
        q = jnp.stack([jnp.stack([jnp.exp(s), 0 * s], -1), jnp.stack([-jnp.exp(-s), 0 * s], -1)],
                      -2) * sdot[:, None, None]
        observe = jax.jit(ip.fluctuation_observables, static_argnames="phase")
        numpy = lambda d: {k: np.asarray(v) for k, v in d.items()}  # noqa: E731
        gauss = numpy(observe(w, q, var, eta, phase=False))
        phase = numpy(observe(w, q, var, eta, phase=True))
        theirs = numpy(jax.jit(lambda s, var, sdot: th.gaussian_observables(
            s, th.normal_offset(s, var, sdot, eta), var))(s, var, sdot))
        var = np.asarray(var)
    for name in ("manifold_coordinate", "trace_hessian", "train_loss", "distance_to_flattest"):
        np.testing.assert_allclose(gauss[name], theirs[name], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(phase["trace_hessian"], gauss["trace_hessian"], rtol=1e-12)
    # at s = 0, sdot = 0 the distance is |x|/sqrt(2): E over the phase, finely resolved
    m = -3.0 * float(var[-1]) / 2.0**1.5
    phi = (np.arange(200_000) + 0.5) * np.pi / 200_000
    exact = np.mean(np.abs(m + np.sqrt(2.0 * float(var[-1])) * np.cos(phi))) / np.sqrt(2.0)
    assert abs(float(phase["distance_to_flattest"][-1]) / exact - 1.0) < 0.005
    gauss_exact = np.sqrt(float(var[-1]) / np.pi)  # E|x|/sqrt(2), x ~ N(0, S) (m is tiny)
    ratio = float(phase["distance_to_flattest"][-1]) / gauss_exact
    assert abs(ratio - 2.0 / np.sqrt(np.pi)) < 0.01, ratio  # (2 sqrt 2/pi) / sqrt(2/pi)


def test_parallel_start_reproduces_two_parameter_sde():
    """c = 1: the ambient reduced equations are the two-parameter ones. The
    deterministic closure (Euler + retraction) matches the two-parameter closure (Tsit5 in
    (s, p, S)) to the Euler error, 7e-4 at dt = 1 and a quarter of it at dt = 1/4; the SDE
    gives the same statistics of s and S (2000 paths each, within 4 standard errors)."""
    common = {k: v for k, v in CRITICAL.items() if k not in ("dim", "initial_cosine")}
    two = TwoParameterMomentum(**common)
    inner = InnerProductMomentum(dim=2, initial_cosine=1.0, **common)
    steps = np.array([0, 150, 300, 600, 1000, 1500, 2000, 3000])

    def s_of(w):
        w = np.asarray(w)
        return 0.5 * np.log(np.abs(w[..., 0, 0]) / np.abs(w[..., 1, 0]))

    def inner_paths(**kw):
        with jax.enable_x64(True):
            return tuple(np.asarray(a) for a in ip.reduced_paths(inner, steps, **kw))

    with jax.enable_x64(True):
        ys, _ = th.reduced_paths(two, steps, key=jax.random.PRNGKey(0), paths=1, dt=1.0,
                                 noise=False)
    ref_s, ref_var = ys[0, :, 0], ys[0, :, 2]
    errors = []
    for dt in (1.0, 0.25):
        w, q, var = inner_paths(key=jax.random.PRNGKey(0), paths=1, dt=dt, noise=False)
        assert np.abs(w[..., 1]).max() == 0.0  # stays on the line of u_0, v_0
        errors.append(np.abs(s_of(w[0]) - ref_s).max())
        np.testing.assert_allclose(var[0], ref_var, rtol=2e-3, atol=1e-7)
    assert errors[1] < 2.5e-4 and errors[1] < 0.35 * errors[0], errors  # first order in dt

    paths = 2000
    with jax.enable_x64(True):
        ys, _ = th.reduced_paths(two, steps, key=jax.random.PRNGKey(1), paths=paths, dt=1.5,
                                 noise=True)
    w, q, var = inner_paths(key=jax.random.PRNGKey(2), paths=paths, dt=1.5, noise=True)
    pairs = {"s": (ys[..., 0], s_of(w)), "S": (ys[..., 2], var),
             "s^2": (ys[..., 0] ** 2, s_of(w) ** 2)}
    for name, (a, b) in pairs.items():
        se = np.sqrt((a.var(0) + b.var(0)) / paths)[1:]
        gap = np.abs(a.mean(0) - b.mean(0))[1:]
        assert np.all(gap < 4 * se), (name, gap / se)
    # and the energy noise is there: the spread of S over paths is O(S)
    assert var[:, -1].std() > 0.3 * var[:, -1].mean()


# ----------------------------------------------------------------- gamma = 2/3
def test_critical_regime_sde_matches_monte_carlo_and_closure_does_not():
    """gamma = 2/3, C = C*, c = 1/2, d = 4: the reduced SDE follows the Monte Carlo (500
    seeds) on the manifold coordinate, tr H and the distance to the flattest minimisers, and
    gives its settling time E[s^2] <= 0.1^2 (measured: 2496 +- 48 vs 2512); the deterministic
    closure (no energy noise) is ~13 s.e. off on tr H and ~16 s.e. early on the time.
    Measured: s 3.6 s.e., tr H 2.7, distance 1.9, loss 2.9. In the tail the SDE's E[s] decays
    a little slower (0.004 vs 0.0014 at k = 3500, 2.5 s.e. with 8000 paths; a finite-eta
    effect that shrinks with eta, see the gap tests), hence 5 s.e. on s, 4 on the rest."""
    setup = InnerProductMomentum(**CRITICAL)
    mc = _mc("CRITICAL", 3500, 500, 11)
    sde = predict(setup, 3500, times=mc.time, method="sde", paths=4000,
                  key=jax.random.PRNGKey(12))
    agreement = compare(sde, mc, OBS + ("train_loss",), t_min=100)
    assert agreement["manifold_coordinate"].max_sem_gap < 5.0, agreement.summary()
    for name in ("trace_hessian", "distance_to_flattest", "train_loss"):
        assert agreement[name].max_sem_gap < 4.0, agreement.summary()
    mean = mc.mean()  # the run really moved: s from 1 to ~0.05, tr H from 15 to ~2
    assert mean["trace_hessian"][0] > 15 and mean["trace_hessian"][-1] < 2.2
    closure = predict(setup, 3500, times=mc.time, method="closure")
    bad = compare(closure, mc, OBS, t_min=100)
    assert bad["trace_hessian"].max_sem_gap > 8 and bad["distance_to_flattest"].max_sem_gap > 8, \
        bad.summary()

    t_mc, err = measured_time_to_target(mc, TARGET)
    # (the same grid size as above: the compiled solvers are reused)
    t_sde = th.time_to_target(setup, TARGET, method="sde", horizon=3500, paths=4000,
                              key=jax.random.PRNGKey(13), points=140)
    assert abs(t_sde - t_mc) < 4 * err, (t_sde, t_mc, err)
    t_closure = th.time_to_target(setup, TARGET, method="closure", horizon=3500, points=140)
    assert abs(t_closure - t_mc) > 8 * err, (t_closure, t_mc, err)
    # the first-order flow (separated-regime law) is not the answer here either
    assert abs(th.time_to_target(setup, TARGET, method="flow") - t_mc) > 8 * err


def test_fast_critical_sde_matches_monte_carlo_and_closure_does_not():
    """gamma = 2/3 at eta = 1e-2, c = 1/2: tr H falls from 15 to 2 in ~1000 steps. The reduced
    SDE in the ambient coordinates (2000 paths) is held to 4 s.e. on every observable from
    k = 100 (2000 seeds); the closure (no energy noise) is > 8 s.e. off."""
    setup = InnerProductMomentum(**FAST_CRITICAL)
    times = np.unique(np.concatenate([[0, 1, 3, 10], np.geomspace(20, 1500, 28).round()]))
    mc = simulate(setup, 1500, key=jax.random.PRNGKey(1), seeds=2000, times=times,
                  progress=False)
    names = OBS + ("train_loss", "u_norm_sq", "v_norm_sq")
    sde = predict(setup, 1500, times=times, method="sde", paths=2000, key=jax.random.PRNGKey(7))
    agreement = compare(sde, mc, names, t_min=100)
    name, time, gap = agreement.worst
    assert agreement.ok(sem_tol=4.0), \
        f"largest gap {gap:.3g} SE ({name} at step {time:g}; limit 4.0)\n{agreement.summary()}"
    closure = compare(predict(setup, 1500, times=times, method="closure"), mc, names, t_min=100)
    assert closure.worst[2] > 8, closure.summary()


GAP_OBS = ("distance_to_flattest", "trace_hessian", "manifold_coordinate")


@pytest.mark.slow
def test_sde_optimal_constant_against_monte_carlo():
    """The optimal C (`hdsgd.tune` with `time_objective`) from the inner product's reduced SDE (measured: C = 0.486, T = 2077)
    beats the critical-damping estimate C* = 0.711 in the Monte Carlo too (measured, 1000
    seeds: 2027 +- 19 vs 2532 +- 34), and its T is the Monte Carlo's at that C within 2.5%
    (2.6 s.e.)."""
    setup = InnerProductMomentum(**CRITICAL)
    c_star = setup.constant
    space = LogRange(c_star / 3, 2 * c_star, 9)
    dt = th.common_dt(setup, "constant", space, "sde")
    tuned = tune(setup, {"constant": space},
                 th.time_objective(TARGET, method="sde", paths=1000, dt=dt))
    c_opt, t_opt = tuned.setup.constant, tuned.objective_value
    assert 0.35 < c_opt < 0.65, c_opt
    times = np.arange(0, 4001, 25)

    def t_mc(c, seed):
        mc = simulate(dataclasses.replace(setup, constant=c), 4000, key=jax.random.PRNGKey(seed),
                      seeds=1000, times=times, progress=False)
        return measured_time_to_target(mc, TARGET)

    at_opt, at_star = t_mc(c_opt, 60), t_mc(c_star, 61)
    assert at_opt[0] < at_star[0] - 3 * math.hypot(at_opt[1], at_star[1]), (at_opt, at_star)
    assert abs(t_opt - at_opt[0]) < 4 * at_opt[1] + 0.02 * at_opt[0], (t_opt, at_opt)


def _critical_gaps(eta, seeds, paths, key):
    """Largest |SDE - Monte Carlo| of the distance to the flattest minimisers, tr H and s over
    t = k eta^{2/3} in [0.5, 12], delta = 1, C = C* = 4^{1/3}, c = 1/2."""
    setup = InnerProductMomentum(dim=2, initial_cosine=0.5, step_size=eta, exponent=2.0 / 3.0,
                                 constant=4.0 ** (1.0 / 3.0), label_noise=1.0)
    times = np.unique(np.round(np.linspace(0.5, 12.0, 24) * eta ** (-2.0 / 3.0)))
    mc = simulate(setup, times[-1], key=jax.random.PRNGKey(key), seeds=seeds, times=times,
                  progress=False)
    sde = predict(setup, times[-1], times=times, method="sde", paths=paths,
                  key=jax.random.PRNGKey(key + 1))
    return compare(sde, mc, GAP_OBS)


def _abs_gaps(agreement):
    return np.array([agreement[name].max_abs_gap for name in GAP_OBS])


def test_critical_gap_shrinks_as_step_size_decreases():
    """The small parameter at gamma = 2/3 is eta (the normal fluctuation sqrt(S) ~ eta^{1/6};
    what the SDE leaves out, e.g. the tangential jitter that the normal kicks cause on the
    curved manifold, is higher order in it). With large label noise (delta = 1; sqrt(S) = 0.31
    at eta = 3e-2) the SDE is visibly off, much less at eta = 1e-3 (sqrt(S) = 0.18).
    Measured (8000 seeds): distance 0.038 -> 0.009, tr H 0.11 -> 0.07."""
    gaps = [_abs_gaps(_critical_gaps(eta, 4000, 4000, 40)) for eta in (3e-2, 1e-3)]
    assert gaps[1][0] < 0.5 * gaps[0][0] and gaps[1][1] < 0.75 * gaps[0][1], gaps


@pytest.mark.slow
def test_critical_gap_shrinks_as_step_size_decreases_slow():
    """Over eta = 3e-2, 1e-2, 1e-3, 1e-4 at 8000 seeds the gap on the distance falls
    (measured: 0.038, 0.026, 0.0089, 0.0085 = 16.7, 12.9, 5.9, 3.6 s.e.), on tr H too (0.11,
    0.081, 0.071, 0.056); on s the relative gap in the tail falls (0.31, 0.31, 0.23, 0.13).
    At eta = 1e-4 every observable is within 4.5 s.e. (measured 3.6, 3.6, 3.5)."""
    found = [_critical_gaps(eta, 8000, 8000, 50) for eta in (3e-2, 1e-2, 1e-3, 1e-4)]
    gaps = np.array([_abs_gaps(a) for a in found])
    assert gaps[1, 0] < gaps[0, 0] and gaps[2, 0] < gaps[1, 0], gaps
    assert gaps[3, 0] < 0.3 * gaps[0, 0] and gaps[3, 1] < 0.7 * gaps[0, 1], gaps
    rel = [a["manifold_coordinate"].max_rel_gap for a in found]
    assert rel[3] < 0.6 * rel[0], rel
    assert found[-1].ok(sem_tol=4.5), found[-1].summary()


# ----------------------------------------------------------------- gamma < 2/3
def test_separated_regime_sde_and_closure_agree_with_flow_and_monte_carlo():
    """gamma = 1/2: the energy noise self-averages on the slow timescale, so the SDE and its
    closure agree with each other, with the first-order flow (closed form, within 4% after
    the start-up) and with the Monte Carlo (within 4 s.e.); a doubled delta^2 is rejected."""
    setup = InnerProductMomentum(**SEPARATED)
    times = np.unique(np.concatenate([[0, 1, 3, 10], np.geomspace(20, 8000, 24).round()]))
    mc = simulate(setup, 8000, key=jax.random.PRNGKey(31), seeds=300, times=times,
                  progress=False)
    flow = predict(setup, 8000, times=times, method="flow")
    late = times >= 400
    names = OBS + ("u_norm_sq", "v_norm_sq")
    for method, kw in (("sde", dict(paths=500, key=jax.random.PRNGKey(32))), ("closure", {})):
        curve = predict(setup, 8000, times=times, method=method, **kw)
        agreement = compare(curve, mc, names, t_min=400)
        assert agreement.ok(sem_tol=4.0), (method, agreement.summary())
        for name in names:
            rel = np.abs(curve[name][late] / flow[name][late] - 1.0).max()
            assert rel < 0.04, (method, name, rel)
    wrong = predict(dataclasses.replace(setup, label_noise=setup.label_noise * math.sqrt(2)),
                    8000, times=times, method="closure")
    bad = compare(wrong, mc, "trace_hessian", t_min=400, same_setup=False)
    assert bad["trace_hessian"].max_sem_gap > 10
    # time-to-target: the flow's closed form and the SDE's settling time agree
    t_flow = th.time_to_target(setup, TARGET, method="flow")
    t_sde = th.time_to_target(setup, TARGET, method="sde", horizon=9000, paths=500,
                              points=31)  # the grid size of the curves above: no recompilation
    assert abs(t_sde / t_flow - 1.0) < 0.05, (t_sde, t_flow)


def test_flow_time_to_target_closed_form():
    """The inner-product flow's T solves s(T) = target on the flow's invariants, and for
    c = 1 it is the two-parameter closed form."""
    setup = InnerProductMomentum(**{**SEPARATED, "initial_cosine": 0.3})
    t = th.time_to_target(setup, TARGET, method="flow")
    p, q, _ = th.invariants_flow(setup, [t])
    assert math.isclose(0.25 * math.log(p[0] / q[0]), TARGET, rel_tol=1e-9)
    parallel = InnerProductMomentum(**{**SEPARATED, "initial_cosine": 1.0})
    two = TwoParameterMomentum(**{k: v for k, v in SEPARATED.items()
                                  if k not in ("dim", "initial_cosine")})
    assert math.isclose(th.time_to_target(parallel, TARGET, method="flow"),
                        th.time_to_target(two, TARGET, method="flow"), rel_tol=1e-12)


# ----------------------------------------------------------------- input checks
def test_inner_product_methods_checked():
    setup = InnerProductMomentum(**CRITICAL)
    assert th.MODEL_METHODS[InnerProductMomentum] == ("flow", "sde", "closure")
    for method in ("recursion", "euler"):
        with pytest.raises(ValueError, match=r"method=.*allowed: \('flow', 'sde', 'closure'\)"):
            predict(setup, 10, method=method)
    with pytest.raises(ValueError, match="recursion"):
        th.time_to_target(setup, TARGET, method="recursion", horizon=100)
    with pytest.raises(ValueError, match="paths"):
        predict(setup, 10, method="sde", paths=0)
    with pytest.raises(ValueError, match="dt"):
        predict(setup, 10, method="closure", dt=-1.0)
    with pytest.raises(ValueError, match="tolerance"):
        predict(setup, 10, method="sde", tolerance=1e-3)
    curve = predict(setup, 100, method="closure")
    assert curve.meta["method"] == "closure" and curve.meta["solver_ok"]
    assert set(curve.names) == set(setup.observable_names) and not curve.diverged.any()


def test_unstable_step_flagged_not_nan():
    """Past the transverse stability edge eta tr H >= 2 (1 + beta) the prediction is flagged
    diverged and inf, never NaN."""
    setup = InnerProductMomentum(dim=2, initial_cosine=0.5, step_size=0.2, momentum=0.0,
                                 label_noise=0.3)
    for method, kw in (("sde", dict(paths=8)), ("closure", {})):
        curve = predict(setup, 50, method=method, **kw)
        assert curve.diverged[-1], method
        assert not np.isnan(curve["trace_hessian"]).any()
        assert np.all(np.isinf(curve["trace_hessian"][curve.diverged]))
