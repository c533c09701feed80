"""Figures: theory lines against Monte Carlo means with a +-2 standard-error band.

One panel per observable, at most three panels per row. The Monte Carlo band is the mean
+- 2 standard errors of the mean (what `hdsgd.compare` measures gaps in); the 10-90 % spread of
the seeds is optional (``spread=True``). Diverged parts are marked: the finite part of a curve is
drawn, a red dotted line and a label mark where it diverged, and a curve that is infinite from
the start gets a note instead of a line. Observables listed in ``meta["auxiliary"]`` (a clock,
bookkeeping) are not drawn unless named. Uses matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from .curve import Curve, check_observable
from .setups import _validate as v

PANELS_PER_ROW = 3
#: Setup fields never shown in a default title (large arrays, bookkeeping)
_TITLE_SKIP = {"system", "setup_fields", "free_fields", "version", "time_label", "method",
               "warning", "auxiliary", "dtype"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _masked(values, diverged, log: bool) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    bad = np.asarray(diverged, dtype=bool) | ~np.isfinite(v)
    if log:
        bad |= v <= 0
    v[bad] = np.nan
    return v


def default_observables(curve: Curve, limit: int = 9) -> list[str]:
    """The observables worth a panel: all but ``meta["auxiliary"]``, at most ``limit``."""
    hidden = set(curve.meta.get("auxiliary", ()))
    return [n for n in curve.names if n not in hidden][:limit]


def default_title(curve: Curve, width: int = 110, skip=(), prefix: str | None = None) -> str:
    """The system and its scalar Setup fields (but ``skip``), on at most two lines of ``width``
    characters; ``prefix`` replaces the system's name."""
    fields = curve.meta.get("setup_fields") or [k for k in curve.meta if k not in _TITLE_SKIP]
    parts = []
    for name in fields:
        value = curve.meta.get(name)
        if name in _TITLE_SKIP or name in skip or isinstance(value, (list, dict)) or value is None:
            continue
        text = f"{value:.4g}" if isinstance(value, float) else str(value)
        parts.append(f"{name}={text}")
    if "dim" in curve.meta and "dim" not in fields:
        parts.insert(0, f"d={curve.meta['dim']}")
    head = str(curve.meta.get("system", "")) if prefix is None else prefix
    lines = textwrap.wrap(f"{head}: {', '.join(parts)}" if head else ", ".join(parts), width)
    return "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else "")


def _curve_list(name: str, value) -> list[Curve]:
    """None, one Curve or a sequence of them, as a list."""
    return [] if value is None else v.sequence_of(name, value, Curve, "a Curve, a sequence of "
                                                  "Curves, or None")


def plot_curves(theory: Curve | Sequence[Curve] | None = None,
                mc: Curve | Sequence[Curve] | None = None, *,
                names: Sequence[str] | None = None, path: str | Path | None = None,
                labels: Sequence[str] | None = None, logx: bool = True, logy: bool = True,
                title: str | None = None, spread: bool = False, ax=None):
    """Plot theory curves (lines) and Monte Carlo curves (mean markers, +-2 s.e. band).

    Args:
        theory: one theory Curve or a list of them (matched with ``mc`` by position).
        mc: one Monte Carlo Curve or a list of them.
        names: observables to draw, one panel each (at most three per row); default: the
            first curve's, without its auxiliary ones (`default_observables`).
        path: where to write the PNG; ``None`` returns the figure without saving.
        labels: legend labels, one per (theory, mc) pair.
        logx, logy: log axes (t = 0 is dropped on a log x axis). With ``logy`` a panel is
            logarithmic only where its values are positive and span at least a factor
            `LOG_SPAN` (a 1 % change on a log axis reads as ticks like 9.88e-1).
        title: figure title; default: the system and its key fields (`default_title`).
        spread: also shade the 10-90 % spread of the seeds.
        ax: an existing matplotlib Axes (single observable only).

    Returns:
        The written path, or the matplotlib Figure when ``path`` is None.
    """
    th_list, mc_list = _curve_list("theory", theory), _curve_list("mc", mc)
    logx, logy, spread = (v.flag(n, x) for n, x in (("logx", logx), ("logy", logy),
                                                     ("spread", spread)))
    if title is not None and not isinstance(title, str):
        v._fail("title", title, "a string or None")
    names = None if names is None else v.names("names", names)
    labels = None if labels is None else v.names("labels", labels, single=False)
    plt = _pyplot()
    if not th_list and not mc_list:
        raise ValueError("theory=None and mc=None; allowed: at least one Curve to plot")
    first = (th_list or mc_list)[0]
    names = names if names is not None else default_observables(first)
    if not names:
        raise ValueError(f"names is empty; allowed: observables of the curve ({first.names})")
    # a name no curve has was drawn as an empty panel reading "diverged from the start"
    there = list(dict.fromkeys(n for c in th_list + mc_list for n in c.names))
    for name in names:
        check_observable(name, there)
    n = max(len(th_list), len(mc_list))
    labels = labels if labels is not None else [None] * n
    if ax is None:
        cols = min(PANELS_PER_ROW, len(names))
        rows = math.ceil(len(names) / cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.7 * rows + 0.5),
                                 squeeze=False)
        axes = axes.ravel()
        for extra in axes[len(names):]:
            extra.set_visible(False)
    else:
        fig, axes = ax.figure, [ax]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for panel, name in zip(axes, names):
        drawn = False
        panel_logy = logy and _spans_decades(th_list, mc_list, name)
        for i in range(n):
            color = colors[i % len(colors)]
            lab = f"{labels[i]}: " if labels[i] else ""
            if i < len(th_list) and name in th_list[i].observables:
                drawn |= _draw_theory(panel, th_list[i], name, color, lab, logx, panel_logy)
            if i < len(mc_list) and name in mc_list[i].observables:
                drawn |= _draw_monte_carlo(panel, mc_list[i], name, color, lab, logx, panel_logy,
                                           spread)
        if logx:
            panel.set_xscale("log")
        if panel_logy and drawn:
            panel.set_yscale("log")
        if not drawn:
            panel.text(0.5, 0.5, "diverged from the start:\nno finite value to draw",
                       ha="center", va="center", color="red", transform=panel.transAxes)
        panel.set_xlabel(first.meta.get("time_label", "steps" if first.time_unit == "step" else "t"))
        panel.set_title(name, fontsize=10)
        panel.grid(True, which="both", alpha=0.25)
        if drawn:
            panel.legend(fontsize=7)
    width = 48 * (min(PANELS_PER_ROW, len(names)) if ax is None else 1)
    fig.suptitle(title if title is not None else default_title(first, width), fontsize=9)
    warnings = sorted({c.meta["warning"] for c in th_list if "warning" in c.meta})
    if warnings and ax is None:
        note = textwrap.fill("theory: " + "; ".join(warnings), 40 * min(PANELS_PER_ROW, len(names)))
        fig.text(0.5, 0.005, note, ha="center", va="bottom", color="firebrick", fontsize=7)
        fig.tight_layout(rect=(0, 0.03 * (note.count("\n") + 1) + 0.02, 1, 1))
    else:
        fig.tight_layout()
    if path is None:
        return fig
    return save_figure(fig, path)


