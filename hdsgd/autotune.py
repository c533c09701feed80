"""Choose hyperparameters from predicted curves alone.

``tune(setup, space, objective, horizon=...)`` predicts the whole grid of candidate settings
(through `predict_grid`, which a system may implement as one vmapped call), scores each
predicted curve with an objective (lower is better), refines continuous log-ranges around
the best grid point with a bounded scalar search on the prediction (or by gradient through
it), keeps the choice a small margin away from any jump of the score (the cliff guard), and
returns a `Tuned`.
Checking the choice against Monte Carlo is one more call, ``tuned.verify(key, seeds)``,
never part of choosing it.

Objectives (all read a Curve, all "lower is better", ``inf`` when the target is never met
or the run diverged first):

* ``samples_to_target(value, observable)``: fresh samples used until ``observable <= value``;
* ``steps_to_target(value, observable)``: optimizer steps until ``observable <= value``;
* ``value_at_budget(samples=..., observable=...)``: the observable once ``samples`` fresh
  samples have been used;
* ``setup_objective(fn)``: a score of the candidate Setup itself (a system's own time to
  target on a horizon of its own, such as the momentum system's `time_objective`); no
  prediction is made.

``tune_schedule(setup, objective, steps=...)`` optimises a piecewise-constant step-size
schedule by gradient through the prediction (least squares).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy  # its submodules load on first use (scipy.optimize, ...)

from ._numerics import first_crossing
from ._precision import scoped_x64
from .api import (LogRange, SetupObjective, check_horizon, check_setup, predict, predict_grid,
                  setup_objective, simulate)
from .compare import Agreement, compare
from .curve import Curve
from .curve_grid import CurveGrid, PointValues, point_values
from .setups import _validate as v
from .setups._validate import MAX_STEPS


# ----------------------------------------------------------------- objectives
class Objective(eqx.Module):
    """A score of a curve, lower is better. Call it: ``objective(curve) -> float``.

    Attributes:
        kind: ``"samples_to_target"``, ``"steps_to_target"`` or ``"value_at_budget"``.
        observable: the observable it reads.
        target: the level to reach (``*_to_target``).
        budget: the budget (``value_at_budget``), in ``budget_unit``.
        budget_unit: ``"samples"`` or ``"steps"``.
        reach: ``"below"`` (the target is met where observable <= target) or ``"above"``
            (observable >= target: an overlap, a correlation).
        settle: count the time from which the target stays met (a settling time, which does
            not reward an overshoot through the target) instead of the first time it is met.
    """

    kind: str = eqx.field(static=True)
    observable: str = eqx.field(static=True)
    target: float | None = None
    budget: float | None = None
    budget_unit: str = eqx.field(static=True, default="samples")
    reach: str = eqx.field(static=True, default="below")
    settle: bool = eqx.field(static=True, default=False)

    def met(self, values) -> np.ndarray:
        """Where ``values`` meet the target (never where they are not finite)."""
        return _met(values, self.target, self.reach == "below")

    def __call__(self, curve: Curve) -> float:
        return self.score(point_values(curve, self.observable))

    def score(self, point: PointValues) -> float:
        """The score of one point's ``observable`` (a Curve's, or a stacked grid row's:
        `CurveGrid.values`), without building a Curve."""
        return float(self.scores([point])[0])

    def scores(self, points) -> np.ndarray:
        """The scores of many `PointValues` (inf for None). One call for a whole grid: reading
        this Module's fields costs microseconds each, so they are read once, not per point."""
        kind, target, budget, settle = self.kind, self.target, self.budget, self.settle
        below = self.reach == "below"
        by_samples = kind == "samples_to_target" or (kind == "value_at_budget"
                                                     and self.budget_unit == "samples")
        out = []
        for p in points:
            if p is None:
                out.append(math.inf)
                continue
            x = p.samples if by_samples else _steps(p)
            out.append(_value_at(x, p.values, budget) if kind == "value_at_budget"
                       else _time_to_target(x, p.values, target, below, settle))
        return np.array(out, dtype=np.float64)

    @property
    def sample_budget(self) -> float | None:
        """The budget in fresh samples, when the objective has one."""
        return self.budget if self.kind == "value_at_budget" and self.budget_unit == "samples" else None

    @property
    def description(self) -> str:
        if self.kind == "value_at_budget":
            return f"{self.observable} after {self.budget:g} {self.budget_unit}"
        unit = "samples" if self.kind == "samples_to_target" else "steps"
        op = "<=" if self.reach == "below" else ">="
        stays = " for good" if self.settle else ""
        return f"{unit} until {self.observable} {op} {self.target:g}{stays}"


def _met(values, target: float, below: bool) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        ok = values <= target if below else values >= target
    return ok & np.isfinite(values)


def _time_to_target(x, y, target: float, below: bool, settle: bool) -> float:
    """The first x at which y meets the target (``settle``: from which it stays met),
    interpolated in log y for a decay to a level, linearly for a rise; inf if never."""
    if not settle:
        return first_crossing(x, y, target, below=below, log=below)
    met = _met(y, target, below)
    if not met[-1]:
        return math.inf
    failed = np.flatnonzero(~met)
    if failed.size == 0:
        return float(x[0])
    i = int(failed[-1])
    return first_crossing(x[i:], y[i:], target, below=below, log=below)


def _value_at(x, y, budget: float) -> float:
    """y at x = budget, interpolated linearly; inf past the curve's end or a divergence."""
    if x[-1] < budget * (1 - 1e-12):
        return math.inf
    i = int(np.searchsorted(x, budget, side="left"))
    if i == 0:
        return float(y[0])
    i = min(i, len(x) - 1)
    x0, x1 = x[i - 1], x[i]
    frac = 0.0 if x1 == x0 else min(1.0, (budget - x0) / (x1 - x0))
    y0, y1 = y[i - 1], y[i]
    if not (np.isfinite(y0) and np.isfinite(y1)):
        return math.inf
    return float(y0 + frac * (y1 - y0))


def _steps(point: PointValues) -> np.ndarray:
    if point.steps is None:
        raise ValueError("steps_to_target needs the curve's meta['dim'] when time_unit is 't'")
    return point.steps


def _scores(objective, curves: CurveGrid) -> np.ndarray:
    """The objective at every point of ``curves`` (inf where None): a built-in `Objective`
    reads stacked rows without building their Curves; any other callable gets each Curve."""
    if isinstance(objective, Objective):
        return objective.scores(curves.values(g, objective.observable)
                                for g in range(len(curves)))
    return np.array([math.inf if c is None else float(objective(c)) for c in curves])


def _cleaned(curves: CurveGrid, observable: str) -> list[np.ndarray]:
    """``observable`` at every valid point, inf from a divergence on."""
    points = (curves.values(g, observable) for g in range(len(curves)))
    return [p.values for p in points if p is not None]


