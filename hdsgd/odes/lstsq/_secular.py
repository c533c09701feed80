r"""Roots and residues of the secular equation behind the spectral solution (docs/lstsq.md,
"Spectral solution").

For real poles P_1 < ... < P_G with weights W_g > 0 and a smooth background E,

    f(mu) = sum_g W_g / (mu - P_g) + E(mu),

f runs from +inf to -inf between consecutive poles, so f(mu) = 1 has one root in each interval
(P_g, P_{g+1}), one above P_G, and (with a background) possibly one below P_1. Everything here
is pure JAX on fixed shapes: G is traced (``count``), arrays have the static length n >= G and
the entries past G repeat the last pole with weight 0.

Accuracy: a root is stored as an offset t from its nearer pole ("origin"), mu = P_org + t, so
mu - P_g = (P_org - P_g) + t keeps full relative accuracy for the poles next to it however
close they are (LAPACK's dlaed4 does the same). Each root is found by the "fixed weight"
iteration: around the current point, f is modelled by alpha/(mu - P_j) + beta/(mu - P_{j+1}) + c,
matching the two sides' values and slopes, and the model's root in the interval is the next
point; it converges quadratically, and a bracket with bisection keeps it in its interval.

The sums over the poles are either direct (O(n) per root, for small n) or "fast": the poles next
to the root exactly and the rest through the sum-of-exponentials identity

    1/x^p = int_R exp(p u - x e^u) du / Gamma(p)   (x > 0),

discretised by the trapezoidal rule in u (exponentially accurate: the error is about
exp(-pi^2/h)), which turns the far field of every root into prefix sums along the sorted poles:
O(n Q) per pass instead of O(n^2), for Q ~ 300 quadrature nodes, and memory O(n) per node.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

EPS = float(np.finfo(np.float64).eps)
MERGE_TOL = 4.0 * EPS  # poles closer than this (relative) are one pole: docs/lstsq.md
MAX_ITER = 80
NEAR = 2            # poles on each side of a root summed exactly by the fast sums
SOE_NODES = 320     # quadrature nodes of the sum-of-exponentials far field (multiple of 32)
SOE_CHUNK = 32      # nodes per pass over the poles (memory n * SOE_CHUNK)
TABLE_BYTES = 1 << 31  # store the fast sums' tables below this size, else rebuild them per pass
DIRECT_MAX = 4096   # up to this many poles the sums are direct


class Poles(NamedTuple):
    """Grouped poles, sorted ascending; entries at index >= count repeat the last, weights 0."""

    position: jax.Array   # P_g
    one_minus: jax.Array  # 1 - P_g, to full relative accuracy
    weight: jax.Array     # W_g >= 0 (the residues of f)
    vweight: jax.Array    # V_g (the residues of the initial-condition numerator g)
    count: jax.Array      # G, the number of groups (int)


def group_poles(position, one_minus, weight, vweight, merge_tol=MERGE_TOL) -> Poles:
    """Sort the poles and merge equal or nearly equal ones (relative gap <= merge_tol).

    A group keeps its smallest position (and that member's 1 - P) and the sums of the weights.
    Merging two poles a gap delta apart changes the solution by O(k delta) at step k (at most
    ~1e-9 relative at 10^6 steps for merge_tol = 4 eps); the recursion in float64 has errors
    of the same order, from the rounding of its own coefficients.
    """
    n = position.shape[0]
    order = jnp.argsort(position, stable=True)
    p = position[order]
    scale = jnp.maximum(jnp.abs(p[1:]), jnp.abs(p[:-1]))
    new = jnp.concatenate([jnp.ones(1, bool), (p[1:] - p[:-1]) > merge_tol * scale])
    gid = jnp.cumsum(new) - 1
    starts = jnp.nonzero(new, size=n, fill_value=n - 1)[0]
    segment = functools.partial(jax.ops.segment_sum, segment_ids=gid, num_segments=n,
                                indices_are_sorted=True)
    return Poles(p[starts], one_minus[order][starts], segment(weight[order]),
                 segment(vweight[order]), gid[-1] + 1)


class Background(NamedTuple):
    """A smooth background on [lo, hi]: Chebyshev interpolants of E, E' and G (values at the
    n_c Chebyshev points of the second kind, evaluated by the barycentric formula)."""

    lo: jax.Array
    hi: jax.Array
    e: jax.Array
    de: jax.Array
    g: jax.Array


def chebyshev_points(lo, hi, n: int):
    """The n Chebyshev points of the second kind on [lo, hi], ascending."""
    k = jnp.arange(n)
    return lo + (hi - lo) * 0.5 * (1.0 - jnp.cos(jnp.pi * k / (n - 1)))


def _barycentric(values, lo, hi, x):
    """Evaluate the Chebyshev interpolant with ``values`` (last axis) at points x."""
    n = values.shape[-1]
    nodes = chebyshev_points(lo, hi, n)
    w = jnp.where(jnp.arange(n) % 2 == 0, 1.0, -1.0) * jnp.where(
        (jnp.arange(n) == 0) | (jnp.arange(n) == n - 1), 0.5, 1.0)
    x = jnp.clip(x, lo, hi)
    diff = x[..., None] - nodes
    exact = diff == 0
    safe = jnp.where(exact, 1.0, diff)
    ratio = w / safe
    interp = jnp.sum(ratio * values, -1) / jnp.sum(ratio, -1)
    hit = jnp.any(exact, -1)
    at_node = jnp.sum(jnp.where(exact, values, 0.0), -1)
    return jnp.where(hit, at_node, interp)


def background_at(bg: Background | None, mu):
    """(E(mu), E'(mu), G(mu)); zeros without a background."""
    if bg is None:
        z = jnp.zeros_like(mu)
        return z, z, z
    return (_barycentric(bg.e, bg.lo, bg.hi, mu), _barycentric(bg.de, bg.lo, bg.hi, mu),
            _barycentric(bg.g, bg.lo, bg.hi, mu))


# --------------------------------------------------------------------------- sums over the poles
class Targets(NamedTuple):
    """Points mu_k = P[org_k] + t_k, one per interval k (k = 0 is the interval below P_0, k = j+1
    the interval (P_j, P_{j+1}), k = G the one above P_{G-1}): left poles g <= k-1, right g >= k."""

    org: jax.Array
    t: jax.Array


def _split_sums_direct(P, weights, count, targets: Targets, chunk: int = 256):
    """sum_{g<k} w_g/x^p and sum_{g>=k} w_g/x^p (x = mu_k - P_g) for p = 1, 2 and each weight row.

    Returns an array (rows, 4, K): left p=1, left p=2, right p=1, right p=2.
    """
    n = P.shape[0]
    K = targets.t.shape[0]
    pad = (-K) % chunk
    org = jnp.pad(targets.org, (0, pad))
    t = jnp.pad(targets.t, (0, pad), constant_values=1.0)
    k = jnp.pad(jnp.arange(K), (0, pad))
    g = jnp.arange(n)
    valid_pole = g < count

    def one(args):
        o, tt, kk = args
        x = (P[o][:, None] - P[None, :]) + tt[:, None]
        inv = jnp.where(valid_pole[None, :], 1.0 / jnp.where(valid_pole[None, :], x, 1.0), 0.0)
        left = (g[None, :] < kk[:, None])
        inv2 = inv * inv
        out = []
        for w in weights:
            a1, a2 = w * inv, w * inv2
            out.append(jnp.stack([jnp.sum(jnp.where(left, a1, 0.0), 1),
                                  jnp.sum(jnp.where(left, a2, 0.0), 1),
                                  jnp.sum(jnp.where(left, 0.0, a1), 1),
                                  jnp.sum(jnp.where(left, 0.0, a2), 1)]))
        return jnp.stack(out)

    res = jax.lax.map(one, (org.reshape(-1, chunk), t.reshape(-1, chunk), k.reshape(-1, chunk)))
    # (chunks, rows, 4, chunk) -> (rows, 4, K)
    return jnp.moveaxis(res, 0, 2).reshape(len(weights), 4, -1)[..., :K]


class SoeGrid(NamedTuple):
    """Quadrature of the sum-of-exponentials far field: nodes t_q = exp(u_q), step h, and the
    implied relative accuracy exp(-pi^2/h)."""

    tq: jax.Array
    h: jax.Array
    accuracy: jax.Array


def soe_grid(P, count, nodes: int = SOE_NODES, extra_span=0.0) -> SoeGrid:
    """Nodes covering the far-field distances of the poles ``P``.

    Distances run from x_lo (the smallest span of NEAR + 1 consecutive poles) to x_hi (the whole
    span plus ``extra_span``); u runs from log(1e-17/x_hi) (lower tail below 1e-17 relative) to
    log(45/x_lo) (upper tail exp(-45)). Not differentiated: the nodes are a numerical device.
    """
    P = jax.lax.stop_gradient(P)
    n = P.shape[0]
    g = jnp.arange(n - NEAR)
    span = P[NEAR:] - P[:-NEAR]
    x_lo = jnp.min(jnp.where(((g + NEAR) < count) & (span > 0), span, jnp.inf))
    x_lo = jnp.where(jnp.isfinite(x_lo), x_lo, 1.0)
    x_hi = (P[count - 1] - P[0]) + jax.lax.stop_gradient(extra_span)
    x_hi = jnp.maximum(x_hi, x_lo)
    u_lo = jnp.log(1e-17 / x_hi)
    h = (jnp.log(45.0 / x_lo) - u_lo) / (nodes - 1)
    return SoeGrid(jnp.exp(u_lo + h * jnp.arange(nodes)), h, jnp.exp(-jnp.pi**2 / h))


def soe_nodes_for(positions: np.ndarray, extra_span: float, h: float = 0.3) -> int:
    """The number of SOE nodes (a multiple of 64, >= 128) for step ``h`` on these poles (host)."""
    p = np.unique(np.asarray(positions, dtype=np.float64))
    if p.size <= NEAR:
        return 128
    span = p[NEAR:] - p[:-NEAR]
    x_lo = float(span[span > 0].min()) if np.any(span > 0) else 1.0
    x_hi = max(float(p[-1] - p[0]) + float(extra_span), x_lo)
    nodes = int(np.ceil((np.log(45.0 / x_lo) - np.log(1e-17 / x_hi)) / h)) + 1
    return max(128, 64 * int(np.ceil(nodes / 64)))


class SoeTables(NamedTuple):
    """Decayed prefix and suffix sums of one weight vector at every node, in chunks of nodes:
    left[c, i, q] = sum_{i' <= i} w_i' exp(-t_cq (P_i - P_i')), right[c, i, q] = sum_{i' >= i}
    w_i' exp(-t_cq (P_i' - P_i)). Memory n x Q."""

    left: jax.Array
    right: jax.Array


def _decayed_prefix(pos, w, tq):
    """F[i, q] = sum_{i' <= i} w_i' exp(-t_q (pos_i - pos_i')) for non-decreasing ``pos``.

    Two levels, so that only about 2 sqrt(n) steps are sequential: a scan inside blocks of b
    poles (all blocks at once, also accumulating exp(-t_q (pos_i - first pos of the block)) as a
    product), then a scan over the blocks for the carry into each. Every factor is the
    exponential of a non-positive number; an entry is a product of at most b + 2 of them.
    """
    n = pos.shape[0]
    b = 1 << max(3, (int(np.ceil(np.sqrt(n))) - 1).bit_length())
    nb = -(-n // b)
    pad = nb * b - n
    p2 = jnp.concatenate([pos, jnp.full(pad, pos[-1])]).reshape(nb, b)
    w2 = jnp.concatenate([w, jnp.zeros(pad, w.dtype)]).reshape(nb, b)
    gaps = jnp.concatenate([jnp.zeros((nb, 1), pos.dtype), p2[:, 1:] - p2[:, :-1]], axis=1)

    def step(carry, x):
        total, decay = carry
        gap, wi = x
        m = jnp.exp(-gap[..., None] * tq)
        total, decay = total * m + wi[..., None], decay * m
        return (total, decay), (total, decay)

    zeros = jnp.zeros((nb,) + tq.shape, pos.dtype)
    _, (local, decay) = jax.lax.scan(step, (zeros, jnp.ones_like(zeros)), (gaps.T, w2.T))
    local = jnp.swapaxes(local, 0, 1)  # (nb, b, Q)
    decay = jnp.swapaxes(decay, 0, 1)  # exp(-t_q (pos_i - first pos of the block)), as products
    firsts = p2[:, 0]
    # Carry from block to block: the sum over all earlier blocks, decayed to the block's first
    # pole: C_B = exp(-t (first_B - last_{B-1})) (C_{B-1} decay_end_{B-1} + local_end_{B-1}).
    lasts = p2[:, -1]
    hop = jnp.concatenate([jnp.zeros(1, pos.dtype), firsts[1:] - lasts[:-1]])

    def across(carry, x):
        gap, end_decay, end_local = x
        new = carry * jnp.exp(-gap * tq)
        return new * end_decay + end_local, new

    _, carry_in = jax.lax.scan(across, jnp.zeros_like(tq), (hop, decay[:, -1, :], local[:, -1, :]),
                               unroll=4)
    return (local + decay * carry_in[:, None, :]).reshape(nb * b, -1)[:n]


def _tables_chunk(P, w, tq):
    """(left, right) tables of one chunk of nodes, each (n, Qc)."""
    return _decayed_prefix(P, w, tq), _decayed_prefix(-P[::-1], w[::-1], tq)[::-1]


def soe_tables(P, w, grid: SoeGrid) -> SoeTables:
    """The `SoeTables` of weights ``w`` (O(n Q) work, about 2 sqrt(n) sequential steps)."""
    left, right = jax.lax.map(lambda tq: _tables_chunk(P, w, tq),
                              grid.tq.reshape(-1, SOE_CHUNK))
    return SoeTables(left, right)


def _split_sums_fast(P, w, count, targets: Targets, grid: SoeGrid, tables: SoeTables | None):
    """As `_split_sums_direct` for one weight vector, with the poles more than NEAR away summed
    through the SOE tables: left of target k the poles i <= a = k-1-NEAR,
        sum_i w_i / (mu - P_i)^p ~ sum_q h t_q^p exp(-t_q (mu - P_a)) left_q(a),
    right of it the poles i >= b = k+NEAR,
        sum_i w_i / (mu - P_i)^p ~ (-1)^p sum_q h t_q^p exp(-t_q (P_b - mu)) right_q(b).
    Without ``tables`` each chunk of nodes builds its own (memory n x SOE_CHUNK, more work).
    """
    n = P.shape[0]
    K = targets.t.shape[0]  # n + 1
    kk = jnp.arange(K)
    mu_org = P[targets.org]
    t = targets.t
    valid_pole = jnp.arange(n) < count

    offs = jnp.arange(-NEAR, NEAR)
    idx = kk[:, None] + offs[None, :]
    idc = jnp.clip(idx, 0, n - 1)
    inside = (idx >= 0) & (idx < n) & valid_pole[idc]
    x = (mu_org[:, None] - P[idc]) + t[:, None]
    inv = jnp.where(inside, 1.0 / jnp.where(inside, x, 1.0), 0.0)
    is_left = offs[None, :] < 0
    a1 = w[idc] * inv
    a2 = a1 * inv
    near = jnp.stack([jnp.sum(jnp.where(is_left, a1, 0.0), 1),
                      jnp.sum(jnp.where(is_left, a2, 0.0), 1),
                      jnp.sum(jnp.where(is_left, 0.0, a1), 1),
                      jnp.sum(jnp.where(is_left, 0.0, a2), 1)])

    # Targets k >= 1 + NEAR read left[k-1-NEAR]; targets k <= n-1-NEAR read right[k+NEAR]
    # (rows of right past the last valid pole hold weight 0): aligned by static slices.
    m = K - 1 - NEAR  # = n - NEAR
    dist_left = jnp.maximum((mu_org[1 + NEAR:] - P[:m]) + t[1 + NEAR:], 0.0)
    dist_right = jnp.maximum((P[NEAR:] - mu_org[:m]) - t[:m], 0.0)
    chunks = grid.tq.reshape(-1, SOE_CHUNK)

    def body(acc, x):
        tq, tabs = x
        left, right = _tables_chunk(P, w, tq) if tabs is None else tabs
        w1 = grid.h * tq
        weights = jnp.stack([w1, w1 * tq], axis=1)  # (Qc, 2): p = 1, 2
        fl = (jnp.exp(-dist_left[:, None] * tq[None, :]) * left[:m]) @ weights
        hr = (jnp.exp(-dist_right[:, None] * tq[None, :]) * right[NEAR:]) @ weights
        return acc + jnp.stack([fl[:, 0], fl[:, 1], -hr[:, 0], hr[:, 1]]), None

    xs = (chunks, None if tables is None else (tables.left, tables.right))
    far, _ = jax.lax.scan(body, jnp.zeros((4, m), P.dtype), xs)
    zeros = jnp.zeros((2, 1 + NEAR), P.dtype)
    far_left = jnp.concatenate([zeros, far[:2]], axis=1)
    far_right = jnp.concatenate([far[2:], zeros], axis=1)
    return near + jnp.concatenate([far_left, far_right])


class FastSums(NamedTuple):
    """What the fast sums need besides the targets: the SOE grid and the tables of W (None:
    rebuilt chunk by chunk at every pass, when storing them would take too much memory)."""

    grid: SoeGrid
    tables: SoeTables | None


def split_sums(P, weights, count, targets: Targets, method: str, fast: FastSums | None = None):
    """(rows, 4, K) left/right sums of w_g/(mu_k - P_g)^p, p = 1, 2, for each weight row.

    ``"fast"`` uses ``fast.tables`` for the first row and builds the tables of the others.
    """
    if method == "direct":
        return _split_sums_direct(P, weights, count, targets)
    out = [_split_sums_fast(P, weights[0], count, targets, fast.grid, fast.tables)]
    out += [_split_sums_fast(P, w, count, targets, fast.grid, None) for w in weights[1:]]
    return jnp.stack(out)


def fast_sums(P, W, count, nodes: int, extra_span, store: bool | None = None) -> FastSums:
    """The SOE grid and the tables of W, built once per solve if they take at most TABLE_BYTES
    (``store=None``) or if ``store`` (else every pass rebuilds them, chunk by chunk)."""
    grid = soe_grid(P, count, nodes, extra_span)
    if store is None:
        store = 16 * P.shape[0] * nodes <= TABLE_BYTES
    return FastSums(grid, soe_tables(P, W, grid) if store else None)


# --------------------------------------------------------------------------- the root finder
class Config(NamedTuple):
    """Static choices: the sums (``"direct"`` or ``"fast"``), whether a root below the first
    pole is sought (only with a background), whether the root above the last pole is (else the
    caller finds it), and the SOE nodes of the fast sums."""

    method: str
    bottom: bool = False
    top: bool = True
    nodes: int = SOE_NODES


def _intervals(P, count, K):
    """For target k: the pole on its left (k-1) and right (k), and their gap (inf at the ends)."""
    n = P.shape[0]
    k = jnp.arange(K)
    left = jnp.clip(k - 1, 0, n - 1)
    right = jnp.clip(k, 0, n - 1)
    has_left = k >= 1
    has_right = k < count
    gap = jnp.where(has_left & has_right, P[right] - P[left], jnp.inf)
    return left, right, has_left, has_right, gap


def _model_root(org_is_right, has_left, has_right, gap, cm1, alpha, beta):
    """The root of alpha/s_lo + beta/s_hi + c - 1 = 0 (s_lo = mu - P_left > 0, s_hi = mu - P_right
    < 0) as an offset from the origin pole; NaN where the model has no root on the right side.

    Interior: with the origin's offsets A0 = P_org - P_left, B0 = P_org - P_right (one is 0),
    (c-1) t^2 + (alpha + beta + (c-1)(A0 + B0)) t + alpha B0 + beta A0 = 0, whose root in the
    interval is (-qb + sqrt(disc)) / (2 qa) = -2 qc / (qb + sqrt(disc)) in every sign case.
    Top (no right pole): t = alpha / (1 - c). Bottom (no left pole): t = -beta / (c - 1).
    """
    qa = cm1
    fin_gap = jnp.where(jnp.isfinite(gap), gap, 0.0)
    a0 = jnp.where(org_is_right, fin_gap, 0.0)
    b0 = jnp.where(org_is_right, 0.0, -fin_gap)
    qb = alpha + beta + qa * (a0 + b0)
    qc = alpha * b0 + beta * a0
    disc = jnp.sqrt(jnp.maximum(qb * qb - 4.0 * qa * qc, 0.0))
    safe_qa = jnp.where(qa == 0, 1.0, qa)
    safe_den = jnp.where(qb + disc == 0, 1.0, qb + disc)
    interior = jnp.where(qb > 0, -2.0 * qc / safe_den, (-qb + disc) / (2.0 * safe_qa))
    top = jnp.where(qa < 0, alpha / jnp.where(qa < 0, -qa, 1.0), jnp.nan)
    bottom = jnp.where(qa > 0, -beta / jnp.where(qa > 0, qa, 1.0), jnp.nan)
    return jnp.where(has_left & has_right, interior, jnp.where(has_left, top, bottom))


def bracketed_root(f_and_slope, lo, hi):
    """The root in (lo, hi) of a decreasing f(x) - 1 with f > 0, by Newton on 1/f - 1
    (nearly linear in x next to a dominant pole, exactly for one) kept in a bisection bracket.

    ``f_and_slope(x) -> (f, f')``; f(lo) > 1 >= f(hi). Scalar; O(MAX_ITER) evaluations at most.
    """

    def cond(state):
        it, _, _, _, done = state
        return (it < MAX_ITER) & ~done

    def body(state):
        it, x, lo, hi, _ = state
        f, slope = f_and_slope(x)
        lo = jnp.where(f > 1.0, x, lo)
        hi = jnp.where(f > 1.0, hi, x)
        new = x - (1.0 / f - 1.0) * f * f / (-slope)
        new = jnp.where((new > lo) & (new < hi), new, 0.5 * (lo + hi))
        scale = jnp.maximum(jnp.abs(lo), jnp.abs(hi))
        done = (jnp.abs(new - x) <= 2.0 * EPS * jnp.abs(new)) | (f == 1.0) | (hi - lo <= 2.0 * EPS * scale)
        return it + 1, jnp.where(f == 1.0, x, new), lo, hi, done

    _, x, _, _, _ = jax.lax.while_loop(cond, body, (0, hi, lo, hi, False))
    return x


def _top_root(P, W, count, bg, top_hi):
    """The offset t in (0, top_hi] of the root above the last pole (direct sums, O(n) a step)."""
    n = P.shape[0]
    top = P[count - 1]
    valid = jnp.arange(n) < count
    dist = jnp.where(valid, top - P, 0.0)

    def f_and_slope(t):
        inv = jnp.where(valid, 1.0 / (dist + t), 0.0)
        e, de, _ = background_at(bg, top + t)
        return jnp.sum(W * inv) + e, -jnp.sum(W * inv * inv) + de

    return bracketed_root(f_and_slope, 0.0 * top_hi, top_hi)


def _solve(config: Config, P, W, count, bg, top_hi, bottom_lo, fast):
    """Origins, offsets, iterations, validity and convergence of all roots (see `secular_roots`)."""
    n = P.shape[0]
    K = n + 1
    left, right, has_left, has_right, gap = _intervals(P, count, K)
    k = jnp.arange(K)
    valid = (k >= 1) & (k <= count)
    interior = has_left & has_right

    def model(org, t):
        l1, l2, r1, r2 = split_sums(P, (W,), count, Targets(org, t), config.method, fast)[0]
        e, _, _ = background_at(bg, P[org] + t)
        s_lo = (P[org] - P[left]) + t
        s_hi = (P[org] - P[right]) + t
        alpha = jnp.where(has_left, l2 * s_lo * s_lo, 0.0)
        beta = jnp.where(has_right, r2 * s_hi * s_hi, 0.0)
        c = (jnp.where(has_left, l1 - l2 * s_lo, 0.0) + jnp.where(has_right, r1 - r2 * s_hi, 0.0)
             + e)
        # f - 1 is known to within ~(terms) * eps: below that the iteration only sees round-off.
        noise = 8.0 * EPS * (jnp.abs(l1) + jnp.abs(r1) + jnp.abs(e) + 1.0)
        return l1 + r1 + e, c - 1.0, alpha, beta, noise

    # Start: an interior root at its interval's midpoint (whose side decides the origin: the
    # nearer pole), the top one at top_hi, the bottom one at bottom_lo. The first pass of the
    # loop evaluates there and sets origins and brackets (one traced copy of the sums).
    half = 0.5 * jnp.where(interior, gap, 0.0)
    org0 = jnp.where(has_left, left, right)
    t0 = jnp.where(interior, half, jnp.where(has_left, top_hi, bottom_lo - P[right]))
    if not config.top:
        valid = valid & (k != count)
    # The top root alone converges slowly from its crude bracket: solve it on its own.
    is_top = k == count
    if config.top:
        t0 = jnp.where(is_top, _top_root(P, W, count, bg, top_hi), t0)

    def cond(state):
        it, _, _, _, _, done, _ = state
        return (it == 0) | ((it < MAX_ITER) & ~jnp.all(done))

    def body(state):
        it, org, t, lo, hi, done, valid = state
        fval, cm1, alpha, beta, noise = model(org, t)
        first = it == 0
        if config.bottom:
            bottom_ok = (k == 0) & (fval > 1.0) & (bottom_lo < P[0])
            valid = jnp.where(first, valid | bottom_ok, valid)
            done = jnp.where(first, done & ~bottom_ok, done)
        go_right = interior & (fval > 1.0)
        org = jnp.where(first, jnp.where(go_right | ~has_left, right, left), org)
        above = fval > 1.0  # f decreases: the root lies right of t
        lo = jnp.where(first, jnp.where(interior, jnp.where(go_right, -half, 0.0),
                                        jnp.where(has_left, 0.0, bottom_lo - P[right])),
                       jnp.where(above, t, lo))
        hi = jnp.where(first, jnp.where(interior, jnp.where(go_right, 0.0, half),
                                        jnp.where(has_left, top_hi, 0.0)),
                       jnp.where(above, hi, t))
        new = _model_root(org == right, has_left, has_right, gap, cm1, alpha, beta)
        new = jnp.where((new > lo) & (new < hi), new, 0.5 * (lo + hi))
        at_root = (jnp.abs(fval - 1.0) <= noise) & ~first
        settled = ((jnp.abs(new - t) <= 2.0 * EPS * jnp.abs(new)) | at_root
                   | ((hi - lo) <= 2.0 * EPS * jnp.maximum(jnp.abs(lo), jnp.abs(hi)))) & ~first
        t = jnp.where(done | at_root, t, new)
        return it + 1, org, t, lo, hi, done | settled, valid

    state = (0, org0, t0, jnp.zeros_like(t0), jnp.zeros_like(t0), ~valid | is_top, valid)
    it, org, t, _, _, done, valid = jax.lax.while_loop(cond, body, state)
    # Invalid entries keep a finite offset away from every pole (safe to differentiate through).
    return org, t, it - 1, valid, done


def secular_value(config: Config, P, W, count, bg, org, t, fast=None):
    """f(mu_k) - 1 at mu_k = P[org_k] + t_k, and its derivative f'(mu_k)."""
    l1, l2, r1, r2 = split_sums(P, (W,), count, Targets(org, t), config.method, fast)[0]
    e, de, _ = background_at(bg, P[org] + t)
    return l1 + r1 + e - 1.0, -(l2 + r2) + de


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def secular_roots(config: Config, P, W, count, bg, top_hi, bottom_lo, fast=None):
    """The roots of f(mu) = 1 as (org, t, iterations, valid, converged): mu_k = P[org_k] + t_k.

    Target k = 0 is the root below P_0 (only with ``config.bottom``, searched on
    (bottom_lo, P_0) and valid if f(bottom_lo) > 1), k = 1..G-1 the roots in (P_{k-1}, P_k),
    k = G the root above P_{G-1} (searched on (P_{G-1}, P_{G-1} + top_hi], f(P_{G-1} + top_hi)
    <= 1 required); the other entries are padding (valid False). ``fast``: the `FastSums` of
    (P, W) for the ``"fast"`` sums (`fast_sums`). Differentiable in P, W and the background by
    the implicit function theorem: dt = -(df at fixed t) / f'(mu).
    """
    return _solve(config, P, W, count, bg, top_hi, bottom_lo, fast)


@secular_roots.defjvp
def _secular_roots_jvp(config, primals, tangents):
    P, W, count, bg, top_hi, bottom_lo, fast = primals
    dP, dW, _, dbg = tangents[:4]
    org, t, it, valid, done = secular_roots(config, P, W, count, bg, top_hi, bottom_lo, fast)
    grid = None if fast is None else jax.lax.stop_gradient(fast.grid)

    def f_at(P, W, bg):  # the tables rebuilt from the differentiated (P, W)
        streamed = FastSums(grid, None) if grid is not None else None
        return secular_value(config, P, W, count, bg, org, t, streamed)

    (_, slope), (df, _) = jax.jvp(f_at, (P, W, bg), (dP, dW, dbg))
    dt = jnp.where(valid, -df / jnp.where(valid, slope, 1.0), 0.0)

    def zero(x):
        return np.zeros(x.shape, jax.dtypes.float0)

    return (org, t, it, valid, done), (zero(org), dt, zero(it), zero(valid), zero(done))
