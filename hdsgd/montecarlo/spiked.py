r"""Monte Carlo for online SGD on a spiked single-index model: full dimension and the exact chain.

``method="full"`` (default): d-dimensional online SGD. The spike direction mu is a random
unit vector per run; a sample is ``x = z + (sqrt(1+theta) - 1) <z, mu> mu`` with
``z ~ N(0, I_d)`` (no d x d matrix), ``u = <z, mu>``, ``y = sigma*(u) + sqrt(Delta) eps``,
and one step is ``w <- w + (c/d) G x`` followed by the variant's normalisation (spec §2b).
Cost O(d) per step and run.

``method="chain"``: the exact two-variable Markov chain of spec §3. Given (m, q), draw
u, xi, eps ~ N(0, 1) and r^2 ~ chi^2_{d-2}; with a = sqrt(1+theta) m, b = sqrt(q),
h = a u + b xi:

    m' = m + eta G sqrt(1+theta) u,     q' = (b + eta G xi)^2 + eta^2 G^2 r^2,

then divide by N = sqrt(m'^2 + q') ("sphere") or N = sqrt((1+theta) m'^2 + q')
("covariance"): m <- m'/N, q <- q'/N^2. By rotation invariance of z on mu-perp this has
the law of (<w, mu>, ||P_perp w||^2) under full SGD at every finite d, and costs O(1) per
step, so escape statistics at d = 10^6 ... 10^9 cost O(steps). Random numbers are drawn in
blocks of 256 steps (a block's key is the run's key folded with the block index, so results
do not depend on how the horizon is cut).

Precision: ``dtype=None`` means float32 for ``"full"`` (the library's policy) and float64 for
``"chain"`` (two scalars per run; at d = 10^9 a step moves m by ~1e-9, below float32's
resolution of q ~ 1). The chain's random inputs (normals, uniforms) are drawn in float32
and cast (half the generator's cost, which dominates a step); its arithmetic is in ``dtype``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .. import __version__
from ..api import check_horizon, check_seeds, check_times, simulate, step_grid
from ..curve import Curve
from ..setups.spiked import (
    SpikedSingleIndex,
    derivative_e,
    hermite_e_eval,
    observables_from_overlaps,
    to_hermite_e,
)
from ._loop import run_segments, sticky_divergence

METHODS = ("full", "chain")
BLOCK = 256
LANES = 32  # chains per compiled call (up to 16 * 32 seeds; wider beyond)
ATTEMPTS = 2  # Marsaglia-Tsang proposals drawn at once (both rejected: < 1e-3 at d = 3, 3e-7 at d = 100)
DRAW = jnp.float32  # the chain's random inputs are drawn in float32 (half the generator's cost), then cast
BLOWUP = 1e12


def _gradient_factor(setup: SpikedSingleIndex):
    """G(u, h, eps): -grad_w loss = G x (spec §2b)."""
    link_e = to_hermite_e(setup.link)
    student_e = to_hermite_e(setup.student)
    dstudent_e = derivative_e(student_e)
    noise_std = math.sqrt(setup.label_noise)
    square = setup.loss == "square"

    def g(u, h, eps):
        y = hermite_e_eval(link_e, u) + noise_std * eps
        ds = hermite_e_eval(dstudent_e, h)
        return (y - hermite_e_eval(student_e, h)) * ds if square else y * ds

    return g


# ----------------------------------------------------------------- full dimension
def _full_step_fn(setup: SpikedSingleIndex, dtype):
    d = setup.dim
    theta = setup.spike
    scale = math.sqrt(1.0 + theta) - 1.0
    eta = setup.step_size / d
    norm = setup.normalization
    grad = _gradient_factor(setup)

    def step(w, mu, key):
        kz, ke = jax.random.split(key)
        z = jax.random.normal(kz, (d,), dtype=dtype)
        eps = jax.random.normal(ke, (), dtype=dtype)
        u = jnp.dot(z, mu)
        x = z + (scale * u) * mu
        h = jnp.dot(w, x)
        w = w + (eta * grad(u, h, eps)) * x
        if norm == "sphere":
            w = w / jnp.sqrt(jnp.dot(w, w))
        elif norm == "covariance":
            m = jnp.dot(w, mu)
            w = w / jnp.sqrt(jnp.dot(w, w) + theta * m * m)
        return w

    return step


def _full_init(setup: SpikedSingleIndex, key, dtype):
    """(w0, mu) for one run."""
    d, theta = setup.dim, setup.spike
    kmu, kw = jax.random.split(key)
    mu = jax.random.normal(kmu, (d,), dtype=dtype)
    mu = mu / jnp.sqrt(jnp.dot(mu, mu))
    g = jax.random.normal(kw, (d,), dtype=dtype)
    if setup.random_start:
        w = g
    else:
        m0, q0 = setup.start()
        perp = g - jnp.dot(g, mu) * mu
        w = m0 * mu + math.sqrt(q0) * perp / jnp.sqrt(jnp.dot(perp, perp))
    m = jnp.dot(w, mu)
    if setup.normalization == "covariance":
        return w / jnp.sqrt(jnp.dot(w, w) + theta * m * m), mu
    return w / jnp.sqrt(jnp.dot(w, w)), mu


def _simulate_full(setup, steps, key, seeds, dtype, progress):
    step = _full_step_fn(setup, dtype)
    k_init, k_run = jax.random.split(key)
    keys = jax.random.split(k_run, seeds)
    w0, mu = jax.vmap(lambda k: _full_init(setup, k, dtype))(jax.random.split(k_init, seeds))

    def advance(state, first_step, n_steps):
        w, mu, k = state
        w = jax.lax.fori_loop(first_step, first_step + n_steps,
                              lambda i, w: step(w, mu, jax.random.fold_in(k, i)), w)
        return w, mu, k

    def observe(state):
        w, mu, _ = state
        m = jnp.dot(w, mu)
        return {"m": m, "q": jnp.dot(w, w) - m * m}

    out, _ = run_segments(advance, observe, (w0, mu, keys), steps, progress=progress,
                          work_per_step=seeds * setup.dim * 8,
                          description="spiked Monte Carlo (full)")
    return out["m"], out["q"]


# ----------------------------------------------------------------- the exact chain
def _chain_update_fn(setup: SpikedSingleIndex):
    """(m, q, u, xi, eps, r2, params) -> (m, q) after one step of the exact chain (spec §3).

    ``params = (eta, theta)`` are traced, so one compilation serves every step size and spike.
    """
    norm = setup.normalization
    grad = _gradient_factor(setup)

    def update(m, q, u, xi, eps, r2, params):
        eta, theta = params
        sq = jnp.sqrt(1.0 + theta)
        b = jnp.sqrt(jnp.maximum(q, 0.0))
        h = sq * m * u + b * xi
        eg = eta * grad(u, h, eps)
        m2 = m + eg * sq * u
        q2 = (b + eg * xi) ** 2 + eg * eg * r2
        if norm == "none":
            return m2, q2
        n2 = m2 * m2 + q2 if norm == "sphere" else (1.0 + theta) * m2 * m2 + q2
        return m2 / jnp.sqrt(n2), q2 / n2

    return update


def _params(setup: SpikedSingleIndex, dtype):
    return (jnp.asarray(setup.step_size / setup.dim, dtype), jnp.asarray(setup.spike, dtype))


def _static_key(setup: SpikedSingleIndex):
    """What a compiled chain depends on besides traced numbers (label noise enters G)."""
    return (tuple(setup.link.tolist()), tuple(setup.student.tolist()), setup.loss,
            setup.normalization, setup.label_noise)


def chi2(key, dof, shape, dtype, attempts: int = ATTEMPTS, draws=None):
    """Exact chi^2_dof draws, 2 Gamma(dof/2), by Marsaglia-Tsang with ``attempts`` proposals
    at once (the first accepted one is exactly the sequential sampler's output); the rare
    entries with no accepted proposal get fresh rounds (a while loop) until accepted; dof < 2
    uses the boost Gamma(alpha) = Gamma(alpha + 1) U^(1/alpha). ``dof`` may be traced.

    ``draws = (normals (attempts, *shape), uniforms (attempts + 1, *shape))`` supplies the
    first round's random numbers (so a caller can draw them together with its own); the
    retries use ``key``. Random inputs are float32 (a float32 normal or uniform is exact
    to its rounding); the acceptance test and the result are computed in ``dtype``. (``jax.random.gamma`` alone is ~10x slower on a CPU.)
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


def _chain_block_draws(key, block, shape, d, dtype):
    """The random numbers of one block: normals (BLOCK, *shape, 3) and r^2 (BLOCK, *shape).

    Two generator calls per block (normals for the chain and the chi^2 proposals together,
    then uniforms): each threefry call costs seconds of compilation on a CPU.
    """
    kb = jax.random.fold_in(key, block)
    k1, k2, k3 = jax.random.split(kb, 3)
    normals = jax.random.normal(k1, (3 + ATTEMPTS, BLOCK, *shape), dtype=DRAW)
    uniforms = jax.random.uniform(k2, (ATTEMPTS + 1, BLOCK, *shape), dtype=DRAW)
    r2 = chi2(k3, d - 2, (BLOCK, *shape), dtype, draws=(normals[3:], uniforms))
    return jnp.moveaxis(normals[:3], 0, -1).astype(dtype), r2


def _chain_start(setup: SpikedSingleIndex, key, shape, dtype):
    """(m0, q0): deterministic, or the exact law of <w0, mu> for w0 uniform on the variant's sphere."""
    if not setup.random_start:
        m0, q0 = setup.start()
        return jnp.full(shape, m0, dtype), jnp.full(shape, q0, dtype)
    w1 = 1.0 + setup.spike if setup.normalization == "covariance" else 1.0
    return _random_start(tuple(shape), str(jnp.dtype(dtype)))(
        key, jnp.asarray(setup.dim, dtype), jnp.asarray(w1, dtype))


@functools.lru_cache(maxsize=16)
def _random_start(shape, dtype):
    """start(key, d, w1) -> (m0, q0) with w0 = g / ||g||_W, g ~ N(0, I_d), ||g||_W^2 =
    w1 g_1^2 + ||g_perp||^2 (w1 = 1 + theta for "covariance", else 1)."""
    dtype = jnp.dtype(dtype)

    @jax.jit
    def start(key, d, w1):
        k1, k2 = jax.random.split(key)
        g1 = jax.random.normal(k1, shape, dtype=dtype)
        rest = chi2(k2, d - 1, shape, dtype)
        n2 = w1 * g1 * g1 + rest
        return g1 / jnp.sqrt(n2), rest / n2

    return start


def _lanes(seeds: int) -> int:
    """Chains per compiled call: a fixed width, so every seed count shares one compilation."""
    return LANES if seeds <= 16 * LANES else 16 * LANES


def _chunks(seeds: int):
    """(chunk index, lanes, used lanes) covering ``seeds`` chains."""
    lanes = _lanes(seeds)
    return [(i, lanes, min(lanes, seeds - i * lanes)) for i in range(-(-seeds // lanes))]


_CACHE: dict = {}


def _cached(kind, setup: SpikedSingleIndex, lanes: int, dtype, extra=()):
    """One jitted chain function per (kind, link, student, loss, normalisation, noise, lanes,
    dtype, extra): step size, spike, d, start and horizon are traced arguments."""
    key = (kind, _static_key(setup), lanes, str(jnp.dtype(dtype)), extra)
    if key not in _CACHE:
        if len(_CACHE) > 64:
            _CACHE.clear()
        build = _build_advance if kind == "advance" else _build_escape
        _CACHE[key] = build(setup, lanes, jnp.dtype(dtype), *extra)
    return _CACHE[key]


def _build_advance(setup, lanes, dtype):
    """advance(m, q, key, first, last, params, d) -> (m, q): steps first..last-1."""
    update = _chain_update_fn(setup)

    @jax.jit
    def advance(m, q, key, first, last, params, d):
        def block(bi, carry):
            normals, r2 = _chain_block_draws(key, bi, (lanes,), d, dtype)
            idx = bi * BLOCK + jnp.arange(BLOCK)

            def one(c, inp):
                mm, qq = c
                nz, rr, s = inp
                m2, q2 = update(mm, qq, nz[:, 0], nz[:, 1], nz[:, 2], rr, params)
                live = (s >= first) & (s < last)
                return (jnp.where(live, m2, mm), jnp.where(live, q2, qq)), None

            carry, _ = jax.lax.scan(one, carry, (normals, r2, idx))
            return carry

        return jax.lax.fori_loop(first // BLOCK, (last + BLOCK - 1) // BLOCK, block, (m, q))

    return advance


def _simulate_chain(setup, steps, key, seeds, dtype, progress):
    k_init, k_run = jax.random.split(key)
    params = _params(setup, dtype)
    dof = jnp.asarray(setup.dim, dtype)  # the chain draws r^2 ~ chi^2_{d-2}
    if progress is None:
        progress = float(steps[-1]) * seeds > 1e8
    chunks = _chunks(seeds)
    bar = tqdm(total=int(steps[-1]) * len(chunks), desc="spiked Monte Carlo (chain)",
               unit="step", disable=not progress, leave=False)
    ms, qs = [], []
    for ci, lanes, used in chunks:
        advance = _cached("advance", setup, lanes, dtype)
        m, q = _chain_start(setup, jax.random.fold_in(k_init, ci), (lanes,), dtype)
        kc = jax.random.fold_in(k_run, ci)
        mc, qc, done = [], [], 0
        for target in steps:
            if target > done:
                m, q = advance(m, q, kc, jnp.int64(done), jnp.int64(target), params, dof)
                bar.update(int(target) - done)
                done = int(target)
            mc.append(np.asarray(m)[:used])
            qc.append(np.asarray(q)[:used])
        ms.append(np.stack(mc, axis=1))
        qs.append(np.stack(qc, axis=1))
    bar.close()
    return np.concatenate(ms, axis=0), np.concatenate(qs, axis=0)


# ----------------------------------------------------------------- simulate
@simulate.register
def _simulate(setup: SpikedSingleIndex, horizon: float, *, key, seeds: int = 16, times=None,
              method: str = "full", dtype=None, progress: bool | None = None) -> Curve:
    """Simulate online SGD on the spiked single-index model with ``seeds`` independent runs.

    Args:
        setup: a `SpikedSingleIndex`.
        horizon: final time t = samples / d.
        key: ``jax.random`` key (same key, same numbers).
        seeds: independent runs, batched with vmap.
        times: output times in t (rounded to whole steps); default: every step at first, then
            about 100 log-spaced steps.
        method: ``"full"`` (d-dimensional SGD) or ``"chain"`` (the exact 2-variable chain).
        dtype: float dtype (default: float32 for "full", float64 for "chain").
        progress: progress bar (default: on for long runs).
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is invalid; allowed: {METHODS}")
    horizon = check_horizon(horizon)
    seeds = check_seeds(seeds)
    d = setup.dim
    if times is None:
        steps = step_grid(max(1, int(round(horizon * d))))
    else:
        steps = np.round(check_times(times, horizon) * d).astype(np.int64)
    if dtype is None:
        dtype = jnp.float32 if method == "full" else jnp.float64
    dtype = jnp.dtype(dtype)
    run = _simulate_full if method == "full" else _simulate_chain
    m, q = run(setup, steps, key, seeds, dtype, progress)
    m = np.asarray(m, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    size = np.abs(m) + np.abs(q)
    diverged = sticky_divergence(size, np.ones(seeds), factor=BLOWUP)
    m_safe, q_safe = np.where(diverged, 0.0, m), np.where(diverged, 1.0, q)
    obs = {k: np.where(diverged, np.inf, np.asarray(val, dtype=np.float64))
           for k, val in observables_from_overlaps(setup, m_safe, q_safe).items()}
    return Curve(
        time=steps / d,
        observables=obs,
        time_unit="t",
        samples=steps.astype(np.float64),
        seeds=seeds,
        diverged=diverged,
        meta={**setup.fields(), "method": method, "dtype": str(dtype), "version": __version__},
    )


# ----------------------------------------------------------------- escape times
_ESCAPE_OBSERVABLES = ("overlap", "covariance_overlap", "cosine", "correlation")


def escape_samples(setup: SpikedSingleIndex, *, key, seeds: int = 64, threshold: float = 0.5,
                   observable: str = "correlation", max_samples: int = 10**8,
                   dtype=jnp.float64) -> np.ndarray:
    """Samples (= steps) until |observable| >= threshold first, per run, from the exact chain.

    Runs ``seeds`` independent chains (start as the Setup says; ``"random"`` draws m0 from
    its exact law) in blocks of 256 steps until every run has hit or ``max_samples`` steps
    have been taken. Compiled once per link/student/loss/normalisation/noise/observable:
    d, step size, spike, threshold and ``max_samples`` are traced, so a sweep over them
    does not recompile. Returns a float array (seeds,), ``inf`` for runs that never hit.
    """
    if observable not in _ESCAPE_OBSERVABLES:
        raise ValueError(f"observable={observable!r} is invalid; allowed: {_ESCAPE_OBSERVABLES}")
    seeds = check_seeds(seeds)
    if not 0.0 < float(threshold):
        raise ValueError(f"threshold={threshold!r} is invalid; allowed: (0, inf)")
    max_samples = int(max_samples)
    if max_samples < 1:
        raise ValueError(f"max_samples={max_samples!r} is invalid; allowed: an integer >= 1")
    dtype = jnp.dtype(dtype)
    k_start, k_run = jax.random.split(key)
    args = (_params(setup, dtype), jnp.asarray(setup.dim, dtype), jnp.asarray(threshold, dtype),
            jnp.int64(max_samples))
    hits = []
    for ci, lanes, used in _chunks(seeds):
        run = _cached("escape", setup, lanes, dtype, (observable,))
        m, q = _chain_start(setup, jax.random.fold_in(k_start, ci), (lanes,), dtype)
        hits.append(np.asarray(run(m, q, jax.random.fold_in(k_run, ci), *args))[:used])
    hit = np.concatenate(hits)
    return np.where(hit < 0, np.inf, hit.astype(np.float64))


def _build_escape(setup, lanes, dtype, observable):
    """run(m0, q0, key, params, d, threshold, max_samples) -> first hitting step (-1: none)."""
    update = _chain_update_fn(setup)

    def stat(m, q, theta):
        q = jnp.maximum(q, 0.0)
        if observable == "overlap":
            return jnp.abs(m)
        a = jnp.sqrt(1.0 + theta) * jnp.abs(m)
        if observable == "covariance_overlap":
            return a
        if observable == "cosine":
            return jnp.abs(m) / jnp.sqrt(m * m + q)
        return a / jnp.sqrt(a * a + q)

    @jax.jit
    def run(m, q, key, params, d, threshold, max_samples):
        theta = params[1]
        n_blocks = (max_samples + BLOCK - 1) // BLOCK
        hit = jnp.where(stat(m, q, theta) >= threshold, 0, -1).astype(jnp.int64)

        def cond(c):
            bi, _, _, hit = c
            return (bi < n_blocks) & jnp.any(hit < 0)

        def body(c):
            bi, m, q, hit = c
            normals, r2 = _chain_block_draws(key, bi, (lanes,), d, dtype)

            def one(c2, inp):
                m, q, hit = c2
                nz, rr, s = inp
                m, q = update(m, q, nz[:, 0], nz[:, 1], nz[:, 2], rr, params)
                newly = (hit < 0) & (stat(m, q, theta) >= threshold) & (s <= max_samples)
                return (m, q, jnp.where(newly, s, hit)), None

            idx = bi * BLOCK + 1 + jnp.arange(BLOCK, dtype=jnp.int64)
            (m, q, hit), _ = jax.lax.scan(one, (m, q, hit), (normals, r2, idx))
            return bi + 1, m, q, hit

        _, _, _, hit = jax.lax.while_loop(cond, body, (jnp.int64(0), m, q, hit))
        return hit

    return run
