r"""Monte Carlo for online SGD on a spiked single-index model: full dimension and the exact chain.

``method="full"``: d-dimensional online SGD (`OnlineSGD`, through `run_segments`).
The spike direction mu is a random unit vector per run; a sample is
``x = z + (sqrt(1+theta) - 1) <z, mu> mu`` with ``z ~ N(0, I_d)`` (no d x d matrix),
``u = <z, mu>``, ``y = sigma*(u) + label_noise * eps``, and one step is ``w <- w + (c/d) G x``
followed by the variant's normalisation (docs/spiked.md, "The system"). Cost O(d) per step
and run.

``method="chain"`` (default): the exact two-variable Markov chain (`ExactChain`; docs/spiked.md,
"The exact chain"); exact in law, so it is the default, with the literal sampler as the check. Given (m, q), draw u, xi, eps ~ N(0, 1) and r^2 ~ chi^2_{d-2}; with
a = sqrt(1+theta) m, b = sqrt(q), h = a u + b xi:

    m' = m + eta G sqrt(1+theta) u,     q' = (b + eta G xi)^2 + eta^2 G^2 r^2,

then divide by N = sqrt(m'^2 + q') ("sphere") or N = sqrt((1+theta) m'^2 + q')
("covariance"): m <- m'/N, q <- q'/N^2. By rotation invariance of z on mu-perp this has the
law of (<w, mu>, ||P_perp w||^2) under full SGD at every finite d, and costs O(1) per step,
so escape statistics at d = 10^6 ... 10^9 cost O(steps). The chains run in lanes of a fixed
width (every seed count shares one compilation); random numbers are drawn in blocks of 256
steps for all lanes at once (a block's key is the lane group's key folded with the block
index, so results do not depend on how the horizon is cut). `escape_samples` runs the same
chain until each lane first reaches a threshold.

Precision: ``dtype=None`` means float32 for ``"full"`` (the library's policy) and float64 for
``"chain"`` (two scalars per run; at d = 10^9 a step moves m by ~1e-9, below float32's
resolution of q ~ 1). The chain's random inputs (normals, uniforms) are drawn in float32 and
cast (half the generator's cost, which dominates a step); its arithmetic is in ``dtype``.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._numerics import exceeds
from .._precision import scoped_x64
from .._segments import Dynamics, run_segments
from ..api import check_dtype, check_key, check_seeds, reject_options, simulate
from ..curve import Curve, finish_curve
from ..setups._validate import MAX_STEPS, integer
from ..setups.spiked import (
    SpikedSingleIndex,
    check_escape,
    check_setup,
    gradient_factor,
    hermite_e_eval,
    observables_from_overlaps,
    overlap_statistic,
    to_hermite_e,
)
from ._philox import check_generator, normal_draws, run_source

METHODS = ("chain", "full")  # the first is the default
BLOCK = 256
LANES = 32  # chains per compiled call (up to 16 * 32 seeds; wider beyond)
ATTEMPTS = 2  # Marsaglia-Tsang proposals drawn at once (both rejected: < 1e-3 at d = 3, 3e-7 at d = 100)
DRAW = jnp.float32  # the chain's random inputs are drawn in float32 (half the generator's cost), then cast
BLOWUP = 1e12


class _Model(eqx.Module):
    """The static model of both Monte Carlos (Hermite coefficients, loss, normalisation) and
    the traced numbers a step needs."""

    eta: jax.Array
    theta: jax.Array
    noise_std: jax.Array
    link_e: tuple = eqx.field(static=True)
    student_e: tuple = eqx.field(static=True)
    square: bool = eqx.field(static=True)
    normalization: str = eqx.field(static=True)

    def gradient(self, u, h, eps):
        """G at target argument u, pre-activation h and label-noise draw eps."""
        y = hermite_e_eval(self.link_e, u) + self.noise_std * eps
        return gradient_factor(self.student_e, self.square, y, h)


def _model_fields(setup: SpikedSingleIndex, dtype) -> dict:
    return dict(eta=jnp.asarray(setup.step_size / setup.dim, dtype),
                theta=jnp.asarray(setup.spike, dtype),
                noise_std=jnp.asarray(setup.label_noise, dtype),
                link_e=tuple(to_hermite_e(setup.link).tolist()),
                student_e=tuple(to_hermite_e(setup.student).tolist()),
                square=setup.loss == "square", normalization=setup.normalization)


# ----------------------------------------------------------------- full dimension
class OnlineSGD(_Model, Dynamics):
    """One run of d-dimensional online SGD; state (w, mu, key). Its data come from
    ``generator`` (`hdsgd.montecarlo._philox`: Philox4x32-10 by default, or threefry)."""

    generator: str = eqx.field(static=True, default="philox")

    def advance(self, state, first_step, n_steps):
        w, mu, key = state
        scale = jnp.sqrt(1.0 + self.theta) - 1.0
        run = run_source(self.generator, key)

        def step(i, w):
            # the sample's d normals and its label noise: one draw of d + 1
            normals = normal_draws(self.generator, run, i, w.dtype)(0, (w.shape[0] + 1,))
            z, eps = normals[:-1], normals[-1]
            u = jnp.dot(z, mu)
            x = z + (scale * u) * mu
            w = w + (self.eta * self.gradient(u, jnp.dot(w, x), eps)) * x
            if self.normalization == "sphere":
                w = w / jnp.sqrt(jnp.dot(w, w))
            elif self.normalization == "covariance":
                m = jnp.dot(w, mu)
                w = w / jnp.sqrt(jnp.dot(w, w) + self.theta * m * m)
            return w

        return jax.lax.fori_loop(first_step, first_step + n_steps, step, w), mu, key

    def observe(self, state):
        w, mu, _ = state
        m = jnp.dot(w, mu)
        return {"m": m, "q": jnp.dot(w, w) - m * m}


@functools.partial(jax.jit, static_argnames=("dim", "random_start", "covariance", "dtype"))
def _full_start(keys, m0, q0, theta, *, dim, random_start, covariance, dtype):
    """(w0, mu) per run: mu uniform on the sphere; w0 = m0 mu + sqrt(q0) (a uniform unit vector
    of mu-perp), or uniform on the variant's sphere for a random start."""

    def one(key):
        kmu, kw = jax.random.split(key)
        mu = jax.random.normal(kmu, (dim,), dtype=dtype)
        mu = mu / jnp.sqrt(jnp.dot(mu, mu))
        g = jax.random.normal(kw, (dim,), dtype=dtype)
        if random_start:
            w = g
        else:
            perp = g - jnp.dot(g, mu) * mu
            w = m0 * mu + jnp.sqrt(q0) * perp / jnp.sqrt(jnp.dot(perp, perp))
        m = jnp.dot(w, mu)
        norm2 = jnp.dot(w, w) + (theta * m * m if covariance else 0.0)
        return w / jnp.sqrt(norm2), mu

    return jax.vmap(one)(keys)


