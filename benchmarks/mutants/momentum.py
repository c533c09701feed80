"""Mutants of the label-noise momentum theory (docs/momentum.md, "Mutation table").

Each mutant drops, doubles or flips one term of the two-parameter uniform recursion, of the
stationary variance, of the reduced SDE (two-parameter and inner product), of the mean normal
offset, of the first-order flow, of the matrix-sensing moment closure, of the stability edge or
of the stationary loss; `tests` names the default-suite tests that catch it. Every test named is
a comparison with the Monte Carlo of the algorithm itself, except the stability-edge formula.
Run: ``python benchmarks/mutants.py momentum``.
"""

REC = "hdsgd/odes/momentum/_recursion.py"
FLUCT = "hdsgd/odes/momentum/_fluctuation.py"
SDE = "hdsgd/odes/momentum/_sde.py"
OBSV = "hdsgd/odes/momentum/_observables.py"
FLOW = "hdsgd/odes/momentum/_flow.py"
IP = "hdsgd/odes/momentum/_inner_product.py"
SENS = "hdsgd/odes/momentum/_sensing.py"
STAB = "hdsgd/odes/momentum/_stability.py"
SCALES = "hdsgd/odes/momentum/_scales.py"
PRED = "hdsgd/odes/momentum/_predict.py"

T = "tests/test_momentum.py::"
#: two-parameter model, eta = 1e-2: the uniform recursion at beta = 0.9 (gamma = 1/2) and the
#: reduced SDE at gamma = 2/3, each against 2000 Monte Carlo seeds at 4 standard errors
FAST_REC = T + "test_fast_drift_recursion_matches_monte_carlo"
FAST_SDE = T + "test_fast_critical_sde_matches_and_closure_does_not"
#: the first-order flow's closed form against 1000 seeds (gamma = 1/2)
FLOW_MC = T + "test_separated_regime_first_order_flow"
STATIONARY = T + "test_stationary_loss"
#: the reduced SDE's escape warning: its barrier fraction against the Monte Carlo's diverged
#: fraction (512 seeds), and the criterion at a known level
ESCAPE = T + "test_sde_warns_where_runs_escape_the_manifold"
#: the stationary loss at eta lambda = 1 against the edge 2 (1 + beta) = 3 (2000 seeds)
STATIONARY_LARGE = T + "test_stationary_loss_at_a_large_step"
#: inner product, gamma = 2/3, eta = 1e-2: the reduced SDE in ambient coordinates
IP_SDE = ("tests/test_momentum_inner_product.py::"
          "test_fast_critical_sde_matches_monte_carlo_and_closure_does_not")
IP_FLOW = "tests/test_momentum_models.py::test_inner_product_invariants_match_monte_carlo"
#: matrix sensing: the moment closure against 48 seeds (beta = 0.9, delta_0 = 0.5) and at small
#: damping (1 - beta = 2.2e-3, delta_0 = 0.02)
SENSING = "tests/test_momentum_models.py::test_matrix_sensing_closure_matches_monte_carlo"
SENSING_SMALL = ("tests/test_momentum_sensing_law.py::"
                 "test_closure_at_small_damping_matches_monte_carlo_then_runs_ahead")
SENSING_SETTLES = ("tests/test_momentum_models.py::"
                   "test_matrix_sensing_closure_settles_at_critical_scaling")
EDGE = "tests/test_momentum_stability.py::test_critical_step_size_formulas"

