"""Setup for mini-batched prox-linear rank-one matrix sensing (spec proxlinear.md §1-2)."""

from __future__ import annotations

import equinox as eqx
import numpy as np

from typing import ClassVar

from . import _validate as v
from ._base import Setup


def error_sq_of_state(state) -> float:
    """E^2 = ||mu nu^T - mu* nu*^T||_F^2 of a state (alpha1, beta1, alpha2, beta2) (spec §3.1).

    Written as (a1 a2 - 1)^2 + a1^2 b2^2 + b1^2 a2^2 + b1^2 b2^2, which equals
    (a1^2 + b1^2)(a2^2 + b2^2) - 2 a1 a2 + 1 without its cancellation near the truth.
    """
    a1, b1, a2, b2 = (np.asarray(s, dtype=np.float64) for s in state)
    return (a1 * a2 - 1.0) ** 2 + a1**2 * b2**2 + b1**2 * a2**2 + b1**2 * b2**2


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
    """
    import jax
    import scipy.optimize

    d1 = v.integer("dim_left", dim_left, low=3)
    d2 = v.integer("dim_right", dim_right, low=3)
    e2 = v.real("error_sq", error_sq, low=0.0, low_open=True, high=1.0, high_open=True)
    k1, k2 = jax.random.split(key)
    u = np.asarray(jax.random.normal(k1, (d1,)), dtype=np.float64)
    w = np.asarray(jax.random.normal(k2, (d2,)), dtype=np.float64)
    c1, c2 = u[0] / np.linalg.norm(u), w[0] / np.linalg.norm(w)

    def state(tau):
        return (1.0 + tau * c1, tau * np.sqrt(1.0 - c1**2), 1.0 + tau * c2, tau * np.sqrt(1.0 - c2**2))

    # E^2(tau) is increasing near 0; find the first tau where it reaches error_sq.
    taus = np.linspace(0.0, 2.0, 2001)
    errs = error_sq_of_state(state(taus))
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
    samples and takes the joint prox-linear step (spec §2)

        (mu', nu') = argmin (1/m) sum_i (r_i - z_i <a_i, mu - mu_t> - x_i <b_i, nu - nu_t>)^2
                     + (1/eta) (||mu - mu_t||^2 + ||nu - nu_t||^2),

    with x_i = <a_i, mu_t>, z_i = <b_i, nu_t>, r_i = y_i - x_i z_i; in closed form
    Delta = J^T (J J^T + (m/eta) I)^{-1} r with Jacobian rows [z_i a_i, x_i b_i].

    Time unit: ``"step"`` (iterations); ``Curve.samples = batch_size * step``.

    Observables (state s_t = (alpha1, beta1, alpha2, beta2), spec §3.1):
        error_sq: E_t^2 = ||mu_t nu_t^T - mu* nu*^T||_F^2.
        alpha_left: alpha1 = <mu_t, mu*>.
        beta_left: beta1 = ||mu_t - <mu_t, mu*> mu*||.
        alpha_right: alpha2 = <nu_t, nu*>.
        beta_right: beta2 = ||nu_t - <nu_t, nu*> nu*||.

    Attributes:
        dim_left: d1 >= 3, the dimension of mu.
        dim_right: d2 >= 3, the dimension of nu.
        batch_size: m >= 1, fresh samples per iteration.
        step_size: eta > 0, the prox step in the normalisation of spec §2 (ridge m/eta).
            Small batches (m << d) behave alike at fixed eta_bar = eta d / m (spec §3.3).
        noise_std: sigma >= 0, measurement noise.
        initial_state: (alpha1, beta1, alpha2, beta2) at t = 0, betas >= 0, non-zero
            factors. ``ProxLinearSensing.random_start`` draws one at a given error.

    References: Lou, Verchand, Pananjady, arXiv:2402.01599 (Math. Program. 2025);
    spec ``proxlinear.md``.
    """

    system: ClassVar[str] = "proxlinear"
    time_unit: ClassVar[str] = "step"
    time_label: ClassVar[str] = "steps"

    dim_left: int
    dim_right: int
    batch_size: int
    step_size: float
    noise_std: float
    initial_state: tuple[float, float, float, float]

    def __init__(self, dim_left: int = 500, dim_right: int = 500, batch_size: int = 500,
                 step_size: float = 1.0, noise_std: float = 0.0,
                 initial_state=(0.7, 0.6, 0.8, 0.5)):
        self.dim_left = v.integer("dim_left", dim_left, low=3)
        self.dim_right = v.integer("dim_right", dim_right, low=3)
        self.batch_size = v.integer("batch_size", batch_size, low=1)
        self.step_size = v.positive("step_size", step_size)
        self.noise_std = v.nonnegative("noise_std", noise_std)
        self.initial_state = _check_state(initial_state)

    @classmethod
    def random_start(cls, *, initial_error_sq: float, key, dim_left: int = 500,
                     dim_right: int = 500, **fields) -> "ProxLinearSensing":
        """A Setup whose start mu0 = mu* + tau u, nu0 = nu* + tau w (u, w uniform on the
        spheres, from ``key``) has error ``initial_error_sq`` in (0, 1); see
        `random_initial_state`. Other fields by keyword."""
        state = random_initial_state(dim_left, dim_right, initial_error_sq, key)
        return cls(dim_left=dim_left, dim_right=dim_right, initial_state=state, **fields)

    @property
    def initial_error_sq(self) -> float:
        return float(error_sq_of_state(self.initial_state))

    @property
    def eta_bar(self) -> float:
        """eta_bar = eta sqrt(d1 d2) / m: the small-batch step (spec §3.3; eta d / m if d1 = d2)."""
        return self.step_size * float(np.sqrt(self.dim_left * self.dim_right)) / self.batch_size

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``)."""
        return {
            "system": "proxlinear",
            "dim_left": self.dim_left,
            "dim_right": self.dim_right,
            "batch_size": self.batch_size,
            "step_size": self.step_size,
            "noise_std": self.noise_std,
            "initial_state": list(self.initial_state),
            "initial_error_sq": self.initial_error_sq,
        }


# ----------------------------------------------------------------- command line and demo
def build_from_options(*, dim_left: int = 500, dim_right: int = 500, batch_size: int = 500,
                       step_size: float = 1.0, noise_std: float = 0.1, alpha_left: float = 0.7,
                       beta_left: float = 0.6, alpha_right: float = 0.8, beta_right: float = 0.5
                       ) -> ProxLinearSensing:
    """A `ProxLinearSensing` from the CLI's options."""
    return ProxLinearSensing(dim_left=dim_left, dim_right=dim_right, batch_size=batch_size,
                             step_size=step_size, noise_std=noise_std,
                             initial_state=(alpha_left, beta_left, alpha_right, beta_right))


