"""`Schedule`: a piecewise-constant step-size schedule, a value a Setup's ``step_size`` may take.

A schedule of P pieces has step sizes gamma_0..gamma_{P-1} and boundaries
0 < s_1 < ... < s_{P-1} (whole steps). Step k (the update w_k -> w_{k+1}, k = 0, 1, ...) uses

    gamma(k) = gamma_p   for   s_p <= k < s_{p+1}     (s_0 = 0, s_P = inf),

in the same convention as a constant ``step_size`` (for least squares each update uses
gamma(k) / d; docs/lstsq.md, "Schedules"). A one-piece schedule is the constant step.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np
from jaxtyping import Float, Int

from . import _validate as v


class Schedule(eqx.Module):
    """Piecewise-constant step sizes: ``step_sizes[p]`` from step ``boundaries[p-1]`` on.

    Attributes:
        step_sizes: gamma_0..gamma_{P-1}, each > 0 (P >= 1 pieces).
        boundaries: the first step of pieces 1..P-1: P - 1 strictly increasing integers >= 1
            (empty for one piece).
    """

    step_sizes: Float[np.ndarray, " p"]
    boundaries: Int[np.ndarray, " p_minus_1"]

    def __init__(self, step_sizes, boundaries=()):
        one = not isinstance(step_sizes, str) and np.ndim(step_sizes) == 0
        gammas = v.real_array("step_sizes", [step_sizes] if one else step_sizes, low=0.0,
                              low_open=True)
        try:
            if isinstance(boundaries, str) or np.asarray(boundaries).dtype == bool:
                raise TypeError
            raw = np.asarray(boundaries, dtype=np.float64)
            if raw.ndim > 1:
                raise TypeError
            raw = raw.reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"boundaries={boundaries!r} is invalid; allowed: strictly increasing "
                             f"integers in [1, {v.MAX_STEPS}] (the first step of each piece after "
                             "the first)") from None
        if raw.size != gammas.size - 1:
            raise ValueError(f"boundaries={boundaries!r} has {raw.size} entries; allowed: "
                             f"{gammas.size - 1} (one fewer than the {gammas.size} step_sizes)")
        if raw.size and (not np.all(np.isfinite(raw)) or np.any(raw != np.round(raw))
                         or raw.min() < 1 or raw.max() > v.MAX_STEPS or np.any(np.diff(raw) <= 0)):
            raise ValueError(f"boundaries={boundaries!r} is invalid; allowed: strictly increasing "
                             f"integers in [1, {v.MAX_STEPS}] (the first step of each piece after "
                             "the first)")
        self.step_sizes = gammas
        self.boundaries = raw.astype(np.int64)

    @classmethod
    def even(cls, step_sizes, n_steps: int) -> "Schedule":
        """P = len(step_sizes) pieces splitting steps 0..n_steps-1 into near-equal lengths:
        boundaries s_p = round(p n / P)."""
        gammas = np.atleast_1d(v.real_array("step_sizes", step_sizes, low=0.0, low_open=True,
                                            ndim=np.ndim(step_sizes)))
        n = v.integer("n_steps", n_steps, low=max(1, gammas.size), high=v.MAX_STEPS)
        cuts = np.round(np.arange(1, gammas.size) * n / gammas.size).astype(np.int64)
        return cls(gammas, cuts)

    @property
    def pieces(self) -> int:
        """P, the number of pieces."""
        return int(self.step_sizes.size)

    @property
    def starts(self) -> Int[np.ndarray, " p"]:
        """s_0 = 0, s_1, ..., s_{P-1}: the first step of each piece."""
        return np.concatenate([[0], self.boundaries]).astype(np.int64)

    def piece_index(self, n_steps: int) -> Int[np.ndarray, " n"]:
        """p(k) for k = 0..n_steps-1: the piece whose step size step k uses."""
        n = v.integer("n_steps", n_steps, low=0)
        return np.searchsorted(self.boundaries, np.arange(n), side="right").astype(np.int64)

    def values(self, n_steps: int) -> Float[np.ndarray, " n"]:
        """gamma(k) for k = 0..n_steps-1 (the step size of the update w_k -> w_{k+1})."""
        return self.step_sizes[self.piece_index(n_steps)]

    def with_step_sizes(self, step_sizes) -> "Schedule":
        """The same boundaries with other step sizes (validated)."""
        return Schedule(step_sizes, self.boundaries)

    def fields(self) -> dict:
        """Plain data: ``{"step_sizes": [...], "boundaries": [...]}``."""
        return {"step_sizes": self.step_sizes.tolist(), "boundaries": self.boundaries.tolist()}

    def __repr__(self) -> str:
        return (f"Schedule(step_sizes={np.array2string(self.step_sizes, precision=4)}, "
                f"boundaries={self.boundaries.tolist()})")


def values_of(step_size, n_steps: int) -> Float[np.ndarray, " n"]:
    """gamma(k), k = 0..n_steps-1, of a constant step (a float) or a `Schedule`."""
    if isinstance(step_size, Schedule):
        return step_size.values(n_steps)
    return np.full(int(n_steps), float(step_size))
