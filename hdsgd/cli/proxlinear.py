"""``hdsgd proxlinear``: prox-linear rank-one sensing on the command line, its demo and tuner."""

from __future__ import annotations

import math

import numpy as np

from .. import proxlinear
from ..api import predict, simulate
from ..compare import compare
from ._system import CliSystem, Demo, register


def default_horizon(setup: proxlinear.ProxLinearSensing) -> float:
    """20 steps, or about 20 d samples when m < d = min(d1, d2): 20 max(1, d/m) steps."""
    d = min(setup.dim_left, setup.dim_right)
    return float(math.ceil(20.0 * max(1.0, d / setup.batch_size)))


def demo(out_dir, key) -> Demo:
    """The map vs a 24-seed Monte Carlo at d1 = d2 = 200, m = 100, eta = 1, sigma = 0.05."""
    setup = proxlinear.ProxLinearSensing(dim_left=200, dim_right=200, batch_size=100,
                                         step_size=1.0, noise_std=0.05)
    theory = predict(setup, 20, method="map")
    mc = simulate(setup, 20, key=key, seeds=24, progress=False)
    agreement = compare(theory, mc, "error_sq")
    figure = agreement.plot(out_dir / "proxlinear.png", observable="error_sq",
                            title="prox-linear rank-one sensing, d1=d2=200, m=100, eta=1, "
                                  "sigma=0.05")
    a = agreement["error_sq"]
    return Demo(f"error_sq, one-step map vs 24-seed Monte Carlo at d=200, m=100: max gap "
                f"{a.max_sem_gap:.2f} standard errors ({a.max_rel_gap:.2%} relative), over "
                f"{theory['error_sq'][0] / theory['error_sq'][-1]:.0f}x of error decay",
                agreement, figure)


def floor_and_rate(tuned) -> tuple[float, float]:
    """The noise floor E_inf^2 (`floor_grid`, polished from the end of the chosen predicted
    trajectory) and the local rate per step (`local_rate`) at a tuned setting."""
    s = tuned.setup
    end = np.array([tuned.curve[k][-1] for k in ("alpha_left", "beta_left", "alpha_right",
                                                 "beta_right")])
    starts = end[None] if np.all(np.isfinite(end)) else None
    floor = proxlinear.floor_grid(s, [s.batch_size], [s.step_size], [s.noise_std],
                                  starts=starts)[0]
    return float(floor), proxlinear.local_rate(s)


def tuning_report(tuned) -> str:
    """The chosen (m, eta), its predicted score, and the noise floor and the rate there."""
    s = tuned.setup
    floor, rate = floor_and_rate(tuned)
    d = min(s.dim_left, s.dim_right)
    return (f"# chosen batch_size={s.batch_size} step_size={s.step_size:.4g} "
            f"(eta_bar={s.eta_bar:.4g}): {tuned.objective.description} = "
            f"{tuned.objective_value:.6g} (predicted); noise floor E_inf^2 = {floor:.4g}; "
            f"local rate {rate:.4g} per step ({rate * d / s.batch_size:.4g} per d samples)")


def tune_space(setup: proxlinear.ProxLinearSensing) -> dict:
    """7 batch sizes from d/50 to 2d (d = min(d1, d2)) x 12 values of eta_bar in [0.1, 30]."""
    d = min(setup.dim_left, setup.dim_right)
    ms = sorted({int(m) for m in np.geomspace(max(1, d // 50), 2 * d, 7).round()})
    return {"batch_size": ms, "eta_bar": np.geomspace(0.1, 30.0, 12)}


def tune_target(setup: proxlinear.ProxLinearSensing, observable: str, space, run) -> float:
    """Twice the given setting's noise floor, or 1e-3 without noise."""
    return 2.0 * proxlinear.noise_floor(setup) if setup.noise_std > 0 else 1e-3


SYSTEM = register(CliSystem(
    name="proxlinear",
    summary="mini-batched prox-linear (damped Gauss-Newton) rank-one matrix sensing",
    models={"sensing": proxlinear.ProxLinearSensing},
    default_horizon=default_horizon,
    methods=proxlinear.PREDICT_METHODS,
    method_help="map, or ode when batch_size <= min(dim_left, dim_right) / 100",
    simulate_methods=proxlinear.SIMULATE_METHODS,
    demo=demo,
    observable="error_sq",
    tune_space=tune_space,
    tune_target=tune_target,
    tune_report=tuning_report,
    tune_help="batch_size on 7 values from d/50 to 2d x eta_bar on 12 values in [0.1, 30] "
              "(every setting gets the same sample budget); target twice the floor",
))
