"""Setup for grokking in a two-layer network with a quadratic activation, and the pure model
pieces theory and Monte Carlo share (the training set, the initial weights, the test-loss
decomposition, the kernel-task alignment).

The mathematics is in ``docs/grokking.md``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from .._precision import scoped_x64
from . import _validate as v
from ._base import Setup


#: statistics of the first-layer weights (and the linear power alpha^2 |w_bar|^2 / D): the
#: infinite-width-initialisation theory gets them at a finite width N only up to O(1/N) (at
#: t = 0 already: |w_bar_0|^2 / D = 1/N, not 0), so figures and `compare` leave them out unless
#: asked for by name.
WEIGHT_STATISTICS = ("T", "S", "F", "ell", "weight_norm", "alignment", "linear_power")


class GrokkingTwoLayer(Setup):
    r"""Full-batch GD on a fixed training set, two-layer network, quadratic single-index target.

    Kumar, Bordelon, Gershman & Pehlevan, "Grokking as the transition from lazy to rich training
    dynamics", ICLR 2024 (arXiv:2310.06110); docs/grokking.md, "The system".

    Data ``x ~ N(0, I_D / D)``; teacher ``beta ~ N(0, I_D)`` (not normalised, |beta|^2/D = 1 +
    O(D^-1/2)); target ``y(x) = (beta . x)^2 / 2``. Network (first layer trained only)

        f(x) = (alpha / N) sum_i phi(w_i . x),   phi(h) = h + (eps/2) h^2,   w_i(0) ~ N(0, I_D),

    loss ``L = (1/P) sum_mu (f(x_mu) - y_mu)^2`` (no 1/2), and full-batch GD with
    ``eta = eta0 N / alpha^2`` (eta0 = ``step_size``), i.e. per neuron

        w_i <- w_i - (2 eta0 / alpha) (1/P) sum_mu Delta_mu phi'(h_i,mu) x_mu ,  Delta = f - y.

    With ``centered=True`` the network trained (and tested) is ``f - f_0`` (f at initialisation).

    Time unit: GD steps t (``Curve.time_unit == "step"``); every curve also carries the
    observable ``tau = 2 eta0 t / D``, the D-independent clock. ``Curve.samples`` is the
    constant ``P`` (the training set is reused; no fresh samples).

    Observables (``(w_bar, M)`` = (mean, second moment) of the first-layer rows; ``~`` marks
    the trained predictor's statistics: ``w_bar - w_bar_0``, ``M - M_0`` when centred):
        train_loss: (1/P) sum_mu (f(x_mu) - y_mu)^2 on the training set.
        test_loss: E_x (f(x) - y(x))^2, exact = the sum of the next three (`loss_decomposition`).
        variance_error: 1/4 (|beta|^2/D - alpha eps Tr M~ / D)^2.
        misalignment_error: ||alpha eps M~ - beta beta^T||_F^2 / (2 D^2).
        linear_power: alpha^2 |w_bar~|^2 / D.
        T: Tr M / D.   S: beta^T M beta / D^2.   F: ||M||_F^2 / D^2.   ell: |w_bar|^2 / D
            (always of the raw weights).
        weight_norm: sqrt((1/N) sum_i |w_i|^2) = sqrt(Tr M) (RMS neuron norm; sqrt(D) at N = inf init).
        alignment: kernel-task alignment (CKA) on the training set, `kernel_alignment` of
            K_mu,nu = (x_mu . x_nu)[1 + eps w_bar.(x_mu + x_nu) + eps^2 x_mu^T M x_nu] (the NTK up
            to the factor alpha^2/N).
        tau: 2 eta0 t / D.

    Attributes:
        dim: input dimension D >= 1.
        n_samples: training-set size P >= 2 (kappa = P / D; the kernel alignment centres over
            the training set, so one sample has none).
        width: number of hidden neurons N >= 1, or None for infinite width (theory only:
            the initial law w_bar_0 = 0, M_0 = I).
        output_scale: alpha > 0 (large: lazy; small: rich).
        quadratic_strength: eps > 0, the quadratic part of phi(h) = h + eps h^2 / 2.
        step_size: eta0 > 0; the GD step is eta = eta0 N / alpha^2 and tau = 2 eta0 t / D.
            GD is linearly unstable at initialisation above `hdsgd.grokking.critical_step_size`.
        centered: train f - f_0 (the network minus its initial function) instead of f.
        data_seed: integer >= 0 seeding the training set and the teacher (part of the problem);
            the initialisation is drawn from the key given to ``simulate``.

    References: docs/grokking.md; arXiv:2310.06110 eq. 3-6 and App. 8, 11.
    """

    system: ClassVar[str] = "grokking"
    time_unit: ClassVar[str] = "step"
    time_label: ClassVar[str] = "GD steps t (tau = 2 eta0 t / D)"

    dim: int
    n_samples: int
    width: int | None
    output_scale: float
    quadratic_strength: float
    step_size: float
    centered: bool
    data_seed: int

    def __init__(self, dim: int = 20, n_samples: int = 60, width: int | None = 1024,
                 output_scale: float = 1.0, quadratic_strength: float = 0.5,
                 step_size: float = 1.0, centered: bool = False, data_seed: int = 2):
        self.dim = v.integer("dim", dim, low=1)
        self.n_samples = v.integer("n_samples", n_samples, low=2)
        self.width = None if width is None else v.integer("width", width, low=1)
        # the training set (P x D) and W(0) (N x D) are single arrays: beyond a 32-bit index
        # their draw aborted Python or ran out of memory inside JAX
        if self.n_samples * self.dim > v.MAX_INDEX:
            raise ValueError(f"n_samples={self.n_samples!r} is invalid; allowed: n_samples * dim "
                             f"<= {v.MAX_INDEX} (dim={self.dim}; the training set is one "
                             "n_samples x dim array)")
        if self.width is not None and self.width * self.dim > v.MAX_INDEX:
            raise ValueError(f"width={self.width!r} is invalid; allowed: width * dim <= "
                             f"{v.MAX_INDEX} (dim={self.dim}; W(0) is one width x dim array)")
        self.output_scale = v.positive("output_scale", output_scale)
        self.quadratic_strength = v.positive("quadratic_strength", quadratic_strength)
        self.step_size = v.positive("step_size", step_size)
        self.centered = v.flag("centered", centered)
        self.data_seed = v.seed("data_seed", data_seed)

    @property
    def ratio(self) -> float:
        """kappa = P / D."""
        return self.n_samples / self.dim

    def tau(self, steps):
        """tau = 2 eta0 t / D for ``steps`` GD steps (docs/grokking.md, "The system")."""
        return 2.0 * self.step_size * np.asarray(steps, dtype=np.float64) / self.dim

    def steps(self, tau):
        """GD steps t = tau D / (2 eta0) (not rounded)."""
        return np.asarray(tau, dtype=np.float64) * self.dim / (2.0 * self.step_size)


# ----------------------------------------------------------------- the problem's randomness
def draw_training_set(key, dim: int, n_samples: int, dtype=jnp.float64):
    """(inputs (P, D), teacher (D,), labels (P,)): x ~ N(0, I/D), beta ~ N(0, I), y = (beta.x)^2/2.

    Pure JAX (usable inside ``vmap``; call it inside the 64-bit scope): drawn in float64, then
    cast to ``dtype``.
    """
    k_beta, k_x = jax.random.split(key)
    beta = jax.random.normal(k_beta, (dim,), dtype=jnp.float64)
    x = jax.random.normal(k_x, (n_samples, dim), dtype=jnp.float64) / jnp.sqrt(dim)
    y = 0.5 * (x @ beta) ** 2
    return x.astype(dtype), beta.astype(dtype), y.astype(dtype)


def draw_weights(key, width: int, dim: int, dtype=jnp.float64):
    """First-layer weights W(0) (N, D), i.i.d. N(0, 1), for one key (pure JAX, vmap-able)."""
    return jax.random.normal(key, (width, dim), dtype=jnp.float64).astype(dtype)


# ----------------------------------------------------------------- argument checks
def check_setup(setup, *, square: str | None = None) -> GrokkingTwoLayer:
    """``setup`` is a `GrokkingTwoLayer` (whose training set, one P x D array, fits a 32-bit
    index: its ``__init__`` checks that); with ``square`` (the caller's name) its D x D and
    P x P matrices must fit too."""
    v.instance_of("setup", setup, GrokkingTwoLayer)
    d, p = setup.dim, setup.n_samples
    if square is not None:
        for name, n in (("dim", d), ("n_samples", p)):
            if n * n > v.MAX_INDEX:
                raise ValueError(f"{name}={n!r} is invalid; allowed: {name} <= "
                                 f"{math.isqrt(v.MAX_INDEX)} for {square} (its {name} x {name} "
                                 "matrices must fit a 32-bit index)")
    return setup


def check_finite_width(setup: GrokkingTwoLayer) -> GrokkingTwoLayer:
    """A finite network (W(0), width x dim, fits a 32-bit index: ``__init__`` checks that):
    for `initial_weights`."""
    if setup.width is None:
        raise ValueError("width=None is invalid; allowed: an integer >= 1 (infinite width has no "
                         "finite weight matrix)")
    return setup


@scoped_x64
def training_set(setup: GrokkingTwoLayer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The setup's training set and teacher (x (P, D), beta (D,), y (P,)), float64 numpy, from
    ``data_seed``: the same for theory and Monte Carlo.

    Raises:
        ValueError: ``setup`` is not a `GrokkingTwoLayer`, or n_samples * dim > 2^31 - 1.
    """
    check_setup(setup)
    x, beta, y = draw_training_set(jax.random.key(setup.data_seed), setup.dim, setup.n_samples)
    return np.asarray(x), np.asarray(beta), np.asarray(y)


@scoped_x64
def initial_weights(setup: GrokkingTwoLayer, key) -> np.ndarray:
    """First-layer weights W(0) (N, D), i.i.d. N(0, 1), float64 numpy, for one initialisation key.

    ``simulate(setup, ..., key=k, seeds=S)`` initialises seed s with
    ``initial_weights(setup, jax.random.split(k, S)[s])``, so ``predict(..., init_key=...)`` with
    the same key follows that very network.

    Raises:
        ValueError: ``setup`` is not a `GrokkingTwoLayer` of finite ``width`` with
            width * dim <= 2^31 - 1, or ``key`` is not a single JAX PRNG key.
    """
    check_finite_width(check_setup(setup))
    v.prng_key("key", key)
    return np.asarray(draw_weights(key, setup.width, setup.dim))


# ----------------------------------------------------------------- shared observables
def loss_decomposition(alpha, eps, teacher_norm, trace, overlap, frobenius, linear) -> dict:
    r"""The exact test loss and its three parts from the order parameters of the trained predictor
    (docs/grokking.md, "Observables"):

        variance_error     = 1/4 (|beta|^2/D - alpha eps T~)^2
        misalignment_error = 1/2 (alpha^2 eps^2 F~ - 2 alpha eps S~ + (|beta|^2/D)^2)
        linear_power       = alpha^2 ell~
        test_loss          = their sum,

    with ``teacher_norm`` = |beta|^2/D, ``trace`` T~ = Tr M~/D, ``overlap`` S~ = beta^T M~ beta/D^2,
    ``frobenius`` F~ = ||M~||_F^2/D^2 and ``linear`` ell~ = |w_bar~|^2/D. Plain arithmetic: numpy
    and JAX arrays alike (broadcast together), jit- and grad-able. Every method (reduced D- and
    P-space, DMFT, kernel flow) and the Monte Carlo use this arithmetic (`loss_terms`, unchecked).

    Raises:
        ValueError: an argument is not real, or its shape does not broadcast with the others;
            or, where concrete (a traced value is not checked), not finite, or out of range:
            alpha, eps > 0; teacher_norm, frobenius, linear >= 0.
    """
    args, shapes = [], []
    for name, value in (("alpha", alpha), ("eps", eps), ("teacher_norm", teacher_norm),
                        ("trace", trace), ("overlap", overlap), ("frobenius", frobenius),
                        ("linear", linear)):
        value = _check_loss_argument(name, value)
        args.append(value)
        shapes.append(np.shape(value))
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"{name}={v._short(value)!r} is invalid; allowed: a shape that "
                             f"broadcasts with the arguments before it, {shapes[:-1]}") from None
    return loss_terms(*args)


#: the lower end of each `loss_decomposition` argument: (low, open); None: any real number
_LOSS_RANGES = {"alpha": (0.0, True), "eps": (0.0, True), "teacher_norm": (0.0, False),
                "trace": None, "overlap": None, "frobenius": (0.0, False), "linear": (0.0, False)}


def _check_loss_argument(name: str, value):
    """One `loss_decomposition` argument, its values checked unless traced; a list becomes a
    numpy array, any other value is passed on as it is."""
    dtype = getattr(value, "dtype", None)
    if isinstance(value, jax.core.Tracer):  # under jit/grad/vmap: only its kind is known
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer)):
            v._fail(name, value, "a real number or an array of real numbers")
        return value
    if (dtype is not None and np.dtype(dtype).kind not in "fiu") or np.iscomplexobj(value):
        v._fail(name, v._short(value), "a real number or an array of real numbers")
    low, low_open = _LOSS_RANGES[name] or (None, False)
    if np.ndim(value) == 0:
        v.real(name, value, low=low, low_open=low_open)
        return value
    checked = v.real_array(name, value, low=low, low_open=low_open, ndim=np.ndim(value),
                           nonempty=False)
    return value if dtype is not None else checked


def loss_terms(alpha, eps, teacher_norm, trace, overlap, frobenius, linear) -> dict:
    """`loss_decomposition` without its checks: the methods' and the Monte Carlo's own call
    (traced, or on curves that may have diverged to NaN)."""
    variance = 0.25 * (teacher_norm - alpha * eps * trace) ** 2
    misalignment = 0.5 * (alpha**2 * eps**2 * frobenius - 2.0 * alpha * eps * overlap
                          + teacher_norm**2)
    linear_power = alpha**2 * linear
    return {"test_loss": variance + misalignment + linear_power, "variance_error": variance,
            "misalignment_error": misalignment, "linear_power": linear_power}


def kernel_alignment(k, y):
    """Kernel-task alignment (CKA) y_c^T K y_c / (||H K H||_F |y_c|^2), y_c = y - mean(y),
    H = I - 11^T/P; shared by the theory and the Monte Carlo (the `alignment` observable)."""
    yc = y - jnp.mean(y)
    kc = k - jnp.mean(k, axis=0, keepdims=True)
    kc = kc - jnp.mean(kc, axis=1, keepdims=True)
    return (yc @ k @ yc) / (jnp.sqrt(jnp.sum(kc * kc)) * (yc @ yc))
