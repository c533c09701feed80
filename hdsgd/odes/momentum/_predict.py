"""``predict`` for the three momentum models: pick the equivalent, run it, finish the Curve."""

from __future__ import annotations

import functools

import jax
import numpy as np

from ...api import predict, reject_options
from ...curve import Curve, finish_curve
from ...setups.momentum import (InnerProductMomentum, LabelNoiseMomentum,
                                MatrixSensingMomentum, TwoParameterMomentum)
from . import _inner_product as _inner
from ._fluctuation import stationary_variance
from ._flow import flow_ambient, invariants_flow
from ._observables import gaussian_observables_on_grid, normal_offset
from ._recursion import recursion_path
from ._scales import regime
from ._sde import default_dt, reduced_paths
from ._sensing import sensing_closure
from ._stability import critical_step_size, stability_warning

#: every deterministic equivalent of the system (the union over the models)
METHODS = ("recursion", "flow", "sde", "closure")
#: the equivalents of each model, its default first
MODEL_METHODS = {
    TwoParameterMomentum: ("recursion", "flow", "sde", "closure"),
    InnerProductMomentum: ("flow", "sde", "closure"),
    MatrixSensingMomentum: ("closure",),
}


@predict.register
def _predict(setup: LabelNoiseMomentum, horizon: float, *, times=None, method: str | None = None,
             key=None, paths: int | None = None, dt: float | None = None, **options) -> Curve:
    """Predict label-noise SGD with momentum (docs/momentum.md).

    Args:
        setup: a `TwoParameterMomentum`, `InnerProductMomentum` or `MatrixSensingMomentum`.
        horizon: final time in steps.
        times: output steps; default: every early step, then log-spaced (about 100 points).
        method: two-parameter model: ``"recursion"`` (default; the uniform recursion, any
            exponent), ``"flow"`` (the first-order flow, separated timescales gamma < 2/3),
            ``"sde"`` (the reduced SDE averaged over sample paths; critical and ballistic
            regimes with one normal mode) or ``"closure"`` (the reduced SDE without the energy
            noise). Inner-product model: ``"flow"`` (default; the invariants P, Q, R of the
            first-order flow in closed form, with the stationary normal fluctuation S(P + Q)
            and its mean offset added by Gauss-Hermite; gamma < 2/3), ``"sde"`` (the reduced
            SDE in the ambient coordinates of span(u_0, v_0), averaged over sample paths; the
            right equation at gamma >= 2/3, one normal mode) or ``"closure"`` (the same
            without the energy noise, one path, Euler step dt/4). Matrix sensing:
            ``"closure"`` only (the Gaussian moment closure over all normal modes).
        key: ``"sde"``/``"closure"`` only: PRNG key of the sample paths (default
            ``PRNGKey(0)``).
        paths: ``"sde"`` only: number of sample paths (default 1000).
        dt: ``"sde"``/``"closure"`` only: Euler step in steps (default `default_dt`).

    Returns:
        A theory `Curve` (time unit ``"step"``) with the model's observables. Past
        `critical_step_size` every point after the start is diverged (inf) and
        ``meta["warning"]`` names the edge; on the product models a point is also diverged
        from where the expected curvature E tr H reaches 2 (1 + beta) / eta.
    """
    reject_options(options, setup, ("key", "paths", "dt"))
    allowed = MODEL_METHODS[type(setup)]
    method = allowed[0] if method is None else method
    if method not in allowed:
        raise ValueError(f"method={method!r} is invalid for {type(setup).__name__}; "
                         f"allowed: {allowed}")
    given = {name for name, value in (("key", key), ("paths", paths), ("dt", dt))
             if value is not None}
    valid = {"sde": {"key", "paths", "dt"}, "closure": {"key", "dt"}}.get(method, set())
    if isinstance(setup, MatrixSensingMomentum):
        valid = set()
    if given - valid:
        raise ValueError(f"option(s) {', '.join(sorted(given - valid))} are invalid for "
                         f"method={method!r} on {type(setup).__name__}; allowed: "
                         f"{', '.join(sorted(valid)) or 'none'}")
    if paths is not None and (isinstance(paths, bool) or int(paths) != paths or paths < 1):
        raise ValueError(f"paths={paths!r} is invalid; allowed: an integer >= 1")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt={dt!r} is invalid; allowed: a positive number of steps")
    steps = setup.output_steps(horizon, times)
    options = dict(key=jax.random.PRNGKey(0) if key is None else key,
                   paths=1000 if paths is None else int(paths),
                   dt=default_dt(setup, method) if method in ("sde", "closure")
                   and dt is None and not isinstance(setup, MatrixSensingMomentum) else dt)
    obs, extra = _theory(setup, steps, method, **options)
    return _finish(setup, steps, obs, method, extra)


