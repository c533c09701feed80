r"""Setups for label-noise SGD with heavy-ball momentum near a manifold of minimisers
(docs/momentum.md; Cowsik, Can & Glorioso, "Flatter, Faster", arXiv:2210.16400).

Three models, one Setup class each, all ``system = "momentum"``:

* `TwoParameterMomentum`: f(w) = w_1 w_2 (docs/momentum.md, "The two-parameter model");
* `InnerProductMomentum`: f(u, v) = <u, v>, u, v in R^d ("The inner-product model");
* `MatrixSensingMomentum`: f_i(U) = <A_i, U U^T> ("Matrix sensing").

They share the algorithm and its hyperparameters (the abstract base `LabelNoiseMomentum`).
This module also holds the models' pure functions (start, f, observables of a weight
array, the matrix-sensing data), which the theory and the Monte Carlo both import; they never
import each other.
"""

from __future__ import annotations

import abc
import functools
import math
from typing import ClassVar

import jax.numpy as jnp
import numpy as np

from . import _validate as v
from ._base import Setup

OBSERVABLES = ("manifold_coordinate", "trace_hessian", "train_loss", "distance_to_flattest")
INNER_PRODUCT_EXTRA = ("u_norm_sq", "v_norm_sq", "inner_product")


class LabelNoiseMomentum(Setup):
    r"""Label-noise SGD with heavy-ball momentum on a model with a manifold of minimisers
    (abstract: use `TwoParameterMomentum`, `InnerProductMomentum` or `MatrixSensingMomentum`).

    Algorithm (docs/momentum.md, "The system"; PyTorch's ``SGD(lr=eta, momentum=beta)`` with
    buffer -v/eta):

        g_k = (f(w_k) - y - delta_0 zeta_k) grad f(w_k)      (zeta ~ N(0, 1/B), fresh each step)
        v_{k+1} = beta v_k - eta g_k,   w_{k+1} = w_k + v_{k+1},   v_0 = 0.

    A batch of ``batch_size`` label-noise draws of the single datum averages the noise, so
    only the effective noise variance ``delta^2 = label_noise^2 / batch_size`` matters.

    Momentum is given either directly (``momentum`` = beta) or through the scaling family
    1 - beta = ``constant`` * ``step_size`` ** ``exponent`` (C, gamma). When ``exponent`` and
    ``constant`` are both set they define beta and a ``momentum`` passed alongside is
    recomputed from them (so ``setup.replace(step_size=...)`` moves along the family); leave
    them None to give beta directly.

    Time unit: ``"step"`` (iterations); ``Curve.samples = steps * batch_size``.

    Observables (Monte Carlo: per seed; theory: the expectation over the SGD noise), defined
    per model in each class's docstring: ``manifold_coordinate`` (where along the manifold),
    ``trace_hessian`` (tr Hess L, exact at every point), ``train_loss`` (L with the clean
    labels; never twice the loss), ``distance_to_flattest`` (relative distance to the flattest
    minimisers).

    Attributes:
        step_size: eta > 0 (per step).
        momentum: heavy-ball beta in [0, 1) (recomputed from exponent and constant when both
            are set).
        exponent: gamma in (0, 4] of 1 - beta = C eta^gamma, or None (beta given directly).
        constant: C > 0 of 1 - beta = C eta^gamma, or None (beta given directly).
        label_noise: delta_0 >= 0, standard deviation of the label noise of one sample.
        batch_size: B >= 1 noisy draws averaged per step.
    """

    system: ClassVar[str] = "momentum"
    time_unit: ClassVar[str] = "step"
    time_label: ClassVar[str] = "steps"
    #: the model's name (``hdsgd momentum ... --model NAME``, ``Curve.meta["model"]``).
    model: ClassVar[str] = ""
    #: the observables a Curve of this model carries.
    observable_names: ClassVar[tuple[str, ...]] = OBSERVABLES
    #: the default target of the time to target (docs/momentum.md, "Time to target"):
    #: sqrt(E s^2) <= 0.1 on the product models, the distance to X* <= 0.5 on matrix sensing.
    default_target: ClassVar[float] = 0.1
    #: ``replace(damping=x)`` sets momentum = 1 - x (and drops a (C, gamma) family): tuning
    #: moves along 1 - beta, on a log scale.
    coordinates: ClassVar[tuple[str, ...]] = ("damping",)

    step_size: float
    momentum: float
    exponent: float | None
    constant: float | None
    label_noise: float
    batch_size: int

    def _set_algorithm(self, step_size, momentum, exponent, constant, label_noise) -> None:
        """Validate and set the algorithm's fields (every model's, but ``batch_size``)."""
        self.step_size = v.positive("step_size", step_size)
        if (exponent is None) != (constant is None):
            raise ValueError(
                f"exponent={exponent!r}, constant={constant!r} is invalid; allowed: both set "
                "(1 - momentum = constant * step_size**exponent) or both None"
            )
        if exponent is not None:
            self.exponent = v.real("exponent", exponent, low=0.0, low_open=True, high=4.0)
            self.constant = v.positive("constant", constant)
            gap = self.constant * self.step_size**self.exponent
            if not 0.0 < gap <= 1.0:
                raise ValueError(
                    f"constant * step_size**exponent = {gap!r} is invalid "
                    f"(momentum = 1 - {gap!r}); allowed: (0, 1]"
                )
            self.momentum = 1.0 - gap
        else:
            self.exponent = None
            self.constant = None
            self.momentum = v.real("momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.label_noise = v.nonnegative("label_noise", label_noise)

    # ------------------------------------------------------------------ the model
    @abc.abstractmethod
    def start(self) -> np.ndarray:
        """The initial weights w_0 (numpy float64), on the manifold of minimisers, at rest."""

    @abc.abstractmethod
    def start_curvature(self) -> float:
        """The largest eigenvalue of Hess L at the start w_0: the curvature of the stiffest
        direction normal to the manifold (on the manifold Hess L is the Gauss-Newton matrix
        (1/n) J^T J, whose non-zero eigenvalues are the normal curvatures)."""

    # ------------------------------------------------------------------ derived numbers
    @property
    def one_minus_beta(self) -> float:
        """1 - beta (computed from C eta^gamma when the pair is set, without cancellation)."""
        if self.exponent is not None:
            return self.constant * self.step_size**self.exponent
        return 1.0 - self.momentum

    @property
    def damping(self) -> float:
        """1 - beta (the derived coordinate tuning moves along)."""
        return self.one_minus_beta

    def _set_damping(self, value) -> dict:
        """The field changes of damping 1 - beta = ``value`` (in (0, 1])."""
        value = v.real("damping", value, low=0.0, low_open=True, high=1.0)
        return {"momentum": 1.0 - value, "exponent": None, "constant": None}

    @property
    def noise_var(self) -> float:
        """Effective label-noise variance delta^2 = label_noise^2 / batch_size."""
        return self.label_noise**2 / self.batch_size

    @property
    def effective_step_size(self) -> float:
        """eta / (1 - beta)."""
        return self.step_size / self.one_minus_beta

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``), with ``model``."""
        return {**super().fields(), "model": self.model}


class TwoParameterMomentum(LabelNoiseMomentum):
    r"""Label-noise SGD with heavy-ball momentum on f(w) = w_1 w_2 (docs/momentum.md, "The
    two-parameter model"; the algorithm is `LabelNoiseMomentum`'s).

    One datum y = 1, loss L(w) = 1/2 (w_1 w_2 - 1)^2. The manifold of minimisers w_1 w_2 = 1 is
    parametrised by w = (e^s, e^-s); tr Hess L = w_1^2 + w_2^2 = 2 cosh 2s on it; the flattest
    minimiser is w = (1, 1) (s = 0). The run starts on the manifold at s_0 =
    ``initial_coordinate`` with zero velocity.

    Time unit: ``"step"``; ``Curve.samples = steps * batch_size``.

    Observables:
        manifold_coordinate: s = 1/2 ln(|w_1| / |w_2|).
        trace_hessian: tr Hess L(w) = w_1^2 + w_2^2 (exact at every w).
        train_loss: L(w) = 1/2 (w_1 w_2 - 1)^2 (clean label; not twice the loss).
        distance_to_flattest: min_{+-} ||w -+ (1, 1)||_2 / ||(1, 1)||_2 (relative distance to
            the nearer flattest minimiser).

    Attributes:
        step_size: eta > 0 (per step).
        momentum: heavy-ball beta in [0, 1) (recomputed from exponent and constant when both
            are set).
        exponent: gamma in (0, 4] of 1 - beta = C eta^gamma, or None (beta given directly).
        constant: C > 0 of 1 - beta = C eta^gamma, or None (beta given directly).
        label_noise: delta_0 >= 0, standard deviation of the label noise of one sample.
        batch_size: B >= 1 noisy draws averaged per step (delta^2 = delta_0^2 / B).
        initial_coordinate: s_0 in [-5, 5]: the start w_0 = (e^{s_0}, e^{-s_0}).
    """

    model: ClassVar[str] = "two_parameter"

    initial_coordinate: float

    def __init__(self, step_size: float = 0.01, momentum: float = 0.9,
                 exponent: float | None = None, constant: float | None = None,
                 label_noise: float = 0.3, batch_size: int = 1,
                 initial_coordinate: float = 1.0):
        self._set_algorithm(step_size, momentum, exponent, constant, label_noise)
        self.batch_size = v.integer("batch_size", batch_size, low=1)
        self.initial_coordinate = v.real("initial_coordinate", initial_coordinate,
                                         low=-5.0, high=5.0)

    def start(self) -> np.ndarray:
        """w_0 = (e^{s_0}, e^{-s_0}), shape (2,)."""
        return np.array([math.exp(self.initial_coordinate), math.exp(-self.initial_coordinate)])

    def start_curvature(self) -> float:
        """tr Hess L(w_0) = w_1^2 + w_2^2 = 2 cosh 2 s_0 (Hess L has rank one on the manifold)."""
        return 2.0 * math.cosh(2.0 * self.initial_coordinate)


class InnerProductMomentum(LabelNoiseMomentum):
    r"""Label-noise SGD with heavy-ball momentum on f(u, v) = <u, v>, u, v in R^d
    (docs/momentum.md, "The inner-product model"; the algorithm is `LabelNoiseMomentum`'s).

    One datum y = 1, L = 1/2 (<u, v> - 1)^2. Invariants P = ||u||^2, Q = ||v||^2, R = <u, v>
    (R = 1 on the manifold); tr Hess L = P + Q exactly at every point; flattest minimisers:
    u = v, ||u|| = 1. Start: u_0 = e^{s_0} a / sqrt(c), v_0 = e^{-s_0} b / sqrt(c) with unit
    vectors a, b of cosine <a, b> = c = ``initial_cosine`` (so R_0 = 1, P_0 = e^{2 s_0}/c,
    Q_0 = e^{-2 s_0}/c). The updates stay in span(a, b): d sets the size of the simulated
    problem, not its law.

    Time unit: ``"step"``; ``Curve.samples = steps * batch_size``.

    Observables:
        manifold_coordinate: s = 1/4 ln(P / Q).
        trace_hessian: tr Hess L = P + Q (exact at every point).
        train_loss: L = 1/2 (R - 1)^2 (clean label; not twice the loss).
        distance_to_flattest: min over unit m of ||(u, v) - (m, m)|| / sqrt(2)
            = sqrt((P + Q + 2 - 2 sqrt(P + Q + 2R)) / 2).
        u_norm_sq, v_norm_sq, inner_product: P, Q, R.

    Attributes:
        step_size: eta > 0 (per step).
        momentum: heavy-ball beta in [0, 1) (recomputed from exponent and constant when both
            are set).
        exponent: gamma in (0, 4] of 1 - beta = C eta^gamma, or None (beta given directly).
        constant: C > 0 of 1 - beta = C eta^gamma, or None (beta given directly).
        label_noise: delta_0 >= 0, standard deviation of the label noise of one sample.
        batch_size: B >= 1 noisy draws averaged per step (delta^2 = delta_0^2 / B).
        initial_coordinate: s_0 in [-5, 5]: the start's balance, s = 1/4 ln(P_0 / Q_0).
        dim: d >= 1, the dimension of u and v.
        initial_cosine: c in (0, 1], the cosine between the directions of u_0 and v_0
            (d >= 2 when c < 1; c = 1 is the two-parameter model embedded in R^d).
    """

    model: ClassVar[str] = "inner_product"
    observable_names: ClassVar[tuple[str, ...]] = OBSERVABLES + INNER_PRODUCT_EXTRA

    initial_coordinate: float
    dim: int
    initial_cosine: float

    def __init__(self, step_size: float = 0.01, momentum: float = 0.9,
                 exponent: float | None = None, constant: float | None = None,
                 label_noise: float = 0.3, batch_size: int = 1,
                 initial_coordinate: float = 1.0, dim: int = 32, initial_cosine: float = 0.5):
        self._set_algorithm(step_size, momentum, exponent, constant, label_noise)
        self.batch_size = v.integer("batch_size", batch_size, low=1)
        self.initial_coordinate = v.real("initial_coordinate", initial_coordinate,
                                         low=-5.0, high=5.0)
        self.dim = v.integer("dim", dim, low=1, high=1_000_000)
        self.initial_cosine = v.real("initial_cosine", initial_cosine, low=0.0, low_open=True,
                                     high=1.0)
        if self.initial_cosine < 1.0 and self.dim < 2:
            raise ValueError(f"initial_cosine={initial_cosine!r} is invalid with dim=1; "
                             "allowed: 1 (or dim >= 2)")

    def start(self) -> np.ndarray:
        """(u_0, v_0), shape (2, d): u_0 = e^{s_0} e_1 / sqrt(c),
        v_0 = e^{-s_0} (c e_1 + sqrt(1 - c^2) e_2) / sqrt(c)."""
        c, s0, d = self.initial_cosine, self.initial_coordinate, self.dim
        a = np.zeros(d)
        a[0] = 1.0
        b = np.zeros(d)
        b[0] = c
        if d > 1:
            b[1] = math.sqrt(max(0.0, 1.0 - c * c))
        scale = 1.0 / math.sqrt(c)
        return np.stack([math.exp(s0) * scale * a, math.exp(-s0) * scale * b])

    def start_curvature(self) -> float:
        """tr Hess L(w_0) = P_0 + Q_0 = 2 cosh(2 s_0) / c (rank one on the manifold)."""
        return 2.0 * math.cosh(2.0 * self.initial_coordinate) / self.initial_cosine


class MatrixSensingMomentum(LabelNoiseMomentum):
    r"""Label-noise SGD with heavy-ball momentum on overparametrised matrix sensing
    (docs/momentum.md, "Matrix sensing"; the algorithm is `LabelNoiseMomentum`'s).

    U in R^{d x d} (full width), X* = U* U*^T of rank r (U* = the first r columns of a random
    orthogonal matrix, so ||X*||_F^2 = ||X*||_* = r), measurements y_i = <A_i, X*>,
    i = 1..n, A_i = (G_i + G_i^T) / (2 sqrt(d)) with G_i iid standard Gaussian;
    f_i(U) = <A_i, U U^T>, L = (1/2n) sum_i (f_i - y_i)^2. Label noise on a batch of
    ``batch_size`` samples drawn without replacement each step: g = (1/b) sum_{i in batch}
    (f_i - y_i - delta_0 zeta_i) grad f_i. Start: U_0 = the Gauss-Newton projection onto the
    interpolating manifold of ``init_scale`` * G / sqrt(d) (G standard Gaussian), not low
    rank; the data and U_0 come from numpy's generator with ``data_seed``
    (`matrix_sensing_problem`).

    Time unit: ``"step"``; ``Curve.samples = steps * batch_size``.

    Observables:
        manifold_coordinate: ln(||U||_F^2 / ||X*||_*) (the log excess nuclear norm of U U^T
            over X*, the implicit bias's target).
        trace_hessian: tr Hess L(U) = (1/n) sum_i (4 ||A_i U||_F^2 + 2 d (f_i - y_i) tr A_i).
        train_loss: L(U) (clean labels; not twice the loss).
        distance_to_flattest: ||U U^T - X*||_F / ||X*||_F.

    Attributes:
        step_size: eta > 0 (per step).
        momentum: heavy-ball beta in [0, 1) (recomputed from exponent and constant when both
            are set).
        exponent: gamma in (0, 4] of 1 - beta = C eta^gamma, or None (beta given directly).
        constant: C > 0 of 1 - beta = C eta^gamma, or None (beta given directly).
        label_noise: delta_0 >= 0, standard deviation of the label noise of one measurement.
        batch_size: b in [1, n] measurements per step (delta^2 = delta_0^2 / b), or None: all n.
        dim: d in [2, 64] (U is d x d; the theory's cost grows as d^6).
        rank: r in [1, d], the rank of X*.
        n_samples: n in [1, d(d+1)/2 - 1] measurements, or None: min(4 d r, d(d+1)/2 - 1).
        init_scale: alpha > 0, the scale of the start before its projection.
        data_seed: seed >= 0 of A_i, X* and U_0.
    """

    model: ClassVar[str] = "matrix_sensing"
    default_target: ClassVar[float] = 0.5

    dim: int
    rank: int
    n_samples: int
    init_scale: float
    data_seed: int

    def __init__(self, step_size: float = 0.01, momentum: float = 0.9,
                 exponent: float | None = None, constant: float | None = None,
                 label_noise: float = 0.3, batch_size: int | None = None,
                 dim: int = 8, rank: int = 1,
                 n_samples: int | None = None, init_scale: float = 1.0, data_seed: int = 0):
        self._set_algorithm(step_size, momentum, exponent, constant, label_noise)
        self.dim = v.integer("dim", dim, low=2, high=64)
        self.rank = v.integer("rank", rank, low=1, high=self.dim)
        most = self.dim * (self.dim + 1) // 2 - 1
        default_n = min(most, 4 * self.dim * self.rank)
        self.n_samples = v.integer("n_samples", default_n if n_samples is None else n_samples,
                                   low=1, high=most)
        self.batch_size = v.integer("batch_size", self.n_samples if batch_size is None
                                    else batch_size, low=1, high=self.n_samples)
        self.init_scale = v.positive("init_scale", init_scale)
        self.data_seed = v.seed("data_seed", data_seed)

    def start(self) -> np.ndarray:
        """U_0, shape (d, d): the interpolating start of `matrix_sensing_problem`."""
        return np.array(matrix_sensing_problem(self)["u0"])

    def start_curvature(self) -> float:
        """The top eigenvalue of the Gauss-Newton matrix (1/n) J^T J at U_0, J_i = vec(2 A_i U_0)
        (= Hess L(U_0), since U_0 interpolates), from the n x n Gram matrix (1/n) J J^T."""
        return float(_top_gauss_newton(self.dim, self.rank, self.n_samples, self.init_scale,
                                       self.data_seed))


# ----------------------------------------------------------------- the two-parameter model
def two_parameter_point(s):
    """The point (e^s, e^-s) of the manifold w_1 w_2 = 1."""
    return jnp.stack([jnp.exp(s), jnp.exp(-s)], axis=-1)


def two_parameter_normal(s):
    """Unit normal (e^-s, e^s) / sqrt(2 cosh 2s) of the manifold at (e^s, e^-s)."""
    n = jnp.stack([jnp.exp(-s), jnp.exp(s)], axis=-1)
    return n / jnp.sqrt(2.0 * jnp.cosh(2.0 * s))[..., None]


def two_parameter_observables(w) -> dict:
    """The four observables of one weight vector w = (w_1, w_2) (see `TwoParameterMomentum`).

    Both branches of the manifold (w_1 w_2 = 1 with w > 0 or w < 0) are covered: the
    coordinate uses |w_i| and the distance is to the nearer of the two flattest minimisers.
    """
    w1, w2 = w[..., 0], w[..., 1]
    plus = (w1 - 1.0) ** 2 + (w2 - 1.0) ** 2
    minus = (w1 + 1.0) ** 2 + (w2 + 1.0) ** 2
    return {
        "manifold_coordinate": 0.5 * jnp.log(jnp.abs(w1) / jnp.abs(w2)),
        "trace_hessian": w1 * w1 + w2 * w2,
        "train_loss": 0.5 * (w1 * w2 - 1.0) ** 2,
        "distance_to_flattest": jnp.sqrt(0.5 * jnp.minimum(plus, minus)),
    }


# ----------------------------------------------------------------- the inner-product model
def invariant_observables(p, q, r) -> dict:
    """The observables of the inner-product model from its invariants P, Q, R (any shape)."""
    return {
        "manifold_coordinate": 0.25 * jnp.log(p / q),
        "trace_hessian": p + q,
        "train_loss": 0.5 * (r - 1.0) ** 2,
        "distance_to_flattest": jnp.sqrt(jnp.maximum(
            0.5 * (p + q + 2.0 - 2.0 * jnp.sqrt(jnp.maximum(p + q + 2.0 * r, 0.0))), 0.0)),
        "u_norm_sq": p,
        "v_norm_sq": q,
        "inner_product": r,
    }


def inner_product_observables(w) -> dict:
    """The observables of one weight array w = (u, v) of shape (..., 2, d)."""
    u, v = w[..., 0, :], w[..., 1, :]
    return invariant_observables(jnp.sum(u * u, -1), jnp.sum(v * v, -1), jnp.sum(u * v, -1))


# ----------------------------------------------------------------- matrix sensing
def sensing_values(u, a):
    """f_i(U) = <A_i, U U^T> for all i (a: (n, d, d), u: (..., d, d)) -> (..., n)."""
    return jnp.einsum("nab,...ak,...bk->...n", a, u, u)


def sensing_observables(u, a, y, x_star) -> dict:
    """The four observables of U (shape (..., d, d)) for matrix sensing (see
    `MatrixSensingMomentum`)."""
    d = u.shape[-1]
    res = sensing_values(u, a) - y
    au = jnp.einsum("nab,...bk->...nak", a, u)
    trace_h = jnp.mean(4.0 * jnp.sum(au * au, axis=(-1, -2))
                       + 2.0 * d * res * jnp.trace(a, axis1=-2, axis2=-1), axis=-1)
    norm_sq = jnp.sum(u * u, axis=(-1, -2))
    nuclear = jnp.trace(x_star)
    gap = jnp.einsum("...ak,...bk->...ab", u, u) - x_star
    return {
        "manifold_coordinate": jnp.log(norm_sq / nuclear),
        "trace_hessian": trace_h,
        "train_loss": 0.5 * jnp.mean(res * res, axis=-1),
        "distance_to_flattest": jnp.sqrt(jnp.sum(gap * gap, axis=(-1, -2))
                                         / jnp.sum(x_star * x_star)),
    }


def _project_to_interpolants(u, a, y, iterations: int = 30):
    """Gauss-Newton projection onto {U : f_i(U) = y_i}: U <- U - J^+ (f(U) - y), J = (2 A_i U)_i."""
    n = a.shape[0]
    for _ in range(iterations):
        jac = 2.0 * np.einsum("nab,bk->nak", a, u).reshape(n, -1)
        res = np.einsum("nab,ak,bk->n", a, u, u) - y
        step, *_ = np.linalg.lstsq(jac, res, rcond=None)
        u = u - step.reshape(u.shape)
        if np.max(np.abs(res)) < 1e-13:
            break
    return u


def matrix_sensing_problem(setup: MatrixSensingMomentum) -> dict:
    """The data of a matrix-sensing Setup (numpy float64, read-only; same seed, same problem):
    ``a`` (n, d, d) symmetric sensing matrices, ``y`` (n,), ``x_star`` (d, d) and ``u0``
    (d, d) the interpolating start (see `MatrixSensingMomentum`)."""
    check_model(setup, (MatrixSensingMomentum,))
    return _problem(setup.dim, setup.rank, setup.n_samples, setup.init_scale, setup.data_seed)


@functools.lru_cache(maxsize=32)
def _problem(d: int, r: int, n: int, scale: float, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    u_star = q[:, :r]
    x_star = u_star @ u_star.T
    g = rng.standard_normal((n, d, d))
    a = (g + np.transpose(g, (0, 2, 1))) / (2.0 * math.sqrt(d))
    y = np.einsum("nab,ab->n", a, x_star)
    u0 = _project_to_interpolants(scale * rng.standard_normal((d, d)) / math.sqrt(d), a, y)
    out = {"a": a, "y": y, "x_star": x_star, "u0": u0}
    for value in out.values():
        value.setflags(write=False)
    return out


@functools.lru_cache(maxsize=32)
def _top_gauss_newton(d: int, r: int, n: int, scale: float, seed: int) -> float:
    problem = _problem(d, r, n, scale, seed)
    jac = 2.0 * np.einsum("nab,bk->nak", problem["a"], problem["u0"]).reshape(n, -1)
    return float(np.linalg.eigvalsh(jac @ jac.T / n)[-1])


# ----------------------------------------------------------------- the models, input checks
MODELS = (TwoParameterMomentum, InnerProductMomentum, MatrixSensingMomentum)
PRODUCT_MODELS = (TwoParameterMomentum, InnerProductMomentum)


shown = v.shown  # a value for an error message (the shared helper)


def check_model(setup, models: tuple[type, ...] = MODELS, note: str = "") -> LabelNoiseMomentum:
    """``setup`` if it is one of ``models``, else ``setup=... is invalid; allowed: ...``
    (``note``: why, appended)."""
    return v.instance_of("setup", setup, models, note)


def model_class(name: str) -> type:
    """The Setup class of a model name (``Curve.meta["model"]``)."""
    for cls in MODELS:
        if cls.model == name:
            return cls
    raise ValueError(f"model={name!r} is invalid; allowed: {tuple(c.model for c in MODELS)}")


# ----------------------------------------------------------------- time to target
def settling_time(time, values, level) -> float:
    """The time from which ``values`` stays at or below ``level`` up to the end of the grid
    (linear interpolation at the last downward crossing); 0 if never above, inf if above at
    the end. The time-to-target of the theory and of the Monte Carlo (docs/momentum.md,
    "Time to target"), robust to the overshoot of under-damped runs: a first crossing would
    reward a run that swings through the flattest point and out again.

    Args:
        time: the grid, a non-empty rank-1 array of finite times >= 0, non-decreasing.
        values: the observable on it (same length); a NaN or inf (a diverged point) counts as
            above the level.
        level: the threshold, a finite number > 0 (the observable is a square or a distance).

    Raises:
        ValueError: naming ``time``, ``values`` or ``level`` when one is outside that range.
    """
    level = v.real("level", level, low=0.0, low_open=True)
    try:
        grid = np.asarray(time, dtype=np.float64)
    except (TypeError, ValueError):
        grid = None
    if (grid is None or grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid))
            or np.any(grid < 0.0) or np.any(np.diff(grid) < 0.0)):
        raise ValueError(f"time={shown(time)} is invalid; allowed: a non-empty, non-decreasing "
                         "rank-1 array of finite times >= 0")
    try:
        series = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        series = None
    if series is None or series.shape != grid.shape:
        raise ValueError(f"values={shown(values)} is invalid; allowed: a rank-1 array of "
                         f"numbers as long as time ({grid.size})")
    return _settling_time(grid, series, level)


def _settling_time(time, values, level) -> float:
    """`settling_time` on checked input (the theory's own grids, the bootstrap's resamples)."""
    values = np.asarray(values, dtype=float)
    above = np.nonzero(~(values <= level))[0]
    if above.size == 0:
        return float(time[0])
    i = int(above[-1])
    if i == values.size - 1:
        return math.inf
    v0, v1 = values[i], values[i + 1]
    frac = (v0 - level) / (v0 - v1) if np.isfinite(v0) and v0 != v1 else 1.0
    return float(time[i] + frac * (time[i + 1] - time[i]))
