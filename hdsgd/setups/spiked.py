r"""Setup for online SGD on a single-index target under spiked covariance (docs/spiked.md).

Also holds the small pure model pieces that the theory and the Monte Carlo both need (they
may import the Setup, never each other): the Hermite series of the link and the student, the
per-sample gradient factor G, the population risk and the other observables as functions of
the two overlaps.
"""

from __future__ import annotations

import math
import re
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from .._numerics import gauss_hermite_2d
from . import _validate as v
from ._base import Setup

LOSSES = ("square", "correlation")
NORMALIZATIONS = ("none", "sphere", "covariance")
OBSERVABLES = ("overlap", "covariance_overlap", "orthogonal_norm_sq", "cosine", "correlation",
               "risk")
#: the observables whose first passage `escape_time` and `escape_samples` measure
ESCAPE_OBSERVABLES = ("overlap", "covariance_overlap", "cosine", "correlation")
#: the largest Hermite degree of a series: past it j! overflows int64 in `to_hermite_e`
MAX_DEGREE = 20
_NAME = re.compile(r"^he(\d+)$")


# ----------------------------------------------------------------- Hermite series
def _is_bool(value) -> bool:
    """Whether ``value`` is a boolean or an array of booleans (True would read as 1.0)."""
    try:
        return np.asarray(value).dtype == np.bool_
    except (TypeError, ValueError):  # ragged or not array-like: the caller's check names it
        return False


def _series(name: str, value, max_degree: int | None = MAX_DEGREE) -> np.ndarray:
    """Hermite coefficients: a non-empty 1-d finite real array, of degree <= ``max_degree``."""
    if _is_bool(value):
        v._fail(name, v._short(value), "an array of real numbers of rank 1")
    coeffs = v.real_array(name, value)
    if max_degree is not None and coeffs.size > max_degree + 1:
        v._fail(name, v._short(value),
                f"at most {max_degree + 1} coefficients (degree <= {max_degree})")
    return coeffs


def parse_link(name: str, value) -> np.ndarray:
    """Orthonormal Hermite coefficients c_j of sigma(u) = sum_j c_j He_j(u) / sqrt(j!).

    ``value`` is a name (``"he2"``, ``"he3"``, ``"he2+he4"``: the normalised sum
    (He_2/sqrt(2!) + He_4/sqrt(4!))/sqrt(2), of unit variance) or a sequence of coefficients
    c_0, c_1, ... in that orthonormal basis (E[sigma(g)^2] = sum_j c_j^2 for g ~ N(0,1)).
    ``name`` is the field the value is for (named in the ValueError of a bad value).

    Raises:
        ValueError: an unknown name, a repeated degree, a degree > 20, a constant series, or
            coefficients that are not a non-empty 1-d array of finite numbers.
    """
    if not (isinstance(name, str) and name):
        v._fail("name", name, "the name of the field the value is for (a non-empty string)")
    if isinstance(value, str):
        parts = [p.strip().lower() for p in value.split("+")]
        degrees = []
        for p in parts:
            match = _NAME.match(p)
            if match is None or int(match.group(1)) > MAX_DEGREE:
                v._fail(name, value, "a name like 'he2', 'he3', 'he2+he4' (degrees 0..20) "
                        "or a sequence of orthonormal Hermite coefficients")
            degrees.append(int(match.group(1)))
        if len(set(degrees)) != len(degrees):
            v._fail(name, value, "distinct Hermite degrees")
        coeffs = np.zeros(max(degrees) + 1)
        coeffs[degrees] = 1.0 / math.sqrt(len(degrees))
        if max(degrees) == 0:
            v._fail(name, value, "a non-constant Hermite series (some c_j != 0 with j >= 1)")
        return coeffs
    coeffs = _series(name, value)
    nz = np.flatnonzero(coeffs)
    if nz.size == 0 or nz.max() == 0:
        v._fail(name, v._short(value), "a non-constant Hermite series (some c_j != 0 with j >= 1)")
    return coeffs[: nz.max() + 1].copy()


