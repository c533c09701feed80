"""``predict`` for the three momentum models: pick the equivalent, run it, finish the Curve."""

from __future__ import annotations

import functools

import jax
import numpy as np

from ...api import (check_key, predict, reject_options,
                   stability_warning as edge_warning)
from ...curve import Curve, finish_curve
from ...setups._validate import integer as v_integer, positive as v_positive
from ...setups.momentum import (InnerProductMomentum, LabelNoiseMomentum,
                                MatrixSensingMomentum, TwoParameterMomentum)
from . import _inner_product as _inner
from ._fluctuation import stationary_variance
from ._flow import flow_ambient, invariants_flow
from ._observables import gaussian_observables_on_grid, normal_offset
from ._recursion import recursion_path
from ._scales import regime, timescales
from ._sde import default_dt, reduced_paths
from ._sensing import sensing_closure
from ._stability import critical_step_size, stability_warning
from ._target import MAX_HORIZON, check_run_size

#: every deterministic equivalent of the system (the union over the models)
METHODS = ("recursion", "flow", "sde", "closure")
#: the equivalents of each model, its default first
MODEL_METHODS = {
    TwoParameterMomentum: ("recursion", "flow", "sde", "closure"),
    InnerProductMomentum: ("flow", "sde", "closure"),
    MatrixSensingMomentum: ("closure",),
}


edge_warning.register(LabelNoiseMomentum, stability_warning)  # `simulate` reports it too


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
    if paths is not None:
        paths = v_integer("paths", paths)
    if dt is not None:
        dt = v_positive("dt", dt)  # in steps
    steps = setup.output_steps(horizon, times)
    _check_size(setup, method, horizon, steps, paths, dt)
    options = dict(key=jax.random.PRNGKey(0) if key is None else check_key(key),
                   paths=1000 if paths is None else int(paths),
                   dt=default_dt(setup, method) if method in ("sde", "closure")
                   and dt is None and not isinstance(setup, MatrixSensingMomentum) else dt)
    obs, extra = _theory(setup, steps, method, **options)
    return _finish(setup, steps, obs, method, extra)


def _check_size(setup, method: str, horizon, steps: np.ndarray, paths, dt) -> None:
    """Refuse runs past what the step-by-step methods hold: the recursion keeps every step and
    the SDE its paths at every output step, and both loop that long (2^40 steps ran out of
    memory inside JAX); the flow is an ODE and takes any horizon."""
    if method != "flow" and steps[-1] > MAX_HORIZON:
        other = " (method='flow' has no such limit)" if "flow" in MODEL_METHODS[type(setup)] else ""
        raise ValueError(f"horizon={horizon!r} is invalid for method={method!r}: it is "
                         f"{int(steps[-1])} steps; allowed: at most {MAX_HORIZON:g} steps{other}")
    check_run_size(method, steps[-1], steps.size, 1000 if paths is None else paths, dt)


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
    if method in AVERAGED_METHODS and not isinstance(setup, MatrixSensingMomentum):
        # the loss and the curvature of these methods are averages over the normal mode's
        # stationary (flow) or phase-averaged (sde, closure) fluctuation, O(S) at leading
        # order, which the run, started with none, builds up over the transverse relaxation
        # time: before it they are not a claim (the reduced SDE's loss is 1200 standard errors
        # high at step 1, the inner product's E tr H 5 low at step 100; docs/momentum.md)
        tau_1 = timescales(setup)["tau_1"]
        extra["valid_from"] = {name: tau_1 for name in AVERAGED_OBSERVABLES}
    return finish_curve(setup, steps.astype(np.float64),
                        {k: obs[k] for k in setup.observable_names}, method=method,
                        samples=steps * setup.batch_size, blown=blown,
                        warnings=[warning, path_warning, energy_noise_warning(setup, method),
                                  overdamped_warning(setup, method), escape_warning(extra)],
                        extra=extra)


#: the methods whose observables average over a fluctuation the run builds up first, and the
#: observables in which that fluctuation enters at leading order
AVERAGED_METHODS = ("flow", "sde", "closure")
AVERAGED_OBSERVABLES = ("train_loss", "trace_hessian")


