r"""Deterministic equivalents of grokking in the two-layer quadratic network (docs/grokking.md).

Three methods of ``predict`` (`_predict`):

* ``"reduced"`` (default; exact at any D and N for a given training set): the closed dynamics
  of the first-layer mean and second moment (w_bar, M), as the GD map or its gradient flow in
  tau (`_reduced`), or in its P-space form when P < D (`_samples`);
* ``"lazy"`` (alpha -> inf, centred, D, P -> inf at kappa = P/D): kernel flow with the initial
  NTK in closed form from the Marchenko-Pastur law (`_lazy`); its finite-D reference is
  `kernel_flow` (`_kernel`);
* ``"dmft"`` (finite N, D, P -> inf at kappa fixed): the finite-width DMFT (`_dmft`).

Besides: `critical_step_size`, the edge of stability of GD at initialisation (`_stability`),
and `grokking_time`, the onset heuristic (`_onset`). All theory is float64.
"""

from . import _predict  # noqa: F401  (registers predict)
from ._dmft import DmftConfig, DmftParams, dmft_curves
from ._kernel import kernel_flow
from ._lazy import LazySpectrum, lazy_curves, lazy_spectrum
from ._onset import GrokkingTime, grokking_time
from ._predict import FORMS, METHODS, SOLVERS
from ._reduced import (Params, Problem, ReducedGD, State, flow_field, gd_step, initial_state,
                       network_output, observables, params_of, problem_of, reduced_flow,
                       residuals)
from ._samples import (InitMoments, SampleGD, SampleState, init_moments, problem_and_moments,
                       sample_gd_step, sample_observables, samples_flow, zero_state)
from ._stability import critical_step_size, hessian_top_eigenvalue, stability_warning

__all__ = [
    "DmftConfig", "DmftParams", "FORMS", "GrokkingTime", "InitMoments", "LazySpectrum",
    "METHODS", "Params", "Problem", "ReducedGD", "SOLVERS", "SampleGD", "SampleState", "State",
    "critical_step_size",
    "dmft_curves", "flow_field", "gd_step", "grokking_time", "hessian_top_eigenvalue",
    "init_moments", "initial_state", "kernel_flow", "lazy_curves", "lazy_spectrum",
    "network_output", "observables", "params_of", "problem_and_moments", "problem_of",
    "reduced_flow", "residuals", "sample_gd_step", "sample_observables", "samples_flow",
    "stability_warning", "zero_state",
]
