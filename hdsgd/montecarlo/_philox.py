r"""Philox4x32-10, the counter-based generator behind the least-squares and spiked Monte Carlo.

Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3",
SC 2011) maps a 128-bit counter c = (c0, c1, c2, c3) and a 64-bit key k = (k0, k1) to four
32-bit words by ten rounds of

    (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0,  lo(M1 c2),  hi(M0 c0) ^ c3 ^ k1,  lo(M0 c0)),
    (k0, k1) <- (k0 + W0, k1 + W1)   between rounds,

with M0 = 0xD2511F53, M1 = 0xCD9E8D57 and the Weyl increments W0 = 0x9E3779B9,
W1 = 0xBB67AE85 (hi/lo: the upper/lower 32 bits of the 64-bit product). Distinct
(key, counter) pairs give outputs that pass TestU01's BigCrush, and it is the generator of
cuRAND's and TensorFlow's stateless streams. Here it is tested against the Random123 known-answer
vectors, and for the moments and law of the normals it feeds.

Why not JAX's threefry2x32: on a CPU the 10 rounds of two 32x32 -> 64-bit multiplies vectorise
far better than threefry's 20 rounds of add/rotate/xor (raw words 5-12x faster here), so a
Monte Carlo step at batch size 1, which draws d normals and does little else, ran 1.8-2.3x
faster on one CPU device and 1.4-1.6x with a device per core than with threefry, before the
Box-Muller normals below added 1.3x (benchmarks/README.md). Nothing is traded: each run has its
own 64-bit key (drawn once from its JAX key), every normal its own counter (element block, step,
stream), so no (key, counter) pair is used twice within a run.

Normals in float32 are Box-Muller pairs (`box_muller`): each Philox block's words (c0, c1) and
(c2, c3) give two pairs R cos(theta), R sin(theta), R = sqrt(-2 log u) with u from 23 bits of one
word and theta = 2 pi w / 2^32 from all 32 bits of the other, the angle reduced exactly in integer
arithmetic so a short cosine polynomial suffices (`cos_turn`): one logarithm and one square root
a pair instead of a logarithm, a square root and two polynomials a normal, 1.3-1.5x faster in
the step loop than the inverse error function. In float64 normals are sqrt(2) erf_inv(u), u
uniform on (-1, 1) from 52 bits (two words), as ``jax.random.normal`` draws them.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, UInt32

_MULTIPLIERS = (0xD2511F53, 0xCD9E8D57)
_WEYL = (np.uint32(0x9E3779B9), np.uint32(0xBB67AE85))
ROUNDS = 10
GENERATORS = ("philox", "threefry")


def _mulhilo(a: UInt32[Array, "..."], multiplier: int, wide: bool) -> tuple:
    """(hi, lo) 32-bit halves of the 64-bit product ``a * multiplier``: one 64-bit multiply
    (``wide``, JAX's x64 mode) or four 16 x 16-bit ones (32-bit mode: ``HDSGD_X64=0``)."""
    if wide:
        p = a.astype(jnp.uint64) * np.uint64(multiplier)
        return (p >> 32).astype(jnp.uint32), p.astype(jnp.uint32)
    mask = np.uint32(0xFFFF)
    m_hi, m_lo = np.uint32(multiplier >> 16), np.uint32(multiplier & 0xFFFF)
    a_hi, a_lo = a >> 16, a & mask
    ll, lh, hl, hh = a_lo * m_lo, a_lo * m_hi, a_hi * m_lo, a_hi * m_hi
    middle = (ll >> 16) + (lh & mask) + (hl & mask)
    return hh + (lh >> 16) + (hl >> 16) + (middle >> 16), a * np.uint32(multiplier)


def key_schedule(key: tuple, rounds: int = ROUNDS) -> UInt32[Array, "rounds 2"]:
    """The round keys (k0 + r W0, k1 + r W1), r = 0 .. rounds - 1, of the key ``(k0, k1)``."""
    k = jnp.stack([jnp.asarray(key[0], jnp.uint32), jnp.asarray(key[1], jnp.uint32)])
    r = jnp.arange(rounds, dtype=jnp.uint32)[:, None]
    return k[None, :] + r * jnp.asarray(_WEYL, jnp.uint32)[None, :]


def philox4x32(counter: tuple, key, rounds: int = ROUNDS, wide: bool | None = None) -> tuple:
    """The four output words of Philox4x32-``rounds`` for counters ``counter`` (four uint32
    arrays of one shape) under ``key``: two uint32 scalars, or their `key_schedule` (a Monte
    Carlo computes that once per run, so its step loop does not). ``wide``: 64-bit multiplies
    (default: when JAX's x64 mode is on, as in every hdsgd entry point; else 16-bit pieces,
    the same words)."""
    if wide is None:
        wide = jax.dtypes.canonicalize_dtype(jnp.int64) == jnp.int64
    schedule = key if getattr(key, "ndim", 0) == 2 else key_schedule(key, rounds)
    c0, c1, c2, c3 = (jnp.asarray(c, jnp.uint32) for c in counter)
    for r in range(rounds):
        hi0, lo0 = _mulhilo(c0, _MULTIPLIERS[0], wide)
        hi1, lo1 = _mulhilo(c2, _MULTIPLIERS[1], wide)
        c0, c1, c2, c3 = hi1 ^ c1 ^ schedule[r, 0], lo1, hi0 ^ c3 ^ schedule[r, 1], lo0
    return c0, c1, c2, c3


def run_key(key) -> UInt32[Array, "rounds 2"]:
    """A run's Philox key schedule: its 64-bit key drawn once from its JAX PRNG key, and the
    round keys derived from it (`key_schedule`)."""
    return key_schedule(tuple(jax.random.bits(key, (2,), jnp.uint32)))


def _block_words(key: UInt32[Array, "rounds 2"], step, stream: int, blocks: int) -> tuple:
    """The four words of counters (b, step, stream, 0), b = 0 .. blocks - 1."""
    if blocks > 2**32:
        raise ValueError(f"{blocks} counter blocks in one draw exceed Philox's 2^32")
    block = jnp.arange(blocks, dtype=jnp.uint32)
    return philox4x32((block, jnp.broadcast_to(jnp.asarray(step).astype(jnp.uint32), block.shape),
                       jnp.full(block.shape, stream, jnp.uint32), jnp.zeros_like(block)), key)


def words(key: UInt32[Array, "rounds 2"], step, stream: int, n: int) -> UInt32[Array, " n"]:
    """``n`` random 32-bit words for (``step``, ``stream``) under a run's key schedule:
    counters (block, step, stream, 0) for blocks b = 0 .. B - 1, B = ceil(n/4); word j of
    block b is element j B + b."""
    # word j of every block, then word j + 1 (no interleave)
    return jnp.concatenate(_block_words(key, step, stream, -(-n // 4)))[:n]


_TURN = 2.0 * math.pi / 2.0**32  # radians per unit of a 32-bit angle word
# cos(psi) = sum_k (-1)^k psi^(2k) / (2k)!, k = 0 .. 6, highest first; on |psi| <= pi/2 the
# first term left out is (pi/2)^14 / 14! = 6.4e-9, below float32's resolution
_COS_TAYLOR = tuple((-1) ** k / math.factorial(2 * k) for k in range(6, -1, -1))


def cos_turn(w: UInt32[Array, "..."]) -> Float[Array, "..."]:
    """cos(2 pi w / 2^32) in float32 for 32-bit angle words ``w``.

    The angle is reduced exactly in integers: with v = w + 2^30 (mod 2^32), the half-turn
    h = v >> 31 and the remainder psi = 2 pi ((v mod 2^31) - 2^30) / 2^32 in [-pi/2, pi/2)
    give cos(theta) = (-1)^h cos(psi), cos(psi) by its Taylor polynomial of degree 12 (absolute
    error below 3e-7 against float64's cos over all words, tested)."""
    v = w + np.uint32(2**30)
    psi = (((v & np.uint32(2**31 - 1)).astype(jnp.int32) - np.int32(2**30)).astype(jnp.float32)
           * np.float32(_TURN))
    psi2 = psi * psi
    c = np.float32(_COS_TAYLOR[0])
    for coefficient in _COS_TAYLOR[1:]:
        c = c * psi2 + np.float32(coefficient)
    sign = (v >> 31) << 31  # (-1)^h as the float's sign bit
    return jax.lax.bitcast_convert_type(jax.lax.bitcast_convert_type(c, jnp.uint32) ^ sign,
                                        jnp.float32)


def box_muller(radius_words: UInt32[Array, " m"], angle_words: UInt32[Array, " m"]
               ) -> tuple[Float[Array, " m"], Float[Array, " m"]]:
    """Two independent standard normals per pair of words (float32):

        R = sqrt(-2 log u),   u = (2 (a >> 9) + 1) / 2^24,   theta = 2 pi b / 2^32,
        (z1, z2) = (R cos theta, R sin theta),   sin theta = cos(theta - pi/2),

    u the midpoints of 2^23 equal cells of (0, 1) (exact in float32, never 0 or 1, so R is at
    most sqrt(48 log 2) = 5.77: P(R > 5.77) = 2^-24)."""
    u = ((radius_words >> 9) * np.uint32(2) + np.uint32(1)).astype(jnp.float32) \
        * np.float32(2.0**-24)
    radius = jnp.sqrt(np.float32(-2.0) * jnp.log(u))
    return (radius * cos_turn(angle_words),
            radius * cos_turn(angle_words - np.uint32(2**30)))


def normal(key: UInt32[Array, "rounds 2"], step, stream: int, shape: tuple[int, ...],
           dtype) -> Float[Array, "..."]:
    """Standard normals of ``shape`` for (``step``, ``stream``) of the run with Philox key
    schedule ``key`` (`run_key`).

    float32: Box-Muller (`box_muller`) on the words of B = ceil(n/4) blocks, block b's
    (c0, c1) and (c2, c3) each a (radius, angle) pair; the n normals are the cosines of the
    pairs, then their sines, truncated to n. float64: sqrt(2) erf_inv(u), u uniform on (-1, 1)
    from 52 bits (XLA's erf_inv)."""
    dtype = jnp.dtype(dtype)
    n = math.prod(shape)
    if dtype == jnp.float32:
        blocks = -(-n // 4)
        c0, c1, c2, c3 = _block_words(key, step, stream, blocks)
        z1, z2 = box_muller(jnp.concatenate([c0, c2]), jnp.concatenate([c1, c3]))
        return jnp.concatenate([z1, z2])[:n].reshape(shape)
    if dtype != jnp.float64:
        raise ValueError(f"dtype={dtype} is invalid for normals; allowed: float32, float64")
    pair = words(key, step, stream, 2 * n).reshape(n, 2).astype(jnp.uint64)
    bits = (pair[:, 0] << 32) | pair[:, 1]
    unit = jax.lax.bitcast_convert_type((bits >> 12) | np.uint64(0x3FF0000000000000), jnp.float64)
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = jnp.maximum(lo, (unit - 1.0) * (1.0 - lo) + lo)  # [1, 2) -> [lo, 1)
    return (np.sqrt(2.0) * jax.lax.erf_inv(u)).reshape(shape)


def run_source(generator: str, key):
    """What `normal_draws` takes for one run, made once per run outside its step loop: the
    Philox key schedule (`run_key`) or, for ``"threefry"``, the run's JAX key itself."""
    return run_key(key) if generator == "philox" else key


def normal_draws(generator: str, key, step, dtype):
    """``draw(stream, shape)``: the normals of one step of one run, from its `run_source`: the
    Philox key schedule (``generator="philox"``) or its JAX key folded with the step
    (``"threefry"``)."""
    if generator == "philox":
        return lambda stream, shape: normal(key, step, stream, shape, dtype)
    step_key = jax.random.fold_in(key, step)
    return lambda stream, shape: jax.random.normal(jax.random.fold_in(step_key, stream), shape,
                                                   dtype=dtype)


def check_generator(generator: str) -> None:
    """ValueError naming ``generator`` unless it is one of `GENERATORS`."""
    if generator not in GENERATORS:
        raise ValueError(f"generator={generator!r} is invalid; allowed: {GENERATORS}")
