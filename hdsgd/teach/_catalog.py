"""The views of ``hdsgd teach``: one declarative entry per system, its dimension view and the
four lessons (docs/teach.md). Adding a system is one `View` here (see "Adding a system").

Names are strings, resolved when the page asks for a view: a system missing from this
installation is listed as unavailable, never an import error.
"""

from __future__ import annotations

from ._views import Diagram, Edge, Quantity, Slider, View, derive

# ----------------------------------------------------------------------- least squares
LSTSQ = View(
    id="lstsq", menu="Least squares", title="Streaming least squares: one-pass mini-batch SGD",
    system="lstsq", setup="StreamingLeastSquares",
    sliders=(
        Slider("step_size", 0.1, 3000.0, "log", symbol="γ"),
        Slider("batch_size", 1, 256, "log", integer=True, symbol="B"),
        Slider("momentum", 0.0, 0.95, "linear", symbol="β"),
        Slider("noise_std", 0.0, 1.0, "linear", symbol="σ"),
        Slider("exponent", 0.0, 2.0, "linear", default=1.0, symbol="a",
               help="the spectrum's power law: eigenvalues λ_i = i^(−a), i = 1..d "
                    "(a = 0: isotropic data)."),
    ),
    fixed={"dim": 500, "eigenvalues": "power_law:{dim}:{exponent}", "initial_error": "{dim}"},
    dim="dim", horizons=(10.0, 1.0, 30.0), observables=("excess_risk", "risk"),
    mc_dims=(100, 500, 2000), seeds=16, chunk_seeds=8,
    edge=Edge("step_size", "critical_step_size", "critical step size γc"),
    diagram=Diagram("batch_size", marks=(
        Quantity("critical batch size B_crit", "critical_batch_size"),)),
    readouts=(
        Quantity("critical step size γc", "critical_step_size"),
        Quantity("critical batch size B_crit = tr H / λmax", "critical_batch_size"),
        Quantity("excess risk as t → ∞", "limit_excess_risk"),
    ),
    text=("Each step draws B fresh samples and moves the weights by γ/d times their average "
          "gradient. The line is the exact expected risk; the slider's red mark is the stability "
          "edge γc, past which the risk diverges.",),
)

LSTSQ_DIMENSION = derive(
    LSTSQ, id="lstsq-dimension", kind="dimension", menu="Least squares",
    title="The high-dimensional limit emerging: least squares",
    sliders=(Slider("step_size", 0.05, 300.0, "log", symbol="γ"), "batch_size", "noise_std"),
    values={"step_size": 1.0}, drop=("exponent",),
    fixed={"eigenvalues": "ramp:{dim}:0.5:1.5", "initial_error": 1.0, "momentum": 0.0},
    horizons=(2.0, 1.0, 5.0), dims=(100, 1000, 10000), mc_dims=(), seeds=8, chunk_seeds=8,
    x_scale="linear", diagram=None, readouts=(),
    text=("The same SGD run at d = 100, 1000 and 10 000 (eigenvalues spread evenly over "
          "[0.5, 1.5], a spectrum with a limit as d grows). Each thin line is one training run: "
          "their spread shrinks like 1/√d and they close in on the deterministic curve.",),
)

LESSON_STABILITY = derive(
    LSTSQ, id="lesson-stability", kind="lesson", menu="1 · Stability edge",
    title="Lesson 1 · The stability edge and the critical batch size",
    sliders=("step_size", "batch_size"), values={"step_size": 100.0, "batch_size": 1},
    readouts=LSTSQ.readouts[:2],
    text=("SGD converges only below a critical step size γc (red on the slider and in the "
          "diagram): drag the step size past it and the predicted risk, and every Monte Carlo "
          "run, blows up.",
          "A bigger batch averages the gradient noise away, so γc first grows in proportion to "
          "B; past the critical batch size B_crit = tr H / λmax the curvature limit 2d/λmax takes "
          "over and a bigger batch buys no bigger step.",
          "Move the batch size across B_crit (dashed in the diagram) and watch the edge flatten."),
)

