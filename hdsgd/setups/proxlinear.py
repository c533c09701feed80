"""Setup for mini-batched prox-linear rank-one matrix sensing (data only).

The mathematics is in ``docs/proxlinear.md``.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar

import numpy as np

from . import _validate as v
from ._base import Setup

#: a prediction or a Monte Carlo run is diverged once E^2 passes this multiple of (1 + E_0^2).
DIVERGENCE_FACTOR = 1e6

#: the largest dimension `random_initial_state` draws a start in: it draws u and w in full
#: (12 bytes an entry), and at 10^9 that ran out of memory
MAX_START_DIM = 10**8


def error_sq_of_state(state):
    """E^2 = ||mu nu^T - mu* nu*^T||_F^2 of a state (alpha1, beta1, alpha2, beta2).

    Written as (a1 a2 - 1)^2 + a1^2 b2^2 + b1^2 a2^2 + b1^2 b2^2, which equals
    (a1^2 + b1^2)(a2^2 + b2^2) - 2 a1 a2 + 1 without its cancellation near the truth
    (docs/proxlinear.md, "The system"). ``state`` unpacks into the four components (numbers,
    numpy or JAX arrays of one shape; a (4, ...) array), and the result has their type.
    Non-finite components (a diverged state) give a non-finite E^2. Traceable (jit, grad).

    Raises:
        ValueError: unless ``state`` is four real numbers or real arrays of one shape.
    """
    a1, b1, a2, b2 = _state_parts(state)
    return (a1 * a2 - 1.0) ** 2 + a1**2 * b2**2 + b1**2 * a2**2 + b1**2 * b2**2


_STATE = ("four components (alpha1, beta1, alpha2, beta2): real numbers or real arrays of "
          "one shape, or a (4, ...) array")


def _state_parts(state) -> tuple:
    """The four components of a state for `error_sq_of_state` (lists become numpy arrays).

    Python numbers must be real, of magnitude <= 1e30 unless not finite (their fourth powers
    then stay finite: a Python float overflowed with an OverflowError). Arrays (numpy, JAX,
    tracers) are checked for their dtype and shapes only: a tracer has no values, and a
    diverged state is inf.
    """
    try:
        parts = None if isinstance(state, (str, bytes)) else tuple(state)
    except TypeError:
        parts = None
    if parts is None or len(parts) != 4:
        v._fail("state", _Shown(state), _STATE)
    out = []
    for c in parts:
        if type(c) in (int, float):
            if abs(c) > v.MAX_MAGNITUDE and not (isinstance(c, float) and math.isinf(c)):
                v._fail("state", _Shown(state), f"{_STATE}, of magnitude <= "
                                                f"{v.MAX_MAGNITUDE:g}")
            out.append(c)
            continue
        if isinstance(c, (list, tuple)):
            try:
                c = np.asarray(c, dtype=np.float64)
            except (TypeError, ValueError):
                v._fail("state", _Shown(state), _STATE)
        try:
            real = np.dtype(c.dtype).kind in "iuf"
        except (AttributeError, TypeError):  # not an array, or a JAX key
            real = False
        if not real:
            v._fail("state", _Shown(state), _STATE)
        out.append(c)
    try:
        np.broadcast_shapes(*(np.shape(c) for c in out))
    except ValueError:
        v._fail("state", _Shown(state), f"{_STATE} (got shapes {[np.shape(c) for c in out]})")
    return tuple(out)


class _Shown:
    """A value in an error message on one line (an array by its type and shape)."""

    def __init__(self, value):
        self.value = value

    def __repr__(self):
        shown = repr(self.value)
        if len(shown) <= 80 and "\n" not in shown:
            return shown
        return f"<{type(self.value).__name__} of shape {getattr(self.value, 'shape', '?')}>"


def _check_state(state) -> tuple[float, float, float, float]:
    arr = v.real_array("initial_state", state)
    if arr.shape != (4,):
        raise ValueError(f"initial_state={state!r} is invalid; allowed: four numbers "
                         "(alpha_left, beta_left, alpha_right, beta_right)")
    a1, b1, a2, b2 = (float(x) for x in arr)
    if b1 < 0 or b2 < 0:
        raise ValueError(f"initial_state={state!r} is invalid; allowed: beta_left >= 0 and "
                         "beta_right >= 0 (they are norms)")
    if a1**2 + b1**2 == 0 or a2**2 + b2**2 == 0:
        raise ValueError(f"initial_state={state!r} is invalid; allowed: non-zero factors "
                         "(alpha^2 + beta^2 > 0 on each side; zero is a saddle of the method)")
    return a1, b1, a2, b2


def random_initial_state(dim_left: int, dim_right: int, error_sq: float, key
                         ) -> tuple[float, float, float, float]:
    """A random start at error ``error_sq``: mu0 = mu* + tau u, nu0 = nu* + tau w.

    u and w are uniform on the unit spheres of R^{d1} and R^{d2} (drawn with the
    ``jax.random`` key ``key``) and tau > 0 is chosen so that ||mu0 nu0^T - mu* nu*^T||_F^2
    equals ``error_sq`` exactly. Returns (alpha1, beta1, alpha2, beta2).

    Raises:
        ValueError: unless 3 <= d1, d2 <= `MAX_START_DIM` (10^8: u and w are drawn in full),
            0 < error_sq < 1 and ``key`` is one JAX PRNG key.
    """
    import jax
    import scipy.optimize

    d1 = v.integer("dim_left", dim_left, low=3, high=MAX_START_DIM)
    d2 = v.integer("dim_right", dim_right, low=3, high=MAX_START_DIM)
    e2 = v.real("error_sq", error_sq, low=0.0, low_open=True, high=1.0, high_open=True)
    k1, k2 = jax.random.split(v.prng_key("key", key))
    u = np.asarray(jax.random.normal(k1, (d1,)), dtype=np.float64)
    w = np.asarray(jax.random.normal(k2, (d2,)), dtype=np.float64)
    c1, c2 = u[0] / np.linalg.norm(u), w[0] / np.linalg.norm(w)

    def state(tau):
        return (1.0 + tau * c1, tau * np.sqrt(1.0 - c1**2),
                1.0 + tau * c2, tau * np.sqrt(1.0 - c2**2))

    # E^2(tau) is increasing near 0; find the first tau where it reaches error_sq.
    taus = np.linspace(0.0, 2.0, 2001)
    errs = error_sq_of_state(state(taus))  # an array over taus
    above = np.nonzero(errs >= e2)[0]
    if above.size == 0:  # pragma: no cover - error_sq < 1 is always reached
        raise ValueError(f"error_sq={error_sq} could not be reached by a random start")
    j = int(above[0])
    tau = scipy.optimize.brentq(lambda t: float(error_sq_of_state(state(t))) - e2,
                                taus[j - 1], taus[j], xtol=1e-15)
    return tuple(float(s) for s in state(tau))


class ProxLinearSensing(Setup):
    r"""Mini-batched prox-linear (damped Gauss-Newton) iterations for rank-one matrix sensing.

    Measurements y = <a, mu*><b, nu*> + eps with a ~ N(0, I_{d1}), b ~ N(0, I_{d2}),
    eps ~ N(0, sigma^2) and ||mu*|| = ||nu*|| = 1. Each iteration draws a fresh batch of m
    samples and takes the joint prox-linear step (docs/proxlinear.md, "The system")

        (mu', nu') = argmin (1/m) sum_i (r_i - z_i <a_i, mu - mu_t> - x_i <b_i, nu - nu_t>)^2
                     + (1/eta) (||mu - mu_t||^2 + ||nu - nu_t||^2),

    with x_i = <a_i, mu_t>, z_i = <b_i, nu_t>, r_i = y_i - x_i z_i; in closed form
    Delta = J^T (J J^T + (m/eta) I)^{-1} r with Jacobian rows [z_i a_i, x_i b_i].

    Time unit: ``"step"`` (iterations); ``Curve.samples = batch_size * step``.

    Observables (state s_t = (alpha1, beta1, alpha2, beta2)):
        error_sq: E_t^2 = ||mu_t nu_t^T - mu* nu*^T||_F^2.
        alpha_left: alpha1 = <mu_t, mu*>.
        beta_left: beta1 = ||mu_t - <mu_t, mu*> mu*||.
        alpha_right: alpha2 = <nu_t, nu*>.
        beta_right: beta2 = ||nu_t - <nu_t, nu*> nu*||.

    Attributes:
        dim_left: d1 >= 3, the dimension of mu.
        dim_right: d2 >= 3, the dimension of nu.
        batch_size: m >= 1, fresh samples per iteration.
        step_size: eta > 0, the prox step (the ridge of the step is m/eta). Small batches
            (m << d) behave alike at fixed eta_bar = eta sqrt(d1 d2) / m (the derived
            coordinate ``eta_bar``, which `replace` and `hdsgd.tune` accept).
        noise_std: sigma >= 0, the standard deviation of the measurement noise.
        initial_state: (alpha1, beta1, alpha2, beta2) at t = 0 (the overlaps of mu_0 and nu_0
            with mu* and nu*, and the norms of their orthogonal parts), betas >= 0, non-zero
            factors. ``ProxLinearSensing.random_start`` draws one at a given error.

    References: docs/proxlinear.md; Lou, Verchand, Pananjady, arXiv:2402.01599
    (Math. Program. 2025).
    """

    system: ClassVar[str] = "proxlinear"
    grid_checks: ClassVar[dict] = {
        "batch_size": functools.partial(v.integer, "batch_size", low=1),
        "step_size": functools.partial(v.positive, "step_size"),
        "noise_std": functools.partial(v.nonnegative, "noise_std"),
    }
    time_unit: ClassVar[str] = "step"
    time_label: ClassVar[str] = "steps"
    #: eta_bar = eta sqrt(d1 d2) / m, the small-batch step (see `_set_eta_bar`).
    coordinates: ClassVar[tuple[str, ...]] = ("eta_bar",)

    dim_left: int
    dim_right: int
    batch_size: int
    step_size: float
    noise_std: float
    initial_state: tuple[float, float, float, float]

    def __init__(self, dim_left: int = 500, dim_right: int = 500, batch_size: int = 500,
                 step_size: float = 1.0, noise_std: float = 0.1,
                 initial_state: tuple[float, float, float, float] = (0.7, 0.6, 0.8, 0.5)):
        self.dim_left = v.integer("dim_left", dim_left, low=3)
        self.dim_right = v.integer("dim_right", dim_right, low=3)
        check = self.grid_checks
        self.batch_size = check["batch_size"](batch_size)
        self.step_size = check["step_size"](step_size)
        self.noise_std = check["noise_std"](noise_std)
        self.initial_state = _check_state(initial_state)

    @classmethod
    def random_start(cls, *, initial_error_sq: float, key, dim_left: int = 500,
                     dim_right: int = 500, **fields) -> "ProxLinearSensing":
        """A Setup whose start mu0 = mu* + tau u, nu0 = nu* + tau w (u, w uniform on the
        spheres, from ``key``) has error ``initial_error_sq`` in (0, 1); see
        `random_initial_state`. Other fields by keyword."""
        state = random_initial_state(dim_left, dim_right, initial_error_sq,
                                     v.prng_key("key", key))
        return cls(dim_left=dim_left, dim_right=dim_right, initial_state=state, **fields)

    @property
    def initial_error_sq(self) -> float:
        """E_0^2 of the initial state."""
        return float(error_sq_of_state(self.initial_state))

    @property
    def blow_up_bound(self) -> float:
        """10^6 (1 + E_0^2): past it a prediction or a Monte Carlo run counts as diverged."""
        return DIVERGENCE_FACTOR * (1.0 + self.initial_error_sq)

    @property
    def eta_bar(self) -> float:
        """eta_bar = eta sqrt(d1 d2) / m: the small-batch step (eta d / m if d1 = d2)."""
        return self.step_size * math.sqrt(self.dim_left * self.dim_right) / self.batch_size

    def _set_eta_bar(self, value) -> dict:
        """The field change that sets eta_bar: step_size = eta_bar m / sqrt(d1 d2)."""
        eta_bar = v.positive("eta_bar", value)
        return {"step_size": v.positive("step_size", eta_bar * self.batch_size
                                        / math.sqrt(self.dim_left * self.dim_right))}

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``), with ``initial_error_sq``."""
        return {**super().fields(), "initial_error_sq": self.initial_error_sq}