def _check_level(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(float(value)):
        raise ValueError(f"{name}={value!r} is invalid; allowed: a finite number")
    return float(value)


def _check_observable_name(observable) -> str:
    if not isinstance(observable, str):
        raise ValueError(f"observable={observable!r} is invalid; allowed: the name of an "
                         "observable (a string, e.g. 'excess_risk')")
    return observable


def _check_reach(reach: str) -> str:
    if reach not in ("below", "above"):
        raise ValueError(f"reach={reach!r} is invalid; allowed: 'below' or 'above'")
    return reach


def samples_to_target(value: float, observable: str = "excess_risk", *, reach: str = "below",
                      settle: bool = False) -> Objective:
    """Fresh samples used until ``observable <= value`` (``reach="above"``: ``>= value``; with
    ``settle``, until it stays there); inf if never, or after divergence."""
    return Objective("samples_to_target", _check_observable_name(observable),
                     target=_check_level("value", value), reach=_check_reach(reach),
                     settle=v.flag("settle", settle))


def steps_to_target(value: float, observable: str = "excess_risk", *, reach: str = "below",
                    settle: bool = False) -> Objective:
    """Optimizer steps until ``observable <= value`` (``reach="above"``: ``>= value``; with
    ``settle``, until it stays there); inf if never, or after divergence."""
    return Objective("steps_to_target", _check_observable_name(observable),
                     target=_check_level("value", value), reach=_check_reach(reach),
                     settle=v.flag("settle", settle))


def value_at_budget(*, samples: float | None = None, steps: float | None = None,
                    observable: str = "excess_risk") -> Objective:
    """The observable once ``samples`` fresh samples (or ``steps`` steps; give exactly one)
    have been used, interpolated linearly (inf if the prediction diverged first)."""
    if (samples is None) == (steps is None):
        raise ValueError(f"samples={samples!r}, steps={steps!r}; allowed: exactly one of them")
    name, value = ("samples", samples) if samples is not None else ("steps", steps)
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{name}={value!r} is invalid; allowed: a positive finite number")
    return Objective("value_at_budget", _check_observable_name(observable), budget=float(value),
                     budget_unit=name)


def _describe(objective) -> str:
    return getattr(objective, "description", None) or getattr(objective, "__name__", "objective")


# ----------------------------------------------------------------- the search space
def _grid(space: Mapping[str, Any]) -> tuple[list[str], list[np.ndarray]]:
    if not space:
        raise ValueError("space must name at least one field")
    names, axes = [], []
    for name, cand in space.items():
        if not isinstance(cand, LogRange) and (isinstance(cand, (str, bytes))
                                               or np.ndim(cand) != 1):
            raise ValueError(f"space[{name!r}]={cand!r} is invalid; allowed: a LogRange or a "
                             "1-d sequence of candidate values (one value: [value])")
        vals = cand.values() if isinstance(cand, LogRange) else np.asarray(list(cand))
        if vals.size == 0:
            raise ValueError(f"space[{name!r}] has no candidate values")
        if vals.dtype.kind == "O":
            raise ValueError(f"space[{name!r}] holds {type(vals[0]).__name__} values; allowed: "
                             "numbers (a step-size Schedule is tuned by hdsgd.tune_schedule)")
        names.append(name)
        axes.append(vals)
    return names, axes


def _candidates(setup, names, points) -> list:
    """The Setup of each grid point (field values in the order of ``names``), None where the
    values fail validation."""
    out = []
    for p in points:
        try:
            out.append(setup.replace(**dict(zip(names, p))))
        except ValueError:
            out.append(None)
    return out


# ----------------------------------------------------------------- the result
def bootstrap_objective(objective, mc: Curve, *, resamples: int = 200, seed: int = 0
                        ) -> tuple[float, float]:
    """(objective of the Monte Carlo mean, its standard error by bootstrap over the seeds)."""
    value = float(objective(mc))
    if mc.seeds is None or mc.seeds < 2:
        return value, math.nan
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        pick = rng.integers(0, mc.seeds, mc.seeds)
        sub = Curve(time=mc.time, observables={k: v[pick] for k, v in mc.observables.items()},
                    time_unit=mc.time_unit, samples=mc.samples, seeds=mc.seeds,
                    diverged=mc.diverged_mask[pick], meta=mc.meta)
        draws.append(float(objective(sub)))
    draws = np.asarray(draws)
    finite = draws[np.isfinite(draws)]
    if finite.size < 0.9 * resamples:
        return value, math.inf
    return value, float(np.std(finite, ddof=1))


class VerifiedPoint(eqx.Module):
    """One setting checked by Monte Carlo: its predicted score and its Monte Carlo score."""

    setup: Any
    predicted: float
    measured: float
    measured_sem: float
    mc: Curve


class Verification(eqx.Module):
    """Monte Carlo check of a tuned setting and of its grid neighbours.

    Attributes:
        mc: the chosen setting's Monte Carlo.
        objective_value: the objective of its seed mean.
        objective_sem: its standard error (bootstrap over seeds).
        agreement: `compare` of the chosen prediction with its Monte Carlo.
        points: the chosen setting first, then its neighbours, each a `VerifiedPoint`.
    """

    mc: Curve
    objective_value: float
    objective_sem: float
    agreement: Agreement
    points: list

    def decided(self) -> bool:
        """False when the standard error of the choice's or the best point's Monte Carlo
        score is not finite (resampled seed means often miss the target): no verdict then."""
        chosen = self.points[0]
        best = min(self.points, key=lambda p: p.measured)
        return bool(math.isfinite(chosen.measured_sem) and math.isfinite(best.measured_sem)
                    and math.isfinite(chosen.measured))

    def ok(self, n_sem: float = 3.0) -> bool:
        """True when the chosen setting's Monte Carlo score is within ``n_sem`` combined
        standard errors of the best Monte Carlo score among the points checked (False when
        the scores' standard errors are not finite: see `decided`)."""
        if not self.decided():
            return False
        chosen = self.points[0]
        best = min(self.points, key=lambda p: p.measured)
        spread = math.hypot(chosen.measured_sem, best.measured_sem)
        return bool(chosen.measured <= best.measured + n_sem * spread)

    def summary(self) -> str:
        lines = ["Monte Carlo check (the choice first, then its grid neighbours):"]
        for p in self.points:
            lines.append(f"  predicted {p.predicted:.6g}   Monte Carlo {p.measured:.6g} +- "
                         f"{p.measured_sem:.2g}")
        if not self.decided():
            lines.append("the choice is UNDECIDED: the Monte Carlo scores' standard errors are not "
                         "finite (resampled seed means often never reach the target); use more "
                         "seeds or a longer horizon")
        else:
            lines.append("the choice is " + ("confirmed: no neighbour is better by more than 3 "
                                             "standard errors" if self.ok() else
                                             "NOT confirmed: a neighbour is better in Monte Carlo"))
        lines.append("prediction against Monte Carlo at the choice: " + self.agreement.verdict)
        return "\n".join(lines)


def _plain_formatter(labelled: bool):
    """Minor log-axis tick labels: plain numbers at 2 and 5 x 10^k (``labelled``), else none."""
    from matplotlib.ticker import FuncFormatter

    def label(value, _):
        mantissa = value / 10 ** math.floor(math.log10(value))
        return f"{value:g}" if labelled and round(mantissa) in (2, 5) else ""

    return FuncFormatter(label)


class Tuned(eqx.Module):
    """The tuned setup and what it is predicted to achieve.

    Attributes:
        setup: the chosen Setup.
        objective_value: its predicted score (lower is better).
        curve: its predicted Curve (None for a `SetupObjective`).
        table: one row per grid point (field values and score), then refinement steps.
        objective: the objective used.
        horizon: the prediction horizon of the choice (None for a `SetupObjective` without one).
        names: the tuned fields, in the order of the search space.
        budget: the sample budget each candidate was predicted for (or None).
        notes: what the cliff guard did (grid points passed over, a refinement backed off or
            undone; see `tune`'s ``margin``) and the chosen prediction's ``meta["warning"]``
            (e.g. a method outside its regime); empty when there is nothing to say.
    """

    setup: Any
    objective_value: float
    curve: Curve | None
    table: list
    objective: Any
    horizon: float | None
    options: dict = eqx.field(static=True, default_factory=dict)
    names: tuple = eqx.field(static=True, default=())
    budget: float | None = None
    fixed_horizon: float | None = None
    notes: tuple = eqx.field(static=True, default=())

    def neighbours(self) -> list:
        """The grid points next to the choice along the first tuned field (the others held at
        their chosen values): at most two Setups."""
        if not self.names:
            return []
        name = self.names[0]
        others = {n: getattr(self.setup, n) for n in self.names[1:]}
        chosen = getattr(self.setup, name)
        if not isinstance(chosen, (int, float, np.number)):  # a schedule has no grid neighbours
            return []
        values = sorted({row[name] for row in self.table if "refined" not in row})
        below = [v for v in values if v < chosen * (1 - 1e-9)]
        above = [v for v in values if v > chosen * (1 + 1e-9)]
        out = []
        for v in ([below[-1]] if below else []) + ([above[0]] if above else []):
            try:
                out.append(self.setup.replace(**{**others, name: v}))
            except ValueError:
                continue
        return out

    def verify(self, key, seeds: int = 16, *, neighbours: bool = True,
               **simulate_options) -> Verification:
        """Simulate the choice (and its two grid neighbours) and score each Monte Carlo mean
        with the same objective; the prediction of the choice is compared with its Monte Carlo."""
        if isinstance(self.objective, SetupObjective):
            raise ValueError(f"objective={self.objective.description!r} scores Setups, not "
                             "curves, so Tuned.verify cannot score a Monte Carlo; allowed: a "
                             "Curve objective, or the system's own Monte Carlo measure (e.g. "
                             "hdsgd.momentum.measured_time_to_target)")
        setups = [self.setup] + (self.neighbours() if neighbours else [])
        points = []
        for i, s in enumerate(setups):
            horizon = _candidate_horizon(s, self.fixed_horizon, self.budget)
            mc = simulate(s, horizon, key=jax.random.fold_in(key, i), seeds=seeds,
                          **simulate_options)
            predicted = self.objective_value if i == 0 else float(
                self.objective(predict(s, horizon, **self.options)))
            value, sem = bootstrap_objective(self.objective, mc)
            points.append(VerifiedPoint(setup=s, predicted=predicted, measured=value,
                                        measured_sem=sem, mc=mc))
        first = points[0]
        return Verification(mc=first.mc, objective_value=first.measured,
                            objective_sem=first.measured_sem,
                            agreement=compare(self.curve, first.mc), points=points)

    def plot(self, path, verification: Verification | None = None) -> Path:
        """The predicted objective over the grid against the first tuned field (one line per
        value of the second), the choice marked, and Monte Carlo scores when given."""
        from .plot import _pyplot, save_figure

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6.0, 4.2))
        rows = [r for r in self.table if "refined" not in r]
        name = self.names[0]
        second = self.names[1] if len(self.names) > 1 else None
        groups = sorted({r[second] for r in rows}) if second else [None]
        for g in groups:
            sel = [r for r in rows if second is None or r[second] == g]
            x = np.array([r[name] for r in sel])
            y = np.array([r["score"] for r in sel])
            order = np.argsort(x)
            label = "predicted" if g is None else f"predicted, {second}={g:g}"
            finite = np.isfinite(y[order])
            ax.plot(x[order][finite], y[order][finite], "-o", ms=3, label=label)
            if (~finite).any():
                ax.plot(x[order][~finite], np.full((~finite).sum(), np.nanmax(
                    np.where(np.isfinite(y), y, np.nan))), "x", color="gray",
                    label=None if g != groups[0] else "target not reached / diverged")
        chosen = ", ".join(f"{n}={getattr(self.setup, n):.4g}" for n in self.names)
        ax.plot([getattr(self.setup, name)], [self.objective_value], "*", ms=14, color="black",
                label=f"choice: {chosen}")
        if verification is not None:
            points = [p for p in verification.points if math.isfinite(p.measured)]
            missed = [p for p in verification.points if not math.isfinite(p.measured)]
            if points:   # a score whose standard error is not finite is drawn without a bar
                ax.errorbar([getattr(p.setup, name) for p in points], [p.measured for p in points],
                            yerr=[2 * p.measured_sem if math.isfinite(p.measured_sem) else 0.0
                                  for p in points], fmt="s", mfc="none", color="firebrick",
                            capsize=3,
                            label=f"Monte Carlo +- 2 s.e. ({verification.mc.seeds} seeds)")
            if missed:   # at the height of the predicted "not reached" marks
                finite = [r["score"] for r in rows if math.isfinite(r["score"])]
                top = max(finite + [p.measured for p in points] + [self.objective_value])
                ax.plot([getattr(p.setup, name) for p in missed], [top] * len(missed), "s",
                        ms=9, mfc="none", color="firebrick",
                        label="Monte Carlo: target not reached")
        ax.set_xscale("log")
        x_all = [r[name] for r in rows]
        # matplotlib labels minor log ticks as overlapping "2 x 10^-1" over short ranges
        ax.xaxis.set_minor_formatter(_plain_formatter(max(x_all) < 100 * min(x_all)))
        scores = np.array([r["score"] for r in rows])
        scores = scores[np.isfinite(scores) & (scores > 0)]
        if scores.size and scores.max() > 20 * scores.min():
            ax.set_yscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(_describe(self.objective))
        ax.set_title(f"tuning {', '.join(self.names)} ({self.setup.system})", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
        fig.tight_layout()
        return save_figure(fig, path)

    def table_str(self, rows: int = 40) -> str:
        if not self.table:
            return ""
        keys = list(self.table[0])
        refined = any("refined" in row for row in self.table) and "refined" not in keys
        lines = [" ".join(f"{k:>14}" for k in keys) + ("  refined" if refined else "")]
        for row in self.table[:rows]:
            lines.append(" ".join(f"{row[k]:>14.6g}" if isinstance(row[k], (int, float)) else f"{row[k]!s:>14}"
                                  for k in keys)
                         + (f"  {row['refined']}" if refined and "refined" in row else ""))
        if len(self.table) > rows:
            lines.append(f"... ({len(self.table) - rows} more rows)")
        return "\n".join(lines)


def _candidate_horizon(setup, horizon, budget) -> float:
    """The prediction horizon of one candidate: ``horizon`` when given, else the time at which
    it has used ``budget`` fresh samples (so candidates with different batch sizes get the
    same sample budget)."""
    if horizon is not None:
        return float(horizon)
    return float(budget) / (setup.samples_per_step * setup.steps_per_unit)


def _check_budget(budget: float, candidates) -> None:
    """A sample budget every candidate can spend in at least one and at most `MAX_STEPS` steps
    (a ValueError naming ``budget``, not the horizon it becomes)."""
    per_step = [c.samples_per_step for c in candidates]
    low, high = max(per_step), min(per_step) * MAX_STEPS
    if not low <= budget <= high:
        raise ValueError(f"budget={budget!r} is invalid; allowed: a number of samples in "
                         f"[{low:g}, {high:.6g}] (one step of the largest batch up to 2^53 steps "
                         "of the smallest)")


def _predict_candidates(setup, candidates, horizons, executor, options) -> CurveGrid:
    """Predicted curves of candidate Setups (None stays None), one `predict_grid` call per
    distinct horizon over the fields that differ from ``setup``."""
    points: list = [None] * len(candidates)
    groups: dict[float, list[int]] = {}
    for i, (c, h) in enumerate(zip(candidates, horizons)):
        if c is not None:
            groups.setdefault(h, []).append(i)
    own = {n: getattr(setup, n) for n in setup.field_names()}

    def same(value, name) -> bool:  # an unchanged field is the Setup's own object (arrays too)
        return value is own[name] or np.array_equal(np.asarray(value, dtype=object),
                                                    np.asarray(own[name], dtype=object))

    for h, idx in groups.items():
        changed = [n for n in own if any(not same(getattr(candidates[i], n), n) for i in idx)]
        if not changed:
            one = predict(setup, h, **options)
            for i in idx:
                points[i] = one
            continue
        grid = {n: np.array([getattr(candidates[i], n) for i in idx]) for n in changed}
        curves = predict_grid(setup, grid, h, executor=executor, **options)
        for k, i in enumerate(idx):
            points[i] = curves.point(k)
    return CurveGrid(points)


def lowest_reached(setup, space: Mapping[str, Sequence | LogRange], observable: str, *,
                   horizon: float | None = None, budget: float | None = None,
                   **predict_options) -> tuple[float, float]:
    """(start, lowest): ``observable`` at t = 0 and the lowest value any grid point of ``space``
    is predicted to reach within ``horizon`` (or within its sample ``budget``): the range a
    target of that observable can be set in (``hdsgd lstsq tune``'s default target is their
    geometric mean). Grid points that fail validation, and diverged stretches, are skipped."""
    if (horizon is None) == (budget is None):
        raise ValueError(f"horizon={horizon!r}, budget={budget!r}; allowed: exactly one of them")
    names, axes = _grid(space)
    candidates = _candidates(setup, names, itertools.product(*axes))
    horizons = [None if c is None else _candidate_horizon(c, horizon, budget) for c in candidates]
    values = _cleaned(_predict_candidates(setup, candidates, horizons, None, predict_options),
                      observable)
    if not values:
        setup.replace(**dict(zip(names, next(itertools.product(*axes)))))  # names the bad value
    return float(values[0][0]), float(min(np.min(v[np.isfinite(v)], initial=np.inf)
                                          for v in values))


def _check_scores(objective, curves, scores) -> None:
    """Refuse a target already met at the start, or met by no candidate at all."""
    kind = getattr(objective, "kind", None)
    if kind in ("samples_to_target", "steps_to_target"):
        below = objective.reach == "below"
        valid = _cleaned(curves, objective.observable)
        starts = [float(v[0]) for v in valid]
        if objective.met(np.array(starts)).any():
            first = min(starts) if below else max(starts)
            raise ValueError(f"target={objective.target:g} is already met at the start "
                             f"({objective.observable} = {first:.6g} at time 0); allowed: a "
                             f"target {'below' if below else 'above'} {first:.6g}")
    if np.all(~np.isfinite(scores)):
        if kind in ("samples_to_target", "steps_to_target"):
            below = objective.reach == "below"
            ends = [e[np.isfinite(e)] for e in valid]
            best = (min if below else max)(float((np.min if below else np.max)(e))
                                           for e in ends if e.size)
            raise ValueError(f"target={objective.target:g} is met by no candidate: the "
                             f"{'lowest' if below else 'highest'} {objective.observable} predicted "
                             f"is {best:.6g}; allowed: a target {'above' if below else 'below'} it, "
                             "a longer horizon or budget, or other candidates")
        raise ValueError(f"no candidate has a finite score for {_describe(objective)} (every "
                         "prediction diverged, or the budget lies beyond the horizon)")


def _bracket_refine(setup, names, axes, space, best_values, best_score, best_curve, objective,
                    horizon, budget, predict_options, refine_evals, table):
    """Refine each `LogRange` field in turn by a bounded Brent search in log scale between the
    best grid point's neighbours (for objectives that are not smooth, or systems without a
    differentiable prediction)."""
    for i, name in enumerate(names):
        if not isinstance(space[name], LogRange):
            continue
        vals = axes[i]
        j = int(np.argmin(np.abs(vals - best_values[name])))
        lo, hi = vals[max(j - 1, 0)], vals[min(j + 1, len(vals) - 1)]
        if lo == hi:
            continue
        cache = {}

        def score_at(log_v, name=name):
            v = float(np.exp(log_v))
            out = _score_values(setup, {**best_values, name: v}, objective, horizon, budget,
                                predict_options)
            if out is None:
                return math.inf
            cache[v] = out[1]
            return out[0]

        res = scipy.optimize.minimize_scalar(
            lambda x: min(score_at(x), 1e300), bounds=(math.log(lo), math.log(hi)),
            method="bounded", options={"maxiter": refine_evals, "xatol": 1e-4})
        v = float(np.exp(res.x))
        if res.fun < best_score and v in cache:
            best_values[name], best_score, best_curve = v, float(res.fun), cache[v]
            table.append({**{n: float(best_values[n]) for n in names}, "score": best_score,
                          "refined": name})
    return best_values, best_score, best_curve


def smooth_objective(objective, values, samples_per_step):
    """The objective of a curve sampled at every step 0..n, as a JAX expression that is
    differentiable in the values and ``samples_per_step`` (None when it has no smooth form).

    value_at_budget: linear interpolation at the budget's step; *_to_target: the first crossing,
    interpolated in (step, log value) between the two steps around it."""

    kind = getattr(objective, "kind", None)
    n = values.shape[0] - 1
    if kind == "value_at_budget":
        k = objective.budget / samples_per_step if objective.budget_unit == "samples" else (
            objective.budget + 0.0 * samples_per_step)
        i = jnp.clip(jnp.floor(k).astype(int), 0, n - 1)
        frac = k - i
        return values[i] * (1 - frac) + values[i + 1] * frac
    if kind in ("samples_to_target", "steps_to_target"):
        if objective.settle:
            return None
        above = objective.reach == "above"
        met = values >= objective.target if above else values <= objective.target
        below = met
        i = jnp.argmax(met)
        i = jnp.maximum(i, 1)
        y0, y1 = values[i - 1], values[i]
        level = objective.target
        if above:
            frac = (y0 - level) / (y0 - y1)
        else:
            frac = (jnp.log(y0) - jnp.log(level)) / (jnp.log(y0) - jnp.log(y1))
        steps = (i - 1) + frac
        out = steps * samples_per_step if kind == "samples_to_target" else steps
        return jnp.where(jnp.any(below), out, jnp.inf)
    return None


def _scipy_value_and_grad(value_and_grad):
    """``x -> (value, gradient)`` in float64 numpy for scipy's L-BFGS-B from a jitted JAX
    ``value_and_grad``; a non-finite value or gradient (past an edge) reads as a wall (1e300)."""

    def fun(x):
        value, grad = value_and_grad(jnp.asarray(x))
        value, grad = float(value), np.asarray(grad, dtype=np.float64)
        if not (math.isfinite(value) and np.all(np.isfinite(grad))):
            return 1e300, np.zeros_like(grad)
        return value, grad

    return fun


def _gradient_refine(setup, names, axes, continuous, best_values, objective, horizon, budget,
                     options):
    """Refine the continuous fields jointly by gradient (L-BFGS-B in log scale, bounded by the
    best grid point's neighbours), the gradient taken through the system's pure prediction
    (forward mode). None when the system or the objective offers no smooth form."""
    from .api import pure_prediction

    kind = getattr(objective, "kind", None)
    if kind is None or getattr(objective, "settle", False):
        return None
    bounds, x0 = [], []
    for name in continuous:
        vals = axes[names.index(name)]
        j = int(np.argmin(np.abs(vals - best_values[name])))
        lo, hi = vals[max(j - 1, 0)], vals[min(j + 1, len(vals) - 1)]
        bounds.append((math.log(lo), math.log(hi)))
        x0.append(math.log(best_values[name]))
    fixed = {n: v for n, v in best_values.items() if n not in continuous}
    try:
        base = setup.replace(**fixed) if fixed else setup
    except ValueError:
        return None
    upper = base.replace(**{n: math.exp(b[1]) for n, b in zip(continuous, bounds)})
    n_steps = int(round(_candidate_horizon(upper, horizon, budget) * upper.steps_per_unit))
    if budget is not None:  # the smallest sample rate in the box runs longest
        lower = base.replace(**{n: math.exp(b[0]) for n, b in zip(continuous, bounds)})
        n_steps = max(n_steps, int(round(_candidate_horizon(lower, horizon, budget)
                                         * lower.steps_per_unit)))
    pure = pure_prediction(base, tuple(continuous), objective.observable, n_steps, **options)
    if pure is None:
        return None

    def score(log_theta):
        theta = jnp.exp(log_theta)
        values = pure.fn(theta)
        out = smooth_objective(objective, values, pure.samples_per_step(theta))
        return out

    value_and_grad = jax.jit(lambda x: (score(x), jax.jacfwd(score)(x)))

    fun = _scipy_value_and_grad(value_and_grad)

    res = scipy.optimize.minimize(fun, np.array(x0), jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"maxiter": 50})
    return {n: float(math.exp(v)) for n, v in zip(continuous, res.x)}, float(res.fun)


