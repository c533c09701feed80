"""Mutants of the prox-linear theory (docs/proxlinear.md, "Mutation table").

Each mutant drops, doubles or flips one term of the one-step map (F1)-(F5), of the small-batch
ODE, of the floor / rate, or of a normalisation; `tests` names the default-suite tests that
catch it. Run: ``python benchmarks/mutants.py proxlinear``.
"""

MAP = "hdsgd/odes/proxlinear/_map.py"
ODE = "hdsgd/odes/proxlinear/_ode.py"
FLOOR = "hdsgd/odes/proxlinear/_floor.py"
GRID = "hdsgd/odes/proxlinear/_grid.py"
SETUP = "hdsgd/setups/proxlinear.py"

T = "tests/test_proxlinear.py::"
#: the map against Monte Carlo at m = d, eta = 10, sigma = 0.3 (where every term of (F1)-(F5)
#: shows), and at d1 != d2
MAP_MC = T + "test_map_agrees_with_monte_carlo[large_step_noisy]"
MAP_MC_UNEQUAL = T + "test_map_agrees_with_monte_carlo[unequal_dims]"
#: the small-batch ODE against Monte Carlo (m = 2, d1 = 200 != d2 = 400, sigma = 0.4)
ODE_MC = T + "test_ode_agrees_with_monte_carlo_small_batch_noisy"

