r"""The Gaussian functionals A1 = E[G u], A2 = E[G xi], A3 = E[G^2] that drive the limit ODEs,
by quadrature, and their closed forms (docs/spiked.md, "The limit ODEs" and "Closed forms").

At h = a u + b xi with u, xi, eps ~ N(0, 1) independent and y = sigma*(u) + sqrt(Delta) eps,
G is affine in y with slope sigma'(h), so the label noise enters only A3, in closed form:

    A3 = E[G(sigma*(u), h)^2] + Delta E[sigma'(h)^2].
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from ..._numerics import gauss_hermite, gauss_hermite_2d
from ..._precision import scoped_x64
from ...setups import _validate as v
from ...setups.spiked import (
    SpikedSingleIndex,
    check_setup,
    derivative_e,
    gradient_factor,
    hermite_e_eval,
    to_hermite_e,
)


class Functionals:
    """The static pieces of a Setup that the drift needs: Hermite coefficients of the link
    and the student, the loss, and a 2-D Gauss-Hermite rule (numpy, so nothing is traced)."""

    def __init__(self, link: tuple, student: tuple, square: bool, n_nodes: int = 40):
        self.link_e = tuple(to_hermite_e(link))
        self.student_e = tuple(to_hermite_e(student))
        self.dstudent_e = tuple(derivative_e(self.student_e))
        self.square = square
        self.u, self.xi, self.w2 = gauss_hermite_2d(n_nodes)

    def moments(self, a, b, noise_var):
        """(A1, A2, A3) at scalar (a, b) for label-noise variance ``noise_var`` (pure JAX)."""
        u, xi, w2 = jnp.asarray(self.u), jnp.asarray(self.xi), jnp.asarray(self.w2)
        h = a * u + b * xi
        g = gradient_factor(self.student_e, self.square, hermite_e_eval(self.link_e, u), h)
        ds = hermite_e_eval(self.dstudent_e, h)
        a1 = jnp.sum(w2 * g * u)
        a2 = jnp.sum(w2 * g * xi)
        a3 = jnp.sum(w2 * g * g) + noise_var * jnp.sum(w2 * ds * ds)
        return a1, a2, a3


def static_key(setup: SpikedSingleIndex) -> tuple:
    """What a compiled theory depends on besides traced numbers: (link, student, square loss?,
    normalisation)."""
    return (tuple(setup.link.tolist()), tuple(setup.student.tolist()), setup.loss == "square",
            setup.normalization)


@functools.lru_cache(maxsize=64)
def functionals(link: tuple, student: tuple, square: bool, n_nodes: int = 40) -> Functionals:
    return Functionals(link, student, square, n_nodes)


#: the most quadrature nodes per axis `gaussian_moments` takes (n^2 nodes per (a, b) pair; numpy's
#: Gauss-Hermite rule itself turns to NaN past n = 370)
MAX_NODES = 200


def _real_values(name: str, value, low=None) -> np.ndarray:
    """A finite float64 array of any shape (a scalar too), entries >= low; no booleans."""
    try:
        kind = np.asarray(value).dtype.kind
    except (TypeError, ValueError):  # ragged nested sequences
        kind = None
    if kind not in ("i", "u", "f"):
        v._fail(name, value if kind is None else v._short(value),
                "real numbers (a scalar or an array)")
    return v.real_array(name, value, low=low, ndim=np.ndim(value), nonempty=False)


@functools.lru_cache(maxsize=64)
def _moments_fn(link: tuple, student: tuple, square: bool, n_nodes: int):
    fun = functionals(link, student, square, n_nodes)
    return jax.jit(jax.vmap(fun.moments, in_axes=(0, 0, None)))


@scoped_x64
def gaussian_moments(setup: SpikedSingleIndex, a, b, n_nodes: int = 40):
    """(A1, A2, A3) = (E[G u], E[G xi], E[G^2]) at h = a u + b xi, by 2-D Gauss-Hermite
    quadrature with ``n_nodes``^2 nodes, exact for polynomial integrands of degree
    <= 2 n_nodes - 1 in each variable (docs/spiked.md, "The limit ODEs").

    ``a`` (= sqrt(1+theta) m, any real) and ``b`` (= sqrt(q) >= 0) broadcast against each
    other; returns three float64 numpy arrays of their broadcast shape (0-d for scalars).
    ``n_nodes`` is at most 200 (40000 nodes for each (a, b)).

    Raises:
        ValueError: ``a`` or ``b`` not finite, ``b < 0``, shapes that do not broadcast, (a, b)
            so large that the moments overflow float64, or ``n_nodes`` not in [1, 200].
    """
    check_setup(setup)
    a_in, b_in = a, b
    a, b = _real_values("a", a), _real_values("b", b, low=0.0)
    n_nodes = v.integer("n_nodes", n_nodes, low=1, high=MAX_NODES)
    try:
        a, b = np.broadcast_arrays(a, b)
    except ValueError:
        v._fail("b", v._short(b_in), f"an array that broadcasts against a's shape {a.shape}, "
                f"got shape {b.shape}")
    run = _moments_fn(*static_key(setup)[:3], n_nodes)
    out = tuple(np.asarray(x).reshape(a.shape)
                for x in run(a.reshape(-1), b.reshape(-1), jnp.float64(setup.label_noise_var)))
    bad = ~(np.isfinite(out[0]) & np.isfinite(out[1]) & np.isfinite(out[2]))
    if np.any(bad):  # finite inputs, but a high-degree polynomial of them overflowed
        i = np.argmax(bad)
        name, value = ("a", a_in) if abs(a.flat[i]) >= b.flat[i] else ("b", b_in)
        v._fail(name, v._short(value), f"values small enough that (A1, A2, A3) fit in float64 "
                f"(they overflow at a={float(a.flat[i])!r}, b={float(b.flat[i])!r})")
    return out


def correlation_potential(setup: SpikedSingleIndex, a, b, n_nodes: int = 40):
    """Phi(a, b) = E[sigma*(u) sigma(a u + b xi)] in closed form (Gaussian integration by parts,
    docs/spiked.md, "Closed forms"):

        Phi = sum_j (c_j / sqrt(j!)) a^j E[sigma^{(j)}(s g)],   s = sqrt(a^2 + b^2),

    with 1-D Gauss-Hermite for E[sigma^{(j)}(s g)]. For the correlation loss A1 = dPhi/da and
    A2 = dPhi/db. Pure JAX (differentiate it with ``jax.grad``; call it inside
    ``jax.enable_x64(True)`` for float64).
    """
    nodes, weights = gauss_hermite(n_nodes)
    s = jnp.sqrt(a * a + b * b)
    e_link = to_hermite_e(setup.link)
    deriv = to_hermite_e(setup.student)
    total = 0.0
    for j, coef in enumerate(e_link):
        if j > 0:
            deriv = derivative_e(deriv)
        if coef != 0.0:
            total = total + coef * a**j * jnp.sum(jnp.asarray(weights)
                                                  * hermite_e_eval(deriv, s * jnp.asarray(nodes)))
    return total


def matched_moments_closed_form(k: int, a, label_noise: float = 0.0):
    """(A1, A2, A3) for link = student = He_k/sqrt(k!), correlation loss, ||w||_Sigma = 1 (s = 1)
    (docs/spiked.md, "Closed forms"):

        A1 = k a^{k-1},  A2 = 0,  A3 = 1 + Delta (k = 1),  2 + 8 a^2 + 2 Delta (k = 2),

    with Delta = label_noise^2; A3 is None for k >= 3 (no closed form here).
    """
    delta = label_noise**2
    a1 = k * a ** (k - 1)
    a3 = {1: 1.0 + delta + 0.0 * a, 2: 2.0 + 8.0 * a * a + 2.0 * delta}.get(k)
    return a1, 0.0 * a, a3