def series_name(coeffs) -> str | None:
    """The name `parse_link` reads back into ``coeffs`` ("he2", "he2+he4", ...), or None when
    the coefficients are not such a normalised sum of distinct Hermite polynomials."""
    c = np.asarray(coeffs, dtype=np.float64)
    nz = np.flatnonzero(c)
    if nz.size and np.all(c[nz] == 1.0 / math.sqrt(nz.size)):
        return "+".join(f"he{j}" for j in nz)
    return None


def information_exponent(coeffs) -> int:
    """k = min{j >= 1 : c_j != 0}.

    Raises:
        ValueError: ``coeffs`` not a non-empty 1-d array of finite numbers, or constant
            (no c_j != 0 with j >= 1).
    """
    nz = np.flatnonzero(_series("coeffs", coeffs, max_degree=None)[1:])
    if nz.size == 0:
        v._fail("coeffs", v._short(coeffs),
                "a non-constant Hermite series (some c_j != 0 with j >= 1)")
    return int(nz[0] + 1)


def series_degree(coeffs) -> int:
    """p = max{j : c_j != 0}.

    Raises:
        ValueError: ``coeffs`` not a non-empty 1-d array of finite numbers, or all zero.
    """
    nz = np.flatnonzero(_series("coeffs", coeffs, max_degree=None))
    if nz.size == 0:
        v._fail("coeffs", v._short(coeffs), "a non-zero Hermite series (some c_j != 0)")
    return int(nz[-1])


def to_hermite_e(coeffs) -> np.ndarray:
    """Orthonormal coefficients c_j -> probabilists' Hermite coefficients e_j = c_j / sqrt(j!).

    Raises:
        ValueError: ``coeffs`` not a non-empty 1-d array of finite numbers, or of degree > 20.
    """
    c = _series("coeffs", coeffs)
    return c / np.sqrt([math.factorial(j) for j in range(c.size)])


def derivative_e(e) -> np.ndarray:
    """He-basis coefficients of the derivative: d/dx He_j = j He_{j-1}."""
    e = np.asarray(e, dtype=np.float64)
    if e.size == 1:
        return np.zeros(1)
    return e[1:] * np.arange(1, e.size)


def _namespace(*arrays):
    """jax.numpy if any input is a JAX array (or tracer), else numpy: numpy callers (the
    Curve builders) skip XLA compilation of many small eager ops."""
    return jnp if any(isinstance(x, jax.Array) for x in arrays) else np


def hermite_e_eval(e, x):
    """sum_j e_j He_j(x) by the three-term recurrence He_{j+1} = x He_j - j He_{j-1}.

    ``e`` is a static sequence of numbers (probabilists' coefficients); ``x`` a numpy or JAX
    array (the result is of the same kind). Pure JAX in ``x``: a traced ``x`` is not checked.

    Raises:
        ValueError: ``e`` not a non-empty 1-d sequence of finite numbers; a concrete ``x``
            that is not real (strings, None, booleans, complex) or not finite.
    """
    e = _coefficient_list(e)
    if not isinstance(x, jax.core.Tracer):
        _check_points(x)
    xp = _namespace(x)
    x = xp.asarray(x)
    h_prev = xp.ones_like(x)
    out = e[0] * h_prev
    if len(e) == 1:
        return out
    h = x
    out = out + e[1] * h
    for j in range(1, len(e) - 1):
        h_prev, h = h, x * h - j * h_prev
        out = out + e[j + 1] * h
    return out


def _coefficient_list(e) -> list[float]:
    """`hermite_e_eval`'s static coefficients as floats (no magnitude cap: a derivative's
    coefficients j e_j may exceed a field's)."""
    try:
        arr = np.asarray(e, dtype=np.float64)
    except (TypeError, ValueError):
        arr = None
    if arr is None or _is_bool(e) or arr.ndim != 1 or arr.size == 0 or not np.all(np.isfinite(arr)):
        v._fail("e", v._short(e) if arr is not None else e,
                "a non-empty 1-d sequence of finite real numbers")
    return arr.tolist()


