"""Theory against Monte Carlo, in units of the Monte Carlo standard error, with a verdict.

For each observable, the theory curve is interpolated onto the Monte Carlo grid and the gap
``theory(t) - mean_MC(t)`` is reported three ways: absolute, relative to |theory|, and in
standard errors ``sem(t) = std_seeds(t) / sqrt(S)`` (with a small floor, so that points where
the Monte Carlo has no spread, such as a deterministic start, do not count float32 round-off).

The verdict (`Agreement.ok` with no tolerance, `Agreement.verdict`). With S seeds the ratio
gap / sem of a correct theory follows Student's t with S - 1 degrees of freedom, not a normal
law: the standard error is itself estimated from the seeds, and with few of them it is often
much too small (with 4 seeds, a correct theory shows "gaps" of 5 to 35 standard errors). The
verdict therefore allows, at every compared time, the Student-t quantile with the same
two-sided tail probability as 4 standard deviations of a normal law (6.3e-5):

    S:          4     8    16    32    64   128   inf
    threshold: 32.6  8.5   5.5   4.6   4.3   4.1   4.0

and adds a caveat below 30 seeds, where the standard error is uncertain by more than 13 %
(its relative spread is about 1/sqrt(2(S - 1))). A diverged run or prediction (an infinite
gap) never passes.
"""

from __future__ import annotations

import math
from pathlib import Path

import equinox as eqx
import numpy as np
import scipy  # its submodules load on first use (scipy.optimize, ...)

from .curve import Curve
from .setups import _validate as v

#: the two-sided normal tail probability of the verdict's threshold (4 standard deviations)
VERDICT_TAIL = math.erfc(4.0 / math.sqrt(2.0))
#: below this many seeds the verdict carries a caveat
FEW_SEEDS = 30


def verdict_threshold(n_seeds: int) -> float:
    """The verdict's largest allowed gap in standard errors for ``n_seeds`` seeds: the
    Student-t (n_seeds - 1 degrees of freedom) quantile at two-sided tail `VERDICT_TAIL`."""
    if n_seeds < 2:
        raise ValueError(f"n_seeds={n_seeds} is invalid; allowed: an integer >= 2")
    return float(scipy.stats.t.isf(0.5 * VERDICT_TAIL, n_seeds - 1))


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
    """The result of `compare`: one `ObservableAgreement` per observable, and a verdict."""

    observables: dict[str, ObservableAgreement]
    n_seeds: int = eqx.field(static=True)
    theory: Curve
    mc: Curve

    def __getitem__(self, name: str) -> ObservableAgreement:
        return self.observables[name]

    @property
    def threshold(self) -> float:
        """The verdict's allowed gap in standard errors (`verdict_threshold` of the seeds)."""
        return verdict_threshold(self.n_seeds)

    def ok(self, *, sem_tol: float | None = None, rel_tol: float | None = None,
           abs_tol: float | None = None) -> bool:
        """True when every observable is within every tolerance given.

        With no tolerance at all: the verdict, ``gap <= threshold * sem`` at every time (see
        the module docstring). Otherwise a point passes the standard-error test when its gap is
        at most ``sem_tol * sem`` *or* at most ``abs_tol`` (when ``abs_tol`` is given), so that
        points where the Monte Carlo has no spread do not fail on round-off. A non-finite gap
        or standard error (a diverged run or prediction) always fails: the comparisons are
        written as ``not (gap <= allowed)`` so that NaN and inf cannot pass.
        """
        if sem_tol is None and rel_tol is None and abs_tol is None:
            sem_tol = self.threshold

        def exceeds(gap, allowed):
            with np.errstate(invalid="ignore"):
                return bool(np.any(~(gap <= allowed) | ~np.isfinite(gap)))

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

    @property
    def worst(self) -> tuple[str, float, float]:
        """(observable, time, gap in standard errors) of the largest gap of all."""
        a = max(self.observables.values(),
                key=lambda o: o.max_sem_gap if not math.isnan(o.max_sem_gap) else math.inf)
        return a.name, a.worst_time, a.max_sem_gap

    @property
    def caveat(self) -> str | None:
        """A warning when the seeds are too few for the standard error to mean much."""
        if self.n_seeds >= FEW_SEEDS:
            return None
        spread = 1.0 / math.sqrt(2.0 * (self.n_seeds - 1))
        return (f"only {self.n_seeds} Monte Carlo seeds: the standard error itself is uncertain "
                f"by about {spread:.0%}, so the verdict allows {self.threshold:.3g} standard "
                f"errors (Student t); use {FEW_SEEDS} or more seeds for a sharp check")

    @property
    def verdict(self) -> str:
        """One sentence saying whether theory and Monte Carlo agree, and why."""
        name, time, gap = self.worst
        where = f"{name} at {self.mc.time_unit} = {time:.4g}"
        if not math.isfinite(gap):
            diverged = [n for n, a in self.observables.items() if not np.all(np.isfinite(a.gap))]
            who = [w for w, c in (("the prediction", self.theory), ("the Monte Carlo", self.mc))
                   if c.any_diverged]
            if len(who) == 2:
                return ("no comparison possible: the prediction and the Monte Carlo both diverged "
                        f"({', '.join(diverged)} infinite); both say the run is unstable")
            return (f"theory and Monte Carlo DISAGREE: {' and '.join(who) or 'one curve'} diverged "
                    f"({', '.join(diverged)} not finite)")
        if self.ok():
            return (f"theory and Monte Carlo agree: the largest gap is {gap:.2f} standard errors "
                    f"({where}), within the {self.threshold:.3g} allowed for {self.n_seeds} seeds")
        return (f"theory and Monte Carlo DISAGREE: a gap of {gap:.2f} standard errors ({where}) "
                f"exceeds the {self.threshold:.3g} allowed for {self.n_seeds} seeds")

    def summary(self) -> str:
        lines = [f"{'observable':>20} {'max |gap|':>12} {'max rel':>10} {'max gap/sem':>12} "
                 f"{'at time':>10}"]
        for a in self.observables.values():
            lines.append(
                f"{a.name:>20} {a.max_abs_gap:>12.4g} {a.max_rel_gap:>10.3g} "
                f"{a.max_sem_gap:>12.3g} {a.worst_time:>10.4g}"
            )
        lines.append(f"({self.n_seeds} Monte Carlo seeds; a gap is theory minus the seed mean, "
                     "'gap/sem' in standard errors of that mean)")
        late = {n: t for n, t in theory_valid_from(self.theory).items() if n in self.observables}
        if late:
            lines.append("(compared from where the theory states them, meta['valid_from']: "
                         + ", ".join(f"{n} from {self.mc.time_unit} = {t:.4g}"
                                     for n, t in late.items()) + ")")
        lines.append(self.verdict)
        if self.caveat:
            lines.append(f"caveat: {self.caveat}")
        return "\n".join(lines)

    def plot(self, path: str | Path, observable: str | tuple[str, ...] | None = None,
             **kwargs) -> Path:
        """Theory lines against the Monte Carlo means with their +-2 standard-error band
        (see `hdsgd.plot_curves`); the title carries the verdict's worst gap."""
        from .plot import plot_curves

        names = list(self.observables) if observable is None else (
            [observable] if isinstance(observable, str) else list(observable))
        return plot_curves(self.theory, self.mc, names=names, path=path, **kwargs)