def _simulate_full(setup: SpikedSingleIndex, steps, key, seeds, dtype, progress, generator):
    k_init, k_run = jax.random.split(key)
    m0, q0 = setup.start()
    w0, mu = _full_start(jax.random.split(k_init, seeds), jnp.asarray(m0, dtype),
                         jnp.asarray(q0, dtype), jnp.asarray(setup.spike, dtype),
                         dim=setup.dim, random_start=setup.random_start,
                         covariance=setup.normalization == "covariance", dtype=dtype)
    dynamics = OnlineSGD(**_model_fields(setup, dtype), generator=generator)
    out, _ = run_segments(dynamics, (w0, mu, jax.random.split(k_run, seeds)), steps,
                          progress=progress, work_per_step=seeds * setup.dim * 8,
                          description="spiked Monte Carlo (full)")
    return out["m"], out["q"]


# ----------------------------------------------------------------- the exact chain
def chi2(key, dof, shape, dtype, attempts: int = ATTEMPTS, draws=None):
    """Exact chi^2_dof draws, 2 Gamma(dof/2), by Marsaglia-Tsang with ``attempts`` proposals
    at once (the first accepted one is exactly the sequential sampler's output); the rare
    entries with no accepted proposal get fresh rounds (a while loop) until accepted; dof < 2
    uses the boost Gamma(alpha) = Gamma(alpha + 1) U^(1/alpha). ``dof`` may be traced.

    ``draws = (normals (attempts, *shape), uniforms (attempts + 1, *shape))`` supplies the
    first round's random numbers (so a caller can draw them together with its own); the
    retries use ``key``. Random inputs are float32 (a float32 normal or uniform is exact
    to its rounding); the acceptance test and the result are computed in ``dtype``.
    (``jax.random.gamma`` alone is ~10x slower on a CPU.)
    """
    alpha = 0.5 * jnp.asarray(dof, dtype)
    small = alpha < 1.0
    a = jnp.where(small, alpha + 1.0, alpha)
    dd = a - 1.0 / 3.0
    cc = 1.0 / jnp.sqrt(9.0 * dd)
    tiny = jnp.finfo(dtype).tiny

    def accept(x, u):
        t = cc * x
        pos = t > -1.0
        t = jnp.where(pos, t, 0.0)
        log_v = 3.0 * jnp.log1p(t)
        expo = 0.5 * x * x + dd * (log_v - t * (3.0 + t * (3.0 + t)))
        ok = pos & (jnp.log(jnp.maximum(u, tiny)) < expo)
        first = jnp.argmax(ok, axis=0)
        val = dd * jnp.exp(jnp.take_along_axis(log_v, first[None], axis=0)[0])
        return val, jnp.any(ok, axis=0)

    if draws is None:
        k0, key = jax.random.split(key)
        draws = (jax.random.normal(k0, (attempts, *shape), dtype=DRAW),
                 jax.random.uniform(jax.random.fold_in(k0, 1), (attempts + 1, *shape), dtype=DRAW))
    x0, u0 = (jnp.asarray(z, dtype) for z in draws)
    val, ok = accept(x0, u0[:attempts])

    def retry(c):  # fresh proposals for the (rare) entries with none accepted yet
        i, val, ok = c
        kx, ku = jax.random.split(jax.random.fold_in(key, i))
        v2, ok2 = accept(jax.random.normal(kx, (attempts, *shape), dtype=DRAW).astype(dtype),
                         jax.random.uniform(ku, (attempts, *shape), dtype=DRAW).astype(dtype))
        return i + 1, jnp.where(ok, val, v2), ok | ok2

    _, val, _ = jax.lax.while_loop(lambda c: ~jnp.all(c[2]), retry, (0, val, ok))
    boost = jnp.where(small, jnp.maximum(u0[attempts], tiny) ** (1.0 / alpha), 1.0)
    return 2.0 * val * boost


