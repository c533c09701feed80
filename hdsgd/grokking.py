"""Grokking as the transition from lazy to rich training: a two-layer network with a quadratic
activation, trained by full-batch GD on a fixed training set (docs/grokking.md).

    setup = hdsgd.grokking.GrokkingTwoLayer(dim=100, n_samples=550, width=500)
    hdsgd.predict(setup, 5000)                       # the exact reduced (w_bar, M) GD map
    hdsgd.grokking.grokking_time(setup)              # the feature-learning onset heuristic
    hdsgd.grokking.critical_step_size(setup)         # the edge of stability at initialisation
"""

from .montecarlo.grokking import METHODS as SIMULATE_METHODS
from .odes.grokking import METHODS as PREDICT_METHODS
from .odes.grokking import (
    GrokkingTime,
    LazySpectrum,
    critical_step_size,
    grokking_time,
    kernel_flow,
    lazy_curves,
    lazy_spectrum,
)
from .setups.grokking import GrokkingTwoLayer, initial_weights, loss_decomposition, training_set

__all__ = [
    "PREDICT_METHODS",
    "SIMULATE_METHODS",
    "GrokkingTime",
    "GrokkingTwoLayer",
    "LazySpectrum",
    "critical_step_size",
    "grokking_time",
    "initial_weights",
    "kernel_flow",
    "lazy_curves",
    "lazy_spectrum",
    "loss_decomposition",
    "training_set",
]
