"""``predict`` for `GrokkingTwoLayer`: pick the equivalent, run it, finish the Curve."""

from __future__ import annotations

import numpy as np
import jax.numpy as jnp

from ..._numerics import exceeds, power_of_two_at_least
from ..._segments import run_segments
from ...api import (check_key, check_tolerance, predict, reject_options,
                   stability_warning as edge_warning)
from ...curve import Curve, finish_curve
from ...setups.grokking import WEIGHT_STATISTICS, GrokkingTwoLayer
from . import _dmft, _lazy, _reduced, _samples
from ._stability import stability_warning

METHODS = ("reduced", "lazy", "dmft")
SOLVERS = ("scan", "ode")
FORMS = ("auto", "D", "P")
#: a prediction whose train loss exceeds this factor times its initial value has diverged
BLOWUP = 1e12
#: the gradient-flow solver's step budget (static: one compilation for every horizon)
MAX_FLOW_STEPS = 2**24
_OPTIONS = ("solver", "form", "init_key", "rtol", "n_quad", "dt", "paths", "response_paths",
            "z_nodes", "iterations", "damping", "dmft_key", "dmft_initial_overlap")


def _pad(values: np.ndarray) -> np.ndarray:
    """``values`` padded to a power-of-two length by repeating the last one (one compilation of
    the gradient-flow solver serves every output grid of nearby length; the padding is dropped).
    The GD map needs none: `run_segments` compiles per state shape, not per grid."""
    n = power_of_two_at_least(len(values))
    return np.concatenate([values, np.repeat(values[-1:], n - len(values))])


def _reduced_curves(setup: GrokkingTwoLayer, steps, *, solver, form, init_key,
                    rtol) -> tuple[dict, dict]:
    """The exact (w_bar, M) dynamics (D-space or P-space form), as a GD map or gradient flow."""
    if init_key is not None and setup.width is None:
        raise ValueError("init_key needs a finite width; got width=None (allowed: an integer "
                         "width, or init_key=None for the infinite-width initial law)")
    params = _reduced.params_of(setup)
    if form == "auto":
        form = "P" if setup.n_samples < setup.dim else "D"
    if form == "P":
        problem, init = _samples.problem_and_moments(setup, params, init_key)
        start = _samples.zero_state(init)
        dynamics = _samples.SampleGD(init, problem, params, setup.centered)
        flow_fn, flow_args = _samples.samples_flow, (init, problem, params)
    else:
        start = _reduced.initial_state(setup, init_key)
        problem = _reduced.problem_of(setup, start, params)
        dynamics = _reduced.ReducedGD(start, problem, params, setup.centered)
        flow_fn, flow_args = _reduced.reduced_flow, (start, problem, params)
    n = len(steps)
    extra = {"form": form, "solver": solver,
             "initial_condition": "infinite-width law" if init_key is None else "init_key draw"}
    if solver == "scan":
        p, d = setup.n_samples, setup.dim
        obs, _ = run_segments(dynamics, start, np.asarray(steps, dtype=np.int64), batched=False,
                              work_per_step=p**3 if form == "P" else p * d * d + d**3,
                              description="grokking reduced map")
    else:
        taus = setup.tau(steps)
        obs, ok = flow_fn(*flow_args, jnp.asarray(_pad(taus)), setup.centered, rtol,
                          MAX_FLOW_STEPS)
        extra["solver_ok"] = bool(ok)
    return {k: np.asarray(v, dtype=np.float64)[:n] for k, v in obs.items()}, extra


edge_warning.register(GrokkingTwoLayer, stability_warning)  # `simulate` reports it too


