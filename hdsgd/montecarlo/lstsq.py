r"""Monte Carlo for streaming least-squares SGD (plain or heavy ball) at finite d.

Works in H's eigenbasis on the error e = w - w* and the velocity v: a sample is
x = sqrt(lambda) * z with z ~ N(0, I_d) (never a d x d matrix), its residual
<w, x> - y = <e, x> - eps, and one step is (docs/lstsq.md, "Monte Carlo")

    g = (1/B) sum_b (<e, x_b> - eps_b) x_b,     v <- beta v - (gamma/d) g,     e <- e + v,

with gamma = gamma(k) at step k for a step-size `Schedule` (``eta`` then holds gamma(k)/d per
step, padded to a power of two so nearby horizons share a compilation), from e(0) = sqrt(rho(0)) (deterministic, so the expected recursion is exact for every seed's
expectation) and v(0) = 0; plain SGD is beta = 0. The population risk is computed exactly from
the weights, R = sigma^2/2 + 1/2 sum_i lambda_i e_i^2. Data are drawn inside the loop by a
counter-based generator, Philox4x32-10 by default (`_philox`: counter = (element, step,
stream), so a run's numbers do not depend on how the horizon is cut into segments), or JAX's
threefry with keys folded with the step index (``generator="threefry"``).

Two samplers of the same process (``simulate(..., method=...)``):

* ``"data"``: draw the B x d batch of samples, O(B d) per step;
* ``"projected"``: draw the batch gradient exactly in distribution from B + B + d normals,
  O(B + d) per step;
* ``"auto"`` (default): ``"projected"`` when B >= 2 (20-27x faster at B = 32), else ``"data"``
  (at B = 1 both draw about d normals a step, and the data sampler runs 1.3-1.4x faster:
  one draw, no projection).

The projected sampler: with a = sqrt(lambda) * e and n = a/|a|, split each
z_b = n s_b + z_perp_b; with c_b = |a| s_b - eps_b,
sum_b c_b z_b = n sum_b c_b s_b + sqrt(sum_b c_b^2)(I - n n^T) zeta, zeta ~ N(0, I_d), exactly
in distribution given (s, eps).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import exceeds, power_of_two_at_least
from .._segments import Dynamics, run_segments
from ..api import reject_options, simulate
from ..curve import Curve, finish_curve
from ..setups.lstsq import StreamingLeastSquares
from ._philox import check_generator, normal_draws, run_source

METHODS = ("auto", "data", "projected")


class HeavyBallSGD(Dynamics):
    """One run of heavy-ball SGD on least squares; state ((e, v), key).

    ``eta`` is gamma / d: a scalar (constant step) or one value per step (a schedule).
    """

    sqrt_eigenvalues: jax.Array
    eigenvalues: jax.Array
    noise_std: jax.Array
    eta: jax.Array
    momentum: jax.Array
    batch_size: int = eqx.field(static=True)
    method: str = eqx.field(static=True)
    generator: str = eqx.field(static=True, default="philox")
    heavy_ball: bool = eqx.field(static=True, default=True)

    def _data_gradient(self, e, draw):
        # a sample's d normals and its noise are one draw of d + 1 (one generator call a step)
        d = e.shape[0]
        if self.batch_size == 1:  # vectors, not 1 x d matrices (XLA fuses these better)
            z = draw(0, (d + 1,))
            x = z[:d] * self.sqrt_eigenvalues
            return (jnp.dot(x, e) - self.noise_std * z[d]) * x
        z = draw(0, (self.batch_size, d + 1))
        x = z[:, :d] * self.sqrt_eigenvalues
        return (x @ e - self.noise_std * z[:, d]) @ x

    def _projected_gradient(self, e, draw):
        a = self.sqrt_eigenvalues * e
        norm = jnp.sqrt(jnp.dot(a, a))
        basis = jnp.zeros_like(e).at[0].set(1.0)
        n = jnp.where(norm > 0, a / jnp.where(norm > 0, norm, 1.0), basis)
        s = draw(0, (self.batch_size,))
        c = norm * s - self.noise_std * draw(1, (self.batch_size,))
        zeta = draw(2, e.shape)
        total = n * jnp.dot(c, s) + jnp.sqrt(jnp.dot(c, c)) * (zeta - n * jnp.dot(n, zeta))
        return self.sqrt_eigenvalues * total

    def advance(self, state, first_step, n_steps):
        (e, v), key = state
        gradient = self._data_gradient if self.method == "data" else self._projected_gradient
        run = run_source(self.generator, key)

        def sgd_step(k, e):  # (gamma(k) / d) (1/B) sum_b (<e, x_b> - eps_b) x_b
            eta = self.eta if self.eta.ndim == 0 else self.eta[k]
            return (eta / self.batch_size) * gradient(e, normal_draws(self.generator, run, k,
                                                                      e.dtype))

        def body(k, ev):
            e, v = ev
            v = self.momentum * v - sgd_step(k, e)
            return e + v, v

        def plain(k, e):  # beta = 0: v is the step itself, not carried (a d-vector less a step)
            return e - sgd_step(k, e)

        if not self.heavy_ball:
            return (jax.lax.fori_loop(first_step, first_step + n_steps, plain, e), v), key
        return jax.lax.fori_loop(first_step, first_step + n_steps, body, (e, v)), key

    def observe(self, state):
        (e, _), _ = state
        return {"excess_risk": 0.5 * jnp.dot(self.eigenvalues, e * e)}


@simulate.register
def _simulate(setup: StreamingLeastSquares, horizon: float, *, key, seeds: int = 16, times=None,
              method: str = "auto", dtype=None, generator: str = "philox",
              progress: bool | None = None, **options) -> Curve:
    """Simulate streaming least-squares SGD (plain or heavy ball) with ``seeds`` runs.

    Args:
        setup: a `StreamingLeastSquares`.
        horizon: final time t = steps / d.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output times in t (rounded to whole steps); default as in `predict`.
        method: ``"auto"`` (default: ``"projected"`` when B >= 2, else ``"data"``), ``"data"``
            (draw the B x d samples) or ``"projected"`` (the batch gradient drawn exactly in
            distribution in O(B + d) per step).
        dtype: float dtype of the weights and data (default float32).
        generator: ``"philox"`` (default: Philox4x32-10, ~2x faster on a CPU at B = 1) or
            ``"threefry"`` (JAX's own); the same law, other numbers (`_philox`).
        progress: progress bar (default: on for long runs).
    """
    reject_options(options, setup, ("method", "dtype", "generator", "progress"))
    check_generator(generator)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    if method == "auto":
        method = "projected" if setup.batch_size >= 2 else "data"
    d = setup.dim
    steps = setup.output_steps(horizon, times)
    dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
    lam = jnp.asarray(setup.eigenvalues, dtype=dtype)
    if setup.scheduled:  # gamma(k) / d per step, padded so nearby horizons share a compilation
        eta = setup.step_sizes(power_of_two_at_least(max(int(steps.max()), 1), 8)) / d
    else:
        eta = setup.step_size / d
    dynamics = HeavyBallSGD(
        sqrt_eigenvalues=jnp.sqrt(lam), eigenvalues=lam,
        noise_std=jnp.asarray(setup.noise_std, dtype=dtype),
        eta=jnp.asarray(eta, dtype=dtype),
        momentum=jnp.asarray(setup.momentum, dtype=dtype),
        batch_size=setup.batch_size, method=method, generator=generator,
        heavy_ball=setup.momentum != 0)
    e0 = jnp.broadcast_to(jnp.sqrt(jnp.asarray(setup.initial_error, dtype=dtype)), (seeds, d))
    state0 = ((e0, jnp.zeros_like(e0)), jax.random.split(key, seeds))
    out, _ = run_segments(dynamics, state0, steps, progress=progress,
                          work_per_step=seeds * setup.batch_size * d,
                          description="lstsq Monte Carlo")
    excess = out["excess_risk"].astype(np.float64)
    risk = excess + 0.5 * setup.noise_var
    return finish_curve(setup, steps / d, {"risk": risk, "excess_risk": excess},
                        method=method, samples=steps * setup.batch_size, seeds=seeds,
                        blown=exceeds(risk, risk[:, 0]),
                        extra={"dtype": str(dtype), "generator": generator})