# ----------------------------------------------------------------------- spiked
SPIKED = View(
    id="spiked", menu="Spiked", title="Single-index target under spiked covariance: online SGD",
    system="spiked", setup="SpikedSingleIndex",
    sliders=(
        Slider("step_size", 0.01, 20.0, "log", symbol="c"),
        Slider("spike", 0.0, 16.0, "linear", symbol="θ"),
        Slider("initial_overlap", 0.001, 0.2, "log", symbol="m₀"),
        Slider("label_noise", 0.0, 1.0, "linear", symbol="√Δ"),
    ),
    fixed={"dim": 1000, "link": "he2", "loss": "correlation", "normalization": "covariance"},
    dim="dim", horizons=(4.0, 1.0, 16.0), observables=("overlap", "correlation", "risk"),
    x_scale="linear", y_scale="linear", simulate_methods=("chain", "full"),
    mc_dims=(100, 1000, 10000), seeds=16, chunk_seeds=16,
    edge=Edge("step_size", "critical_step_size", "critical step size c_crit"),
    diagram=Diagram("spike"),
    readouts=(
        Quantity("critical step size c_crit", "critical_step_size"),
        Quantity("escape time (correlation ≥ 0.5)", "escape_time"),
    ),
    marks=(Quantity("escape time", "escape_time"),),
    text=("One neuron learns a hidden direction from one fresh sample a step; the overlap m is "
          "its alignment with that direction. The curve is the d → ∞ limit ODE.",),
)

SPIKED_DIMENSION = derive(
    SPIKED, id="spiked-dimension", kind="dimension", menu="Spiked",
    title="The high-dimensional limit emerging: spiked single index",
    sliders=("step_size", "spike", "initial_overlap"), values={"initial_overlap": 0.05},
    dims=(100, 1000, 10000), mc_dims=(), seeds=16, diagram=None, marks=(), readouts=(),
    text=("Online SGD at d = 100, 1000 and 10 000 against the limit ODE. Each thin line is one "
          "run: at small d the escape from the equator happens at scattered times, at large d "
          "every run follows the deterministic curve.",),
)

LESSON_EQUATOR = derive(
    SPIKED, id="lesson-equator", kind="lesson", menu="2 · Escaping the equator",
    title="Lesson 2 · Escaping the equator",
    sliders=("initial_overlap", "spike", "step_size"), values={"initial_overlap": 0.01},
    observables=("overlap", "correlation"), x_scale="log",
    text=("Started near the equator (overlap m₀ ≈ 0 with the hidden direction), online SGD "
          "first drifts for a long time with almost no signal, then escapes quickly; the dashed "
          "line is the predicted escape time.",
          "Lower m₀ and the search phase grows like log(1/m₀); a spike θ in the data covariance "
          "tilts the landscape towards the target and shortens it."),
)

# ----------------------------------------------------------------------- grokking
GROKKING = View(
    id="grokking", menu="Grokking", title="Grokking in a two-layer quadratic network",
    system="grokking", setup="GrokkingTwoLayer",
    sliders=(
        Slider("output_scale", 0.05, 20.0, "log", symbol="α"),
        Slider("quadratic_strength", 0.05, 1.0, "log", symbol="ε"),
        Slider("step_size", 0.05, 4.0, "log", symbol="η₀"),
    ),
    fixed={"dim": 20, "n_samples": 60, "width": 1024, "centered": False, "data_seed": 2},
    dim="dim", horizons=(2000.0, 500.0, 10000.0),
    observables=("train_loss+test_loss", "test_loss", "train_loss", "alignment", "weight_norm"),
    mc_dims=(20,), seeds=8, chunk_seeds=4,
    edge=Edge("step_size", "critical_step_size", "critical step size"),
    readouts=(
        Quantity("predicted onset (GD steps)", "grokking_time", pick="steps_onset"),
        Quantity("α above which it never groks", "grokking_time", pick="alpha_threshold"),
        Quantity("critical step size", "critical_step_size"),
    ),
    marks=(Quantity("predicted onset", "grokking_time", pick="steps_onset"),),
    text=("Full-batch gradient descent on a fixed training set; the network's output is scaled "
          "by α. The curves are the exact reduced dynamics of the first-layer weights.",),
)

