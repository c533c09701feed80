"""Setup for one-pass mini-batch SGD on least squares (spec lstsq_glm.md §2.0-2.1, 2.4)."""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Float

from . import _validate as v


class StreamingLeastSquares(eqx.Module):
    r"""One-pass mini-batch SGD on least squares with data covariance H = diag(eigenvalues).

    Data ``x ~ N(0, H)``, labels ``y = <w*, x> + eps``, ``eps ~ N(0, noise_std^2)``. Each step
    draws ``batch_size`` fresh samples and averages their gradients:

        w_{k+1} = w_k - (step_size / d) (1/B) sum_b (<w_k, x_b> - y_b) x_b .

    Time unit: ``t = steps / d`` (``Curve.time_unit == "t"``); ``Curve.samples = steps * B``.

    Observables:
        risk: R(w) = 1/2 E[(y - <w, x>)^2] = sigma^2/2 + 1/2 sum_i lambda_i <w - w*, u_i>^2
            (noise floor included; never twice the risk).
        excess_risk: R(w) - sigma^2/2.

    Attributes:
        eigenvalues: the spectrum lambda_1..lambda_d of H, all > 0; d = its length.
        initial_error: rho_i(0) = <w_0 - w*, u_i>^2 per mode (length d, >= 0). A scalar
            ``||w_0 - w*||^2`` is spread evenly over the d modes.
        noise_std: label noise sigma >= 0.
        step_size: gamma > 0; each update uses gamma / d.
        batch_size: B >= 1, fresh samples per step.
        momentum: heavy-ball beta in [0, 1) (default 0: plain SGD). With beta > 0 the update is
            v <- beta v - (gamma/d) g, w <- w + v, v_0 = 0, with g the mini-batch gradient
            above (spec ``momentum.md`` §1, §8a); see ``hdsgd.odes.lstsq_momentum``.

    References: spec ``lstsq_glm.md`` §2.1; Bordelon & Pehlevan (ICLR 2022); Paquette,
    Paquette, Adlam & Pennington (2022); Lee, Cheng, Paquette & Paquette (2022).
    """

    eigenvalues: Float[np.ndarray, " d"]
    initial_error: Float[np.ndarray, " d"]
    noise_std: float
    step_size: float
    batch_size: int
    momentum: float

    def __init__(self, eigenvalues, initial_error=1.0, noise_std: float = 0.0,
                 step_size: float = 1.0, batch_size: int = 1, momentum: float = 0.0):
        lam = v.real_array("eigenvalues", eigenvalues, low=0.0, low_open=True)
        d = lam.shape[0]
        if np.ndim(initial_error) == 0:
            total = v.nonnegative("initial_error", initial_error)
            rho0 = np.full(d, total / d)
        else:
            rho0 = v.real_array("initial_error", initial_error, low=0.0)
            if rho0.shape != lam.shape:
                raise ValueError(
                    f"initial_error has shape {rho0.shape}; allowed: a scalar or shape {lam.shape} "
                    "(one value per eigenvalue)"
                )
        self.eigenvalues = lam
        self.initial_error = rho0
        self.noise_std = v.nonnegative("noise_std", noise_std)
        self.step_size = v.positive("step_size", step_size)
        self.batch_size = v.integer("batch_size", batch_size, low=1)
        self.momentum = v.real("momentum", momentum, low=0.0, high=1.0, high_open=True)

    @property
    def dim(self) -> int:
        return int(self.eigenvalues.shape[0])

    @property
    def initial_risk(self) -> float:
        """R(w_0) = sigma^2/2 + 1/2 sum_i lambda_i rho_i(0)."""
        return 0.5 * self.noise_std**2 + 0.5 * float(np.dot(self.eigenvalues, self.initial_error))

    def output_steps(self, horizon: float, times=None) -> np.ndarray:
        """The whole SGD steps k = round(t d) at which theory and Monte Carlo report: the given
        ``times`` (in t, checked against ``horizon``), or by default step 0 and ~100 log-spaced
        steps up to the horizon (at least one step)."""
        from ..api import check_horizon, output_steps

        return output_steps(check_horizon(horizon), times, steps_per_unit=self.dim)

    def fields(self) -> dict:
        """The Setup as plain data (stored in ``Curve.meta``)."""
        return {
            "system": "lstsq",
            "dim": self.dim,
            "eigenvalues": self.eigenvalues.tolist(),
            "initial_error": self.initial_error.tolist(),
            "noise_std": self.noise_std,
            "step_size": self.step_size,
            "batch_size": self.batch_size,
            "momentum": self.momentum,
        }


