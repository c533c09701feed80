"""Mutants of the least-squares theory (docs/lstsq.md, "Mutation table").

Each mutant drops, doubles or flips one term of the exact recursion (plain and heavy ball), of
the homogenized ODE's exponential integrator, of the Volterra equations, of the stability edge,
or of the closed-form (spectral) solution; `tests` names the default-suite tests that catch it.
The recursion itself is judged by Monte Carlo (`simulate`); the spectral solution, the ODE and
the Volterra forms are judged against the recursion or a closed form.
Run: ``python benchmarks/mutants.py lstsq``.
"""

REC = "hdsgd/odes/lstsq/_recursion.py"
ODE = "hdsgd/odes/lstsq/_ode.py"
VOL = "hdsgd/odes/lstsq/_volterra.py"
STAB = "hdsgd/odes/lstsq/_stability.py"
SPEC = "hdsgd/odes/lstsq/_spectral.py"

T = "tests/test_lstsq.py::"
PREDICT = "hdsgd/odes/lstsq/_predict.py"
#: the vmapped grid against one prediction per point, and its stacked rows against its Curves
GRID_PER_POINT = "tests/test_grid.py::test_lstsq_grid_is_the_per_point_recursion"
GRID_ROWS = "tests/test_grid.py::test_stacked_rows_are_what_the_built_curves_hold"
M = "tests/test_lstsq_momentum.py::"
S = "tests/test_lstsq_spectral.py::"
#: the plain recursion against a 6000-seed Monte Carlo at d = 6 (every O(eta^2) term is O(1)),
#: and against 48 seeds at d = 400, B = 4, gamma = 5 (early and late steps)
MC_SMALL = T + "test_recursion_is_exact_at_small_dimension_and_mutants_are_rejected"
MC_B4 = T + "test_recursion_matches_monte_carlo_early_and_late[4-5.0]"
#: the blocked pass (k steps at once, the default) against the step-by-step scan, to 1e-12
BLOCKED = T + "test_blocked_recursion_equals_step_by_step[1-0.5-300-16]"
HB_BLOCKED = T + "test_blocked_heavy_ball_recursion_equals_step_by_step[0.5-1-0.5-8]"
#: the heavy-ball moment recursion against Monte Carlo (d = 6, 6000 seeds; d = 400, 48 seeds,
#: which also holds the heavy-ball Volterra equation to 4 standard errors)
HB_SMALL = M + "test_recursion_is_exact_at_small_dimension_and_mutants_are_rejected"
HB_MC = M + "test_recursion_matches_monte_carlo_early_and_late[1-0.5-0.6]"
HB_MC_B4 = M + "test_recursion_matches_monte_carlo_early_and_late[4-1.0-0.8]"
#: the ODE / Volterra (d -> infinity) forms: the isotropic closed form (rtol 1e-6) and the gap to
#: the recursion shrinking like 1/d
ISO = T + "test_isotropic_closed_form"
ONE_OVER_D = T + "test_ode_and_volterra_approach_recursion_like_one_over_d"
HB_ONE_OVER_D = M + "test_volterra_and_effective_step_approach_recursion_like_one_over_d"
HB_KERNEL = M + "test_kernel_mass_and_limit_risk"
#: thresholds against the spectral radius of the recursion's matrix
EDGE = T + "test_exact_threshold_is_where_the_growth_factor_crosses_one[8]"
HB_EDGE = M + "test_exact_threshold_and_rate_are_the_spectral_radius[8-0.5]"
#: the closed form against the recursion at every step (to 1e-8 relative, no fallback)
SPEC_NOISY = S + "test_spectral_equals_recursion_at_every_step[1-0.3-ramp]"
SPEC_B7 = S + "test_spectral_equals_recursion_at_every_step[7-0.0-ramp]"
SPEC_HB = S + "test_heavy_ball_spectral_equals_moment_recursion[1-0.6-0.5]"

