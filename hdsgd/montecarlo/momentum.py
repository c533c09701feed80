r"""Monte Carlo for label-noise SGD with heavy-ball momentum (docs/momentum.md, "Monte Carlo").

Direct simulation of the algorithm of `LabelNoiseMomentum`, one independent run per seed
(vmapped by `run_segments`), the label noise drawn inside the loop from keys folded with the
step index:

    g = (f(w) - y - delta zeta) grad f(w),  zeta ~ N(0, 1),  delta = label_noise / sqrt(B),
    v <- beta v - eta g,   w <- w + v.

The momentum update is written v <- v - (1 - beta) v - eta g so that 1 - beta keeps its
digits in float32 when beta is close to 1. One `Dynamics` per model: `TwoParameterRun`
(f = w_1 w_2), `InnerProductRun` (f = <u, v>; same update, w = (u, v)) and `MatrixSensingRun`
(f_i = <A_i, U U^T>, a batch of measurements drawn without replacement each step).
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import exceeds
from .._segments import Dynamics, run_segments
from ..api import reject_options, simulate
from ..curve import Curve, finish_curve
from ..setups import _validate as v
from ..setups.momentum import (InnerProductMomentum, LabelNoiseMomentum,
                               MatrixSensingMomentum, TwoParameterMomentum, _settling_time,
                               inner_product_observables, matrix_sensing_problem, model_class,
                               sensing_observables, sensing_values, shown,
                               two_parameter_observables)

METHODS = ("sgd",)
NOISE_BLOCK = 256
#: the most bootstrap draws of `measured_time_to_target` (each one a pass over the seeds)
MAX_RESAMPLES = 10**6


class ProductRun(Dynamics):
    """One run of a product model, f = sum(w[0] * w[1]) with y = 1 and grad f = w[::-1]:
    the two-parameter model (w = (w_1, w_2)) or the inner product (w = (u, v), shape (2, d)).
    State ((w, velocity), key).

    The noise of step k is entry k % NOISE_BLOCK of a block of normals drawn from the key
    folded with k // NOISE_BLOCK, so the result does not depend on how the run is cut (nor,
    for the inner product, on d: the same key gives the same run in every dimension).
    """

    step_size: jax.Array
    one_minus_beta: jax.Array
    delta: jax.Array

    def advance(self, state, first_step, n_steps):
        wv, key = state
        last = first_step + n_steps

        def one_step(k, wv, zeta):
            w, vel = wv
            residual = jnp.sum(w[0] * w[1]) - 1.0 - self.delta * zeta[k % NOISE_BLOCK]
            grad = residual * w[::-1]
            vel = vel - self.one_minus_beta * vel - self.step_size * grad
            return w + vel, vel

        def block(b, wv):
            zeta = jax.random.normal(jax.random.fold_in(key, b), (NOISE_BLOCK,),
                                     dtype=wv[0].dtype)
            lo = jnp.maximum(first_step, b * NOISE_BLOCK)
            hi = jnp.minimum(last, (b + 1) * NOISE_BLOCK)
            return jax.lax.fori_loop(lo, hi, lambda k, s: one_step(k, s, zeta), wv)

        b_first = first_step // NOISE_BLOCK
        b_last = (last + NOISE_BLOCK - 1) // NOISE_BLOCK
        return jax.lax.fori_loop(b_first, b_last, block, wv), key


class TwoParameterRun(ProductRun):
    """`ProductRun` on w = (w_1, w_2), observed as `TwoParameterMomentum` defines."""

    def observe(self, state):
        (w, _), _ = state
        return two_parameter_observables(w)


class InnerProductRun(ProductRun):
    """`ProductRun` on w = (u, v), observed as `InnerProductMomentum` defines."""

    def observe(self, state):
        (w, _), _ = state
        return inner_product_observables(w)


class MatrixSensingRun(Dynamics):
    """One run of matrix sensing, state ((U, velocity), key): each step draws the label noise
    of all n measurements and (when b < n) a batch of b of them without replacement from
    ``fold_in(key, k)``."""

    step_size: jax.Array
    one_minus_beta: jax.Array
    label_noise: jax.Array
    a: jax.Array
    y: jax.Array
    x_star: jax.Array
    batch_size: int = eqx.field(static=True)

    def advance(self, state, first_step, n_steps):
        uv, key = state
        n = self.a.shape[0]

        def one_step(k, uv):
            u, vel = uv
            kz, kb = jax.random.split(jax.random.fold_in(key, k))
            res = (sensing_values(u, self.a) - self.y
                   - self.label_noise * jax.random.normal(kz, (n,), u.dtype))
            if self.batch_size < n:
                chosen = jax.random.permutation(kb, n)[: self.batch_size]
                weights = jnp.zeros((n,), u.dtype).at[chosen].set(1.0 / self.batch_size)
            else:
                weights = jnp.full((n,), 1.0 / n, u.dtype)
            grad = 2.0 * jnp.einsum("n,nab,bk->ak", weights * res, self.a, u)
            vel = vel - self.one_minus_beta * vel - self.step_size * grad
            return u + vel, vel

        return jax.lax.fori_loop(first_step, first_step + n_steps, one_step, uv), key

    def observe(self, state):
        (u, _), _ = state
        return sensing_observables(u, self.a, self.y, self.x_star)


@functools.singledispatch
def _run(setup, dtype) -> Dynamics:
    raise ValueError(f"hdsgd.simulate has no momentum Monte Carlo for {type(setup).__name__}")


def _algorithm(setup: LabelNoiseMomentum, dtype) -> dict:
    return dict(step_size=jnp.asarray(setup.step_size, dtype=dtype),
                one_minus_beta=jnp.asarray(setup.one_minus_beta, dtype=dtype))


@_run.register
def _(setup: TwoParameterMomentum, dtype) -> Dynamics:
    return TwoParameterRun(**_algorithm(setup, dtype),
                           delta=jnp.asarray(math.sqrt(setup.noise_var), dtype=dtype))


@_run.register
def _(setup: InnerProductMomentum, dtype) -> Dynamics:
    return InnerProductRun(**_algorithm(setup, dtype),
                           delta=jnp.asarray(math.sqrt(setup.noise_var), dtype=dtype))


@_run.register
def _(setup: MatrixSensingMomentum, dtype) -> Dynamics:
    problem = matrix_sensing_problem(setup)
    a, y, x_star = (jnp.asarray(problem[k], dtype=dtype) for k in ("a", "y", "x_star"))
    return MatrixSensingRun(**_algorithm(setup, dtype),
                            label_noise=jnp.asarray(setup.label_noise, dtype=dtype),
                            a=a, y=y, x_star=x_star, batch_size=setup.batch_size)


@simulate.register
def _simulate(setup: LabelNoiseMomentum, horizon: float, *, key, seeds: int = 16, times=None,
              method: str = "sgd", dtype=None, progress: bool | None = None,
              **options) -> Curve:
    """Simulate label-noise SGD with momentum with ``seeds`` independent runs.

    Args:
        setup: a `TwoParameterMomentum`, `InnerProductMomentum` or `MatrixSensingMomentum`.
        horizon: final time in steps.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output steps (rounded to whole steps); default: every early step, then
            log-spaced.
        method: ``"sgd"``, the only variant (the algorithm itself).
        dtype: float dtype of the weights (default float32).
        progress: progress bar (default: on for long runs).

    Returns:
        A Monte Carlo `Curve` (time unit ``"step"``) with the model's observables; a run is
        diverged from the first step where a weight is non-finite or its train loss exceeds
        1e12 times max(1, initial tr H).
    """
    reject_options(options, setup, ("method", "dtype", "progress"))
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    steps = setup.output_steps(horizon, times)
    dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
    dynamics = _run(setup, dtype)
    w0 = setup.start()
    start = jnp.broadcast_to(jnp.asarray(w0, dtype=dtype), (seeds,) + w0.shape)
    state0 = ((start, jnp.zeros_like(start)), jax.random.split(key, seeds))
    work = seeds * 20 * w0.size * getattr(setup, "n_samples", 1)
    out, _ = run_segments(dynamics, state0, steps, progress=progress, work_per_step=work,
                          description="momentum Monte Carlo")
    out = {k: np.asarray(val, dtype=np.float64) for k, val in out.items()}
    scale = max(1.0, setup.start_curvature())
    return finish_curve(setup, steps.astype(np.float64), out, method=method,
                        samples=steps * setup.batch_size, seeds=seeds,
                        blown=exceeds(out["train_loss"], np.full(seeds, scale)),
                        extra={"dtype": str(dtype)})


def measured_time_to_target(curve: Curve, target: float | None = None, *, resamples: int = 200,
                            seed: int = 0) -> tuple[float, float]:
    """The time to target measured from a momentum Monte Carlo `Curve`, and its standard error
    (docs/momentum.md, "Time to target"): the step from which the seed average of s^2
    (``manifold_coordinate``) stays at or below ``target**2`` (product models; default target
    0.1), or the seed average of ``distance_to_flattest`` at or below ``target`` (matrix
    sensing, from ``curve.meta["model"]``; default 0.5) - the definitions of the theory's
    `time_to_target` - with linear interpolation on the curve's grid; the error from a
    bootstrap over seeds (``resamples`` draws, numpy seed ``seed``).

    Returns:
        (T, standard error) in steps; T is inf if not settled on the grid.

    Raises:
        ValueError: for a ``curve`` that is not a momentum Monte Carlo Curve of at least 2
            seeds, a ``target`` that is not a number > 0, ``resamples`` not an integer in
            [2, 10^6] (a standard error needs two), or a ``seed`` not an integer in
            [0, 2^32 - 1].
    """
    allowed = "a momentum Monte Carlo Curve (hdsgd.simulate) with at least 2 seeds"
    if not isinstance(curve, Curve) or curve.meta.get("system") != "momentum":
        raise ValueError(f"curve={shown(curve)} is invalid; allowed: {allowed}")
    try:
        cls = model_class(curve.meta.get("model", ""))
    except ValueError:
        raise ValueError(f"curve={shown(curve)} is invalid; allowed: {allowed} (its "
                         f"meta['model'] is {curve.meta.get('model')!r})") from None
    target = cls.default_target if target is None else v.positive("target", target)
    resamples = v.integer("resamples", resamples, low=2, high=MAX_RESAMPLES)
    seed = v.seed("seed", seed)
    if cls is MatrixSensingMomentum:
        values, level = np.asarray(curve["distance_to_flattest"], dtype=float), target
    else:
        values, level = np.asarray(curve["manifold_coordinate"], dtype=float) ** 2, target**2
    if values.ndim != 2 or values.shape[0] < 2:
        raise ValueError(f"curve={shown(curve)} is invalid; allowed: {allowed} (this one has "
                         f"values of shape {values.shape})")
    # a Curve's grid is sorted and >= 0 by construction
    value = _settling_time(curve.time, values.mean(axis=0), level)
    rng = np.random.default_rng(seed)
    n = values.shape[0]
    boots = np.array([_settling_time(curve.time, values[rng.integers(0, n, n)].mean(axis=0),
                                     level) for _ in range(resamples)])
    finite = boots[np.isfinite(boots)]
    error = float(finite.std(ddof=1)) if finite.size == boots.size else math.inf
    return value, error