MUTANTS = [
    # ------------------------------------------------------------ uniform recursion (two-parameter)
    dict(name="recursion: Sxx cross term 2(1-a) beta Sxv sign-flipped", file=REC,
         find="sxx_new = (1 - a) ** 2 * sxx + 2 * (1 - a) * beta * sxv",
         replace="sxx_new = (1 - a) ** 2 * sxx - 2 * (1 - a) * beta * sxv", tests=[FAST_REC]),
    dict(name="recursion: Sxv -(1-a) a Sxx sign-flipped", file=REC,
         find="sxv_new = -(1 - a) * a * sxx", replace="sxv_new = (1 - a) * a * sxx",
         tests=[FAST_REC]),
    dict(name="recursion: velocity memory beta^2 Svv -> beta Svv", file=REC,
         find="b2 = beta * beta", replace="b2 = beta", tests=[FAST_REC]),
    dict(name="recursion: label noise n^2 = eta^2 delta^2 lambda halved", file=REC,
         find="n2 = eta**2 * noise_var * lam", replace="n2 = 0.5 * eta**2 * noise_var * lam",
         tests=[FAST_REC]),
    dict(name="recursion: drift eta S lambda'/2 doubled", file=REC,
         find="- eta * 0.5 * sxx * dlam", replace="- eta * sxx * dlam", tests=[FAST_REC]),
    dict(name="recursion: geodesic term g' sdot^2 / 2 dropped", file=REC,
         find="p_new = beta * p + 0.5 * dlam * sdot**2", replace="p_new = beta * p",
         tests=[FAST_REC]),
    dict(name="recursion: offset 3 Sxx / sqrt(lambda) dropped", file=REC,
         find="(lam * mx + 3.0 * sxx / root)", replace="(lam * mx)", tests=[FAST_REC]),
    # ------------------------------------------------------------ stationary variance S(lambda)
    dict(name="S(lambda): (1+beta) in the numerator dropped", file=FLUCT,
         find="eta * noise_var * (1.0 + beta) /", replace="eta * noise_var /", tests=[FAST_SDE]),
    dict(name="S(lambda): -eta lambda in 2(1+beta) - eta lambda dropped", file=FLUCT,
         find="denom = (1.0 - beta) * (2.0 * (1.0 + beta) - eta * lam)",
         replace="denom = (1.0 - beta) * (2.0 * (1.0 + beta))", tests=[STATIONARY_LARGE]),
    dict(name="S(lambda): 1/(1-beta) -> 1/(1-beta)^2", file=FLUCT,
         find="denom = (1.0 - beta) * (2.0", replace="denom = (1.0 - beta) ** 2 * (2.0",
         tests=[FAST_SDE]),
    # ------------------------------------------------------------ reduced SDE (two-parameter)
    dict(name="SDE: geodesic term g' (p/g)^2 / 2 dropped", file=SDE,
         find="dp = 0.5 * dlam * sdot**2 - omb * p", replace="dp = - omb * p", tests=[FAST_SDE]),
    dict(name="SDE: drift eta S lambda'/2 doubled", file=SDE,
         find="- eta * 0.5 * var_pos * dlam", replace="- eta * var_pos * dlam", tests=[FAST_SDE]),
    dict(name="SDE: friction (1-beta) p doubled", file=SDE,
         find="sdot**2 - omb * p", replace="sdot**2 - 2.0 * omb * p", tests=[FAST_SDE]),
    dict(name="SDE: energy relaxation (1-beta)(S - S_eq) doubled", file=SDE,
         find="dvar = -omb * (var - s_eq)", replace="dvar = -2.0 * omb * (var - s_eq)",
         tests=[FAST_SDE]),
    dict(name="SDE: adiabatic term S (lambda'/lambda) ds/dk / 2 sign-flipped", file=SDE,
         find="- 0.5 * var_pos * (dlam / lam) * sdot", replace="+ 0.5 * var_pos * (dlam / lam) * sdot",
         tests=[FAST_SDE]),
    dict(name="SDE: energy noise sqrt(eta delta^2 S) dW dropped", file=SDE,
         find="amp = jnp.sqrt(eta * noise_var * jnp.maximum(y[2], 0.0))",
         replace="amp = 0.0 * jnp.sqrt(eta * noise_var * jnp.maximum(y[2], 0.0))",
         tests=[FAST_SDE]),
    dict(name="SDE: energy noise variance doubled", file=SDE,
         find="amp = jnp.sqrt(eta * noise_var * jnp.maximum(y[2], 0.0))",
         replace="amp = jnp.sqrt(2.0 * eta * noise_var * jnp.maximum(y[2], 0.0))",
         tests=[FAST_SDE]),
    # ------------------------------------------------------------ mean normal offset (SDE, flow)
    dict(name="offset: 3S dropped", file=OBSV,
         find="return -(3.0 * var + 2.0 * sdot**2 / step_size)",
         replace="return -(2.0 * sdot**2 / step_size)", tests=[FAST_SDE]),
    # ------------------------------------------------------------ first-order flow
    dict(name="flow: rate 1/(1-beta)^2 -> 1/(1-beta)", file=FLOW,
         find="(4.0 * setup.one_minus_beta**2)", replace="(4.0 * setup.one_minus_beta)",
         tests=[FLOW_MC]),
    dict(name="flow: closed form sinh 2s rate 4r -> 2r", file=FLOW,
         find="rate = 4.0 * flow_rate(setup)\n    return",
         replace="rate = 2.0 * flow_rate(setup)\n    return", tests=[FLOW_MC]),
    dict(name="flow (inner product): P - Q decay e^{-4rk} -> e^{-8rk}", file=FLOW,
         find="np.exp(-4 * rate * k)", replace="np.exp(-8 * rate * k)", tests=[IP_FLOW]),
    # ------------------------------------------------------------ reduced SDE (inner product)
    dict(name="inner SDE: drift -eta (S/2) P_T grad lambda doubled", file=IP,
         find="force = -eta * var_pos", replace="force = -2.0 * eta * var_pos", tests=[IP_SDE]),
    dict(name="inner SDE: d ln lambda/dk = 2<w, q>/lambda halved", file=IP,
         find="dlnlam = 2.0 * _dot(w, q) / lam", replace="dlnlam = _dot(w, q) / lam",
         tests=[IP_SDE]),
    dict(name="inner SDE: energy noise dropped", file=IP,
         find="+ jnp.sqrt(eta * noise_var * var_pos * h) * z)", replace=")", tests=[IP_SDE]),
    dict(name="inner SDE: friction (1-beta) q doubled", file=IP,
         find="q_new = q + h * (-omb * q + force)", replace="q_new = q + h * (-2.0 * omb * q + force)",
         tests=[IP_SDE]),
    # ------------------------------------------------------------ matrix-sensing moment closure
    dict(name="sensing: mean gradient Hf Sxx g term dropped", file=SENS,
         find='correction = (jnp.einsum("nab,nbk->ak", 2.0 * a, sg)\n                  + ',
         replace="correction = (", tests=[SENSING]),
    dict(name="sensing: E(r_i) -> r_i in H (Hessian at the mean)", file=SENS,
         find="mean_res = res + 0.5 * traces", replace="mean_res = res", tests=[SENSING_SETTLES]),
    dict(name="sensing: Hf Sxx Hf curvature dropped from H", file=SENS,
         find="hess = fisher + 2.0", replace="hess = gn + 2.0", tests=[SENSING_SETTLES]),
    dict(name="sensing: noise eta^2 Xi doubled", file=SENS,
         find="xi = eta**2 * noise_var * fisher", replace="xi = 2.0 * eta**2 * noise_var * fisher",
         tests=[SENSING]),
    dict(name="sensing: orbit projection dropped", file=SENS,
         find="proj = _orbit_projector(u_new)", replace="proj = jnp.eye(u_new.size)",
         tests=[SENSING]),
    # ------------------------------------------------------------ stability edge, stationary loss
    dict(name="edge: eta_c = 2(1+beta)/lambda_0 -> 2/lambda_0", file=STAB,
         find="return 2.0 * (1.0 + setup.momentum) / lam", replace="return 2.0 / lam",
         tests=[EDGE]),
    dict(name="stationary loss: lambda S / 2 -> lambda S", file=SCALES,
         find="return 0.5 * lam * float(", replace="return lam * float(", tests=[STATIONARY]),
    # ------------------------------------------------------------ escape warning
    dict(name="escape: barrier S >= lambda^3/16 -> lambda^3/32", file=PRED,
         find="reached = np.asarray(var) >= lam**3 / 16.0",
         replace="reached = np.asarray(var) >= lam**3 / 32.0", tests=[ESCAPE]),
    dict(name="escape: lambda = 2 cosh 2s -> 2 cosh s", file=PRED,
         find="lam = 2.0 * np.cosh(2.0 * np.asarray(s))",
         replace="lam = 2.0 * np.cosh(np.asarray(s))", tests=[ESCAPE]),
    dict(name="escape: barrier lambda^3 -> lambda^4", file=PRED,
         find="reached = np.asarray(var) >= lam**3 / 16.0",
         replace="reached = np.asarray(var) >= lam**4 / 16.0", tests=[ESCAPE]),
]
