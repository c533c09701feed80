"""Theory against Monte Carlo, in units of the Monte Carlo standard error.

For each observable, the theory curve is interpolated onto the Monte Carlo grid and the gap
``theory(t) - mean_MC(t)`` is reported three ways: absolute, relative to |theory|, and in
standard errors ``sem(t) = std_seeds(t) / sqrt(S)``. A test of agreement asserts the last
(with a small absolute floor for points where the Monte Carlo has no spread, e.g. t = 0).
"""

from __future__ import annotations

from pathlib import Path

import equinox as eqx
import numpy as np

from .curve import Curve


class ObservableAgreement(eqx.Module):
    """Gaps for one observable, over the compared times.

    Attributes:
        name: the observable.
        max_abs_gap: max_t |theory - mc_mean|.
        max_rel_gap: max_t |theory - mc_mean| / |theory|.
        max_sem_gap: max_t |theory - mc_mean| / max(sem, floor).
        worst_time: the time where the gap in standard errors is largest.
        time, gap, sem, theory, mc_mean: the per-time arrays behind the maxima.
    """

    name: str = eqx.field(static=True)
    max_abs_gap: float
    max_rel_gap: float
    max_sem_gap: float
    worst_time: float
    time: np.ndarray
    gap: np.ndarray
    sem: np.ndarray
    theory: np.ndarray
    mc_mean: np.ndarray


class Agreement(eqx.Module):
    """The result of `compare`: one `ObservableAgreement` per observable."""

    observables: dict[str, ObservableAgreement]
    n_seeds: int = eqx.field(static=True)
    theory: Curve
    mc: Curve

    def __getitem__(self, name: str) -> ObservableAgreement:
        return self.observables[name]

    def ok(self, *, sem_tol: float | None = 4.0, rel_tol: float | None = None,
           abs_tol: float | None = None) -> bool:
        """True when every observable is within every tolerance given.

        A point passes the standard-error test when its gap is at most
        ``sem_tol * sem`` *or* at most ``abs_tol`` (when ``abs_tol`` is given), so that points
        where the Monte Carlo has no spread do not fail on round-off. A non-finite gap or
        standard error (a diverged run or prediction) always fails: the comparisons are
        written as ``not (gap <= allowed)`` so that NaN and inf cannot pass.
        """
        def exceeds(gap, allowed):
            return bool(np.any(~(gap <= allowed)))

        for a in self.observables.values():
            gap = np.abs(a.gap)
            if sem_tol is not None:
                allowed = sem_tol * a.sem
                if abs_tol is not None:
                    allowed = np.maximum(allowed, abs_tol)
                if exceeds(gap, allowed):
                    return False
            elif abs_tol is not None and exceeds(gap, abs_tol):
                return False
            if rel_tol is not None and exceeds(gap, rel_tol * np.abs(a.theory)):
                return False
        return True

    def summary(self) -> str:
        lines = [f"{'observable':>20} {'max |gap|':>12} {'max rel':>10} {'max gap/sem':>12} {'at time':>10}"]
        for a in self.observables.values():
            lines.append(
                f"{a.name:>20} {a.max_abs_gap:>12.4g} {a.max_rel_gap:>10.3g} "
                f"{a.max_sem_gap:>12.3g} {a.worst_time:>10.4g}"
            )
        lines.append(f"({self.n_seeds} Monte Carlo seeds)")
        return "\n".join(lines)

    def plot(self, path: str | Path, observable: str | None = None, **kwargs) -> Path:
        """Theory line against the Monte Carlo mean and 10-90% band (see `hdsgd.plot`)."""
        from .plot import plot_curves

        names = [observable] if observable else list(self.observables)
        return plot_curves(self.theory, self.mc, names=names, path=path, **kwargs)


def compare(theory: Curve, mc: Curve, observable: str | tuple[str, ...] | None = None,
            *, sem_floor: float = 0.0, rel_floor: float = 1e-6, t_min: float | None = None
            ) -> Agreement:
    """Compare a theory curve with a Monte Carlo curve.

    Args:
        theory: a theory Curve (no seed axis) covering the Monte Carlo's time range.
        mc: a Monte Carlo Curve with at least 2 seeds.
        observable: the observable(s) to compare; default: every observable both have.
        sem_floor: lower bound on the standard error used for ``max_sem_gap`` (protects
            points where every seed agrees exactly, such as t = 0).
        rel_floor: a further lower bound, ``rel_floor * max(|theory(t)|, max_t |mc mean|)``:
            float32 round-off in the Monte Carlo (default 1e-6) is not counted as a gap, also
            where the observable itself is ~0 (a train loss of 1e-32 at an interpolating
            start against float32's 1e-15).
        t_min: ignore Monte Carlo times below this.

    Returns:
        An `Agreement`.
    """
    if theory.seeds is not None:
        raise ValueError("theory must be a curve without a seed axis (call .mean() first?)")
    if mc.seeds is None or mc.seeds < 2:
        raise ValueError(f"mc must be a Monte Carlo curve with >= 2 seeds; got seeds={mc.seeds}")
    if theory.time_unit != mc.time_unit:
        raise ValueError(f"time units differ: theory {theory.time_unit!r}, mc {mc.time_unit!r}")
    if observable is None:
        names = [n for n in mc.names if n in theory.observables]
    else:
        names = [observable] if isinstance(observable, str) else list(observable)
    missing = [n for n in names if n not in theory.observables or n not in mc.observables]
    if missing or not names:
        raise ValueError(
            f"observable(s) {missing or names} not in both curves; "
            f"theory has {theory.names}, mc has {mc.names}"
        )
    keep = np.ones_like(mc.time, dtype=bool)
    if t_min is not None:
        keep &= mc.time >= t_min
    keep &= mc.time <= theory.time[-1] * (1 + 1e-12)
    keep &= mc.time >= theory.time[0]
    times = mc.time[keep]
    th = theory.at(times)
    mean = mc.mean()
    sem = mc.sem()
    out = {}
    for n in names:
        t_vals = th.observables[n]
        m_vals = mean.observables[n][keep]
        s_vals = sem.observables[n][keep]
        gap = t_vals - m_vals
        finite = np.abs(m_vals[np.isfinite(m_vals)])
        scale = np.maximum(np.abs(t_vals), finite.max() if finite.size else 0.0)
        sem_eff = np.maximum(np.maximum(s_vals, sem_floor), rel_floor * scale)
        with np.errstate(divide="ignore", invalid="ignore"):
            in_sem = np.where(sem_eff > 0, np.abs(gap) / sem_eff, np.where(gap == 0, 0.0, np.inf))
            rel = np.where(t_vals != 0, np.abs(gap) / np.abs(t_vals), np.where(gap == 0, 0.0, np.inf))
        worst = int(np.argmax(in_sem))
        out[n] = ObservableAgreement(
            name=n,
            max_abs_gap=float(np.max(np.abs(gap))),
            max_rel_gap=float(np.max(rel)),
            max_sem_gap=float(in_sem[worst]),
            worst_time=float(times[worst]),
            time=times,
            gap=gap,
            sem=sem_eff,
            theory=t_vals,
            mc_mean=m_vals,
        )
    return Agreement(observables=out, n_seeds=mc.seeds, theory=theory, mc=mc)