CLIFF_TRIES = 5  # grid points, best first, tried for one that keeps the margin


def _score_values(setup, values: dict, objective, horizon, budget, options):
    """(score, curve) of the Setup with ``values``; None when they do not make a valid Setup."""
    try:
        s = setup.replace(**values)
    except ValueError:
        return None
    if isinstance(objective, SetupObjective):
        return float(objective(s)), None
    c = predict(s, _candidate_horizon(s, horizon, budget), **options)
    return float(objective(c)), c


def _cliff(score_of, values: dict, score: float, names, margin: float):
    """Where ``values`` (scoring ``score``) sits at a cliff: the first (name, factor, score)
    for which the field ``name`` times ``factor`` = 1 + margin or 1 / (1 + margin) scores
    non-finite or more than ``score + |score|`` (a rise past 100 % within the margin, where a
    smooth optimum moves by O(margin^2)); None when every nudge keeps the score. A nudge
    that is not a valid Setup is not probed."""
    for name in names:
        for factor in (1.0 + margin, 1.0 / (1.0 + margin)):
            nudged = score_of({**values, name: float(values[name]) * factor})
            if nudged is not None and not nudged <= score + abs(score):
                return name, factor, nudged
    return None


def _describe_cliff(values: dict, score: float, cliff) -> str:
    name, factor, nudged = cliff
    where = ", ".join(f"{n}={float(v):.6g}" for n, v in values.items())
    return (f"{where} (score {score:.6g}) sits at a cliff: {name} x {factor:.4g} scores "
            f"{nudged:.6g}")