def _check_points(x) -> None:
    """A concrete ``x`` of `hermite_e_eval`: real (integer or float) and finite (vectorised,
    once: the Curve builders pass (times, nodes, nodes) arrays through here)."""
    try:
        arr = x if isinstance(x, jax.Array) else np.asarray(x)  # a JAX array stays on its device
    except (TypeError, ValueError):
        arr = None
    real = arr is not None and (jnp.issubdtype(arr.dtype, jnp.integer)
                                or jnp.issubdtype(arr.dtype, jnp.floating))
    if not real:
        v._fail("x", v._short(x) if arr is not None else x, "an array of real numbers")
    xp = _namespace(arr)
    if jnp.issubdtype(arr.dtype, jnp.floating) and not bool(xp.all(xp.isfinite(arr))):
        v._fail("x", v._short(x), "finite entries (no NaN or inf)")


def gradient_factor(student_e, square: bool, y, h):
    """G with -grad_w loss(w; x, y) = G x, at label y and pre-activation h = <w, x>:

        square loss       G = (y - sigma(h)) sigma'(h)
        correlation loss  G = y sigma'(h)

    (docs/spiked.md, "The system"). ``student_e`` are sigma's probabilists' Hermite
    coefficients (static). G is affine in y with slope sigma'(h), which is how the label noise
    enters E[G^2] in closed form.
    """
    ds = hermite_e_eval(derivative_e(student_e), h)
    return (y - hermite_e_eval(student_e, h)) * ds if square else y * ds


