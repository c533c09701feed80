r"""Setup for online SGD on a single-index target under spiked covariance (spec ``spiked.md``).

Also holds the small pure-JAX pieces that the theory and the Monte Carlo both need (they may
import the Setup, never each other): Hermite-series evaluation of the link and the student,
and the population risk as a function of the two overlaps.
"""

from __future__ import annotations

import math
import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from typing import ClassVar

from . import _validate as v
from ._base import Setup

LOSSES = ("square", "correlation")
NORMALIZATIONS = ("none", "sphere", "covariance")
_NAME = re.compile(r"^he(\d+)$")


# ----------------------------------------------------------------- Hermite series
def parse_link(name: str, value) -> np.ndarray:
    """Orthonormal Hermite coefficients c_j of sigma(u) = sum_j c_j He_j(u) / sqrt(j!).

    ``value`` is a name (``"he2"``, ``"he3"``, ``"he2+he4"``: the normalised sum
    (He_2/sqrt(2!) + He_4/sqrt(4!))/sqrt(2), of unit variance) or a sequence of coefficients
    c_0, c_1, ... in that orthonormal basis (E[sigma(g)^2] = sum_j c_j^2 for g ~ N(0,1)).
    """
    if isinstance(value, str):
        parts = [p.strip().lower() for p in value.split("+")]
        degrees = []
        for p in parts:
            match = _NAME.match(p)
            if match is None or int(match.group(1)) > 20:
                v._fail(name, value, "a name like 'he2', 'he3', 'he2+he4' (degrees 0..20) "
                        "or a sequence of orthonormal Hermite coefficients")
            degrees.append(int(match.group(1)))
        if len(set(degrees)) != len(degrees):
            v._fail(name, value, "distinct Hermite degrees")
        coeffs = np.zeros(max(degrees) + 1)
        coeffs[degrees] = 1.0 / math.sqrt(len(degrees))
        return coeffs
    coeffs = v.real_array(name, value)
    if coeffs.size > 21:
        v._fail(name, v._short(value), "at most 21 coefficients (degree <= 20)")
    nz = np.flatnonzero(coeffs)
    if nz.size == 0 or nz.max() == 0:
        v._fail(name, v._short(value), "a non-constant Hermite series (some c_j != 0 with j >= 1)")
    return coeffs[: nz.max() + 1].copy()


def information_exponent(coeffs) -> int:
    """k = min{j >= 1 : c_j != 0}."""
    c = np.asarray(coeffs)
    return int(np.flatnonzero(c[1:])[0] + 1)


def series_degree(coeffs) -> int:
    """p = max{j : c_j != 0}."""
    return int(np.flatnonzero(np.asarray(coeffs))[-1])


def to_hermite_e(coeffs) -> np.ndarray:
    """Orthonormal coefficients c_j -> probabilists' Hermite coefficients e_j = c_j / sqrt(j!)."""
    c = np.asarray(coeffs, dtype=np.float64)
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
    """sum_j e_j He_j(x) by the three-term recurrence (JAX in, JAX out; ``e`` has static length)."""
    e = [float(c) for c in np.asarray(e)]
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