@scoped_x64
def tune(setup, space: Mapping[str, Sequence | LogRange], objective: Objective, *,
         horizon: float | None = None, budget: float | None = None, refine: bool = True,
         refine_evals: int = 20, margin: float = 0.02, executor=None,
         **predict_options) -> Tuned:
    """Choose the fields in ``space`` minimising ``objective`` over predicted curves.

    Args:
        setup: the starting Setup; fields not in ``space`` are kept.
        space: field (or derived coordinate, such as prox-linear's ``eta_bar``) -> candidate
            values, or a `LogRange` (grid, then refined).
        objective: ``samples_to_target(...)``, ``steps_to_target(...)``, ``value_at_budget(...)``,
            a callable Curve -> float, or a `SetupObjective` (``setup_objective(fn)``: each
            candidate Setup scored directly, no prediction, no horizon needed).
        horizon: prediction horizon, in the system's time unit; long enough to reach the target.
        budget: instead of ``horizon``, a sample budget: each candidate is predicted until it
            has used this many fresh samples (default: the objective's budget, if it has one).
        refine: refine each `LogRange` field around the best grid point (bounded Brent
            search in log scale, holding the other fields at their best values).
        refine_evals: predictions allowed per refined field.
        margin: the choice keeps this relative distance from a cliff: multiplying any
            continuous (`LogRange`, non-integer) field by 1 + margin or dividing it by 1 + margin
            must keep the predicted score finite and below twice its own (near a smooth optimum
            the score moves by O(margin^2)). A score with a jump (a curve that only grazes its
            target, a divergence edge) pulls the bracketing refinement onto the jump itself,
            where the finite-d run lands on either side (grokking's default tune: the refined
            step sat 0.06 % below a late plateau crossing its target; its Monte Carlo took 1740
            steps against 30 predicted). The tuner takes the best grid point that keeps the
            margin (of the best `CLIFF_TRIES`) and refines from it; a refinement that ends on a
            cliff backs off by one margin or is undone (``Tuned.notes`` says which). 0 turns
            the guard off.
        executor: a ``concurrent.futures.Executor`` for the grid (where the system has no
            vmapped grid prediction).
        **predict_options: passed to `predict` (e.g. ``method=``).

    Returns:
        A `Tuned`; ``objective_value`` is ``inf`` when no candidate reaches the target.
    """
    check_setup(setup, "tune")
    if not callable(objective):
        raise ValueError(f"objective={objective!r} is invalid; allowed: samples_to_target(...), "
                         "steps_to_target(...), value_at_budget(...) or a callable Curve -> float")
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space={space!r} is invalid; allowed: a non-empty dict field -> "
                         "candidate values or LogRange")
    tunable = setup.field_names() + tuple(setup.coordinates)
    unknown = sorted(set(space) - set(tunable))
    if unknown:
        raise ValueError(f"space names {', '.join(map(repr, unknown))}, not a field of "
                         f"{type(setup).__name__}; allowed: {', '.join(tunable)}")
    scores_setups = isinstance(objective, SetupObjective)
    if scores_setups and predict_options:
        raise ValueError(f"option(s) {', '.join(sorted(predict_options))} are invalid with a "
                         "SetupObjective (it predicts nothing); allowed: none (pass them to the "
                         "objective's function)")
    if budget is None and horizon is None and isinstance(objective, Objective):
        budget = objective.sample_budget
    if horizon is None and budget is None and not scores_setups:
        raise ValueError("horizon=None and budget=None; allowed: a horizon (in the system's time "
                         "unit) or a sample budget (budget=, or value_at_budget(samples=...))")
    if horizon is not None:
        horizon = check_horizon(horizon, setup)
    refine = v.flag("refine", refine)
    _check_count("refine_evals", refine_evals, " (refine=False for no refinement)")
    if isinstance(margin, bool) or not (isinstance(margin, (int, float)) and 0 <= margin < 1):
        raise ValueError(f"margin={margin!r} is invalid; allowed: a number in [0, 1) (0: no "
                         "cliff guard)")
    if budget is not None and (isinstance(budget, bool)
                               or not (isinstance(budget, (int, float)) and 0 < budget < math.inf)):
        raise ValueError(f"budget={budget!r} is invalid; allowed: a positive number of samples")
    names, axes = _grid(space)
    points = list(itertools.product(*axes))
    curves = None
    if (horizon is not None and not scores_setups and set(names) <= set(type(setup).grid_checks)
            and all(np.asarray(a).dtype.kind in "biuf" for a in axes)):
        # one horizon, numbers in fields checked value by value: the grid goes to predict_grid
        # as it is, which checks it once, with no Setup built per point (~60 us each, as much
        # as the vmapped recursion); a point it leaves None failed validation
        grid = {n: np.array([p[k] for p in points], dtype=object) for k, n in enumerate(names)}
        curves = predict_grid(setup, grid, horizon, executor=executor, **predict_options)
        candidates = [None if curves.point(g) is None else True for g in range(len(curves))]
    else:
        candidates = _candidates(setup, names, points)
    if all(c is None for c in candidates):
        setup.replace(**dict(zip(names, points[0])))  # raises, naming the invalid value
    if horizon is None and budget is not None and not scores_setups:
        _check_budget(budget, [c for c in candidates if c is not None])
    if scores_setups:
        curves = [None] * len(candidates)
        valid = [c for c in candidates if c is not None]
        found = iter(list(executor.map(objective, valid)) if executor is not None
                     else [objective(c) for c in valid])
        scores = np.array([math.inf if c is None else float(next(found)) for c in candidates])
        if not np.isfinite(scores).any():
            raise ValueError(f"no candidate has a finite score for {_describe(objective)}; "
                             "allowed: other candidates, or a target the system can reach")
    else:
        if curves is None:
            horizons = [None if c is None else _candidate_horizon(c, horizon, budget)
                        for c in candidates]
            curves = _predict_candidates(setup, candidates, horizons, executor,
                                         predict_options)
        scores = _scores(objective, curves)
        _check_scores(objective, curves, scores)
    table = [{**{n: float(p[i]) for i, n in enumerate(names)}, "score": float(s)}
             for p, s in zip(points, scores)]
    best = int(np.argmin(scores))
    if candidates[best] is None:
        raise ValueError("no point of space gives a valid setup (every candidate failed validation)")
    # fields a cliff is probed along: continuous ranges of real (not integer) fields
    probed = [n for n in names if isinstance(space[n], LogRange)
              and not isinstance(getattr(setup, n), (bool, int, np.integer))]
    notes: list[str] = []

    def score_values(values):
        return _score_values(setup, values, objective, horizon, budget, predict_options)

    def score_of(values):
        out = score_values(values)
        return None if out is None else out[0]

    def cliff_at(values, score):
        return _cliff(score_of, values, score, probed, margin) if margin > 0 and probed else None

    if math.isfinite(scores[best]):
        order = [int(i) for i in np.argsort(scores, kind="stable") if math.isfinite(scores[i])]
        for i in order[:CLIFF_TRIES]:
            values = {n: points[i][k] for k, n in enumerate(names)}
            cliff = cliff_at(values, float(scores[i]))
            if cliff is None:
                best = i
                break
            notes.append("passed over " + _describe_cliff(values, float(scores[i]), cliff))
        else:
            notes.append(f"none of the best {min(len(order), CLIFF_TRIES)} grid points keeps the "
                         f"margin {margin:g} from a cliff; the best is kept")
    best_values = {n: points[best][i] for i, n in enumerate(names)}
    best_score, best_curve = float(scores[best]), curves[best]
    grid_choice = (dict(best_values), best_score, best_curve)

    if refine and math.isfinite(best_score):
        continuous = [n for n in names if isinstance(space[n], LogRange)]
        refined = None
        if continuous and not scores_setups:
            refined = _gradient_refine(setup, names, axes, continuous, best_values, objective,
                                       horizon, budget, predict_options)
        if refined is not None:
            values, _ = refined
            try:
                out = score_values({**best_values, **values})
            except ValueError:
                out = None
            score, c = (math.inf, None) if out is None else out
            if score < best_score:
                best_values.update(values)
                best_score, best_curve = score, c
                table.append({**{n: float(best_values[n]) for n in names}, "score": best_score,
                              "refined": "gradient"})
        else:
            best_values, best_score, best_curve = _bracket_refine(
                setup, names, axes, space, best_values, best_score, best_curve, objective,
                horizon, budget, predict_options, refine_evals, table)
        if best_values != grid_choice[0]:
            refined_values = dict(best_values)
            best_values, best_score, best_curve = _guard_refined(
                best_values, best_score, best_curve, grid_choice, cliff_at, notes, score_values)
            if best_values != refined_values:
                for row in table:
                    if "refined" in row and all(row[n] == float(refined_values[n]) for n in names):
                        row["refined"] += ", on a cliff: not kept"
                if best_values != grid_choice[0]:
                    table.append({**{n: float(best_values[n]) for n in names},
                                  "score": best_score, "refined": "one margin back"})
    if best_curve is not None and best_curve.meta.get("warning"):
        notes.append(f"the chosen prediction warns: {best_curve.meta['warning']}")
    chosen = setup.replace(**best_values)
    chosen_horizon = (None if horizon is None and budget is None
                      else _candidate_horizon(chosen, horizon, budget))
    return Tuned(setup=chosen, objective_value=best_score, curve=best_curve, table=table,
                 objective=objective, horizon=chosen_horizon,
                 options=dict(predict_options), names=tuple(names), budget=budget,
                 fixed_horizon=horizon, notes=tuple(notes))


