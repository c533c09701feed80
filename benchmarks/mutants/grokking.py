"""Mutants of the grokking theory (docs/grokking.md, "Mutation table").

Each mutant drops, doubles or sign-flips one term of the reduced (w_bar, M) map and its
gradient flow, of the P-space form, of the lazy closed form, of kernel flow, of the grokking
time, of the stability edge, of the shared test-loss decomposition, or of the finite-N DMFT;
``tests`` names the default-suite tests that catch it. Run: ``python benchmarks/mutants.py
grokking``.
"""

RED = "hdsgd/odes/grokking/_reduced.py"
SAM = "hdsgd/odes/grokking/_samples.py"
LAZY = "hdsgd/odes/grokking/_lazy.py"
KER = "hdsgd/odes/grokking/_kernel.py"
ONSET = "hdsgd/odes/grokking/_onset.py"
STAB = "hdsgd/odes/grokking/_stability.py"
DMFT = "hdsgd/odes/grokking/_dmft.py"
SETUP = "hdsgd/setups/grokking.py"

T = "tests/test_grokking.py::"
EXACT_D = T + "test_reduced_map_equals_full_network[D-space, uncentred]"
EXACT_P = T + "test_reduced_map_equals_full_network[P < D, centred]"
P_LAW = T + "test_p_space_form_equals_d_space_form_at_the_infinite_width_law"
FLOW = T + "test_gradient_flow_solver_approaches_gd_as_steps_shrink"
MEAN_INIT = T + "test_mean_init_prediction_vs_monte_carlo_gap_shrinks_with_width"
LAZY_REF = T + "test_lazy_reference_values"
LAZY_PROB = T + "test_lazy_spectral_measure_is_a_probability"
LAZY_KF = T + "test_lazy_closed_form_vs_kernel_flow_gap_shrinks_with_dim"
LAZY_KAPPA = T + "test_lazy_train_loss_vs_kernel_flow_at_small_kappa"
KF_TEACHER = T + "test_kernel_flow_teacher_average_is_the_mean_over_teachers[0.25]"
KF_TEACHER_1 = T + "test_kernel_flow_teacher_average_is_the_mean_over_teachers[1.0]"
KF_ALPHA = T + "test_reduced_dynamics_becomes_kernel_flow_as_alpha_grows"
KF_NUMPY = T + "test_kernel_flow_is_the_independent_numpy_flow"
ONSET_TABLE = T + "test_grokking_time_reference_table"
ONSET_GROWTH = T + "test_grokking_time_total_growth_is_that_of_kernel_flow"
DMFT_GAP = T + "test_dmft_vs_monte_carlo_gap_shrinks_with_dim"
EDGE = T + "test_critical_step_size_is_the_hessian_edge_at_initialisation"