# ----------------------------------------------------------------- command line and demo
def build_from_options(*, dim: int = 500, spectrum: str = "power_law", exponent: float = 1.0,
                       low: float = 0.5, high: float = 1.5, initial_error: float = 1.0,
                       noise_std: float = 0.1, step_size: float = 1.0, batch_size: int = 1,
                       momentum: float = 0.0) -> StreamingLeastSquares:
    """A `StreamingLeastSquares` from the CLI's options (a named spectrum of size ``dim``)."""
    from .. import spectra

    v.choice("spectrum", spectrum, ("isotropic", "power_law", "ramp"))
    if spectrum == "isotropic":
        lam = spectra.isotropic(dim)
    elif spectrum == "power_law":
        lam = spectra.power_law(dim, exponent)
    else:
        lam = spectra.ramp(dim, low, high)
    return StreamingLeastSquares(lam, initial_error=initial_error, noise_std=noise_std,
                                 step_size=step_size, batch_size=batch_size, momentum=momentum)


def _demo(out_dir, key) -> str:
    from .. import compare, predict, simulate, spectra

    setup = StreamingLeastSquares(spectra.power_law(400, 0.7), initial_error=1.0, noise_std=0.3,
                                  step_size=2.0, batch_size=4)
    theory = predict(setup, 20.0)
    mc = simulate(setup, 20.0, key=key, seeds=32, progress=False)
    agreement = compare(theory, mc, "excess_risk")
    agreement.plot(out_dir / "lstsq.png", observable="excess_risk",
                   title="streaming least squares, d=400, power-law spectrum, B=4")
    a = agreement["excess_risk"]
    return (f"lstsq: excess risk theory vs 32-seed Monte Carlo at d=400: max gap "
            f"{a.max_sem_gap:.2f} standard errors ({a.max_rel_gap:.2%} relative)")


def _tune(setup: StreamingLeastSquares, args) -> str:
    """``hdsgd lstsq tune``: the step size (up to the exact threshold) for the objective."""
    import jax

    from .. import LogRange, critical_step_size, samples_to_target, steps_to_target, tune, value_at_budget

    observable = args.observable or "excess_risk"
    if args.objective == "value_at_budget":
        if args.budget is None:
            raise ValueError("budget=None is invalid; allowed: a positive sample budget (--budget)")
        objective = value_at_budget(samples=args.budget, observable=observable)
    else:
        target = args.target if args.target is not None else 0.1 * (setup.initial_risk - 0.5 * setup.noise_std**2)
        make = samples_to_target if args.objective == "samples_to_target" else steps_to_target
        objective = make(target, observable)
    gamma_c = critical_step_size(setup)
    tuned = tune(setup, {"step_size": LogRange(1e-3 * gamma_c, 0.99 * gamma_c, 16)}, objective,
                 horizon=args.horizon, method=args.method)
    lines = [f"# tuning step_size for {objective.description} (critical step size {gamma_c:.6g})",
             tuned.table_str(),
             f"# chosen step_size = {tuned.setup.step_size:.6g}: predicted {tuned.objective_value:.6g}"]
    if args.seeds > 0 and tuned.objective_value != float("inf"):
        check = tuned.verify(jax.random.key(args.seed), seeds=args.seeds)
        lines.append(f"# Monte Carlo ({args.seeds} seeds) at the chosen step: {check.objective_value:.6g}")
    return "\n".join(lines)


def _register():
    from ..registry import Option, System, register_system

    register_system(System(
        name="lstsq",
        setup_type=StreamingLeastSquares,
        summary="one-pass mini-batch SGD on least squares with a general covariance spectrum",
        options=(
            Option("dim", int, 500, "dimension d (number of eigenvalues)"),
            Option("spectrum", str, "power_law", "eigenvalues of H", ("isotropic", "power_law", "ramp")),
            Option("exponent", float, 1.0, "power_law: lambda_i = i^-exponent"),
            Option("low", float, 0.5, "ramp: smallest eigenvalue"),
            Option("high", float, 1.5, "ramp: largest eigenvalue"),
            Option("initial_error", float, 1.0, "||w0 - w*||^2, spread evenly over the modes"),
            Option("noise_std", float, 0.1, "label noise sigma >= 0"),
            Option("step_size", float, 1.0, "gamma > 0 (each update uses gamma/d)"),
            Option("batch_size", int, 1, "B >= 1 fresh samples per step"),
            Option("momentum", float, 0.0, "heavy-ball beta in [0, 1) (v <- beta v - (gamma/d) g, w <- w + v)"),
        ),
        build=build_from_options,
        default_horizon=10.0,
        time_unit="t",
        methods=("recursion", "ode", "volterra"),
        demo=_demo,
        tune=_tune,
    ))


_register()