def _guard_refined(values, score, curve, grid_choice, cliff_at, notes, score_values):
    """The refined choice if it keeps the margin; else the point one margin back from its
    cliff, if that keeps the margin and beats the grid choice; else the grid choice."""
    cliff = cliff_at(values, score)
    if cliff is None:
        return values, score, curve
    notes.append("refinement stopped short: " + _describe_cliff(values, score, cliff))
    name, factor, _ = cliff
    back = {**values, name: float(values[name]) / factor}
    out = score_values(back)
    if out is not None and out[0] < grid_choice[1] and cliff_at(back, out[0]) is None:
        notes[-1] += f"; backed off to {name}={back[name]:.6g} (score {out[0]:.6g})"
        return back, out[0], out[1]
    notes[-1] += "; the grid choice is kept"
    return grid_choice


# ----------------------------------------------------------------- step-size schedules
def _check_count(name: str, value, hint: str = "") -> None:
    """A Python or numpy integer >= 1 (not a float, not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} is invalid; allowed: an integer >= 1{hint}")


def _check_steps(steps) -> int:
    ok = not isinstance(steps, bool) and isinstance(steps, (int, float, np.integer, np.floating))
    if ok:
        ok = math.isfinite(float(steps)) and float(steps) == int(steps) and int(steps) >= 1
    if not ok:
        raise ValueError(f"steps={steps!r} is invalid; allowed: an integer >= 1 (the horizon in "
                         "optimizer steps)")
    return int(steps)


CONSTANT_SCAN = 32    # constant step sizes scanned (log-spaced up to 0.99 of the edge) to start from
_THETA_BOUNDS = (-30.0, 20.0)  # sigmoid(theta) in (1e-13, 1 - 2e-9): strictly below the edge


@scoped_x64
def tune_schedule(setup, objective: Objective, *, steps: int, pieces: int = 8, boundaries=None,
                  maxiter: int = 200) -> Tuned:
    """Optimise a piecewise-constant step-size `Schedule` on the prediction alone.

    The schedule has ``pieces`` pieces of near-equal length over ``steps`` optimizer steps
    (`Schedule.even`), or the given ``boundaries``. Each piece is kept strictly below the
    stability edge by the parametrisation

        gamma_p = gamma_c sigmoid(theta_p),   p = 0..P-1,

    with gamma_c the system's edge (`PurePrediction.upper`, the exact critical step size for
    least squares). The smooth form of ``objective`` (`smooth_objective`) on the system's pure
    prediction over steps 0..``steps`` is minimised over theta by L-BFGS-B, with the gradient
    taken by reverse mode through the prediction (``jax.grad``), started from the best of
    `CONSTANT_SCAN` constant step sizes (log-spaced from 1e-3 to 0.99 of gamma_c), so the
    result is never predicted worse than that constant.

    Args:
        setup: a Setup whose ``step_size`` accepts a `Schedule` (least squares); its other
            fields are kept.
        objective: ``value_at_budget(...)`` or ``*_to_target(...)`` without ``settle`` (the
            objectives with a smooth form); a sample budget must fit in ``steps`` steps.
        steps: the horizon, in optimizer steps.
        pieces: P >= 1 (with ``boundaries`` given: len(boundaries) + 1).
        boundaries: the first step of pieces 1..P-1 (default: near-equal pieces).
        maxiter: L-BFGS-B iterations.

    Returns:
        A `Tuned` whose ``setup.step_size`` is the optimised `Schedule`; ``table`` holds the
        constant scan (``step_size``, ``score``), then the schedule's row (``refined``); its
        ``objective_value`` is the objective of the predicted curve of the schedule.
    """
    from .api import pure_prediction
    from .setups.schedule import Schedule

    check_setup(setup, "tune_schedule")
    n = _check_steps(steps)
    kind = getattr(objective, "kind", None)
    if kind is None or getattr(objective, "settle", False):
        raise ValueError(f"objective={objective!r} is invalid for tune_schedule; allowed: "
                         "value_at_budget(...), samples_to_target(...) or steps_to_target(...) "
                         "without settle (the objectives with a smooth form)")
    _check_count("pieces", pieces)
    _check_count("maxiter", maxiter)
    if boundaries is None:
        if pieces > n:
            raise ValueError(f"pieces={pieces} is more than steps={n}; allowed: pieces <= steps")
        shape = Schedule.even(np.ones(int(pieces)), n)
    else:
        shape = Schedule(np.ones(len(np.atleast_1d(boundaries)) + 1), boundaries)
        if shape.boundaries.size and shape.boundaries[-1] >= n:
            raise ValueError(f"boundaries={boundaries!r} reach step {shape.boundaries[-1]}; "
                             f"allowed: boundaries < steps={n}")
    if "step_size" not in setup.field_names():
        raise ValueError(f"{type(setup).__name__} has no step_size field; allowed: a Setup whose "
                         "step_size accepts a Schedule (hdsgd.StreamingLeastSquares)")
    try:
        start = setup.replace(step_size=shape)
    except (ValueError, TypeError):
        raise ValueError(f"{type(setup).__name__} does not accept a step-size Schedule; "
                         "allowed: hdsgd.StreamingLeastSquares") from None
    horizon = n / setup.steps_per_unit
    pure = pure_prediction(start, ("step_size",), objective.observable, n)
    if pure is None or pure.upper is None or not np.all(np.isfinite(pure.upper)):
        raise ValueError(f"{type(setup).__name__} offers no differentiable prediction of "
                         f"{objective.observable!r} under a step-size schedule with a stability "
                         "edge; allowed: hdsgd.StreamingLeastSquares with observable 'risk' or "
                         "'excess_risk'")
    if objective.sample_budget is not None:
        need = objective.sample_budget / float(pure.samples_per_step(pure.upper))
        if need > n:
            raise ValueError(f"the objective's budget of {objective.sample_budget:g} samples needs "
                             f"{need:g} steps; allowed: steps >= {math.ceil(need)}")

    if kind in ("samples_to_target", "steps_to_target"):
        # the start does not depend on the schedule: one step of any valid one shows it
        first = predict(setup.replace(step_size=0.5 * float(np.min(pure.upper))),
                        1.0 / setup.steps_per_unit, times=[0.0])
        _check_scores(objective, CurveGrid([first]), np.zeros(1))

    upper = jnp.asarray(pure.upper)

    def score(theta):
        gammas = upper * jax.nn.sigmoid(theta)
        return smooth_objective(objective, pure.fn(gammas), pure.samples_per_step(gammas))

    score_jit = jax.jit(score)
    fractions = np.geomspace(1e-3, 0.99, CONSTANT_SCAN)
    scan = [float(score_jit(jnp.full(shape.pieces, math.log(f / (1 - f))))) for f in fractions]
    scan = np.where(np.isfinite(scan), scan, np.inf)
    best = int(np.argmin(scan))
    if not math.isfinite(scan[best]):
        raise ValueError(f"no constant step size below the edge has a finite score for "
                         f"{_describe(objective)} within steps={n}; allowed: a longer horizon or "
                         "a reachable target")
    table = [{"step_size": float(f * pure.upper[0]), "score": float(v)}
             for f, v in zip(fractions, scan)]
    scale = abs(scan[best]) or 1.0
    value_and_grad = jax.jit(jax.value_and_grad(lambda th: score(th) / scale))

    fun = _scipy_value_and_grad(value_and_grad)

    f0 = fractions[best]
    x0 = np.full(shape.pieces, math.log(f0 / (1 - f0)))
    res = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B",
                                  bounds=[_THETA_BOUNDS] * shape.pieces,
                                  options={"maxiter": int(maxiter)})
    x = res.x if res.fun <= 1.0 else x0
    gammas = pure.upper / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))
    chosen = setup.replace(step_size=shape.with_step_sizes(gammas))
    curve = predict(chosen, horizon)
    value = float(objective(curve))
    table.append({"step_size": "schedule", "score": value, "refined": "schedule"})
    return Tuned(setup=chosen, objective_value=value, curve=curve, table=table,
                 objective=objective, horizon=horizon, options={}, names=("step_size",),
                 budget=None, fixed_horizon=horizon)


# ----------------------------------------------------------------- batch size
class Tradeoff(eqx.Module):
    """Samples and steps to a target against the batch size, each B at its own best step.

    Attributes:
        batch_sizes: the batch sizes (B,).
        step_sizes: the best step size at each batch size (for the fewest steps).
        steps: predicted steps to the target at that step size.
        samples: predicted fresh samples to the target (steps x B x samples per draw).
        observable, target: what is reached.
    """

    batch_sizes: np.ndarray
    step_sizes: np.ndarray
    steps: np.ndarray
    samples: np.ndarray
    observable: str = eqx.field(static=True)
    target: float

    def plot(self, path, *, critical_batch: float | None = None, title: str | None = None) -> Path:
        """Steps and samples to the target against B (log-log), the critical batch marked."""
        from .plot import _pyplot, save_figure

        plt = _pyplot()
        fig, ax = plt.subplots(figsize=(6.0, 4.2))
        ax.plot(self.batch_sizes, self.steps, "-o", ms=4, label="steps to target (fewer: faster)")
        ax.plot(self.batch_sizes, self.samples, "-s", ms=4, label="samples to target (data cost)")
        if critical_batch is not None:
            ax.axvline(critical_batch, color="gray", ls="--",
                       label=f"critical batch size {critical_batch:.3g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("batch size B (each at its best step size)")
        ax.set_ylabel(f"until {self.observable} <= {self.target:.3g}")
        ax.set_title(title or "the batch-size trade-off", fontsize=10)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=8)
        fig.tight_layout()
        return save_figure(fig, path)


@scoped_x64
def batch_tradeoff(setup, target: float, batch_sizes, step_space, *, observable: str,
                   horizon: float, **predict_options) -> Tradeoff:
    """The sample-cost / step-cost trade-off: for each batch size, the step size that reaches
    ``observable <= target`` in the fewest steps (`tune` over ``step_space(setup_at_B)``, a
    `LogRange` or candidates), and the steps and samples it then needs.

    Below the critical batch size the best step grows like B and the steps fall like 1/B (the
    samples stay flat); above it the steps stop falling and every extra sample is wasted.
    """
    batch_sizes = v.whole_array("batch_sizes", batch_sizes)
    rows = []
    for b in batch_sizes:
        at_b = setup.replace(batch_size=int(b))
        space = step_space(at_b) if callable(step_space) else step_space
        tuned = tune(at_b, {"step_size": space}, steps_to_target(target, observable),
                     horizon=horizon, **predict_options)
        rows.append((int(b), tuned.setup.step_size, tuned.objective_value,
                     tuned.objective_value * at_b.samples_per_step))
    b, step, steps, samples = (np.array(c) for c in zip(*rows))
    return Tradeoff(batch_sizes=b, step_sizes=step, steps=steps, samples=samples,
                    observable=observable, target=float(target))