def _demo(out_dir, key) -> str:
    from .. import compare, predict, simulate

    setup = ProxLinearSensing(dim_left=200, dim_right=200, batch_size=100, step_size=1.0,
                              noise_std=0.05)
    theory = predict(setup, 20, method="map")
    mc = simulate(setup, 20, key=key, seeds=24, progress=False)
    agreement = compare(theory, mc, "error_sq")
    agreement.plot(out_dir / "proxlinear.png", observable="error_sq",
                   title="prox-linear rank-one sensing, d1=d2=200, m=100, eta=1, sigma=0.05")
    a = agreement["error_sq"]
    return (f"proxlinear: error_sq map vs 24-seed Monte Carlo at d=200, m=100: max gap "
            f"{a.max_sem_gap:.2f} standard errors ({a.max_rel_gap:.2%} relative), over "
            f"{theory['error_sq'][0] / theory['error_sq'][-1]:.0f}x of error decay")


def _cli_tune(setup: ProxLinearSensing, args) -> str:
    """``hdsgd proxlinear tune``: a (batch_size, eta_bar) grid, from the map alone.

    Objectives: samples_to_target (default target: twice the floor of the given setup, or
    1e-3 without noise), steps_to_target, value_at_budget (default budget: horizon x
    batch_size). Every setting gets the sample budget horizon x batch_size (samples
    objectives) or ``--horizon`` steps (steps_to_target).
    """
    import jax
    import numpy as np

    from .. import samples_to_target, steps_to_target, value_at_budget
    from ..odes.proxlinear import noise_floor, tune

    observable = getattr(args, "observable", None) or "error_sq"
    kind = getattr(args, "objective", None) or "samples_to_target"
    budget = float(args.horizon) * setup.batch_size
    target = getattr(args, "target", None)
    if target is None:
        target = 2.0 * noise_floor(setup) if setup.noise_std > 0 else 1e-3
    if kind == "value_at_budget":
        budget = float(getattr(args, "budget", None) or budget)
        objective = value_at_budget(samples=budget, observable=observable)
    elif kind == "steps_to_target":
        objective = steps_to_target(target, observable)
    else:
        objective = samples_to_target(target, observable)
    d = min(setup.dim_left, setup.dim_right)
    ms = sorted({int(m) for m in np.geomspace(max(1, d // 50), 2 * d, 7).round()})
    res = tune(setup, batch_sizes=ms, eta_bars=np.geomspace(0.1, 30.0, 12), objective=objective,
               max_samples=None if kind == "steps_to_target" else budget,
               horizon=int(args.horizon) if kind == "steps_to_target" else None)
    lines = [f"# proxlinear tuning over batch_size {ms} x eta_bar in [0.1, 30] (12 log-spaced): "
             f"{objective.description}", res.report()]
    if np.isfinite(res.tuned.objective_value) and args.seeds >= 2:
        check = res.verify(jax.random.key(args.seed), seeds=args.seeds, progress=False)
        lines.append(f"Monte Carlo ({args.seeds} seeds): {objective.description} = "
                     f"{check.objective_value:.6g}; map vs Monte Carlo max gap "
                     f"{check.agreement['error_sq'].max_sem_gap:.2f} standard errors")
    if args.out is not None:
        res.tuned.curve.save(args.out)
        lines.append(f"# wrote {args.out}")
    return "\n".join(lines)


def _register():
    from ..registry import Option, System, register_system

    register_system(System(
        name="proxlinear",
        setup_type=ProxLinearSensing,
        summary="mini-batched prox-linear (damped Gauss-Newton) rank-one matrix sensing",
        options=(
            Option("dim_left", int, 500, "d1, dimension of mu (>= 3)"),
            Option("dim_right", int, 500, "d2, dimension of nu (>= 3)"),
            Option("batch_size", int, 500, "m >= 1 fresh samples per iteration"),
            Option("step_size", float, 1.0, "eta > 0 (ridge m/eta; eta_bar = eta d/m)"),
            Option("noise_std", float, 0.1, "measurement noise sigma >= 0"),
            Option("alpha_left", float, 0.7, "initial <mu_0, mu*>"),
            Option("beta_left", float, 0.6, "initial ||mu_0 - <mu_0, mu*> mu*|| >= 0"),
            Option("alpha_right", float, 0.8, "initial <nu_0, nu*>"),
            Option("beta_right", float, 0.5, "initial ||nu_0 - <nu_0, nu*> nu*|| >= 0"),
        ),
        build=build_from_options,
        default_horizon=20.0,
        time_unit="step",
        methods=("auto", "map", "ode"),
        demo=_demo,
        tune=_cli_tune,
    ))


_register()