@predict.register
def _predict(setup: GrokkingTwoLayer, horizon: float, *, times=None, method: str | None = None,
             solver: str = "scan", form: str = "auto", init_key=None, rtol: float = 1e-7,
             n_quad: int = 400, dt: float = 0.05, paths: int = 16384, response_paths: int = 256,
             z_nodes: int = 8, iterations: int = 25, damping: float = 0.5, dmft_key=None,
             dmft_initial_overlap=None, **options) -> Curve:
    """Predict the training dynamics of `GrokkingTwoLayer` (docs/grokking.md, "Methods").

    Args:
        setup: a `GrokkingTwoLayer`.
        horizon: final time in GD steps (tau = 2 eta0 steps / D).
        times: output times in steps; default: 0, then ~100 log-spaced whole steps. The GD map
            (``solver="scan"``) rounds them to whole steps.
        method: ``"reduced"`` (default; exact (w_bar, M) dynamics), ``"lazy"`` (alpha -> inf
            closed form in the proportional limit; requires ``centered=True``) or ``"dmft"``
            (finite-width DMFT in the proportional limit).
        solver: ``"reduced"`` only: ``"scan"`` (the exact GD map, whole steps) or ``"ode"``
            (gradient flow in tau, diffrax).
        form: ``"reduced"`` only: ``"D"`` (the (w_bar, M) map, O(P D^2 + D^3) per step),
            ``"P"`` (the P-space form: per-neuron coefficients on the training inputs, O(P^3)
            per step, exact as well) or ``"auto"`` (``"P"`` when P < D).
        init_key: ``"reduced"`` only, finite width: start from the statistics of the weights
            ``initial_weights(setup, init_key)`` (exactly the network `simulate` runs for that
            key); default: the N = inf law w_bar = 0, M = I.
        rtol: ``solver="ode"`` relative tolerance.
        n_quad: ``"lazy"`` quadrature nodes on the Marchenko-Pastur bulk, in [16, 4096]
            (``"lazy"`` also needs kappa = n_samples / dim in [1e-12, 1e8], eps^2 max(kappa, 1)
            <= 1e3 and, when kappa > 1, eps^2 kappa >= 1e-4, where its quadrature is accurate:
            `lazy_spectrum`).
        dt, paths, response_paths, z_nodes, iterations, damping, dmft_key: ``"dmft"`` (finite
            width, proportional limit): Euler step in tau, chi sample paths (antithetic),
            paths used for the response R_F, Gauss-Hermite nodes in z, fixed-point
            iterations, damping, and the key of the path noise (default ``jax.random.key(0)``).
        dmft_initial_overlap: ``"dmft"`` only: the DMFT's m(0), the N overlaps of the neurons
            with the teacher (m_i = E_j[beta_j W_ij(0)], length N); default sqrt(N/D) e_1,
            whose observables equal, to second order in m, the average over a random
            initialisation's m(0) ~ N(0, I_N/D) (docs/grokking.md, "The finite-width DMFT").

    Every method's curve is finished by `hdsgd.curve.finish_curve`: inf from the first
    diverged time (train loss non-finite or past 10^12 times its start), and
    ``meta["warning"]`` when ``step_size`` is past `critical_step_size` (the gradient-flow
    methods do not see that edge; the GD map does).
    """
    reject_options(options, setup, _OPTIONS)
    method = "reduced" if method is None else method
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    if solver not in SOLVERS:
        raise ValueError(f"solver={solver!r} is invalid; allowed: {SOLVERS}")
    if form not in FORMS:
        raise ValueError(f"form={form!r} is invalid; allowed: {FORMS}")
    for name, key in (("init_key", init_key), ("dmft_key", dmft_key)):
        if key is not None:
            check_key(key, name)
    check_tolerance("rtol", rtol)
    if times is None or (method == "reduced" and solver == "scan"):
        steps = setup.output_steps(horizon, times)
    else:
        steps = np.asarray(times, dtype=np.float64)
    if method == "reduced":
        obs, extra = _reduced_curves(setup, steps, solver=solver, form=form, init_key=init_key,
                              rtol=rtol)
    elif method == "dmft":
        obs, extra = _dmft.dmft_curves(setup, setup.tau(steps), dt=dt, paths=paths,
                                       response_paths=response_paths, z_nodes=z_nodes,
                                       iterations=iterations, damping=damping, key=dmft_key,
                                       initial_overlap=dmft_initial_overlap)
    else:
        if not setup.centered:
            raise ValueError("method='lazy' is the alpha -> inf limit of the centred network; "
                             "got centered=False (allowed: centered=True)")
        n_quad = _lazy.check_lazy_setup(setup, n_quad)
        obs = _lazy.lazy_curves(setup.tau(steps), setup.ratio, setup.quadratic_strength, n_quad)
        extra = {"limit": "alpha -> inf, D, P -> inf at kappa = P/D"}
    loss = obs["train_loss"]
    blown = exceeds(loss, loss[0], BLOWUP) if np.isfinite(loss[0]) else None
    warning = stability_warning(setup, init_key if method == "reduced" else None)
    return finish_curve(setup, steps, {**obs, "tau": setup.tau(steps)}, method=method,
                        samples=np.full(len(steps), float(setup.n_samples)), blown=blown,
                        warnings=[warning], extra=extra, clocks=("tau",),
                        auxiliary=WEIGHT_STATISTICS)
