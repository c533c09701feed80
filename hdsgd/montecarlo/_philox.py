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
Monte Carlo step at batch size 1, which draws d normals and does little else, runs 1.8-2.3x
faster on one CPU device and 1.4-1.6x with a device per core (benchmarks/README.md). Nothing is traded: each run has its own 64-bit key (drawn once
from its JAX key), every normal its own counter (element block, step, stream), so no
(key, counter) pair is used twice within a run.

Normals are sqrt(2) erfinv(u) with u uniform on (-1, 1) from 23 random bits (float32) or 52
(float64, two words), as ``jax.random.normal`` draws them; in float32 erfinv is Giles'
approximation (`erfinv_float32`), more accurate than XLA's and cheaper in the step loop.
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


def words(key: UInt32[Array, "rounds 2"], step, stream: int, n: int) -> UInt32[Array, " n"]:
    """``n`` random 32-bit words for (``step``, ``stream``) under a run's key schedule:
    counters (block, step, stream, 0) for blocks b = 0 .. B - 1, B = ceil(n/4); word j of
    block b is element j B + b."""
    blocks = -(-n // 4)
    if blocks > 2**32:
        raise ValueError(f"{n} words in one draw exceed Philox's 2^32 counter blocks")
    block = jnp.arange(blocks, dtype=jnp.uint32)
    out = philox4x32((block, jnp.broadcast_to(jnp.asarray(step).astype(jnp.uint32), block.shape),
                      jnp.full(block.shape, stream, jnp.uint32), jnp.zeros_like(block)), key)
    return jnp.concatenate(out)[:n]  # word j of every block, then word j + 1 (no interleave)


# Giles (2010), "Approximating the erfinv function" (GPU Computing Gems), single precision:
# erfinv(x) = x p(w), w = -log((1 - x)(1 + x)), p a degree-8 polynomial in w - 2.5 for w < 5
# (|x| < 0.9966) and in sqrt(w) - 3 beyond; highest power first.
_GILES_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                  0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_GILES_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
               -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)


def erfinv_float32(x: Float[Array, "..."]) -> Float[Array, "..."]:
    """erfinv on (-1, 1) in float32 by Giles' approximation (relative error < 3e-7 against
    scipy's float64 erfinv over a 2-million-point grid, tested; XLA's own float32 erf_inv is
    within 6e-6 there, and alone 600 against 831 M values/s on two cores)."""
    w = -jnp.log((1.0 - x) * (1.0 + x))
    p = _estrin8(_GILES_CENTRAL, w - 2.5)
    q = _estrin8(_GILES_TAIL, jnp.sqrt(jnp.maximum(w, 0.0)) - 3.0)
    return jnp.where(w < 5.0, p, q) * x


def _estrin8(coefficients: tuple, v):
    """sum_k c_k v^k for a degree-8 polynomial (``coefficients`` highest power first), in
    Estrin's form: a chain of 4 dependent steps instead of Horner's 8 (erfinv alone 15 % faster
    here; inside the Monte Carlo step the same within noise)."""
    c = coefficients[::-1]
    v2 = v * v
    v4 = v2 * v2
    low = (c[0] + c[1] * v) + v2 * (c[2] + c[3] * v)
    high = (c[4] + c[5] * v) + v2 * (c[6] + c[7] * v)
    return low + v4 * high + (v4 * v4) * c[8]


def normal(key: UInt32[Array, "rounds 2"], step, stream: int, shape: tuple[int, ...],
           dtype) -> Float[Array, "..."]:
    """Standard normals of ``shape`` for (``step``, ``stream``) of the run with Philox key
    schedule ``key`` (`run_key`):
    sqrt(2) erfinv(u), u uniform on (-1, 1) with 23 (float32) or 52 (float64) random bits
    (float32: `erfinv_float32`; float64: XLA's erf_inv)."""
    dtype = jnp.dtype(dtype)
    n = math.prod(shape)
    if dtype == jnp.float32:
        bits = words(key, step, stream, n)
        unit = jax.lax.bitcast_convert_type((bits >> 9) | np.uint32(0x3F800000), jnp.float32)
    elif dtype == jnp.float64:
        pair = words(key, step, stream, 2 * n).reshape(n, 2).astype(jnp.uint64)
        bits = (pair[:, 0] << 32) | pair[:, 1]
        unit = jax.lax.bitcast_convert_type((bits >> 12) | np.uint64(0x3FF0000000000000),
                                            jnp.float64)
    else:
        raise ValueError(f"dtype={dtype} is invalid for normals; allowed: float32, float64")
    lo = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = jnp.maximum(lo, (unit - 1.0) * (1.0 - lo) + lo)  # [1, 2) -> [lo, 1)
    inverse = erfinv_float32(u) if dtype == jnp.float32 else jax.lax.erf_inv(u)
    return (np.sqrt(2.0).astype(dtype) * inverse).reshape(shape)


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