def _field_values_differ(a, b) -> bool:
    try:
        x = np.asarray(a, dtype=np.float64)
        y = np.asarray(b, dtype=np.float64)
    except (TypeError, ValueError):
        return a != b
    if x.shape != y.shape:
        return True
    with np.errstate(invalid="ignore"):
        return not np.allclose(x, y, rtol=1e-12, atol=0.0, equal_nan=True)


def check_same_setup(theory: Curve, mc: Curve) -> None:
    """Raise ValueError when the two curves come from different systems or different Setup
    fields (as recorded in ``meta``); fields a prediction does not depend on
    (``meta["free_fields"]``, e.g. the dimension of a d -> infinity limit) may differ."""
    sys_t, sys_m = theory.meta.get("system"), mc.meta.get("system")
    if sys_t is not None and sys_m is not None and sys_t != sys_m:
        raise ValueError(f"theory is a {sys_t!r} curve and mc a {sys_m!r} curve; allowed: curves "
                         "of the same system")
    fields_t = set(theory.meta.get("setup_fields", ()))
    fields_m = set(mc.meta.get("setup_fields", ()))
    free = set(theory.meta.get("free_fields", ())) | set(mc.meta.get("free_fields", ()))
    differ = [f"{f} (theory {theory.meta[f]!r}, mc {mc.meta[f]!r})"
              for f in sorted((fields_t & fields_m) - free)
              if _field_values_differ(theory.meta[f], mc.meta[f])]
    if differ:
        shown = "; ".join(d if len(d) < 160 else d[:157] + "..." for d in differ)
        raise ValueError(f"theory and mc come from different Setups; fields that differ: {shown}")