MUTANTS = [
    # ---------------------------------------------------------------- the state's Gaussians
    dict(name="map: r = ps - xz, xz dropped", file=MAP,
         find="R = jnp.stack([p0 * s0 - x * z,", replace="R = jnp.stack([p0 * s0,",
         tests=[MAP_MC]),
    dict(name="map: p's h1 coefficient sign-flipped", file=MAP,
         find="p0, p1 = a1 * g1 / n1, -b1 / n1 + zero",
         replace="p0, p1 = a1 * g1 / n1, b1 / n1 + zero",
         tests=[MAP_MC]),
    dict(name="map: Jacobian row along nu_perp sign-flipped", file=MAP,
         find="x[:, None] * right(o0, o1)]", replace="-x[:, None] * right(o0, o1)]",
         tests=[MAP_MC]),
    # ---------------------------------------------------------------- (F1, F2)
    dict(name="F1: 1/eta dropped", file=MAP,
         find="phi1 = jnp.sum(w * W * z2) + inv_eta", replace="phi1 = jnp.sum(w * W * z2)",
         tests=[MAP_MC]),
    dict(name="F1: W weight dropped from E[W z^2]", file=MAP,
         find="phi1 = jnp.sum(w * W * z2) + inv_eta", replace="phi1 = jnp.sum(w * z2) + inv_eta",
         tests=[MAP_MC]),
    dict(name="F2: E[W x^2] doubled", file=MAP,
         find="phi2 = jnp.sum(w * W * x2) + inv_eta",
         replace="phi2 = 2.0 * jnp.sum(w * W * x2) + inv_eta", tests=[MAP_MC]),
    dict(name="F1: delta1 doubled", file=MAP,
         find="jnp.log(delta1 * k1 * phi1)", replace="jnp.log(2.0 * delta1 * k1 * phi1)",
         tests=[MAP_MC]),
    # ---------------------------------------------------------------- W in (F3)-(F5)
    dict(name="W: kappa2 x^2 dropped", file=MAP,
         find="W = 1.0 / (1.0 + k1 * z2 + k2 * x2)\n    ww = w * W",
         replace="W = 1.0 / (1.0 + k1 * z2)\n    ww = w * W", tests=[MAP_MC]),
    # ---------------------------------------------------------------- (F5)
    dict(name="F5: ridge I/eta doubled", file=MAP,
         find="+ jnp.eye(4) / eta", replace="+ 2.0 * jnp.eye(4) / eta", tests=[MAP_MC]),
    dict(name="F5: W weight dropped", file=MAP,
         find="ww = w * W", replace="ww = w", tests=[MAP_MC]),
    dict(name="F5: E[W r a] doubled", file=MAP,
         find='b = jnp.einsum("n,nkj,nj->k", ww, A, R)',
         replace='b = 2.0 * jnp.einsum("n,nkj,nj->k", ww, A, R)', tests=[MAP_MC]),
    # ---------------------------------------------------------------- (F3, F4)
    dict(name="F3/F4: res = r - a.c, a.c sign-flipped", file=MAP,
         find='res = R - jnp.einsum("nkj,k->nj", A, c)',
         replace='res = R + jnp.einsum("nkj,k->nj", A, c)', tests=[MAP_MC]),
    dict(name="F3/F4: sigma^2 in res^2 dropped", file=MAP,
         find="res2 = jnp.sum(res * res, axis=-1) + noise_var",
         replace="res2 = jnp.sum(res * res, axis=-1)", tests=[MAP_MC]),
    dict(name="F3/F4: sigma^2 in res^2 doubled", file=MAP,
         find="res2 = jnp.sum(res * res, axis=-1) + noise_var",
         replace="res2 = jnp.sum(res * res, axis=-1) + 2.0 * noise_var", tests=[MAP_MC]),
    dict(name="F3/F4: W^2 -> W", file=MAP,
         find="w2 = w * W * W", replace="w2 = w * W", tests=[MAP_MC]),
    dict(name="F3: 1/(delta1 kappa1^2) doubled", file=MAP,
         find="[[1.0 / (delta1 * k1**2)", replace="[[2.0 / (delta1 * k1**2)", tests=[MAP_MC]),
    dict(name="F3: T1 z^2 term of res^2 dropped", file=MAP,
         find="[[1.0 / (delta1 * k1**2) - jnp.sum(w2 * z2 * z2), -zx]",
         replace="[[1.0 / (delta1 * k1**2), -zx]", tests=[MAP_MC]),
    dict(name="F3/F4: T1-T2 coupling dropped", file=MAP,
         find="zx = jnp.sum(w2 * z2 * x2)", replace="zx = 0.0 * jnp.sum(w2 * z2 * x2)",
         tests=[MAP_MC]),
    dict(name="F4: rhs E[W^2 x^2 res^2] doubled", file=MAP,
         find="jnp.sum(w2 * x2 * res2)])", replace="2.0 * jnp.sum(w2 * x2 * res2)])",
         tests=[MAP_MC]),
    # ---------------------------------------------------------------- the map's update
    dict(name="map: alpha1' = alpha1 + 2 u1", file=MAP,
         find="state[0] + c[0]", replace="state[0] + 2.0 * c[0]", tests=[MAP_MC]),
    dict(name="map: T1 dropped from beta1'", file=MAP,
         find="(state[1] + c[1]) ** 2 + T[0]", replace="(state[1] + c[1]) ** 2", tests=[MAP_MC]),
    dict(name="map: T2 doubled in beta2'", file=MAP,
         find="(state[3] + c[3]) ** 2 + T[1]", replace="(state[3] + c[3]) ** 2 + 2.0 * T[1]",
         tests=[MAP_MC]),
    dict(name="map: v2 sign-flipped in beta2'", file=MAP,
         find="(state[3] + c[3]) ** 2", replace="(state[3] - c[3]) ** 2", tests=[MAP_MC]),
    # ---------------------------------------------------------------- parameters
    dict(name="delta_j = m/(d_j - 2) (bulk only)", file=MAP,
         find="return (m / float(setup.dim_left), m / float(setup.dim_right), eta, sigma**2)",
         replace="return (m / (setup.dim_left - 2.0), m / (setup.dim_right - 2.0), eta, sigma**2)",
         tests=[T + "test_delta_convention_at_small_dimension"]),
    dict(name="delta_j = 2m/d_j", file=MAP,
         find="return (m / float(setup.dim_left), m / float(setup.dim_right), eta, sigma**2)",
         replace="return (2.0 * m / setup.dim_left, 2.0 * m / setup.dim_right, eta, sigma**2)",
         tests=[MAP_MC]),
    dict(name="delta1 <-> delta2 swapped", file=MAP,
         find="return (m / float(setup.dim_left), m / float(setup.dim_right), eta, sigma**2)",
         replace="return (m / float(setup.dim_right), m / float(setup.dim_left), eta, sigma**2)",
         tests=[MAP_MC_UNEQUAL]),
    dict(name="noise: sigma in place of sigma^2", file=MAP,
         find="return (m / float(setup.dim_left), m / float(setup.dim_right), eta, sigma**2)",
         replace="return (m / float(setup.dim_left), m / float(setup.dim_right), eta, sigma)",
         tests=[MAP_MC]),
    dict(name="grid: sigma in place of sigma^2", file=GRID,
         find="eta, sig**2], axis=1)", replace="eta, sig], axis=1)",
         tests=[T + "test_predict_grid_is_the_vmapped_map"]),
    # ---------------------------------------------------------------- the small-batch ODE
    dict(name="ODE: W weight dropped", file=ODE,
         find="W = 1.0 / (1.0 + (eta / m) * (d1 * z * z + d2 * x * x))",
         replace="W = 1.0 + 0.0 * z", tests=[ODE_MC]),
    dict(name="ODE: ridge m/eta doubled in W", file=ODE,
         find="(eta / m) * (d1 * z * z + d2 * x * x)",
         replace="(eta / (2.0 * m)) * (d1 * z * z + d2 * x * x)",
         tests=[ODE_MC]),
    dict(name="ODE: ridge m/eta -> 1/eta in W (m lost)", file=ODE,
         find="(eta / m) *", replace="eta *", tests=[ODE_MC]),
    dict(name="ODE: d1 <-> d2 swapped in W", file=ODE,
         find="(d1 * z * z + d2 * x * x)", replace="(d2 * z * z + d1 * x * x)", tests=[ODE_MC]),
    dict(name="ODE: alpha1 drift doubled", file=ODE,
         find="        eta * drift[0],", replace="        2.0 * eta * drift[0],", tests=[ODE_MC]),
    dict(name="ODE: alpha2 drift sign-flipped", file=ODE,
         find="        eta * drift[2],", replace="        -eta * drift[2],", tests=[ODE_MC]),
    dict(name="ODE: beta1^2 drift factor 2 dropped", file=ODE,
         find="2.0 * state[1] * eta * drift[1]", replace="state[1] * eta * drift[1]",
         tests=[ODE_MC]),
    dict(name="ODE: beta1^2 jump dropped", file=ODE,
         find="+ eta**2 * d1 / m * jump1", replace="", tests=[ODE_MC]),
    dict(name="ODE: 1/m lost in the beta1^2 jump", file=ODE,
         find="eta**2 * d1 / m * jump1", replace="eta**2 * d1 * jump1", tests=[ODE_MC]),
    dict(name="ODE: beta2^2 jump doubled", file=ODE,
         find="+ eta**2 * d2 / m * jump2", replace="+ 2.0 * eta**2 * d2 / m * jump2",
         tests=[ODE_MC]),
    dict(name="ODE: d2 -> d1 in the beta2^2 jump", file=ODE,
         find="+ eta**2 * d2 / m * jump2", replace="+ eta**2 * d1 / m * jump2", tests=[ODE_MC]),
    dict(name="ODE: sigma^2 in r^2 dropped", file=ODE,
         find="r2 = jnp.sum(R * R, axis=-1) + noise_var", replace="r2 = jnp.sum(R * R, axis=-1)",
         tests=[ODE_MC]),
    dict(name="ODE: sigma^2 in r^2 doubled", file=ODE,
         find="r2 = jnp.sum(R * R, axis=-1) + noise_var",
         replace="r2 = jnp.sum(R * R, axis=-1) + 2.0 * noise_var", tests=[ODE_MC]),
    dict(name="ODE: W^2 -> W in the jumps", file=ODE,
         find="w2 = w * W * W", replace="w2 = w * W", tests=[ODE_MC]),
    dict(name="ODE: initial beta1^2 not squared", file=ODE,
         find="[s0[0], s0[1] ** 2, s0[2], s0[3] ** 2]", replace="[s0[0], s0[1], s0[2], s0[3] ** 2]",
         tests=[ODE_MC]),
    # ---------------------------------------------------------------- floor and rate
    dict(name="rate: q_par not squared", file=FLOOR,
         find="jnp.maximum(q_perp, q_par**2)", replace="jnp.maximum(q_perp, q_par)",
         tests=[T + "test_floor_is_the_limit_of_the_trajectory"]),
    dict(name="rate: q_perp's discriminant sign-flipped", file=FLOOR,
         find="0.5 * (tr + jnp.sqrt(", replace="0.5 * (tr - jnp.sqrt(",
         tests=[T + "test_rate_and_floor_match_small_batch_table"]),
    dict(name="floor: E^2 of beta^2 (not beta)", file=FLOOR,
         find="(y[..., 0], jnp.sqrt(y[..., 1]), y[..., 2], jnp.sqrt(y[..., 3]))",
         replace="(y[..., 0], y[..., 1], y[..., 2], jnp.sqrt(y[..., 3]))",
         tests=[T + "test_floor_is_the_limit_of_the_trajectory"]),
    # ---------------------------------------------------------------- the observable
    dict(name="E^2: beta1^2 beta2^2 dropped", file=SETUP,
         find="+ b1**2 * b2**2", replace="", tests=[MAP_MC]),
]
