r"""Deterministic trajectory predictions for mini-batched prox-linear rank-one sensing.

docs/proxlinear.md (derived by Gaussian conditioning and a blockwise Gordon scalarisation;
Lou, Verchand, Pananjady, arXiv:2402.01599 predict the same quantity). State
s = (alpha1, beta1, alpha2, beta2). Two deterministic equivalents:

* ``"map"``: the one-step map F(s; delta1, delta2, eta, sigma), for any batch size
  (`_map`, iterated by `ProxLinearMap` under the shared segment driver);
* ``"ode"``: its small-batch / streaming limit m << d (`_ode`).

Also: the quadrature rules (`_quadrature`), the noise floor and the local rate (`_floor`),
and grids of settings vmapped over (batch_size, step_size, noise_std) (`_grid`, the
registered `hdsgd.predict_grid`, which `hdsgd.tune` uses).

There is no stability edge in the step size (docs/proxlinear.md, "Stability"): the local
rate at the truth is positive for every eta and the map stays finite; every failure of a
step is flagged diverged with the reason in ``meta["warning"]``.
"""

from . import _grid  # noqa: F401  (registers predict_grid)
from . import _predict  # noqa: F401  (registers predict)
from ._floor import fixed_point, floor_from_fixed_point, floor_grid, local_rate, noise_floor
from ._grid import GRID_FIELDS, grid_params, map_grid
from ._map import (
    FAILURES,
    ProxLinearMap,
    initial_kappa,
    map_params,
    node_terms,
    one_step,
    run_map,
    solve_kappa,
)
from ._ode import ode_trajectory
from ._predict import METHODS, OBSERVABLES, default_method
from ._quadrature import GRID_RULE, gauss_hermite_rule, polar_rule, rule_arrays

__all__ = [
    "FAILURES", "GRID_FIELDS", "GRID_RULE", "METHODS", "OBSERVABLES",
    "ProxLinearMap", "default_method", "fixed_point",
    "floor_from_fixed_point", "floor_grid", "gauss_hermite_rule", "grid_params",
    "initial_kappa", "local_rate", "map_grid", "map_params", "node_terms", "noise_floor",
    "ode_trajectory", "one_step", "polar_rule", "rule_arrays", "run_map", "solve_kappa",
]