class ExactChain(_Model, Dynamics):
    """A group of lanes of the exact chain; state (m, q, key), m and q of shape (lanes,).

    ``dof`` is d (traced): r^2 ~ chi^2_{d-2}. Used unbatched by `run_segments` (the lanes are
    the state's own axis, so all lanes share each block's random-number calls).
    """

    dof: jax.Array

    def update(self, m, q, u, xi, eps, r2):
        """(m, q) after one step of the exact chain (docs/spiked.md, "The exact chain")."""
        sq = jnp.sqrt(1.0 + self.theta)
        b = jnp.sqrt(jnp.maximum(q, 0.0))
        eg = self.eta * self.gradient(u, sq * m * u + b * xi, eps)
        m2 = m + eg * sq * u
        q2 = (b + eg * xi) ** 2 + eg * eg * r2
        if self.normalization == "none":
            return m2, q2
        n2 = m2 * m2 + q2 if self.normalization == "sphere" else (1.0 + self.theta) * m2 * m2 + q2
        return m2 / jnp.sqrt(n2), q2 / n2

    def block_draws(self, key, block, lanes: int, dtype):
        """The random numbers of one block: normals (BLOCK, lanes, 3) and r^2 (BLOCK, lanes).

        Two generator calls per block (normals for the chain and the chi^2 proposals together,
        then uniforms): each threefry call costs seconds of compilation on a CPU.
        """
        k1, k2, k3 = jax.random.split(jax.random.fold_in(key, block), 3)
        normals = jax.random.normal(k1, (3 + ATTEMPTS, BLOCK, lanes), dtype=DRAW)
        uniforms = jax.random.uniform(k2, (ATTEMPTS + 1, BLOCK, lanes), dtype=DRAW)
        r2 = chi2(k3, self.dof - 2, (BLOCK, lanes), dtype, draws=(normals[3:], uniforms))
        return jnp.moveaxis(normals[:3], 0, -1).astype(dtype), r2

    def advance(self, state, first_step, n_steps):
        m, q, key = state
        first, last = first_step, first_step + n_steps

        def block(bi, carry):
            normals, r2 = self.block_draws(key, bi, m.shape[0], m.dtype)
            idx = bi * BLOCK + jnp.arange(BLOCK)

            def one(c, inp):
                mm, qq = c
                nz, rr, s = inp
                m2, q2 = self.update(mm, qq, nz[:, 0], nz[:, 1], nz[:, 2], rr)
                live = (s >= first) & (s < last)
                return (jnp.where(live, m2, mm), jnp.where(live, q2, qq)), None

            carry, _ = jax.lax.scan(one, carry, (normals, r2, idx))
            return carry

        m, q = jax.lax.fori_loop(first // BLOCK, (last + BLOCK - 1) // BLOCK, block, (m, q))
        return m, q, key

    def observe(self, state):
        m, q, _ = state
        return {"m": m, "q": q}


def _chain(setup: SpikedSingleIndex, dtype) -> ExactChain:
    return ExactChain(**_model_fields(setup, dtype), dof=jnp.asarray(setup.dim, dtype))


@functools.partial(jax.jit, static_argnames=("lanes", "dtype"))
def _random_chain_start(key, d, w1, *, lanes, dtype):
    """(m0, q0) with w0 = g / ||g||_W, g ~ N(0, I_d), ||g||_W^2 = w1 g_1^2 + ||g_perp||^2
    (w1 = 1 + theta for "covariance", else 1): the exact law of a uniform start."""
    k1, k2 = jax.random.split(key)
    g1 = jax.random.normal(k1, (lanes,), dtype=dtype)
    rest = chi2(k2, d - 1, (lanes,), dtype)
    n2 = w1 * g1 * g1 + rest
    return g1 / jnp.sqrt(n2), rest / n2


def _chain_start(setup: SpikedSingleIndex, key, lanes: int, dtype):
    """(m0, q0) of one lane group: deterministic, or drawn from the exact law of a random start."""
    if not setup.random_start:
        m0, q0 = setup.start()
        return jnp.full((lanes,), m0, dtype), jnp.full((lanes,), q0, dtype)
    w1 = 1.0 + setup.spike if setup.normalization == "covariance" else 1.0
    return _random_chain_start(key, jnp.asarray(setup.dim, dtype), jnp.asarray(w1, dtype),
                               lanes=lanes, dtype=dtype)


def _lanes(seeds: int) -> int:
    """Chains per compiled call: a fixed width, so every seed count shares one compilation."""
    return LANES if seeds <= 16 * LANES else 16 * LANES


def _groups(seeds: int):
    """(group index, lanes, used lanes) covering ``seeds`` chains."""
    lanes = _lanes(seeds)
    return [(i, lanes, min(lanes, seeds - i * lanes)) for i in range(-(-seeds // lanes))]


def _simulate_chain(setup: SpikedSingleIndex, steps, key, seeds, dtype, progress):
    k_init, k_run = jax.random.split(key)
    chain = _chain(setup, dtype)
    if progress is None:
        progress = float(steps[-1]) * seeds > 1e8
    ms, qs = [], []
    for gi, lanes, used in _groups(seeds):
        m0, q0 = _chain_start(setup, jax.random.fold_in(k_init, gi), lanes, dtype)
        out, _ = run_segments(chain, (m0, q0, jax.random.fold_in(k_run, gi)), steps,
                              batched=False, progress=progress,
                              description=f"spiked Monte Carlo (chain, lanes {gi * lanes}+)")
        ms.append(out["m"][:, :used].T)
        qs.append(out["q"][:, :used].T)
    return np.concatenate(ms, axis=0), np.concatenate(qs, axis=0)


# ----------------------------------------------------------------- simulate
@simulate.register
def _simulate(setup: SpikedSingleIndex, horizon: float, *, key, seeds: int = 16, times=None,
              method: str = "chain", dtype=None, generator: str = "philox",
              progress: bool | None = None, **options) -> Curve:
    """Simulate online SGD on the spiked single-index model with ``seeds`` independent runs.

    Args:
        setup: a `SpikedSingleIndex`.
        horizon: final time t = samples / d.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs.
        times: output times in t (rounded to whole steps); default: every step at first, then
            about 100 log-spaced steps.
        method: ``"chain"`` (default: the exact 2-variable chain, the law of (m, q) under
            full SGD at every finite d, O(1) per step at any d) or ``"full"`` (d-dimensional
            SGD with literal data, O(d) per step; the two agree in distribution).
        dtype: float dtype (default: float32 for "full", float64 for "chain").
        generator: the full method's data generator, ``"philox"`` (default, Philox4x32-10) or
            ``"threefry"`` (JAX's own); the same law, other numbers. The chain draws O(1)
            numbers a step and keeps JAX's threefry.
        progress: progress bar (default: on for long runs).
    """
    reject_options(options, setup, ("method", "dtype", "generator", "progress"))
    check_generator(generator)
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    steps = setup.output_steps(horizon, times)
    if dtype is None:
        dtype = jnp.float32 if method == "full" else jnp.float64
    dtype = jnp.dtype(dtype)
    if method == "full":
        m, q = _simulate_full(setup, steps, key, seeds, dtype, progress, generator)
    else:
        m, q = _simulate_chain(setup, steps, key, seeds, dtype, progress)
    m = np.asarray(m, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    blown = exceeds(np.abs(m) + np.abs(q), 1.0, factor=BLOWUP)
    m_safe, q_safe = np.where(blown, 0.0, m), np.where(blown, 1.0, q)
    return finish_curve(setup, steps / setup.dim, observables_from_overlaps(setup, m_safe, q_safe),
                        method=method, samples=steps, seeds=seeds, blown=blown,
                        extra={"dtype": str(dtype)} | ({"generator": generator}
                                                       if method == "full" else {}))


# ----------------------------------------------------------------- escape samples
@eqx.filter_jit
def _escape_run(chain: ExactChain, m, q, key, threshold, max_samples, observable: str):
    """The first step at which each lane's |observable| >= threshold (-1: not by max_samples).

    Runs blocks of 256 steps in a while loop until every lane has hit or ``max_samples``
    steps are done; ``threshold`` and ``max_samples`` are traced, ``observable`` static.
    """
    lanes, dtype = m.shape[0], m.dtype
    n_blocks = (max_samples + BLOCK - 1) // BLOCK
    hit = jnp.where(overlap_statistic(observable, m, q, chain.theta) >= threshold, 0, -1)
    hit = hit.astype(max_samples.dtype)

    def cond(c):
        bi, _, _, hit = c
        return (bi < n_blocks) & jnp.any(hit < 0)

    def body(c):
        bi, m, q, hit = c
        normals, r2 = chain.block_draws(key, bi, lanes, dtype)

        def one(c2, inp):
            m, q, hit = c2
            nz, rr, s = inp
            m, q = chain.update(m, q, nz[:, 0], nz[:, 1], nz[:, 2], rr)
            newly = ((hit < 0) & (overlap_statistic(observable, m, q, chain.theta) >= threshold)
                     & (s <= max_samples))
            return (m, q, jnp.where(newly, s, hit)), None

        idx = bi * BLOCK + 1 + jnp.arange(BLOCK, dtype=max_samples.dtype)
        (m, q, hit), _ = jax.lax.scan(one, (m, q, hit), (normals, r2, idx))
        return bi + 1, m, q, hit

    start = jnp.zeros((), max_samples.dtype)
    _, _, _, hit = jax.lax.while_loop(cond, body, (start, m, q, hit))
    return hit


@scoped_x64
def escape_samples(setup: SpikedSingleIndex, *, key, seeds: int = 64, threshold: float = 0.5,
                   observable: str = "correlation", max_samples: int = 10**8,
                   dtype=jnp.float64) -> np.ndarray:
    """Samples (= steps) until |observable| >= threshold first, per run, from the exact chain
    (docs/spiked.md, "Escape time").

    Runs ``seeds`` independent chains (start as the Setup says; ``"random"`` draws m0 from
    its exact law) in blocks of 256 steps until every run has hit or ``max_samples`` steps
    have been taken. ``observable`` is one of "overlap", "covariance_overlap", "cosine",
    "correlation". Compiled once per (link, student, loss, normalisation, observable, dtype):
    d, step size, spike, label noise, threshold and ``max_samples`` are traced, so a sweep over
    them does not recompile. ``dtype``: the chain's float dtype (None: float64). Returns a float
    array (seeds,), ``inf`` for runs that never hit.

    Raises:
        ValueError: ``threshold`` outside (0, top], top the largest value |observable| takes
            (1 for "cosine" and "correlation"; see `hdsgd.setups.spiked.check_escape`);
            ``max_samples`` not an integer in [1, 2^53]; a bad key, seed count or dtype.
    """
    check_setup(setup)
    threshold = check_escape(setup, observable, threshold)
    check_key(key)
    seeds = check_seeds(seeds)
    max_samples = integer("max_samples", max_samples, low=1, high=MAX_STEPS)
    dtype = check_dtype(dtype) or jnp.dtype(jnp.float64)
    chain = _chain(setup, dtype)
    k_start, k_run = jax.random.split(key)
    hits = []
    for gi, lanes, used in _groups(seeds):
        m, q = _chain_start(setup, jax.random.fold_in(k_start, gi), lanes, dtype)
        hit = _escape_run(chain, m, q, jax.random.fold_in(k_run, gi), jnp.asarray(threshold, dtype),
                          jnp.asarray(int(max_samples), jnp.int64), observable)
        hits.append(np.asarray(hit)[:used])
    hit = np.concatenate(hits)
    return np.where(hit < 0, np.inf, hit.astype(np.float64))
