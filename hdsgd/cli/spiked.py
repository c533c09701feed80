"""``hdsgd spiked``: the spiked single-index model on the command line, and its demo."""

from __future__ import annotations

from .. import spiked
from ..api import predict, simulate
from ..compare import compare
from ..autotune import LogRange
from ._system import CliSystem, Demo, register


def parse_series(text: str):
    """A link or student written as text: a name ("he2", "he2+he4") or comma-separated
    orthonormal Hermite coefficients ("0,0.5,0,0.5"); "none" (the student only): the link."""
    text = text.strip()
    if text.lower() in ("none", "null"):
        return None
    if any(ch.isalpha() for ch in text):
        return text
    return tuple(float(p) for p in text.split(",") if p.strip())


def demo(out_dir, key) -> Demo:
    """The limit ODE vs a 64-run Monte Carlo (the exact chain, the law of full SGD at this d)
    through the escape: (N), He2, theta = 1, c = 0.5, m0 = 0.05, d = 20 000, t <= 2 (the overlap
    grows from 0.05 to 0.51)."""
    setup = spiked.SpikedSingleIndex(dim=20_000, spike=1.0, link="he2", loss="correlation",
                                     normalization="covariance", step_size=0.5,
                                     initial_overlap=0.05)
    theory = predict(setup, 2.0)
    mc = simulate(setup, 2.0, key=key, seeds=64, progress=False)
    # the first few steps' increments are heavy-tailed (G is a polynomial of Gaussians), so the
    # standard error is unreliable there: compare from t = 0.05 on
    agreement = compare(theory, mc, t_min=0.05)
    figure = agreement.plot(out_dir / "spiked.png", observable="overlap", logy=False,
                            title="spiked, He2, theta=1, (N), correlation loss, d=20000")
    worst = max(agreement.observables.values(), key=lambda a: a.max_sem_gap)
    return Demo(f"limit ODE vs 64-run Monte Carlo (exact chain) at d=20000 through the escape (overlap "
                f"0.05 -> {theory['overlap'][-1]:.2f}), t >= 0.05: max gap {worst.max_sem_gap:.2f} "
                f"standard errors ({worst.name})", agreement, figure)


def tune_space(setup: spiked.SpikedSingleIndex) -> dict:
    """step_size on 12 log-spaced values up to 0.98 x the critical step size (the normalised
    variants; (P) has an edge only for a linear student with the square loss: else 1e-3 .. 1)."""
    try:
        edge = spiked.critical_step_size(setup)
    except ValueError:
        return {"step_size": LogRange(1e-3, 1.0, 12)}
    return {"step_size": LogRange(0.02 * edge, 0.98 * edge, 12)}


SYSTEM = register(CliSystem(
    name="spiked",
    summary="online SGD on a single-index target under spiked covariance (P/S/N variants)",
    models={"single_index": spiked.SpikedSingleIndex},
    default_horizon=lambda setup: 2.0,
    methods=spiked.PREDICT_METHODS,
    method_help="ode",
    simulate_methods=spiked.SIMULATE_METHODS,
    demo=demo,
    parsers={"link": parse_series, "student": parse_series},
    observable="overlap",
    tune_space=tune_space,
    tune_target=lambda setup, observable, space, run: 0.5,
    tune_reach="above",
    tune_horizon=lambda setup: 50.0,
    tune_help="step_size on 12 log-spaced values up to 0.98 x critical_step_size; samples until "
              "the overlap reaches 0.5 (weak recovery), within t = 50",
))