def overdamped_warning(setup: LabelNoiseMomentum, method: str) -> str | None:
    """``meta["warning"]`` when the reduced SDE is used on an over-damped run
    (eta lambda_min < (1 - sqrt beta)^2, `timescales`): its one-path law is an oscillation of
    given energy with a uniform phase, which an over-damped normal mode does not make. Measured
    (two-parameter, eta = 0.01, 2000 seeds): beta = 0.5 / 0.7, E tr H 0.7 % off (37 / 20
    standard errors) where the recursion and closure agree within 2.7."""
    if method != "sde" or isinstance(setup, MatrixSensingMomentum):
        return None
    if not timescales(setup)["overdamped"]:
        return None
    return ("method='sde' averages each path over an oscillation of the normal mode, but this "
            f"run is over-damped (step_size * lambda_min < (1 - sqrt(momentum))^2 at momentum = "
            f"{setup.momentum:.4g}): expect E tr H and the distance ~1 % off; use "
            "method='recursion' or 'closure'")


#: fraction of the reduced SDE's paths at twice the normal barrier energy from which
#: `escape_warning` speaks
ESCAPE_FRACTION = 0.01


def barrier_fraction(s, var) -> float:
    """The fraction of sample paths (rows of ``s``, ``var``: (paths, T)) whose normal energy
    lambda S reaches twice the barrier of the two-parameter loss at some output step: along the
    normal line f = 1 + sqrt(lambda) x + x^2 / lambda the loss (f - 1)^2 / 2 has a saddle at
    x = -lambda^(3/2) / 2 of height lambda^4 / 32, so the criterion is S >= lambda(s)^3 / 16
    (lambda = 2 cosh 2s)."""
    with np.errstate(invalid="ignore", over="ignore"):  # paths past the edge overflow
        lam = 2.0 * np.cosh(2.0 * np.asarray(s))
        reached = np.asarray(var) >= lam**3 / 16.0
    return float(np.mean(np.any(reached, axis=-1)))


def escape_warning(extra: dict) -> str | None:
    """``meta["warning"]`` when at least `ESCAPE_FRACTION` of the reduced SDE's paths reach
    twice the normal barrier energy (`barrier_fraction`, in ``extra``): there finite-eta runs
    leave the manifold and blow up, which the SDE, whose paths all stay on it, does not model.
    That fraction tracks the Monte Carlo's diverged fraction within a factor of a few
    (two-parameter, delta = 0.3, 3000 steps, 1024 paths and seeds; eta = 0.01, 1 - beta =
    0.0031 / 0.0042 / 0.0054 / 0.0075: SDE 28.5 / 11.1 / 4.0 / 0.2 % against 33.4 / 11.8 / 2.1
    / 0.1 % of runs diverged; eta = 0.02, 1 - beta = 0.008 / 0.012 / 0.016: 19.9 / 3.3 / 0.4 %
    against 23.2 / 0.8 / 0 %; docs/momentum.md, "Limitations")."""
    fraction = extra.get("barrier_fraction")
    if fraction is None or fraction < ESCAPE_FRACTION:
        return None
    return (f"{fraction:.1%} of the reduced SDE's paths reach twice the normal barrier energy "
            "(S >= lambda^3 / 16): at this damping a fraction of the runs of that order escape "
            "the manifold and blow up, which the SDE, whose paths all stay on it, does not "
            "model; compare with a Monte Carlo, or damp more (larger 1 - momentum)")


#: (1 - beta) / eta^(2/3) below which the deterministic methods of a one-normal-mode model miss
#: the energy noise by more than ~1 %: the two-parameter model's time to distance 0.1
#: (eta = 1e-3, delta_0 = 0.3) from the recursion is 29 % early at 0.71, 3.4 % at 1.5, 1.2 % at 2,
#: 0.4 % at 3 (against the reduced SDE, which the Monte Carlo confirms; docs/momentum.md).
ENERGY_NOISE_RATIO = 2.0


def energy_noise_warning(setup: LabelNoiseMomentum, method: str) -> str | None:
    """``meta["warning"]`` when a deterministic method (recursion, flow, closure) is used on a
    model with one normal mode where the energy noise of that mode decides the drift:
    1 - beta < `ENERGY_NOISE_RATIO` eta^(2/3) (the critical scaling and beyond)."""
    if isinstance(setup, MatrixSensingMomentum) or method == "sde":
        return None
    ratio = (1.0 - setup.momentum) / setup.step_size ** (2.0 / 3.0)
    if ratio >= ENERGY_NOISE_RATIO:
        return None
    return (f"method={method!r} leaves out the energy noise of the single normal mode, which "
            f"decides the drift when 1 - beta is of order step_size^(2/3) or smaller (here "
            f"(1 - beta) / step_size^(2/3) = {ratio:.3g} < {ENERGY_NOISE_RATIO:g}); expect it "
            "to be several percent to ~30 % fast: use method='sde'")


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
    extra = {"solver_ok": ok, "dt": dt, "paths": paths if method == "sde" else 1}
    if method == "sde":
        extra["barrier_fraction"] = barrier_fraction(s, var)
    return obs, extra


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
