r"""Setup for label-noise SGD with heavy-ball momentum near a manifold of minimisers
(spec ``momentum.md``; Cowsik, Can & Glorioso, "Flatter, Faster", arXiv:2210.16400).

Also holds the model's pure functions (f, gradient, observables of a weight vector), which
the theory and the Monte Carlo both import; they never import each other.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from . import _validate as v

MODELS = ("two_parameter",)


class LabelNoiseMomentum(eqx.Module):
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

    Momentum is given either directly (``momentum`` = beta) or through the scaling family
    1 - beta = ``constant`` * ``step_size`` ** ``exponent`` (C, gamma). When ``exponent`` and
    ``constant`` are both set they define beta and a ``momentum`` passed alongside is
    recomputed from them (so ``dataclasses.replace(setup, step_size=...)`` moves along the
    family); set ``exponent=None, constant=None`` to give beta directly.

    Time unit: ``"step"`` (iterations); ``Curve.samples = steps * batch_size``.

    Observables (Monte Carlo: per seed; theory: the expectation over the SGD noise):
        manifold_coordinate: s = 1/2 ln(|w_1| / |w_2|).
        trace_hessian: tr Hess L(w) = w_1^2 + w_2^2 (exact at every w for this model).
        train_loss: L(w) = 1/2 (w_1 w_2 - 1)^2 (clean label; not twice the loss).
        distance_to_flattest: min_{+-} ||w -+ (1, 1)||_2 / ||(1, 1)||_2 (relative distance to
            the nearer flattest minimiser).

    Attributes:
        model: ``"two_parameter"``.
        step_size: eta > 0 (per step).
        momentum: beta in [0, 1).
        exponent: gamma > 0 of 1 - beta = C eta^gamma, or None.
        constant: C > 0 of 1 - beta = C eta^gamma, or None.
        label_noise: delta_0 >= 0, standard deviation of the label noise of one sample.
        batch_size: B >= 1 noisy draws averaged per step.
        initial_coordinate: s_0, start w_0 = (e^{s_0}, e^{-s_0}), |s_0| <= 5.
    """

    model: str
    step_size: float
    momentum: float
    exponent: float | None
    constant: float | None
    label_noise: float
    batch_size: int
    initial_coordinate: float

    def __init__(self, model: str = "two_parameter", step_size: float = 0.01,
                 momentum: float | None = None, exponent: float | None = None,
                 constant: float | None = None, label_noise: float = 1.0, batch_size: int = 1,
                 initial_coordinate: float = 1.0):
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
        self.batch_size = v.integer("batch_size", batch_size, low=1)
        self.initial_coordinate = v.real("initial_coordinate", initial_coordinate, low=-5.0, high=5.0)

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
                       batch_size: int = 1, initial_coordinate: float = 1.0
                       ) -> LabelNoiseMomentum:
    """A `LabelNoiseMomentum` from the CLI's options (``--exponent`` and ``--constant``
    together replace ``--momentum``)."""
    return LabelNoiseMomentum(model=model, step_size=step_size, momentum=momentum,
                              exponent=exponent, constant=constant, label_noise=label_noise,
                              batch_size=batch_size, initial_coordinate=initial_coordinate)


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
            Option("batch_size", int, 1, "B >= 1 noisy draws averaged per step (delta^2 = delta_0^2/B)"),
            Option("initial_coordinate", float, 1.0, "s_0: start at w = (e^s0, e^-s0), |s0| <= 5"),
        ),
        build=build_from_options,
        default_horizon=3000.0,
        time_unit="step",
        methods=("recursion", "flow", "sde", "closure"),
        demo=_demo,
    ))


_register()
