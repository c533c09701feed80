r"""Setup for label-noise SGD with heavy-ball momentum near a manifold of minimisers
(spec ``momentum.md``; Cowsik, Can & Glorioso, "Flatter, Faster", arXiv:2210.16400).

Also holds the model's pure functions (f, gradient, observables of a weight vector), which
the theory and the Monte Carlo both import; they never import each other.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from typing import ClassVar

from . import _validate as v
from ._base import Setup

MODELS = ("two_parameter", "inner_product", "matrix_sensing")


class LabelNoiseMomentum(Setup):
    r"""Label-noise SGD with heavy-ball momentum on a model with a manifold of minimisers.

    Algorithm (spec §1; this is PyTorch's ``SGD(lr=eta, momentum=beta)`` with buffer -v/eta):

        g_k = (f(w_k) - y - delta_0 zeta_k) grad f(w_k)      (zeta ~ N(0, 1/B), fresh each step)
        v_{k+1} = beta v_k - eta g_k,   w_{k+1} = w_k + v_{k+1},   v_0 = 0.

    A batch of ``batch_size`` label-noise draws of the single datum averages the noise, so
    only the effective noise variance ``delta^2 = label_noise^2 / batch_size`` matters.

    Model ``"two_parameter"`` (spec §6a): f(w) = w_1 w_2, one datum y = 1, loss
    L(w) = 1/2 (w_1 w_2 - 1)^2. The manifold of minimisers is w_1 w_2 = 1, parametrised by
    w = (e^s, e^-s); tr Hess L = w_1^2 + w_2^2 = 2 cosh 2s on it; the flattest minimiser is
    w = (1, 1) (s = 0). The run starts on the manifold at s_0 = ``initial_coordinate`` with
    zero velocity.

    Model ``"inner_product"`` (spec §6b): f(u, v) = <u, v> with u, v in R^d (``dim`` = d), one
    datum y = 1, L = 1/2 (<u, v> - 1)^2. Invariants P = ||u||^2, Q = ||v||^2, R = <u, v>
    (R = 1 on the manifold); tr Hess L = P + Q exactly at every point; flattest minimisers:
    u = v, ||u|| = 1. Start: u_0 = e^{s_0} a / sqrt(rho), v_0 = e^{-s_0} b / sqrt(rho) with unit
    vectors of overlap <a, b> = rho = ``initial_overlap`` (so R_0 = 1, P_0 = e^{2 s_0}/rho,
    Q_0 = e^{-2 s_0}/rho). The updates stay in span(a, b): d sets the size of the simulated
    problem, not its law (the invariants test checks exactly this).

    Model ``"matrix_sensing"`` (spec §6c): U in R^{d x d} (full width, ``dim`` = d), X* = U* U*^T
    of rank r (``rank``; U* = the first r columns of a random orthogonal matrix, so
    ||X*||_F^2 = ||X*||_* = r), measurements y_i = <A_i, X*>, i = 1..n (``n_samples``),
    A_i = (G_i + G_i^T) / (2 sqrt(d)) with G_i iid standard Gaussian; f_i(U) = <A_i, U U^T>,
    L = (1/2n) sum_i (f_i - y_i)^2. Label noise on a batch B of ``batch_size`` samples drawn
    without replacement each step (default: all n): g = (1/b) sum_{i in B} (f_i - y_i -
    delta_0 zeta_i) grad f_i. Start: U_0 = the Gauss-Newton projection onto the interpolating
    manifold of ``init_scale`` * G / sqrt(d) (G standard Gaussian), not low rank; the data and
    U_0 come from numpy's generator with ``data_seed`` (`matrix_sensing_problem`).

    Momentum is given either directly (``momentum`` = beta) or through the scaling family
    1 - beta = ``constant`` * ``step_size`` ** ``exponent`` (C, gamma). When ``exponent`` and
    ``constant`` are both set they define beta and a ``momentum`` passed alongside is
    recomputed from them (so ``dataclasses.replace(setup, step_size=...)`` moves along the
    family); set ``exponent=None, constant=None`` to give beta directly.

    Time unit: ``"step"`` (iterations); ``Curve.samples = steps * batch_size``.

    Observables (Monte Carlo: per seed; theory: the expectation over the SGD noise):
        manifold_coordinate: s = 1/2 ln(|w_1| / |w_2|) (inner product: 1/4 ln(P / Q)).
        trace_hessian: tr Hess L(w) = w_1^2 + w_2^2 (inner product: P + Q; exact at every w).
        train_loss: L(w) = 1/2 (w_1 w_2 - 1)^2 (inner product: 1/2 (R - 1)^2; clean label, not
            twice the loss).
        distance_to_flattest: min_{+-} ||w -+ (1, 1)||_2 / ||(1, 1)||_2 (relative distance to
            the nearer flattest minimiser; inner product: min over unit m of
            ||(u, v) - (m, m)|| / sqrt(2) = sqrt((P + Q + 2 - 2 sqrt(P + Q + 2R)) / 2)).
        u_norm_sq, v_norm_sq, inner_product: P, Q, R (``"inner_product"`` model only).
        Matrix sensing: manifold_coordinate = ln(||U||_F^2 / ||X*||_*) (the log excess nuclear
        norm of U U^T over X*, the implicit bias's target); trace_hessian = tr Hess L(U) =
        (1/n) sum_i (4 ||A_i U||_F^2 + 2 d (f_i - y_i) tr A_i); train_loss = L(U) (clean
        labels); distance_to_flattest = ||U U^T - X*||_F / ||X*||_F.

    Attributes:
        model: ``"two_parameter"``.
        step_size: eta > 0 (per step).
        momentum: beta in [0, 1).
        exponent: gamma > 0 of 1 - beta = C eta^gamma, or None.
        constant: C > 0 of 1 - beta = C eta^gamma, or None.
        label_noise: delta_0 >= 0, standard deviation of the label noise of one sample.
        batch_size: B >= 1 noisy draws averaged per step.
        initial_coordinate: s_0, start w_0 = (e^{s_0}, e^{-s_0}), |s_0| <= 5.
        dim: d >= 1 of the inner-product model (1 for the two-parameter model).
        initial_overlap: rho in (0, 1] of the inner-product start (d >= 2 when rho < 1; 1 for
            the two-parameter model).
        rank, n_samples, init_scale, data_seed: matrix sensing only (None otherwise): r in
            [1, d], n in [1, d(d+1)/2 - 1], alpha > 0, a seed >= 0.
    """

    system: ClassVar[str] = "momentum"
    time_unit: ClassVar[str] = "step"
    time_label: ClassVar[str] = "steps"

    model: str
    step_size: float
    momentum: float
    exponent: float | None
    constant: float | None
    label_noise: float
    batch_size: int
    initial_coordinate: float
    dim: int
    initial_overlap: float
    rank: int | None
    n_samples: int | None
    init_scale: float | None
    data_seed: int | None

    def __init__(self, model: str = "two_parameter", step_size: float = 0.01,
                 momentum: float | None = None, exponent: float | None = None,
                 constant: float | None = None, label_noise: float = 1.0,
                 batch_size: int | None = None, initial_coordinate: float = 1.0,
                 dim: int | None = None, initial_overlap: float = 1.0, rank: int | None = None,
                 n_samples: int | None = None, init_scale: float | None = None,
                 data_seed: int | None = None):
        self.model = v.choice("model", model, MODELS)
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
                    f"constant * step_size**exponent = {gap!r} is invalid (momentum = 1 - {gap!r}); "
                    "allowed: (0, 1]"
                )
            self.momentum = 1.0 - gap
        else:
            self.exponent = None
            self.constant = None
            self.momentum = 0.0 if momentum is None else v.real(
                "momentum", momentum, low=0.0, high=1.0, high_open=True)
        self.label_noise = v.nonnegative("label_noise", label_noise)
        self.initial_coordinate = v.real("initial_coordinate", initial_coordinate, low=-5.0, high=5.0)
        sensing = (rank, n_samples, init_scale, data_seed)
        if self.model != "matrix_sensing":
            self.batch_size = v.integer("batch_size", 1 if batch_size is None else batch_size, low=1)
            for name, value in zip(("rank", "n_samples", "init_scale", "data_seed"), sensing):
                if value is not None:
                    raise ValueError(f"{name}={value!r} is invalid for model={self.model!r}; "
                                     "allowed: None (matrix sensing only)")
            self.rank = self.n_samples = self.init_scale = self.data_seed = None
        if self.model == "matrix_sensing":
            self.dim = v.integer("dim", 8 if dim is None else dim, low=2, high=64)
            self.rank = v.integer("rank", 1 if rank is None else rank, low=1, high=self.dim)
            most = self.dim * (self.dim + 1) // 2 - 1
            default_n = min(most, 4 * self.dim * self.rank)
            self.n_samples = v.integer("n_samples", default_n if n_samples is None else n_samples,
                                       low=1, high=most)
            self.batch_size = v.integer("batch_size", self.n_samples if batch_size is None
                                        else batch_size, low=1, high=self.n_samples)
            self.init_scale = v.positive("init_scale", 1.0 if init_scale is None else init_scale)
            self.data_seed = v.integer("data_seed", 0 if data_seed is None else data_seed, low=0)
            if initial_overlap != 1.0:
                raise ValueError(f"initial_overlap={initial_overlap!r} is invalid for "
                                 "model='matrix_sensing'; allowed: 1")
            self.initial_overlap = 1.0
        elif self.model == "two_parameter":
            if dim not in (None, 1):
                raise ValueError(f"dim={dim!r} is invalid for model='two_parameter'; allowed: 1 or None")
            if initial_overlap != 1.0:
                raise ValueError(f"initial_overlap={initial_overlap!r} is invalid for "
                                 "model='two_parameter'; allowed: 1")
            self.dim = 1
            self.initial_overlap = 1.0
        else:
            self.dim = v.integer("dim", 32 if dim is None else dim, low=1, high=1_000_000)
            self.initial_overlap = v.real("initial_overlap", initial_overlap, low=0.0,
                                          low_open=True, high=1.0)
            if self.initial_overlap < 1.0 and self.dim < 2:
                raise ValueError(f"initial_overlap={initial_overlap!r} is invalid with dim=1; "
                                 "allowed: 1 (or dim >= 2)")

    # ------------------------------------------------------------------ derived numbers
    @property
    def one_minus_beta(self) -> float:
        """1 - beta (computed from C eta^gamma when the pair is set, without cancellation)."""
        if self.exponent is not None:
            return self.constant * self.step_size**self.exponent
        return 1.0 - self.momentum

    @property
    def noise_var(self) -> float:
        """Effective label-noise variance delta^2 = label_noise^2 / batch_size."""
        return self.label_noise**2 / self.batch_size

    @property
    def effective_step_size(self) -> float:
        """eta / (1 - beta)."""
        return self.step_size / self.one_minus_beta

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``)."""
        return {
            "system": "momentum",
            "model": self.model,
            "step_size": self.step_size,
            "momentum": self.momentum,
            "exponent": self.exponent,
            "constant": self.constant,
            "label_noise": self.label_noise,
            "batch_size": self.batch_size,
            "initial_coordinate": self.initial_coordinate,
            "dim": self.dim,
            "initial_overlap": self.initial_overlap,
            "rank": self.rank,
            "n_samples": self.n_samples,
            "init_scale": self.init_scale,
            "data_seed": self.data_seed,
        }


# ----------------------------------------------------------------- the two-parameter model
def two_parameter_point(s):
    """The point (e^s, e^-s) of the manifold w_1 w_2 = 1."""
    return jnp.stack([jnp.exp(s), jnp.exp(-s)], axis=-1)


def two_parameter_normal(s):
    """Unit normal (e^-s, e^s) / sqrt(2 cosh 2s) of the manifold at (e^s, e^-s)."""
    n = jnp.stack([jnp.exp(-s), jnp.exp(s)], axis=-1)
    return n / jnp.sqrt(2.0 * jnp.cosh(2.0 * s))[..., None]


def two_parameter_observables(w) -> dict:
    """The four observables of one weight vector w = (w_1, w_2) (see `LabelNoiseMomentum`).

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


OBSERVABLES = ("manifold_coordinate", "trace_hessian", "train_loss", "distance_to_flattest")

INNER_PRODUCT_EXTRA = ("u_norm_sq", "v_norm_sq", "inner_product")


def inner_product_start(setup: LabelNoiseMomentum, dtype=jnp.float64):
    """The start (u_0, v_0) of the inner-product model, shape (2, d): u_0 = e^{s_0} e_1 / sqrt(rho),
    v_0 = e^{-s_0} (rho e_1 + sqrt(1 - rho^2) e_2) / sqrt(rho)."""
    rho, s0, d = setup.initial_overlap, setup.initial_coordinate, setup.dim
    a = np.zeros(d)
    a[0] = 1.0
    b = np.zeros(d)
    b[0] = rho
    if d > 1:
        b[1] = math.sqrt(max(0.0, 1.0 - rho * rho))
    scale = 1.0 / math.sqrt(rho)
    return jnp.asarray(np.stack([math.exp(s0) * scale * a, math.exp(-s0) * scale * b]), dtype=dtype)


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


# ----------------------------------------------------------------- matrix sensing (spec §6c)
def sensing_values(u, a):
    """f_i(U) = <A_i, U U^T> for all i (a: (n, d, d), u: (..., d, d)) -> (..., n)."""
    return jnp.einsum("nab,...ak,...bk->...n", a, u, u)


def sensing_loss(u, a, y):
    """L(U) = (1/2n) sum_i (f_i(U) - y_i)^2."""
    return 0.5 * jnp.mean((sensing_values(u, a) - y) ** 2, axis=-1)


def sensing_observables(u, a, y, x_star) -> dict:
    """The four observables of U (shape (..., d, d)) for matrix sensing (see the Setup)."""
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


def matrix_sensing_problem(setup: LabelNoiseMomentum) -> dict:
    """The data of a matrix-sensing Setup (numpy float64; same seed, same problem): ``a``
    (n, d, d) symmetric sensing matrices, ``y`` (n,), ``x_star`` (d, d) and ``u0`` (d, d) the
    interpolating start (see `LabelNoiseMomentum`)."""
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


def observable_names(setup: LabelNoiseMomentum) -> tuple:
    """The observables a Curve of this Setup carries."""
    return OBSERVABLES + (INNER_PRODUCT_EXTRA if setup.model == "inner_product" else ())



def settling_time(time, values, level) -> float:
    """The time from which ``values`` stays at or below ``level`` up to the end of the grid
    (linear interpolation at the last downward crossing); 0 if never above, inf if above at
    the end. The time-to-target of the theory and of the Monte Carlo (spec §5), made robust
    to the overshoot of under-damped runs: a first crossing would reward a run that swings
    through the flattest point and out again."""
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


# ----------------------------------------------------------------- command line and demo
def build_from_options(*, model: str = "two_parameter", step_size: float = 1e-3,
                       momentum: float = 0.9, exponent: float | None = None,
                       constant: float | None = None, label_noise: float = 0.3,
                       batch_size: int | None = None, initial_coordinate: float = 1.0,
                       dim: int | None = None, initial_overlap: float = 1.0,
                       rank: int | None = None, n_samples: int | None = None,
                       init_scale: float | None = None, data_seed: int | None = None
                       ) -> LabelNoiseMomentum:
    """A `LabelNoiseMomentum` from the CLI's options (``--exponent`` and ``--constant``
    together replace ``--momentum``)."""
    return LabelNoiseMomentum(model=model, step_size=step_size, momentum=momentum,
                              exponent=exponent, constant=constant, label_noise=label_noise,
                              batch_size=batch_size, initial_coordinate=initial_coordinate,
                              dim=dim, initial_overlap=initial_overlap, rank=rank,
                              n_samples=n_samples, init_scale=init_scale, data_seed=data_seed)


def _demo(out_dir, key) -> str:
    from .. import compare, predict, simulate

    setup = LabelNoiseMomentum(step_size=1e-3, exponent=2.0 / 3.0, constant=0.711,
                               label_noise=0.3, initial_coordinate=1.0)
    times = [0, 10, 30, 100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500, 1800, 2100, 2400, 3000]
    theory = predict(setup, 3000, times=times, method="sde", paths=500)
    mc = simulate(setup, 3000, key=key, seeds=500, times=times, progress=False)
    agreement = compare(theory, mc, "manifold_coordinate", t_min=1)
    agreement.plot(out_dir / "momentum.png", observable="manifold_coordinate",
                   title="label-noise SGD + momentum, w1*w2 model, 1-beta = 0.711 eta^(2/3)")
    a = agreement["manifold_coordinate"]
    return (f"momentum: manifold coordinate, reduced SDE (500 paths) vs 500-seed Monte Carlo at "
            f"eta=1e-3, 1-beta=0.711 eta^(2/3): max gap {a.max_sem_gap:.2f} standard errors "
            f"({a.max_abs_gap:.3g} absolute)")


def _register():
    from ..registry import Option, System, register_system

    register_system(System(
        name="momentum",
        setup_type=LabelNoiseMomentum,
        summary="label-noise SGD with heavy-ball momentum near a manifold of minimisers",
        options=(
            Option("model", str, "two_parameter", "the model", MODELS),
            Option("step_size", float, 1e-3, "eta > 0 (per step)"),
            Option("momentum", float, 0.9, "beta in [0, 1) (ignored when --exponent and --constant are set)"),
            Option("exponent", float, None, "gamma > 0 of 1 - beta = C eta^gamma (with --constant)"),
            Option("constant", float, None, "C > 0 of 1 - beta = C eta^gamma (with --exponent)"),
            Option("label_noise", float, 0.3, "label-noise standard deviation delta_0 >= 0"),
            Option("batch_size", int, None, "B >= 1 noisy draws (samples, matrix sensing) per step; "
                   "delta^2 = delta_0^2/B (default 1; matrix sensing: all n)"),
            Option("initial_coordinate", float, 1.0, "s_0: start at w = (e^s0, e^-s0), |s0| <= 5"),
            Option("dim", int, None, "d of the inner-product model (default 32)"),
            Option("initial_overlap", float, 1.0, "rho in (0, 1]: overlap of the inner-product start"),
            Option("rank", int, None, "matrix sensing: rank r of X* (default 1)"),
            Option("n_samples", int, None, "matrix sensing: measurements n (default min(4dr, d(d+1)/2-1))"),
            Option("init_scale", float, None, "matrix sensing: scale alpha of the start before projection (1)"),
            Option("data_seed", int, None, "matrix sensing: seed of A_i, X* and U_0 (0)"),
        ),
        build=build_from_options,
        default_horizon=3000.0,
        time_unit="step",
        methods=("recursion", "flow", "sde", "closure"),  # per model: see predict
        demo=_demo,
    ))


_register()
