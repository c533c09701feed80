"""Label-noise SGD with heavy-ball momentum near a manifold of minimisers: three models, the
two timescales, the stability edge, the time to target and the momentum that minimises it
(docs/momentum.md).

    setup = hdsgd.momentum.TwoParameterMomentum(step_size=1e-3, exponent=2/3, constant=0.711)
    hdsgd.predict(setup, 3000, method="sde")        # the reduced SDE (critical scaling)
    hdsgd.momentum.time_to_target(setup, 0.1)       # steps until sqrt(E s^2) <= 0.1
    hdsgd.momentum.critical_step_size(setup)        # the heavy-ball stability edge at the start
"""

from .montecarlo.momentum import METHODS as SIMULATE_METHODS
from .montecarlo.momentum import measured_time_to_target
from .odes.momentum import METHODS as PREDICT_METHODS
from .odes.momentum import (
    MODEL_METHODS,
    critical_step_size,
    flow_closed_form,
    optimal_constant,
    optimal_momentum,
    regime,
    stationary_train_loss,
    time_to_target,
    timescales,
)
from .setups.momentum import (
    InnerProductMomentum,
    LabelNoiseMomentum,
    MatrixSensingMomentum,
    TwoParameterMomentum,
    matrix_sensing_problem,
    settling_time,
)

__all__ = [
    "InnerProductMomentum",
    "LabelNoiseMomentum",
    "MODEL_METHODS",
    "MatrixSensingMomentum",
    "PREDICT_METHODS",
    "SIMULATE_METHODS",
    "TwoParameterMomentum",
    "critical_step_size",
    "flow_closed_form",
    "matrix_sensing_problem",
    "measured_time_to_target",
    "optimal_constant",
    "optimal_momentum",
    "regime",
    "settling_time",
    "stationary_train_loss",
    "time_to_target",
    "timescales",
]
