"""Setup for grokking in a two-layer network with a quadratic activation (spec grokking.md §1-2)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from typing import ClassVar

from . import _validate as v
from ._base import Setup


class GrokkingTwoLayer(Setup):
    r"""Full-batch GD on a fixed training set, two-layer network, quadratic single-index target.

    Kumar, Bordelon, Gershman & Pehlevan, "Grokking as the transition from lazy to rich training
    dynamics", ICLR 2024 (arXiv:2310.06110); spec ``grokking.md`` §1.1.

    Data ``x ~ N(0, I_D / D)``; teacher ``beta ~ N(0, I_D)`` (not normalised, |beta|^2/D = 1 +
    O(D^-1/2)); target ``y(x) = (beta . x)^2 / 2``. Network (first layer trained only)

        f(x) = (alpha / N) sum_i phi(w_i . x),   phi(h) = h + (eps/2) h^2,   w_i(0) ~ N(0, I_D),

    loss ``L = (1/P) sum_mu (f(x_mu) - y_mu)^2`` (no 1/2), and full-batch GD with
    ``eta = eta0 N / alpha^2``, i.e. per neuron

        w_i <- w_i - (2 eta0 / alpha) (1/P) sum_mu Delta_mu phi'(h_i,mu) x_mu ,  Delta = f - y.

    With ``centered=True`` the network trained (and tested) is ``f - f_0`` (f at initialisation).

    Time unit: GD steps t (``Curve.time_unit == "step"``); every curve also carries the
    observable ``tau = 2 eta0 t / D`` (spec §1.3), the D-independent clock. ``Curve.samples`` is
    the constant ``P`` (the training set is reused; no fresh samples).

    Observables (``(w_bar, M)`` = (mean, second moment) of the first-layer rows, spec §2.1;
    ``~`` marks the trained predictor's statistics: ``w_bar - w_bar_0``, ``M - M_0`` when centred):
        train_loss: (1/P) sum_mu (f(x_mu) - y_mu)^2 on the training set.
        test_loss: E_x (f(x) - y(x))^2, exact (spec eq. 6) = the sum of the next three.
        variance_error: 1/4 (|beta|^2/D - alpha eps Tr M~ / D)^2.
        misalignment_error: ||alpha eps M~ - beta beta^T||_F^2 / (2 D^2).
        linear_power: alpha^2 |w_bar~|^2 / D.
        T: Tr M / D.   S: beta^T M beta / D^2.   F: ||M||_F^2 / D^2.   ell: |w_bar|^2 / D
            (spec §2.2; always of the raw weights).
        weight_norm: sqrt((1/N) sum_i |w_i|^2) = sqrt(Tr M) (RMS neuron norm; sqrt(D) at N = inf init).
        alignment: kernel-task alignment (CKA) on the training set,
            y_c^T K y_c / (||H K H||_F |y_c|^2), y_c = y - mean(y), H the centring projector,
            K_mu,nu = (x_mu . x_nu)[1 + eps w_bar.(x_mu + x_nu) + eps^2 x_mu^T M x_nu] (the NTK up
            to the factor alpha^2/N, spec eq. 5).
        tau: 2 eta0 t / D.

    Attributes:
        dim: input dimension D >= 1.
        n_samples: training-set size P >= 1.
        width: number of hidden neurons N >= 1, or ``None`` for infinite width (theory only:
            ``w_bar_0 = 0``, ``M_0 = I``).
        output_scale: alpha > 0 (large: lazy; small: rich).
        quadratic_strength: eps > 0, the quadratic part of phi.
        learning_rate: eta0 > 0 (the GD step is eta = eta0 N / alpha^2, spec §1.1).
        centered: train ``f - f_0`` instead of ``f``.
        data_seed: integer >= 0 seeding the training set and the teacher (part of the problem);
            the initialisation is drawn from the key given to ``simulate``.

    References: spec ``grokking.md``; arXiv:2310.06110 eq. 3-6 and App. 8, 11.
    """

    system: ClassVar[str] = "grokking"
    time_unit: ClassVar[str] = "step"
    time_label: ClassVar[str] = "GD steps t (tau = 2 eta0 t / D)"

    dim: int
    n_samples: int
    width: int | None
    output_scale: float
    quadratic_strength: float
    learning_rate: float
    centered: bool
    data_seed: int

    def __init__(self, dim: int = 100, n_samples: int = 550, width: int | None = 500,
                 output_scale: float = 1.0, quadratic_strength: float = 0.25,
                 learning_rate: float = 1.0, centered: bool = False, data_seed: int = 0):
        self.dim = v.integer("dim", dim, low=1)
        self.n_samples = v.integer("n_samples", n_samples, low=1)
        self.width = None if width is None else v.integer("width", width, low=1)
        self.output_scale = v.positive("output_scale", output_scale)
        self.quadratic_strength = v.positive("quadratic_strength", quadratic_strength)
        self.learning_rate = v.positive("learning_rate", learning_rate)
        if not isinstance(centered, (bool, np.bool_)):
            raise ValueError(f"centered={centered!r} is invalid; allowed: True or False")
        self.centered = bool(centered)
        self.data_seed = v.integer("data_seed", data_seed, low=0)

    @property
    def ratio(self) -> float:
        """kappa = P / D."""
        return self.n_samples / self.dim

    def tau(self, steps):
        """tau = 2 eta0 t / D for ``steps`` GD steps (spec §1.3)."""
        return 2.0 * self.learning_rate * np.asarray(steps, dtype=np.float64) / self.dim

    def steps(self, tau):
        """GD steps t = tau D / (2 eta0) (not rounded)."""
        return np.asarray(tau, dtype=np.float64) * self.dim / (2.0 * self.learning_rate)

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``)."""
        return {
            "system": "grokking",
            "dim": self.dim,
            "n_samples": self.n_samples,
            "width": self.width,
            "output_scale": self.output_scale,
            "quadratic_strength": self.quadratic_strength,
            "learning_rate": self.learning_rate,
            "centered": self.centered,
            "data_seed": self.data_seed,
        }


# ----------------------------------------------------------------- the problem's randomness
def draw_training_set(key, dim: int, n_samples: int, dtype=jnp.float64):
    """(inputs (P, D), teacher (D,), labels (P,)): x ~ N(0, I/D), beta ~ N(0, I), y = (beta.x)^2/2.

    Pure JAX (usable inside ``vmap``); drawn in float64 when x64 is on, then cast to ``dtype``.
    """
    k_beta, k_x = jax.random.split(key)
    beta = jax.random.normal(k_beta, (dim,), dtype=jnp.float64)
    x = jax.random.normal(k_x, (n_samples, dim), dtype=jnp.float64) / jnp.sqrt(dim)
    y = 0.5 * (x @ beta) ** 2
    return x.astype(dtype), beta.astype(dtype), y.astype(dtype)


def training_set(setup: GrokkingTwoLayer, dtype=jnp.float64):
    """The setup's training set and teacher, from ``data_seed`` (the same for theory and MC)."""
    return draw_training_set(jax.random.key(setup.data_seed), setup.dim, setup.n_samples, dtype)


def initial_weights(setup: GrokkingTwoLayer, key, dtype=jnp.float64):
    """First-layer weights W(0) (N, D), i.i.d. N(0, 1), for one initialisation key.

    ``simulate(setup, ..., key=k, seeds=S)`` initialises seed s with
    ``initial_weights(setup, jax.random.split(k, S)[s])``, so ``predict(..., init_key=...)`` with
    the same key follows that very network.
    """
    if setup.width is None:
        raise ValueError("width=None (infinite width) has no finite weight matrix; allowed: an "
                         "integer >= 1 for a finite network")
    w = jax.random.normal(key, (setup.width, setup.dim), dtype=jnp.float64)
    return w.astype(dtype)


# ----------------------------------------------------------------- command line and demo
def kernel_alignment(k, y):
    """Kernel-task alignment (CKA) y_c^T K y_c / (||H K H||_F |y_c|^2), y_c = y - mean(y),
    H = I - 11^T/P; shared by the theory and the Monte Carlo (the `alignment` observable)."""
    yc = y - jnp.mean(y)
    kc = k - jnp.mean(k, axis=0, keepdims=True)
    kc = kc - jnp.mean(kc, axis=1, keepdims=True)
    return (yc @ k @ yc) / (jnp.sqrt(jnp.sum(kc * kc)) * (yc @ yc))


def build_from_options(*, dim: int = 100, n_samples: int = 550, width: int = 500,
                       output_scale: float = 1.0, quadratic_strength: float = 0.25,
                       learning_rate: float = 1.0, centered: str = "no",
                       data_seed: int = 0) -> GrokkingTwoLayer:
    """A `GrokkingTwoLayer` from the CLI's options (``width <= 0`` means infinite width)."""
    v.choice("centered", centered, ("yes", "no"))
    return GrokkingTwoLayer(dim=dim, n_samples=n_samples, width=None if width <= 0 else width,
                            output_scale=output_scale, quadratic_strength=quadratic_strength,
                            learning_rate=learning_rate, centered=centered == "yes",
                            data_seed=data_seed)


def _demo(out_dir, key) -> str:
    from .. import compare, predict, simulate

    setup = GrokkingTwoLayer(dim=20, n_samples=60, width=1024, output_scale=1.0,
                             quadratic_strength=0.5, learning_rate=1.0, data_seed=2)
    horizon = 400
    mc = simulate(setup, horizon, key=key, seeds=8, progress=False)
    theory = predict(setup, horizon, method="reduced", init_key=jax.random.split(key, 8)[0])
    # the exact reduced map follows seed 0 of the Monte Carlo; the mean-init prediction
    # (init_key=None) is compared to the seed average.
    exact_gap = float(np.max(np.abs(theory["test_loss"] - mc["test_loss"][0])))
    mean_pred = predict(setup, horizon, method="reduced")
    agreement = compare(mean_pred, mc, ("train_loss", "test_loss"))
    agreement.plot(out_dir / "grokking.png", observable="test_loss",
                   title="grokking: D=20, P=60, N=1024, alpha=1, eps=1/2")
    a = agreement["test_loss"]
    return (f"grokking: reduced (w_bar, M) map vs full network, same init: max |gap| "
            f"{exact_gap:.1e} (float32 MC); N=inf-init theory vs 8-seed MC (N=1024) test loss: max gap "
            f"{a.max_sem_gap:.2f} standard errors ({a.max_rel_gap:.2%} relative)")


def _register():
    from ..registry import Option, System, register_system

    register_system(System(
        name="grokking",
        setup_type=GrokkingTwoLayer,
        summary="grokking as lazy-to-rich: two-layer quadratic net, full-batch GD (Kumar et al. 2024)",
        options=(
            Option("dim", int, 100, "input dimension D"),
            Option("n_samples", int, 550, "training-set size P"),
            Option("width", int, 500, "hidden neurons N (<= 0: infinite width, theory only)"),
            Option("output_scale", float, 1.0, "alpha > 0 (large: lazy, small: rich)"),
            Option("quadratic_strength", float, 0.25, "eps > 0 in phi(h) = h + eps h^2/2"),
            Option("learning_rate", float, 1.0, "eta0 > 0 (GD step eta0 N/alpha^2; tau = 2 eta0 t/D)"),
            Option("centered", str, "no", "train f - f0", ("yes", "no")),
            Option("data_seed", int, 0, "seed of the training set and teacher"),
        ),
        build=build_from_options,
        default_horizon=5000.0,
        time_unit="step",
        methods=("reduced", "lazy", "dmft"),
        demo=_demo,
    ))


_register()