MUTANTS = [
    # ------------------------------------------------------------ plain recursion (Monte Carlo)
    dict(name="a_i: (1+1/B) eta^2 lambda^2 dropped", file=REC,
         find="a = 1.0 - 2.0 * x + (1.0 + 1.0 / batch_size) * x**2",
         replace="a = 1.0 - 2.0 * x", tests=[MC_SMALL]),
    dict(name="a_i: 1/B of (1+1/B) dropped", file=REC,
         find="(1.0 + 1.0 / batch_size) * x**2", replace="1.0 * x**2", tests=[MC_SMALL]),
    dict(name="a_i: (1+1/B) eta^2 lambda^2 doubled", file=REC,
         find="(1.0 + 1.0 / batch_size) * x**2", replace="2.0 * (1.0 + 1.0 / batch_size) * x**2",
         tests=[MC_SMALL]),
    dict(name="a_i: drift 2 eta lambda halved", file=REC,
         find="a = 1.0 - 2.0 * x +", replace="a = 1.0 - 1.0 * x +", tests=[MC_SMALL]),
    dict(name="b_i: 1/B dropped (noise injection)", file=REC,
         find="b = eta * x / batch_size", replace="b = eta * x", tests=[MC_SMALL]),
    dict(name="b_i: noise injection doubled", file=REC,
         find="b = eta * x / batch_size", replace="b = 2.0 * eta * x / batch_size",
         tests=[MC_SMALL]),
    dict(name="b_i: noise injection dropped", file=REC,
         find="b = eta * x / batch_size", replace="b = 0.0 * eta * x / batch_size",
         tests=[MC_SMALL]),
    dict(name="psi: sigma^2 dropped from the injected 2R", file=REC,
         find="def step(rho, _):\n            psi = noise_var + jnp.dot(eigenvalues, rho)\n"
              "            return a * rho + b * psi, psi",
         replace="def step(rho, _):\n            psi = noise_var + jnp.dot(eigenvalues, rho)\n"
                 "            return a * rho + b * (psi - noise_var), psi",
         tests=[BLOCKED]),
    # ------------------------------------------------- the blocked pass (k steps; the default)
    dict(name="block: sigma^2 dropped from psi", file=REC,
         find="psi = solve @ (noise_var + reach @ rho)", replace="psi = solve @ (reach @ rho)",
         tests=[MC_SMALL, BLOCKED]),
    dict(name="block: in-block coupling K dropped", file=REC,
         find="coupling = jnp.where(", replace="coupling = 0.0 * jnp.where(",
         tests=[MC_SMALL, BLOCKED]),
    dict(name="block: coupling lag off by one", file=REC,
         find="lag = j[:, None] - j[None, :] - 1", replace="lag = j[:, None] - j[None, :] - 2",
         tests=[MC_SMALL, BLOCKED]),
    dict(name="block: carry a^k -> a^(k-1)", file=REC,
         find="carry = powers[k]", replace="carry = powers[k - 1]", tests=[MC_SMALL, BLOCKED]),
    dict(name="block: Horner feed a^(k-1-m) -> 1", file=REC,
         find="fed = fed * a + psi[m]", replace="fed = fed + psi[m]", tests=[MC_SMALL, BLOCKED]),
    dict(name="block: Horner feed starts at psi(k0+1)", file=REC,
         find="fed = psi[0]  ", replace="fed = 0.0 * psi[0]  ", tests=[MC_SMALL, BLOCKED]),
    dict(name="eta = gamma/d: 1/d -> 1/(d+1)", file=REC,
         find="eta = step_size / dim\n    x = eta", replace="eta = step_size / (dim + 1)\n    x = eta",
         tests=[MC_SMALL]),
    # ------------------------------------------------------------ heavy-ball moments (Monte Carlo)
    dict(name="HB noise: per-mode lambda^2 Sxx dropped", file=REC,
         find="(eigenvalues**2 * sxx + eigenvalues * psi)", replace="(eigenvalues * psi)",
         tests=[HB_SMALL]),
    dict(name="HB noise: lambda psi doubled", file=REC,
         find="(eigenvalues**2 * sxx + eigenvalues * psi)",
         replace="(eigenvalues**2 * sxx + 2.0 * eigenvalues * psi)", tests=[HB_SMALL]),
    dict(name="HB noise: 1/B dropped", file=REC,
         find="noise = (eta**2 / batch_size) *", replace="noise = eta**2 *", tests=[HB_SMALL]),
    dict(name="HB psi: sigma^2 dropped", file=REC,
         find="psi = solve @ (noise_var + reach @ jnp.concatenate(s))",
         replace="psi = solve @ (reach @ jnp.concatenate(s))", tests=[HB_SMALL]),
    dict(name="HB psi: sigma^2 dropped (step-by-step scan)", file=REC,
         find="psi = noise_var + jnp.dot(eigenvalues, moments[0])\n"
              "            return moment_step(moments, eigenvalues, psi, eta,",
         replace="psi = jnp.dot(eigenvalues, moments[0])\n"
                 "            return moment_step(moments, eigenvalues, psi, eta,",
         tests=[HB_BLOCKED]),
    dict(name="HB block: fed vectors without M_i", file=REC,
         find="        fed = apply(fed)\n", replace="", tests=[HB_SMALL, HB_BLOCKED]),
    dict(name="HB block: fed vectors in reverse order (M^m f for M^(k-1-m) f)", file=REC,
         find="jnp.stack(powers[::-1])", replace="jnp.stack(powers)", tests=[HB_SMALL, HB_BLOCKED]),
    dict(name="HB block: carry M^k -> M^(k-1)", file=REC,
         find="for _ in range(k):\n        carry = [apply(col) for col in carry]",
         replace="for _ in range(k - 1):\n        carry = [apply(col) for col in carry]",
         tests=[HB_SMALL, HB_BLOCKED]),
    dict(name="HB block: reach row lambda e_xx M^j -> e_xx M^j", file=REC,
         find="rows, row = [], (eigenvalues, zero, zero)",
         replace="rows, row = [], (one, zero, zero)", tests=[HB_SMALL, HB_BLOCKED]),
    dict(name="HB Sxx: 2(1-a) beta Sxv sign-flipped", file=REC,
         find="+ 2 * (1 - a) * b * sxv + common", replace="- 2 * (1 - a) * b * sxv + common",
         tests=[HB_SMALL]),
    dict(name="HB Sxv: -(1-a) a Sxx sign-flipped", file=REC,
         find="sxv_new = -(1 - a) * a * sxx", replace="sxv_new = (1 - a) * a * sxx",
         tests=[HB_SMALL]),
    dict(name="HB Sxv: (1-2a) beta Sxv -> (1-a) beta Sxv", file=REC,
         find="(1 - 2 * a) * b * sxv", replace="(1 - a) * b * sxv", tests=[HB_SMALL]),
    dict(name="HB Svv: -2 a beta Sxv sign-flipped", file=REC,
         find="svv_new = a * a * sxx - 2 * a * b * sxv", replace="svv_new = a * a * sxx + 2 * a * b * sxv",
         tests=[HB_SMALL]),
    dict(name="HB: velocity memory beta^2 Svv -> beta Svv", file=REC,
         find="common = b * b * svv + noise", replace="common = b * svv + noise", tests=[HB_SMALL]),
    dict(name="HB: gradient noise dropped from Sxv", file=REC,
         find="(1 - 2 * a) * b * sxv + common", replace="(1 - 2 * a) * b * sxv + b * b * svv",
         tests=[HB_SMALL]),
    # ------------------------------------------------------------ the ODE (exponential integrator)
    dict(name="ODE: alpha = 2 gamma lambda halved", file=ODE,
         find="alpha = 2.0 * step_size * eigenvalues", replace="alpha = step_size * eigenvalues",
         tests=[ISO]),
    dict(name="ODE: 1/B of the noise coupling dropped", file=ODE,
         find="beta = step_size**2 * eigenvalues / (batch_size * d)",
         replace="beta = step_size**2 * eigenvalues / d", tests=[ISO]),
    dict(name="ODE: noise coupling doubled", file=ODE,
         find="beta = step_size**2 * eigenvalues / (batch_size * d)",
         replace="beta = 2.0 * step_size**2 * eigenvalues / (batch_size * d)", tests=[ISO]),
    dict(name="ODE: phi_2 correction dropped (psi held constant)", file=ODE,
         find="(phi1 - phi2) * psi", replace="phi1 * psi", tests=[ISO]),
    dict(name="ODE: implicit solve for psi(t+h) dropped", file=ODE,
         find="/ (1.0 - jnp.dot(eigenvalues, gain))", replace="", tests=[ISO]),
    # ------------------------------------------------------------ Volterra (plain, closed form)
    dict(name="Volterra: pole alpha = 2 gamma lambda halved", file=VOL,
         find="alpha = 2.0 * step_size * eigenvalues", replace="alpha = step_size * eigenvalues",
         tests=[ISO]),
    dict(name="Volterra: kernel weight 1/(B d) -> 1/d", file=VOL,
         find="w = step_size**2 * eigenvalues**2 / (batch_size * d)",
         replace="w = step_size**2 * eigenvalues**2 / d", tests=[ISO]),
    dict(name="Volterra: kernel weight lambda^2 -> lambda", file=VOL,
         find="w = step_size**2 * eigenvalues**2 / (batch_size * d)",
         replace="w = step_size**2 * eigenvalues / (batch_size * d)", tests=[ONE_OVER_D]),
    # ------------------------------------------------------------ Volterra (heavy ball, steps)
    dict(name="HB Volterra: impulse response -beta u_{m-1} sign-flipped", file=VOL,
         find="return (c * u - momentum * u_prev, u), u", replace="return (c * u + momentum * u_prev, u), u",
         tests=[HB_MC]),
    dict(name="HB Volterra: ebar(-1) = e(0) -> 0 (v_0 = 0 lost)", file=VOL,
         find="(e0, e0), None", replace="(e0, jnp.zeros_like(e0)), None", tests=[HB_MC]),
    dict(name="HB Volterra: kernel 1/B dropped", file=VOL,
         find="return (eta**2 / batch_size) * (us**2 @ eigenvalues**2)",
         replace="return eta**2 * (us**2 @ eigenvalues**2)", tests=[HB_MC_B4]),
    dict(name="HB Volterra: forcing sigma^2/2 dropped", file=VOL,
         find="return 0.5 * noise_var + 0.5 * (es**2 @ eigenvalues)",
         replace="return 0.5 * (es**2 @ eigenvalues)", tests=[HB_MC]),
    dict(name="HB Volterra: kernel lag K(k-1-j) -> K(k-j)", file=VOL,
         find="padded, (n - k,), (n + 1,)", replace="padded, (n - k - 1,), (n + 1,)",
         tests=[HB_MC]),
    # ------------------------------------------------------------ stability edge
    dict(name="edge: mode mass (1+beta) dropped", file=STAB,
         find="a * (1.0 + b) / (batch_size * denom)", replace="a / (batch_size * denom)",
         tests=[HB_EDGE]),
    dict(name="edge: eta lambda in 2(1+beta) - eta lambda dropped", file=STAB,
         find="denom = (1.0 - b) * (2.0 * (1.0 + b) - a)", replace="denom = (1.0 - b) * (2.0 * (1.0 + b))",
         tests=[EDGE]),
    dict(name="edge: feedback sum m/(1-m) -> sum m", file=STAB,
         find="return np.sum(m / (1.0 - m)) - 1.0", replace="return np.sum(m) - 1.0", tests=[EDGE]),
    # ------------------------------------------------------------ the spectral (closed-form) solution
    dict(name="spectral: pole weight 1/B dropped", file=SPEC,
         find="x * x / batch_size, eigenvalues * initial_error", replace="x * x, eigenvalues * initial_error",
         tests=[SPEC_B7]),
    dict(name="spectral: residue g(mu_j)/S_j sign-flipped", file=SPEC,
         find="jnp.where(valid, g / slope, 0.0)", replace="jnp.where(valid, -g / slope, 0.0)",
         tests=[SPEC_NOISY]),
    dict(name="spectral: noise part sigma^2 sum G_j/S_j dropped", file=SPEC,
         find="modes.anchor + modes.noise_var * (geometric @ start)", replace="modes.anchor",
         tests=[SPEC_NOISY]),
    dict(name="spectral: G_j = (mu^k - 1)/(mu - 1) -> mu^k - 1", file=SPEC,
         find="jnp.expm1(span * modes.rate[None, :]) / safe_m",
         replace="jnp.expm1(span * modes.rate[None, :])", tests=[SPEC_NOISY]),
    dict(name="spectral: G_j anchored at 0 instead of k0", file=SPEC,
         find="span = (tc - modes.k0)[:, None]", replace="span = tc[:, None]", tests=[SPEC_HB]),
    dict(name="spectral: 1 - a_i without its (1+1/B) x^2", file=SPEC,
         find="one_minus = x * (2.0 - c * x)", replace="one_minus = x * (2.0 - x)",
         tests=[SPEC_NOISY]),
    # ------------------------------------------------------------ the vmapped grid
    dict(name="grid: sigma in place of sigma^2", file=PREDICT,
         find='"noise_var": np.array([float(x) ** 2 for x in column["noise_std"]])',
         replace='"noise_var": np.array([float(x) for x in column["noise_std"]])',
         tests=[GRID_PER_POINT]),
    dict(name="grid: a step past gamma_c never flagged unstable", file=PREDICT,
         find='start = np.where(settings["step_size"] >= gamma_c, 0.0, np.inf)',
         replace='start = np.full(gamma_c.shape, np.inf)', tests=[GRID_ROWS]),
    dict(name="grid: excess risk of the rows without sigma^2 / 2", file=PREDICT,
         find='risk_observables(risk, settings["noise_var"][:, None])',
         replace='risk_observables(risk, 0.0 * settings["noise_var"][:, None])', tests=[GRID_ROWS]),
]