def _finish(setup: LabelNoiseMomentum, steps, obs: dict, method: str, extra: dict) -> Curve:
    """The Curve of a prediction: diverged after the start past the stability edge, and (one
    normal mode) from where E tr H reaches the edge 2 (1 + beta) / eta."""
    steps = np.asarray(steps)
    warning = stability_warning(setup)
    blown = (steps > 0) & (warning is not None)
    path_warning = None
    if warning is None and not isinstance(setup, MatrixSensingMomentum):
        edge = 2.0 * (1.0 + setup.momentum) / setup.step_size
        with np.errstate(invalid="ignore"):
            over = np.asarray(obs["trace_hessian"]) >= edge
        if over.any():
            blown = blown | over
            path_warning = (f"the expected curvature E tr H reached the heavy-ball edge "
                            f"2 (1 + beta) / step_size = {edge:.6g} at step "
                            f"{int(steps[np.argmax(over)])}: the normal fluctuation is too "
                            "wide for the near-manifold theory (label noise too strong for "
                            "this step size)")
    extra = {"regime": regime(setup), "critical_step_size": critical_step_size(setup), **extra}
    return finish_curve(setup, steps.astype(np.float64),
                        {k: obs[k] for k in setup.observable_names}, method=method,
                        samples=steps * setup.batch_size, blown=blown,
                        warnings=[warning, path_warning], extra=extra)


@functools.singledispatch
def _theory(setup, steps, method, **options) -> tuple[dict, dict]:
    raise ValueError(f"hdsgd.predict has no momentum theory for {type(setup).__name__}")


@_theory.register
def _(setup: TwoParameterMomentum, steps, method, *, key, paths, dt):
    eta, beta, d2 = setup.step_size, setup.momentum, setup.noise_var
    if method == "recursion":
        s, mx, var = (a[steps] for a in recursion_path(setup, int(steps.max())))
        return gaussian_observables_on_grid(s, mx, var), {}
    if method == "flow":
        w, ok = flow_ambient(setup, steps)
        s = 0.5 * np.log(np.abs(w[:, 0] / w[:, 1]))
        var = np.asarray(stationary_variance(eta, beta, d2, 2.0 * np.cosh(2.0 * s)))
        var = np.where(steps > 0, var, 0.0)  # the run starts with no fluctuation
        mx = normal_offset(s, var, 0.0, eta)
        return gaussian_observables_on_grid(s, mx, var), {"solver_ok": ok}
    ys, ok = reduced_paths(setup, steps, key=key, paths=paths, dt=dt, noise=(method == "sde"))
    s, var = ys[..., 0], np.maximum(ys[..., 2], 0.0)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite past the edge: flagged
        mx = normal_offset(s, var, ys[..., 1] / (2.0 * np.cosh(2.0 * s)), eta)
    per_path = gaussian_observables_on_grid(s, mx, var, phase=(method == "sde"))
    obs = {k: v.mean(axis=0) for k, v in per_path.items()}
    return obs, {"solver_ok": ok, "dt": dt, "paths": paths if method == "sde" else 1}


@_theory.register
def _(setup: InnerProductMomentum, steps, method, *, key, paths, dt):
    if method == "flow":
        p, q, r = invariants_flow(setup, steps)
        var = np.asarray(stationary_variance(setup.step_size, setup.momentum, setup.noise_var,
                                             p + q))
        var = np.where(steps > 0, var, 0.0)  # the run starts with no fluctuation
        return _inner.flow_observables(p, q, r, var), {}
    obs, ok = _inner.expected_observables(setup, steps, key=key, paths=paths, dt=dt,
                                          noise=(method == "sde"))
    return obs, {"solver_ok": ok, "dt": dt, "paths": paths if method == "sde" else 1}


@_theory.register
def _(setup: MatrixSensingMomentum, steps, method, *, key, paths, dt):
    return sensing_closure(setup, steps), {}