def save_figure(fig, path) -> Path:
    """Write ``fig`` to ``path`` (PNG, its folder created), close it, return the path."""
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


#: the least ratio max / min of a panel's values for a log y axis
LOG_SPAN = 10.0


def _spans_decades(th_list, mc_list, name) -> bool:
    """Whether the panel of ``name`` gets a log y axis: where its finite values (theory, Monte
    Carlo means) are all positive, when they span at least `LOG_SPAN`; where some are not, when
    any is positive (the log axis leaves the others out); with none finite, yes."""
    values = [np.asarray(c.observables[name], dtype=np.float64) for c in th_list
              if name in c.observables]
    with np.errstate(invalid="ignore", over="ignore"):
        values += [np.asarray(c.mean().observables[name], dtype=np.float64) for c in mc_list
                   if name in c.observables]
    finite = np.concatenate([v[np.isfinite(v)].ravel() for v in values]) if values else np.array([])
    if finite.size == 0:
        return True
    if np.any(finite <= 0):
        return bool(np.any(finite > 0))
    return bool(finite.max() / finite.min() >= LOG_SPAN)


def _visible(time, logx: bool):
    return time > 0 if logx else np.ones_like(time, dtype=bool)


def _draw_theory(panel, c: Curve, name, color, lab, logx, logy) -> bool:
    keep = _visible(c.time, logx)
    y = _masked(c.observables[name], c.diverged_mask, logy)
    method = c.meta.get("method")
    label = f"{lab}theory" + (f" ({method})" if method else "")
    if not np.any(np.isfinite(y[keep])):
        _mark_divergence(panel, c.time, c.diverged_mask, f"{lab}theory")
        return False
    panel.plot(c.time[keep], y[keep], color=color, lw=1.8, label=label)
    _mark_divergence(panel, c.time, c.diverged_mask, f"{lab}theory")
    return True


def _draw_monte_carlo(panel, c: Curve, name, color, lab, logx, logy, spread) -> bool:
    keep = _visible(c.time, logx)
    div = c.diverged_mask.any(axis=0) if c.seeds else c.diverged_mask
    with np.errstate(invalid="ignore", over="ignore"):
        mean_raw = np.asarray(c.mean().observables[name], dtype=np.float64)
    mean = _masked(mean_raw, div, logy)
    if not np.any(np.isfinite(mean[keep])):
        _mark_divergence(panel, c.time, div, f"{lab}Monte Carlo")
        return False
    if c.seeds and c.seeds > 1:
        if spread:
            lo = _masked(c.quantile(0.1).observables[name], div, logy)
            hi = _masked(c.quantile(0.9).observables[name], div, logy)
            panel.fill_between(c.time[keep], lo[keep], hi[keep], color=color, alpha=0.08, lw=0,
                               label=f"{lab}10-90 % of seeds")
        with np.errstate(invalid="ignore", over="ignore"):
            sem = np.asarray(c.sem().observables[name], dtype=np.float64)
        lo_raw, hi_raw = mean_raw - 2 * sem, mean_raw + 2 * sem
        if logy:  # keep the band visible where it would cross zero on a log axis
            lo_raw = np.where(lo_raw > 0, lo_raw, 0.1 * mean_raw)
        lo, hi = _masked(lo_raw, div, logy), _masked(hi_raw, div, logy)
        panel.fill_between(c.time[keep], lo[keep], hi[keep], color=color, alpha=0.25, lw=0,
                           label=f"{lab}Monte Carlo mean +- 2 s.e.")
    panel.plot(c.time[keep], mean[keep], "o", ms=3, color=color, mfc="none",
               label=f"{lab}Monte Carlo mean ({c.seeds} seeds)")
    _mark_divergence(panel, c.time, div, f"{lab}Monte Carlo")
    return True


def _mark_divergence(panel, time, diverged, who: str):
    """A red dotted line where ``who`` first diverged, named in the legend."""
    diverged = np.asarray(diverged, dtype=bool)
    if diverged.any():
        t0 = time[np.argmax(diverged)]
        if t0 <= 0:
            t0 = time[time > 0][0] if np.any(time > 0) else t0
        panel.axvline(t0, color="red", ls=":", lw=1.2, label=f"{who} diverges here")