def compare(theory: Curve, mc: Curve, observable: str | tuple[str, ...] | None = None,
            *, sem_floor: float = 0.0, rel_floor: float = 1e-6, t_min: float | None = None,
            same_setup: bool = True) -> Agreement:
    """Compare a theory curve with a Monte Carlo curve of the same Setup.

    Args:
        theory: a theory Curve (no seed axis) covering the Monte Carlo's time range.
        mc: a Monte Carlo Curve with at least 2 seeds, of the same system and Setup fields.
        observable: the observable(s) to compare; default: every observable both have, but
            their ``meta["auxiliary"]`` ones (clocks, statistics a theory claims only in a limit).
        sem_floor: lower bound on the standard error used for ``max_sem_gap`` (protects
            points where every seed agrees exactly, such as t = 0).
        rel_floor: a further lower bound, ``rel_floor * max(|theory(t)|, max_t |mc mean|)``:
            float32 round-off in the Monte Carlo (default 1e-6) is not counted as a gap, also
            where the observable itself is ~0 (a train loss of 1e-32 at an interpolating
            start against float32's 1e-15).
        t_min: ignore Monte Carlo times below this. Independently, an observable the theory
            states only from some time on (``theory.meta["valid_from"]``, observable -> time:
            e.g. a loss averaged over an oscillation the run has not made yet) is compared
            from that time; the summary says so.
        same_setup: refuse curves of different systems or Setup fields (default). ``False``
            compares them on purpose: a perturbed theory against the Monte Carlo (to show that a
            test has power), or a prediction at one dimension against runs at another.

    Returns:
        An `Agreement` (gaps per observable, ``ok()``, ``verdict``, ``caveat``, ``summary()``).
    """
    if not isinstance(theory, Curve) or not isinstance(mc, Curve):
        raise ValueError(f"theory and mc must be Curves; got {type(theory).__name__} and "
                         f"{type(mc).__name__}")
    if theory.seeds is not None:
        raise ValueError("theory has a seed axis; allowed: a theory curve without one "
                         "(call .mean() first?)")
    if mc.seeds is None or mc.seeds < 2:
        raise ValueError(f"mc has seeds={mc.seeds}; allowed: a Monte Carlo curve with >= 2 seeds")
    if theory.time_unit != mc.time_unit:
        raise ValueError(f"time units differ: theory {theory.time_unit!r}, mc {mc.time_unit!r}")
    if v.flag("same_setup", same_setup):
        check_same_setup(theory, mc)
    for name, value in (("sem_floor", sem_floor), ("rel_floor", rel_floor)):
        if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value)
                                           and value >= 0):
            raise ValueError(f"{name}={value!r} is invalid; allowed: a finite number >= 0")
    if observable is None:
        hidden = set(theory.meta.get("auxiliary", ())) | set(mc.meta.get("auxiliary", ()))
        names = [n for n in mc.names if n in theory.observables and n not in hidden]
    else:
        names = v.names("observable", observable)
    missing = [n for n in names if n not in theory.observables or n not in mc.observables]
    if missing or not names:
        raise ValueError(
            f"observable(s) {missing or names} not in both curves; "
            f"theory has {theory.names}, mc has {mc.names}"
        )
    keep = np.ones_like(mc.time, dtype=bool)
    if t_min is not None:
        if isinstance(t_min, bool) or not (isinstance(t_min, (int, float))
                                           and math.isfinite(t_min)):
            raise ValueError(f"t_min={t_min!r} is invalid; allowed: a finite time")
        keep &= mc.time >= t_min
    keep &= mc.time <= theory.time[-1] * (1 + 1e-12)
    keep &= mc.time >= theory.time[0]
    if not keep.any():
        raise ValueError(f"no Monte Carlo time in [max(t_min={t_min}, {theory.time[0]:.4g}), "
                         f"{theory.time[-1]:.4g}]; allowed: t_min <= {mc.time[-1]:.4g} and "
                         "overlapping time ranges")
    times_all = mc.time[keep]
    th = theory.at(times_all)
    valid_from = theory_valid_from(theory)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        mean = mc.mean()
        sem = mc.sem()
    out = {}
    for n in names:
        # the theory's own claim: an observable it states only from some time on (an average
        # over a fast oscillation, say) is compared from there
        claimed = times_all >= valid_from.get(n, -math.inf)
        if not claimed.any():
            if observable is None:
                continue
            raise ValueError(f"observable {n!r} is claimed by the theory only from "
                             f"{theory.time_unit} = {valid_from[n]:.4g} (meta['valid_from']), "
                             f"after every compared time; allowed: a horizon past it")
        times = times_all[claimed]
        t_vals = th.observables[n][claimed]
        m_vals = mean.observables[n][keep][claimed]
        s_vals = sem.observables[n][keep][claimed]
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            gap = t_vals - m_vals
            gap = np.where(np.isfinite(t_vals) & np.isfinite(m_vals), gap, np.inf)
            finite = np.abs(m_vals[np.isfinite(m_vals)])
            scale = np.maximum(np.where(np.isfinite(t_vals), np.abs(t_vals), 0.0),
                               finite.max() if finite.size else 0.0)
            sem_eff = np.maximum(np.maximum(np.nan_to_num(s_vals, nan=np.inf), sem_floor),
                                 rel_floor * scale)
            in_sem = np.where(sem_eff > 0, np.abs(gap) / sem_eff, np.where(gap == 0, 0.0, np.inf))
            in_sem = np.where(np.isfinite(gap), in_sem, np.inf)
            rel = np.where(t_vals != 0, np.abs(gap) / np.abs(t_vals), np.where(gap == 0, 0.0, np.inf))
            rel = np.where(np.isfinite(gap), rel, np.inf)
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
    if not out:
        raise ValueError(f"no observable of {names} is claimed by the theory at the compared "
                         f"times (meta['valid_from'] = {valid_from}); allowed: a longer horizon")
    return Agreement(observables=out, n_seeds=mc.seeds, theory=theory, mc=mc)


def theory_valid_from(theory: Curve) -> dict[str, float]:
    """``theory.meta["valid_from"]``: observable -> the time from which the theory states it
    (earlier points are an approximation's transient, not a claim); empty when absent."""
    return {str(k): float(v) for k, v in dict(theory.meta.get("valid_from") or {}).items()}
