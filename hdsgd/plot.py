"""Figures: theory lines against Monte Carlo means with a 10-90 % band, log-log by default.

Uses matplotlib's non-interactive Agg backend, so it works on a machine with no display.
Diverged points are left out of lines and marked with a cross at the first one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .curve import Curve


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _masked(values: np.ndarray, diverged: np.ndarray, log: bool) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    bad = diverged | ~np.isfinite(v)
    if log:
        bad |= v <= 0
    v[bad] = np.nan
    return v


def plot_curves(theory: Curve | Sequence[Curve] | None = None, mc: Curve | Sequence[Curve] | None = None,
                *, names: Sequence[str] | None = None, path: str | Path | None = None,
                labels: Sequence[str] | None = None, logx: bool = True, logy: bool = True,
                title: str | None = None, ax=None):
    """Plot theory curves (lines) and Monte Carlo curves (mean markers and 10-90 % band).

    Args:
        theory: one theory Curve or a list of them (matched with ``mc`` by position).
        mc: one Monte Carlo Curve or a list of them.
        names: observables to draw, one panel each; default: all of the first curve's.
        path: where to write the PNG; ``None`` returns the figure without saving.
        labels: legend labels, one per (theory, mc) pair.
        logx, logy: log axes (t = 0 is dropped on a log x axis).
        title: figure title.
        ax: an existing matplotlib Axes (single observable only).

    Returns:
        The written path, or the matplotlib Figure when ``path`` is None.
    """
    plt = _pyplot()
    th_list = [] if theory is None else ([theory] if isinstance(theory, Curve) else list(theory))
    mc_list = [] if mc is None else ([mc] if isinstance(mc, Curve) else list(mc))
    first = (th_list or mc_list)[0]
    names = list(names or first.names)
    n = max(len(th_list), len(mc_list))
    labels = list(labels) if labels is not None else [None] * n
    if ax is None:
        fig, axes = plt.subplots(1, len(names), figsize=(5.0 * len(names), 4.0), squeeze=False)
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for panel, name in zip(axes, names):
        for i in range(n):
            color = colors[i % len(colors)]
            lab = labels[i]
            if i < len(th_list) and name in th_list[i].observables:
                c = th_list[i]
                keep = c.time > 0 if logx else np.ones_like(c.time, bool)
                y = _masked(c.observables[name], c.diverged_mask, logy)
                panel.plot(c.time[keep], y[keep], color=color, lw=1.8,
                           label=(f"{lab}: theory" if lab else "theory"))
                _mark_divergence(panel, c.time, c.diverged_mask)
            if i < len(mc_list) and name in mc_list[i].observables:
                c = mc_list[i]
                keep = c.time > 0 if logx else np.ones_like(c.time, bool)
                div = c.diverged_mask.any(axis=0) if c.seeds else c.diverged_mask
                mean = _masked(c.mean().observables[name], div, logy)
                if c.seeds and c.seeds > 1:
                    lo = _masked(c.quantile(0.1).observables[name], div, logy)
                    hi = _masked(c.quantile(0.9).observables[name], div, logy)
                    panel.fill_between(c.time[keep], lo[keep], hi[keep], color=color, alpha=0.2, lw=0)
                panel.plot(c.time[keep], mean[keep], "o", ms=3, color=color, mfc="none",
                           label=(f"{lab}: Monte Carlo ({c.seeds} seeds)" if lab else f"Monte Carlo ({c.seeds} seeds)"))
                _mark_divergence(panel, c.time, div)
        if logx:
            panel.set_xscale("log")
        if logy:
            panel.set_yscale("log")
        panel.set_xlabel(first.meta.get("time_label", "steps" if first.time_unit == "step" else "t"))
        panel.set_ylabel(name)
        panel.grid(True, which="both", alpha=0.25)
        panel.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _mark_divergence(panel, time, diverged):
    if diverged.any():
        t0 = time[np.argmax(diverged)]
        panel.axvline(t0, color="red", ls=":", lw=1)
        panel.text(t0, 0.95, " diverged", color="red", transform=panel.get_xaxis_transform(),
                   fontsize=7, va="top")