MUTANTS = [
    # ---------------------------------------------------------------- the reduced GD map (D-space)
    dict(name="map: c = 2 eta0/alpha halved", file=RED,
         find="c = 2.0 * params.eta0 / params.alpha", replace="c = params.eta0 / params.alpha",
         tests=[EXACT_D]),
    dict(name="map: b = -c g sign-flipped", file=RED,
         find="b = -c * g", replace="b = c * g", tests=[EXACT_D]),
    dict(name="map: cross terms (B w) b^T + b (B w)^T dropped", file=RED,
         find="bmat.T + jnp.outer(bw, b) + jnp.outer(b, bw) + jnp.outer(b, b)",
         replace="bmat.T + jnp.outer(b, b)", tests=[EXACT_D]),
    dict(name="map: b b^T dropped", file=RED,
         find="+ jnp.outer(b, bw) + jnp.outer(b, b)", replace="+ jnp.outer(b, bw)",
         tests=[EXACT_D]),
    dict(name="map: f's quadratic part eps/2 doubled", file=RED,
         find="0.5 * params.alpha * params.eps * quad", replace="params.alpha * params.eps * quad",
         tests=[EXACT_D]),
    dict(name="map: centring f_0 sign-flipped", file=RED,
         find="network_output(state, problem.x, params) - problem.f0 - problem.y",
         replace="network_output(state, problem.x, params) + problem.f0 - problem.y",
         tests=[EXACT_P]),
    dict(name="map: centred observables, w_bar_0 not subtracted", file=RED,
         find="(state.w_bar - state0.w_bar, state.m - state0.m) if centered",
         replace="(state.w_bar, state.m - state0.m) if centered", tests=[EXACT_P]),
    dict(name="map: finite-N initial M = W^T W / N, 1/(N-1)", file=RED,
         find="w.T @ w / w.shape[0])", replace="w.T @ w / (w.shape[0] - 1))", tests=[EXACT_D]),
    dict(name="map: infinite-width initial law M0 = I doubled", file=RED,
         find="jnp.zeros(setup.dim), jnp.eye(setup.dim))",
         replace="jnp.zeros(setup.dim), 2.0 * jnp.eye(setup.dim))", tests=[MEAN_INIT]),
    # ---------------------------------------------------------------- its gradient flow in tau
    dict(name="flow: D/alpha time scale halved", file=RED,
         find="scale = -d / params.alpha", replace="scale = -d / (2.0 * params.alpha)",
         tests=[FLOW]),
    dict(name="flow: eps G w_bar dropped from dw_bar", file=RED,
         find="dw = scale * (g + params.eps * gm @ state.w_bar)", replace="dw = scale * g",
         tests=[FLOW]),
    dict(name="flow: g w_bar^T + w_bar g^T dropped from dM", file=RED,
         find=("dm = scale * (jnp.outer(g, state.w_bar) + jnp.outer(state.w_bar, g)\n"
               "                  + params.eps"),
         replace="dm = scale * (params.eps", tests=[FLOW]),
    dict(name="flow: eps (GM + MG) doubled", file=RED,
         find="+ params.eps * (gmm + gmm.T))", replace="+ 2.0 * params.eps * (gmm + gmm.T))",
         tests=[FLOW]),
    # ---------------------------------------------------------------- the P-space form
    dict(name="P-space: V update, eps dropped", file=SAM,
         find="v_mat = state.v_mat - (c * params.eps / p)", replace="v_mat = state.v_mat - (c / p)",
         tests=[EXACT_P]),
    dict(name="P-space: v update sign-flipped", file=SAM,
         find="v_vec = state.v_vec - (c / p) * delta",
         replace="v_vec = state.v_vec + (c / p) * delta",
         tests=[EXACT_P]),
    dict(name="P-space: Q term Kv (Kv)^T dropped", file=SAM,
         find="+ jnp.outer(kv, ua) + jnp.outer(kv, kv)", replace="+ jnp.outer(kv, ua)",
         tests=[EXACT_P]),
    dict(name="P-space: C term v v^T dropped", file=SAM,
         find="jnp.outer(vv, va) + jnp.outer(vv, vv)\n", replace="jnp.outer(vv, va)\n",
         tests=[EXACT_P]),
    dict(name="P-space: ||dM||_F^2 cross term 4 -> 2", file=SAM,
         find="+ 4.0 * jnp.sum(lx * ck.T))", replace="+ 2.0 * jnp.sum(lx * ck.T))",
         tests=[EXACT_P]),
    dict(name="P-space: finite-N X M0^2 X^T, 1/N^2 -> 1/N", file=SAM,
         find="xw @ wwt @ xw.T / n**2", replace="xw @ wwt @ xw.T / n", tests=[EXACT_P]),
    dict(name="P-space: N = inf law X M0^2 X^T = K squared", file=SAM,
         find="InitMoments(gram, jnp.zeros(x.shape[0]), gram, gram, bx,",
         replace="InitMoments(gram, jnp.zeros(x.shape[0]), gram, gram @ gram, bx,", tests=[P_LAW]),
    dict(name="P-space flow: gamma = D/(alpha P) -> 1/alpha", file=SAM,
         find="gam = d / (params.alpha * p)", replace="gam = 1.0 / params.alpha", tests=[P_LAW]),
    # ---------------------------------------------------------------- the lazy closed form
    dict(name="lazy: L_train bulk 1/2 -> 1/4", file=LAZY,
         find="train = 0.5 * (np.sum(", replace="train = 0.25 * (np.sum(", tests=[LAZY_REF]),
    dict(name="lazy: L_train null atom dropped", file=LAZY,
         find="\n                   + sp.null * np.exp(-2 * t[:, 0] * eps**2 / kappa))",
         replace=")", tests=[LAZY_REF]),
    dict(name="lazy: L_train decay exp(-2 tau B/kappa) halved", file=LAZY,
         find="np.exp(-2 * t * b_s / kappa)", replace="np.exp(-t * b_s / kappa)",
         tests=[LAZY_KAPPA]),
    dict(name="lazy: g_tau, 1/kappa dropped", file=LAZY,
         find="return -np.expm1(-t * lam / kappa) / lam",
         replace="return -np.expm1(-t * lam) / lam",
         tests=[LAZY_REF]),
    dict(name="lazy: constant b, kappa dropped", file=LAZY,
         find="const = 0.5 * eps**2 * kappa * np.sum(", replace="const = 0.5 * eps**2 * np.sum(",
         tests=[LAZY_REF]),
    dict(name="lazy: ell bulk kappa dropped", file=LAZY,
         find="ell = 0.5 * kappa * np.sum(", replace="ell = 0.5 * np.sum(", tests=[LAZY_REF]),
    dict(name="lazy: ell, -eps^2 kappa (int g dnu)^2 dropped", file=LAZY,
         find=("\n                                "
               "- eps**2 * kappa * np.sum(w_nu * g_nu, axis=1) ** 2)"),
         replace=")", tests=[LAZY_REF]),
    dict(name="lazy: variance (b - 1/2)^2 -> b^2", file=LAZY,
         find="variance = (const - 0.5) ** 2", replace="variance = const ** 2", tests=[LAZY_REF]),
    dict(name="lazy: misalignment 1/2 dropped from L_test", file=LAZY,
         find='"test_loss": 0.5 + variance + ell', replace='"test_loss": variance + ell',
         tests=[LAZY_REF]),
    dict(name="lazy: MP Stieltjes, kappa - 1 sign-flipped", file=LAZY,
         find="return (z + kappa - 1.0 - root)", replace="return (z - kappa + 1.0 - root)",
         tests=[LAZY_PROB]),
    dict(name="lazy: G_nu = m_B/(1 - c m_B) sign-flipped", file=LAZY,
         find="g_nu = m_b / (1.0 - c * m_b)", replace="g_nu = m_b / (1.0 + c * m_b)",
         tests=[LAZY_PROB]),
    dict(name="lazy: rank-one strength eps^2 kappa -> eps^2", file=LAZY,
         find="c = eps**2 * kappa\n    null", replace="c = eps**2\n    null", tests=[LAZY_REF]),
    dict(name="lazy: outlier weight 1/c^2 -> 1/c", file=LAZY,
         find="weights.append(-1.0 / (c**2 * mprime))",
         replace="weights.append(-1.0 / (c * mprime))",
         tests=[LAZY_PROB]),
    # ---------------------------------------------------------------- kernel flow
    dict(name="kernel flow: K0 eps^2 -> eps (per teacher)", file=KER,
         find="gram = x @ x.T\n    k0 = gram * (1.0 + eps**2 * gram)",
         replace="gram = x @ x.T\n    k0 = gram * (1.0 + eps * gram)", tests=[KF_NUMPY]),
    dict(name="kernel flow: quadratic part 2 eps^2 X^T diag(c) X halved", file=KER,
         find="q = 2.0 * eps**2 * (x.T * coef) @ x", replace="q = eps**2 * (x.T * coef) @ x",
         tests=[KF_NUMPY]),
    dict(name="kernel flow: train decay, 1/kappa dropped", file=KER,
         find="decay = np.exp(-ti * evals / kappa)\n        out[\"train_loss\"][i] = np.mean(",
         replace="decay = np.exp(-ti * evals)\n        out[\"train_loss\"][i] = np.mean(",
         tests=[KF_NUMPY]),
    dict(name="kernel flow: K0 eps^2 -> eps (teacher average)", file=KER,
         find="sq = np.diagonal(gram).copy()\n    k0 = gram * (1.0 + eps**2 * gram)",
         replace="sq = np.diagonal(gram).copy()\n    k0 = gram * (1.0 + eps * gram)",
         tests=[KF_TEACHER]),
    dict(name="kernel flow: E[y y^T], 2 A o A dropped", file=KER,
         find="yy = 0.25 * (np.outer(sq, sq) + 2.0 * gram**2)",
         replace="yy = 0.25 * np.outer(sq, sq)",
         tests=[KF_TEACHER]),
    dict(name="kernel flow: E|beta|^4 = D^2 + 2D, 2D dropped from variance", file=KER,
         find="var = 0.25 * (1.0 + 2.0 / d", replace="var = 0.25 * (1.0", tests=[KF_TEACHER_1]),
    dict(name="kernel flow: E[|beta|^2 y] = (D + 2) a/2, 2 dropped", file=KER,
         find="(d + 2.0) / (2.0 * d**2) * (a_k @ ga)", replace="d / (2.0 * d**2) * (a_k @ ga)",
         tests=[KF_TEACHER]),
    dict(name="kernel flow: misalignment cross term 8 eps^2 -> 4 eps^2", file=KER,
         find="- 8.0 * eps**2 * np.sum(g * np.diagonal(yy_k))",
         replace="- 4.0 * eps**2 * np.sum(g * np.diagonal(yy_k))",
         tests=[KF_TEACHER_1]),
    dict(name="kernel flow: linear power 1/D -> 1/D^2", file=KER,
         find="* yy_k) / d\n", replace="* yy_k) / d**2\n", tests=[KF_TEACHER_1]),
    # ---------------------------------------------------------------- grokking time
    dict(name="onset: uncentred c0 = 1/2 - alpha eps/2 sign-flipped", file=ONSET,
         find="else 0.5 - 0.5 * a * eps", replace="else 0.5 + 0.5 * a * eps", tests=[ONSET_GROWTH]),
    dict(name="onset: null atom of rho dropped", file=ONSET,
         find="return part(b_s, sp.bulk_w) + null + c0(a)",
         replace="return part(b_s, sp.bulk_w) + c0(a)",
         tests=[ONSET_TABLE]),
    dict(name="onset: Lambda = (2 eps/alpha) int rho halved", file=ONSET,
         find="return 2.0 * eps / a * integral(tau, a)",
         replace="return eps / a * integral(tau, a)",
         tests=[ONSET_TABLE]),
    dict(name="onset: target ln(D/(alpha eps)), eps dropped", file=ONSET,
         find="target = math.log(d / (alpha * eps))", replace="target = math.log(d / alpha)",
         tests=[ONSET_TABLE]),
    dict(name="onset: threshold target, eps dropped", file=ONSET,
         find="math.log(max(d / (a * eps), 1.0 + 1e-300))",
         replace="math.log(max(d / a, 1.0 + 1e-300))",
         tests=[ONSET_TABLE]),
    dict(name="onset: small-alpha form, 1 - 1/kappa dropped", file=ONSET,
         find="(2.0 * eps * (1.0 - 1.0 / kappa)))", replace="(2.0 * eps))", tests=[ONSET_GROWTH]),
    # ---------------------------------------------------------------- the finite-N DMFT
    dict(name="dmft: memory term -gamma dt R F sign-flipped", file=DMFT,
         find="eta[k] - gam * dt * mem", replace="eta[k] + gam * dt * mem", tests=[DMFT_GAP]),
    dict(name="dmft: sample-side gamma = 1/(alpha kappa), kappa dropped", file=DMFT,
         find="gam = 1.0 / (prm.alpha * prm.kappa)\n    dt = prm.dt",
         replace="gam = 1.0 / prm.alpha\n    dt = prm.dt", tests=[DMFT_GAP]),
    dict(name="dmft: coordinate memory kappa R_F W, kappa dropped", file=DMFT,
         find="new = gp[k] - gam * kap * dt * drive", replace="new = gp[k] - gam * dt * drive",
         tests=[DMFT_GAP]),
    dict(name="dmft: coordinate noise xi ~ GP(0, kappa C_F) dropped", file=DMFT,
         find='jnp.einsum("ni,mj->nmij", v, v) + noise', replace='jnp.einsum("ni,mj->nmij", v, v)',
         tests=[DMFT_GAP]),
    dict(name="dmft: coordinate noise kappa C_F -> C_F", file=DMFT,
         find="noise = (gam * dt) ** 2 * kap * jnp", replace="noise = (gam * dt) ** 2 * jnp",
         tests=[DMFT_GAP]),
    dict(name="dmft: initial overlap m(0) = sqrt(N/D) e_1 doubled", file=DMFT,
         find="m0[0] = np.sqrt(n / setup.dim)", replace="m0[0] = 2.0 * np.sqrt(n / setup.dim)",
         tests=[DMFT_GAP]),
    dict(name="dmft: ell = 1^T C 1 / N^2 -> / N", file=DMFT,
         find='ell = jnp.einsum("i,nij,j->n", ones, diag, ones) / n**2',
         replace='ell = jnp.einsum("i,nij,j->n", ones, diag, ones) / n', tests=[DMFT_GAP]),
    # ---------------------------------------------------------------- the stability edge
    dict(name="edge: residual term R dropped", file=STAB,
         find="r = (eps / alpha) * (x.T * np.asarray(delta)) @ x / p",
         replace="r = 0.0 * (x.T * np.asarray(delta)) @ x / p", tests=[EDGE]),
    dict(name="edge: k's eps^2 x^T M x term, eps^2 -> eps", file=STAB,
         find="+ eps**2 * (x @ np.asarray(m) @ x.T)", replace="+ eps * (x @ np.asarray(m) @ x.T)",
         tests=[EDGE]),
    dict(name="edge: centred residual Delta = -y uses f - y", file=STAB,
         find="delta = -y if setup.centered else f - y", replace="delta = f - y", tests=[EDGE]),
    # ---------------------------------------------------------------- the test-loss decomposition
    dict(name="loss: variance 1/4 -> 1/2", file=SETUP,
         find="variance = 0.25 * (teacher_norm", replace="variance = 0.5 * (teacher_norm",
         tests=[MEAN_INIT]),
    dict(name="loss: misalignment 1/2 dropped", file=SETUP,
         find="misalignment = 0.5 * (alpha**2", replace="misalignment = (alpha**2",
         tests=[MEAN_INIT]),
    dict(name="loss: misalignment cross term sign-flipped", file=SETUP,
         find="- 2.0 * alpha * eps * overlap", replace="+ 2.0 * alpha * eps * overlap",
         tests=[MEAN_INIT]),
]