LESSON_GROKKING = derive(
    GROKKING, id="lesson-grokking", kind="lesson", menu="3 · Grokking delay",
    title="Lesson 3 · The grokking delay against α",
    sliders=("output_scale",), values={"output_scale": 1.0},
    text=("The network first fits its training set lazily, like a kernel method: the train loss "
          "falls while the test loss stays high. Only later do the features move and the test "
          "loss drops: the network groks.",
          "The output scale α sets the delay: a larger α keeps the network lazy for longer (the "
          "dashed line is the predicted onset), and past a threshold it never groks."),
)

# ----------------------------------------------------------------------- momentum
MOMENTUM = View(
    id="momentum", menu="Momentum",
    title="Label-noise SGD with momentum near a manifold of minimisers",
    system="momentum", setup="TwoParameterMomentum",
    sliders=(
        Slider("step_size", 1e-4, 0.1, "log", default=1e-3, symbol="η"),
        Slider("constant", 0.05, 10.0, "log", default=0.711, symbol="C"),
        Slider("label_noise", 0.0, 1.0, "linear", symbol="δ₀"),
        Slider("initial_coordinate", -3.0, 3.0, "linear", symbol="s₀"),
    ),
    fixed={"exponent": 2.0 / 3.0, "batch_size": 1},
    horizons=(3000.0, 1000.0, 10000.0),
    observables=("distance_to_flattest", "manifold_coordinate", "trace_hessian", "train_loss"),
    seeds=64, chunk_seeds=64,
    edge=Edge("step_size", "critical_step_size", "critical step size η_c"),
    readouts=(
        Quantity("1 − β = C η^(2/3)", lambda face, setup: 1.0 - setup.momentum,
                 python="1 - setup.momentum"),
        Quantity("time to target T (steps)", "time_to_target"),
        Quantity("optimal constant C*", "optimal_constant", pick=0),
        Quantity("critical step size η_c", "critical_step_size"),
    ),
    marks=(Quantity("time to target", "time_to_target"),),
    text=("Label noise makes SGD drift along the valley of minimisers w₁w₂ = 1 towards the "
          "flattest one, w = (1, 1); heavy-ball momentum β = 1 − C η^(2/3) sets how fast.",),
)

LESSON_MOMENTUM = derive(
    MOMENTUM, id="lesson-momentum", kind="lesson", menu="4 · Momentum law",
    title="Lesson 4 · Momentum's 1 − β ∝ η^(2/3) law",
    sliders=("step_size", "constant"),
    text=("Momentum speeds up the drift towards the flattest minimiser only when 1 − β is "
          "matched to the step size: the best choice follows 1 − β = C η^(2/3).",
          "Change η and the optimal constant C* (below) hardly moves; set C to C* and the time "
          "to target (dashed) shrinks like η^(−2/3)."),
)

# ----------------------------------------------------------------------- prox-linear
PROXLINEAR = View(
    id="proxlinear", menu="Prox-linear", title="Prox-linear rank-one matrix sensing",
    system="proxlinear", setup="ProxLinearSensing",
    sliders=(
        Slider("step_size", 0.01, 100.0, "log", symbol="η"),
        Slider("batch_size", 10, 5000, "log", integer=True, symbol="m"),
        Slider("noise_std", 0.0, 1.0, "linear", symbol="σ"),
    ),
    fixed={"dim_left": 500, "dim_right": 500, "initial_state": (0.7, 0.6, 0.8, 0.5)},
    horizons=(20.0, 5.0, 100.0),
    observables=("error_sq", "alpha_left", "alpha_right", "beta_left", "beta_right"),
    seeds=16, chunk_seeds=8,
    readouts=(
        Quantity("noise floor E∞²", "noise_floor"),
        Quantity("local rate per step", "local_rate"),
    ),
    text=("Each iteration draws m fresh measurements and takes a damped Gauss-Newton step. "
          "The curve is the one-step deterministic map of the error.",),
)

VIEWS: tuple[View, ...] = (
    LSTSQ, SPIKED, GROKKING, MOMENTUM, PROXLINEAR,
    LSTSQ_DIMENSION, SPIKED_DIMENSION,
    LESSON_STABILITY, LESSON_EQUATOR, LESSON_GROKKING, LESSON_MOMENTUM,
)