class SpikedSingleIndex(Setup):
    r"""Online SGD on a single-index target under spiked covariance (one neuron, one sample a step).

    Data ``x ~ N(0, I_d + theta mu mu^T)`` (||mu|| = 1), drawn as
    ``x = z + (sqrt(1+theta) - 1) <z, mu> mu`` with ``z ~ N(0, I_d)``; target argument
    ``u = <x, mu>/sqrt(1+theta) ~ N(0, 1)``; labels ``y = sigma*(u) + label_noise * eps``
    with ``eps ~ N(0, 1)``. Student ``sigma(<w, x>)``; per-sample gradient step with
    ``eta = step_size / dim`` (docs/spiked.md, "The system"):

        square loss       G = (y - sigma(h)) sigma'(h),    h = <w, x>
        correlation loss  G = y sigma'(h)
        w <- w + eta G x, then  "none": nothing;  "sphere": w / ||w||;
                                "covariance": w / ||w||_Sigma,  ||w||_Sigma^2 = <w, Sigma w>.

    Time unit: ``t = samples / dim`` (one fresh sample a step; ``Curve.time_unit == "t"``).

    Observables (every path reports these):
        overlap: m = <w, mu>.
        covariance_overlap: a = sqrt(1+theta) m (the coefficient of u in h = a u + b xi).
        orthogonal_norm_sq: q = ||w||^2 - m^2 = ||P_{mu-perp} w||^2 (b = sqrt(q)).
        cosine: m / ||w|| = m / sqrt(m^2 + q).
        correlation: a / sqrt(a^2 + q), the correlation of the pre-activation with u.
        risk: 1/2 E[(y - sigma(<w, x>))^2] over fresh (x, y) at the current w (label noise
            included: label_noise^2 / 2 is the floor), whatever the training loss.

    Attributes:
        dim: the dimension d >= 3.
        spike: theta >= 0, the spike of the covariance Sigma = I_d + theta mu mu^T.
        link: the target's link sigma*: a name ("he2", "he3", "he2+he4" = the normalised sum,
            of unit variance) or its orthonormal Hermite coefficients c_0, c_1, ...
            (sigma* = sum_j c_j He_j / sqrt(j!)). The information exponent k and the degree p
            derive from it.
        student: the student's activation sigma, same format; None: the link.
        loss: the training loss, "square" or "correlation".
        normalization: after each step, "none" (P: nothing), "sphere" (S: w / ||w||) or
            "covariance" (N: w / ||w||_Sigma).
        step_size: c > 0; each step uses eta = c / d.
        label_noise: the label-noise standard deviation sqrt(Delta) >= 0 (y = sigma*(u) +
            label_noise * eps).
        initial_overlap: m0 = <w0, mu>, with ||w0|| = 1 ("none", "sphere") or ||w0||_Sigma = 1
            ("covariance", so |m0| <= 1/sqrt(1+theta)); or "random": w0 uniform on that sphere
            (m0 ~ N(0, 1/d)). Theory started from "random" uses m0 = 1/sqrt(d), its typical size.

    References: docs/spiked.md; Ben Arous, Gheissari & Jagannath (JMLR 2021;
    arXiv:2206.04030); Mousavi-Hosseini, Wu, Suzuki & Erdogdu (NeurIPS 2023); Ba, Erdogdu,
    Suzuki, Wang & Wu (NeurIPS 2023).
    """

    system: ClassVar[str] = "spiked"
    time_unit: ClassVar[str] = "t"
    time_label: ClassVar[str] = "t = samples / d"

    dim: int
    spike: float
    link: Float[np.ndarray, " p1"]
    student: Float[np.ndarray, " p2"]
    loss: str
    normalization: str
    step_size: float
    label_noise: float
    initial_overlap: float | str

    def __init__(self, dim: int = 1000, spike: float = 0.0,
                 link: str | Float[np.ndarray, " p1"] = "he2",
                 student: str | Float[np.ndarray, " p2"] | None = None,
                 loss: str = "correlation", normalization: str = "covariance",
                 step_size: float = 0.1, label_noise: float = 0.0,
                 initial_overlap: float | str = 0.1):
        self.dim = v.integer("dim", dim, low=3)
        self.spike = v.nonnegative("spike", spike)
        self.link = parse_link("link", link)
        self.student = self.link.copy() if student is None else parse_link("student", student)
        self.loss = v.choice("loss", loss, LOSSES)
        self.normalization = v.choice("normalization", normalization, NORMALIZATIONS)
        self.step_size = v.positive("step_size", step_size)
        self.label_noise = v.nonnegative("label_noise", label_noise)
        bound = 1.0 / math.sqrt(1.0 + self.spike) if self.normalization == "covariance" else 1.0
        if isinstance(initial_overlap, str):
            if initial_overlap != "random":
                v._fail("initial_overlap", initial_overlap,
                        f"a number in [{-bound:.6g}, {bound:.6g}] or 'random'")
            self.initial_overlap = initial_overlap
        else:
            self.initial_overlap = v.real("initial_overlap", initial_overlap, low=-bound, high=bound)

    # ------------------------------------------------------------ derived quantities
    @property
    def information_exponent(self) -> int:
        """k = min{j >= 1 : c_j != 0} of the link."""
        return information_exponent(self.link)

    @property
    def degree(self) -> int:
        """p = max{j : c_j != 0} of the link."""
        return series_degree(self.link)

    @property
    def label_noise_var(self) -> float:
        """Delta = label_noise^2, the label-noise variance."""
        return self.label_noise**2

    @property
    def random_start(self) -> bool:
        return isinstance(self.initial_overlap, str)

    def start(self) -> tuple[float, float]:
        """(m0, q0) of the deterministic start (random: m0 = 1/sqrt(d), its typical size)."""
        m0 = 1.0 / math.sqrt(self.dim) if self.random_start else float(self.initial_overlap)
        if self.normalization == "covariance":
            q0 = 1.0 - (1.0 + self.spike) * m0 * m0
        else:
            q0 = 1.0 - m0 * m0
        return m0, max(q0, 0.0)

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``), with the link's and the student's
        names (where they have one), information exponent and degree."""
        return {**super().fields(), "link_name": series_name(self.link),
                "student_name": series_name(self.student),
                "information_exponent": self.information_exponent, "degree": self.degree}


# ----------------------------------------------------------------- shared observables
def population_risk(setup: SpikedSingleIndex, a, b, n_nodes: int = 40):
    """1/2 E[(sigma*(u) - sigma(a u + b xi))^2] + Delta/2 for u, xi ~ N(0, 1) independent,
    Delta = label_noise^2.

    Exact for polynomial links of degree <= n_nodes - 1 (2-D Gauss-Hermite). Pure JAX for
    JAX inputs (numpy for numpy inputs); broadcasts over ``a`` and ``b``.
    """
    xp = _namespace(a, b)
    u, xi, w2 = gauss_hermite_2d(n_nodes)
    a = xp.asarray(a)[..., None, None]
    b = xp.asarray(b)[..., None, None]
    target = hermite_e_eval(to_hermite_e(setup.link), xp.asarray(u))
    student = hermite_e_eval(to_hermite_e(setup.student), a * u + b * xi)
    return (0.5 * xp.sum(xp.asarray(w2) * (target - student) ** 2, axis=(-2, -1))
            + 0.5 * setup.label_noise_var)


def overlap_statistic(observable: str, m, q, theta):
    """|observable| from the overlaps (m, q) at spike theta, for ``observable`` in
    `ESCAPE_OBSERVABLES`: |m|, |a| = sqrt(1+theta)|m|, |m| / sqrt(m^2 + q) or
    |a| / sqrt(a^2 + q) (numpy or JAX, like the inputs)."""
    xp = _namespace(m, q, theta)
    q = xp.maximum(q, 0.0)
    m = xp.abs(m)
    if observable == "overlap":
        return m
    a = xp.sqrt(1.0 + theta) * m
    if observable == "covariance_overlap":
        return a
    if observable == "cosine":
        return m / xp.sqrt(m * m + q)
    if observable == "correlation":
        return a / xp.sqrt(a * a + q)
    raise ValueError(f"observable={observable!r} is invalid; allowed: {ESCAPE_OBSERVABLES}")


def check_setup(setup, name: str = "setup") -> SpikedSingleIndex:
    """``setup`` if it is a `SpikedSingleIndex`, else a ValueError naming it."""
    return v.instance_of(name, setup, SpikedSingleIndex)


def check_escape(setup: SpikedSingleIndex, observable, threshold) -> float:
    """The ``threshold`` of a first passage |observable| >= threshold, for ``observable`` in
    `ESCAPE_OBSERVABLES`: a number in (0, top], top the largest value |observable| takes
    under the Setup's normalisation (cosine, correlation: 1; overlap: 1 ("sphere"),
    1/sqrt(1+theta) ("covariance"); covariance_overlap: sqrt(1+theta), 1; "none": unbounded).
    A threshold of 0 is passed at t = 0 and one past the top never: both are errors."""
    v.choice("observable", observable, ESCAPE_OBSERVABLES)
    sq = math.sqrt(1.0 + setup.spike)
    top = {("overlap", "sphere"): 1.0, ("overlap", "covariance"): 1.0 / sq,
           ("covariance_overlap", "sphere"): sq, ("covariance_overlap", "covariance"): 1.0,
           }.get((observable, setup.normalization))
    if observable in ("cosine", "correlation"):
        top = 1.0
    try:
        return v.real("threshold", threshold, low=0.0, low_open=True, high=top)
    except ValueError as err:  # say where the range comes from
        where = (f"|{observable}| lies in [0, 1]" if observable in ("cosine", "correlation")
                 else f"|{observable}| lies in [0, {top:.6g}] for normalization="
                 f"{setup.normalization!r}, spike={setup.spike:g}" if top is not None
                 else f"|{observable}| is unbounded for normalization='none'")
        raise ValueError(f"{err} ({where})") from None


def observables_from_overlaps(setup: SpikedSingleIndex, m, q) -> dict:
    """Every observable from (m, q) (arrays of any shape; pure JAX for JAX inputs)."""
    xp = _namespace(m, q)
    m = xp.asarray(m)
    q = xp.maximum(xp.asarray(q), 0.0)
    a = math.sqrt(1.0 + setup.spike) * m
    b = xp.sqrt(q)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "overlap": m,
            "covariance_overlap": a,
            "orthogonal_norm_sq": q,
            "cosine": m / xp.sqrt(m * m + q),
            "correlation": a / xp.sqrt(a * a + q),
            "risk": population_risk(setup, a, b),
        }