def gauss_hermite(n: int = 40):
    """Nodes and weights of n-point Gauss-Hermite quadrature for N(0, 1) (weights sum to 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n)
    return nodes, weights / math.sqrt(2.0 * math.pi)


class SpikedSingleIndex(Setup):
    r"""Online SGD on a single-index target under spiked covariance (one neuron, one sample a step).

    Data ``x ~ N(0, I_d + theta mu mu^T)`` (||mu|| = 1), drawn as
    ``x = z + (sqrt(1+theta) - 1) <z, mu> mu`` with ``z ~ N(0, I_d)``; target argument
    ``u = <x, mu>/sqrt(1+theta) ~ N(0, 1)``; labels ``y = sigma*(u) + sqrt(Delta) eps``.
    Student ``sigma(<w, x>)``; per-sample gradient step with ``eta = step_size / dim``:

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
            included: Delta/2 is the floor), whatever the training loss.

    Attributes:
        dim: d >= 3.
        spike: theta >= 0.
        link: orthonormal Hermite coefficients of sigma* (see `parse_link`; names "he2",
            "he3", "he2+he4", ...). ``information_exponent`` k and ``degree`` p derive from it.
        student: the student activation sigma, same format (default: the link).
        loss: "square" or "correlation".
        normalization: "none" (P), "sphere" (S) or "covariance" (N), spec §2b.
        step_size: c > 0 (eta = c / d).
        label_noise: Delta >= 0 (variance of the label noise).
        initial_overlap: m0 = <w0, mu>, with ||w0|| = 1 ("none", "sphere") or ||w0||_Sigma = 1
            ("covariance", so |m0| <= 1/sqrt(1+theta)); or "random": w0 uniform on that sphere
            (m0 ~ N(0, 1/d)). Theory started from "random" uses m0 = 1/sqrt(d) (its typical size).

    References: spec ``spiked.md`` §1-§4; Ben Arous, Gheissari & Jagannath (JMLR 2021;
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
    link_name: str | None
    student_name: str | None

    def __init__(self, dim: int = 1000, spike: float = 0.0, link="he2", student=None,
                 loss: str = "correlation", normalization: str = "covariance",
                 step_size: float = 0.1, label_noise: float = 0.0,
                 initial_overlap: float | str = 0.1, link_name: str | None = None,
                 student_name: str | None = None):
        self.dim = v.integer("dim", dim, low=3)
        self.spike = v.nonnegative("spike", spike)
        if isinstance(link, str):
            link_name = link
        self.link = parse_link("link", link)
        self.link_name = link_name if isinstance(link_name, str) else None
        if student is None:
            student, student_name = self.link, self.link_name
        elif isinstance(student, str):
            student_name = student
        self.student = parse_link("student", student)
        self.student_name = student_name if isinstance(student_name, str) else None
        self.loss = v.choice("loss", loss, LOSSES)
        self.normalization = v.choice("normalization", normalization, NORMALIZATIONS)
        self.step_size = v.positive("step_size", step_size)
        self.label_noise = v.nonnegative("label_noise", label_noise)
        if isinstance(initial_overlap, str):
            self.initial_overlap = v.choice("initial_overlap", initial_overlap, ("random",))
        else:
            bound = 1.0 / math.sqrt(1.0 + self.spike) if normalization == "covariance" else 1.0
            self.initial_overlap = v.real("initial_overlap", initial_overlap, low=-bound, high=bound)

    # ------------------------------------------------------------ derived quantities
    @property
    def information_exponent(self) -> int:
        return information_exponent(self.link)

    @property
    def degree(self) -> int:
        return series_degree(self.link)

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
        """The Setup as plain data (stored in ``Curve.meta``)."""
        return {
            "system": "spiked",
            "dim": self.dim,
            "spike": self.spike,
            "link": self.link.tolist(),
            "link_name": self.link_name,
            "student": self.student.tolist(),
            "student_name": self.student_name,
            "information_exponent": self.information_exponent,
            "degree": self.degree,
            "loss": self.loss,
            "normalization": self.normalization,
            "step_size": self.step_size,
            "label_noise": self.label_noise,
            "initial_overlap": self.initial_overlap,
        }


# ----------------------------------------------------------------- shared observables
def population_risk(setup: SpikedSingleIndex, a, b, n_nodes: int = 40):
    """1/2 E[(sigma*(u) - sigma(a u + b xi))^2] + Delta/2 for u, xi ~ N(0, 1) independent.

    Exact for polynomial links of degree <= n_nodes - 1 (2-D Gauss-Hermite). Pure JAX for
    JAX inputs (numpy for numpy inputs); broadcasts over ``a`` and ``b``.
    """
    xp = _namespace(a, b)
    nodes, weights = gauss_hermite(n_nodes)
    a = xp.asarray(a)[..., None, None]
    b = xp.asarray(b)[..., None, None]
    u = xp.asarray(nodes)[:, None]
    xi = xp.asarray(nodes)[None, :]
    w2 = xp.asarray(np.outer(weights, weights))
    target = hermite_e_eval(to_hermite_e(setup.link), u)
    student = hermite_e_eval(to_hermite_e(setup.student), a * u + b * xi)
    return 0.5 * xp.sum(w2 * (target - student) ** 2, axis=(-2, -1)) + 0.5 * setup.label_noise


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


OBSERVABLES = ("overlap", "covariance_overlap", "orthogonal_norm_sq", "cosine", "correlation", "risk")


# ----------------------------------------------------------------- command line and demo
def build_from_options(*, dim: int = 2000, spike: float = 4.0, link: str = "he3", student: str = "",
                       loss: str = "correlation", normalization: str = "covariance",
                       step_size: float = 0.05, label_noise: float = 0.0,
                       initial_overlap: str = "0.15") -> SpikedSingleIndex:
    """A `SpikedSingleIndex` from the CLI's options (``initial_overlap``: a number or "random")."""
    if initial_overlap != "random":
        try:
            initial_overlap = float(initial_overlap)
        except ValueError:
            v._fail("initial_overlap", initial_overlap, "a number or 'random'")
    return SpikedSingleIndex(dim=dim, spike=spike, link=link, student=student or None, loss=loss,
                             normalization=normalization, step_size=step_size,
                             label_noise=label_noise, initial_overlap=initial_overlap)


def _demo(out_dir, key) -> str:
    from .. import compare, predict, simulate

    setup = SpikedSingleIndex(dim=1000, spike=4.0, link="he3", loss="correlation",
                              normalization="covariance", step_size=0.05, initial_overlap=0.15)
    theory = predict(setup, 2.0)
    mc = simulate(setup, 2.0, key=key, seeds=16, progress=False)
    agreement = compare(theory, mc, "overlap", t_min=0.05)
    agreement.plot(out_dir / "spiked.png", observable="overlap", logy=False,
                   title="spiked single-index, He3, theta=4, (N) correlation loss, d=1000")
    a = agreement["overlap"]
    return (f"spiked: overlap ODE vs 16-seed full-d Monte Carlo at d=1000: max gap "
            f"{a.max_sem_gap:.2f} standard errors ({a.max_rel_gap:.2%} relative)")


def _register():
    from ..registry import Option, System, register_system

    register_system(System(
        name="spiked",
        setup_type=SpikedSingleIndex,
        summary="online SGD on a single-index target under spiked covariance (P/S/N variants)",
        options=(
            Option("dim", int, 2000, "dimension d >= 3"),
            Option("spike", float, 4.0, "theta >= 0: Sigma = I + theta mu mu^T"),
            Option("link", str, "he3", "target link: 'he2', 'he3', 'he2+he4', ... (normalised Hermite)"),
            Option("student", str, "", "student activation, same format (default: the link)"),
            Option("loss", str, "correlation", "training loss", LOSSES),
            Option("normalization", str, "covariance", "(P) none, (S) sphere, (N) covariance",
                   NORMALIZATIONS),
            Option("step_size", float, 0.05, "c > 0 (each step uses c/d)"),
            Option("label_noise", float, 0.0, "Delta >= 0, label-noise variance"),
            Option("initial_overlap", str, "0.15", "m0 = <w0, mu> (a number) or 'random'"),
        ),
        build=build_from_options,
        default_horizon=2.0,
        time_unit="t",
        methods=("ode",),
        simulate_methods=("full", "chain"),
        demo=_demo,
    ))


_register()
