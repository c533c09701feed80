"""Bad arguments to the public functions of `hdsgd.grokking` raise a ValueError that names the
parameter, its value and the allowed range ("name=value is invalid; allowed: ..."), before any
numpy or JAX work; valid calls keep their numbers."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd import grokking as G

NAN = float("nan")
KEY = jax.random.key(7)
TAUS = np.array([0.0, 0.3, 2.0, 25.0])
SETUP = G.GrokkingTwoLayer(dim=8, n_samples=24, width=16, output_scale=2.0,
                           quadratic_strength=0.5, centered=True, data_seed=3)
UNCENTRED = SETUP.replace(centered=False, output_scale=0.5)
LOSS_ARGS = dict(alpha=2.0, eps=0.5, teacher_norm=1.1, trace=0.3, overlap=-0.2, frobenius=0.7,
                 linear=0.05)

BAD_SETUPS = (None, "abc", 1.0, hdsgd.SpikedSingleIndex())
BAD_KEYS = ("abc", NAN, -1, 0, 2.5, 2**40, True, jax.random.split(KEY, 2),
            jnp.zeros(3, jnp.uint32))
BAD_TAUS = ("abc", None, NAN, -1, 0.0, 2.5, True, [], [-1.0, 0.0], [0.0, NAN], [0.0, math.inf],
            [[0.0, 1.0]], [1e31], ["a", "b"])
BAD_N_QUAD = ("abc", NAN, 2.5, 2**40, None, True, 0, 15, 4097)
BAD_REALS = ("abc", None, NAN, math.inf, -math.inf, True, 1j, 1e31)


def _loss(**changes):
    return G.loss_decomposition(**{**LOSS_ARGS, **changes})


def _cases():
    return [
        # the setup argument of every function that takes one
        *[(lambda v, f=f: f(v), "setup", v) for v in BAD_SETUPS for f in (
            G.critical_step_size, G.grokking_time, G.training_set,
            lambda s: G.initial_weights(s, KEY), lambda s: G.kernel_flow(s, TAUS))],
        # critical_step_size
        *[(lambda v: G.critical_step_size(SETUP, init_key=v), "init_key", v) for v in BAD_KEYS],
        (lambda v: G.critical_step_size(SETUP.replace(width=None), init_key=KEY), "width", None),
        # initial_weights
        *[(lambda v: G.initial_weights(SETUP, v), "key", v) for v in (*BAD_KEYS, None)],
        (lambda v: G.initial_weights(SETUP.replace(width=v), KEY), "width", None),
        # grokking_time: n_quad, and setups outside the lazy quadrature's accurate range
        *[(lambda v: G.grokking_time(SETUP, n_quad=v), "n_quad", v) for v in BAD_N_QUAD],
        *[(lambda v: G.grokking_time(SETUP.replace(quadratic_strength=v)), "quadratic_strength",
           v) for v in (1e3, 1e-3)],
        (lambda v: G.grokking_time(G.GrokkingTwoLayer(dim=1, n_samples=v)), "n_samples", 10**9),
        # kernel_flow
        *[(lambda v: G.kernel_flow(SETUP, v), "taus", v) for v in BAD_TAUS],
        *[(lambda v: G.kernel_flow(SETUP, TAUS, average_teacher=v), "average_teacher", v)
          for v in ("abc", 1, None, 0.0, np.array([True]))],
        *[(lambda v: G.kernel_flow(SETUP, v, average_teacher=True), "taus", v)
          for v in (0.5, [-1.0], [NAN])],
        # lazy_curves and lazy_spectrum
        *[(lambda v: G.lazy_curves(v, 3.0, 0.5), "taus", v) for v in BAD_TAUS],
        *[(lambda v, f=f: f(kappa=v), "kappa", v) for v in (*BAD_REALS, 0, -1.0, [3.0], 1e-13,
                                                             2e8)
          for f in (lambda **k: G.lazy_curves(TAUS, **{"eps": 0.5, **k}),
                    lambda **k: G.lazy_spectrum(**{"eps": 0.5, **k}))],
        *[(lambda v, f=f, k=k: f(kappa=k, eps=v), "eps", v)
          for k, v in [*[(3.0, b) for b in (*BAD_REALS, 0, -0.5, [0.5])],
                       (3.0, 1e3), (3.0, 1e-3), (0.5, 100.0), (1e6, 0.1)]
          for f in (lambda **k: G.lazy_curves(TAUS, **k), G.lazy_spectrum)],
        *[(lambda v, f=f: f(n_quad=v), "n_quad", v) for v in BAD_N_QUAD
          for f in (lambda **k: G.lazy_curves(TAUS, 3.0, 0.5, **k),
                    lambda **k: G.lazy_spectrum(3.0, 0.5, **k))],
        # predict's lazy method shares the bounds
        (lambda v: hdsgd.predict(SETUP, 10, method="lazy", n_quad=v), "n_quad", 4097),
        (lambda v: hdsgd.predict(SETUP.replace(quadratic_strength=v), 10, method="lazy"),
         "quadratic_strength", 1e-3),
        # loss_decomposition
        *[(lambda v, n=n: _loss(**{n: v}), n, v) for n in LOSS_ARGS for v in BAD_REALS],
        *[(lambda v, n=n: _loss(**{n: v}), n, v) for n, v in (
            ("alpha", 0.0), ("alpha", -1.0), ("eps", 0.0), ("eps", -0.5),
            ("teacher_norm", -0.1), ("frobenius", -1e-3), ("linear", -1e-3),
            ("alpha", [1.0, -1.0]), ("frobenius", np.array([0.1, NAN])),
            ("trace", jnp.array([0.1, jnp.inf])), ("overlap", ["a"]),
            ("linear", np.array([0.1, 0.2 + 1j])), ("linear", [0.1, 1j]), ("eps", [[0.5], [0.0]]),
            ("frobenius", jnp.array([True])), ("teacher_norm", np.float64(-1.0)))],
        (lambda v: _loss(trace=np.ones(3), overlap=v), "overlap", np.ones(4)),
    ]


# the arrays these would allocate (2^32 entries and more) are far past a 32-bit index
SIZE_CASES = [
    (lambda v: G.training_set(G.GrokkingTwoLayer(dim=2**16, n_samples=v)), "n_samples", 2**16),
    (lambda v: G.initial_weights(G.GrokkingTwoLayer(dim=2**16, n_samples=2, width=v), KEY),
     "width", 2**16),
    (lambda v: G.critical_step_size(G.GrokkingTwoLayer(dim=v, n_samples=2)), "dim", 2**16),
    (lambda v: G.kernel_flow(G.GrokkingTwoLayer(dim=1, n_samples=v), TAUS), "n_samples", 2**16),
]


@pytest.mark.parametrize(("call", "parameter", "value"), _cases())
def test_bad_arguments_raise_value_errors_naming_themselves(call, parameter, value):
    with pytest.raises(ValueError, match=rf"^{parameter}=.* is invalid; allowed: "):
        call(value)


@pytest.mark.parametrize(("call", "parameter", "value"), SIZE_CASES,
                         ids=[f"size-{c[1]}-{i}" for i, c in enumerate(SIZE_CASES)])
def test_sizes_past_a_32_bit_index_raise_value_errors(call, parameter, value):
    with pytest.raises(ValueError, match=rf"^{parameter}=.* is invalid; allowed: "):
        call(value)


def _close(actual, expected, rtol=1e-10):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=1e-15, equal_nan=True)


def _fingerprint(a):
    a = np.asarray(a, dtype=float).ravel()
    return [a.sum(), a[0], a[-1], (a * np.arange(1, a.size + 1)).sum()]


# Recorded from the code before these input checks (commit 1c4d311) by the very calls below.
BEFORE = {
    "critical_step_size": [4.649705371356261, 5.246560434148163, 4.5492495136771485],
    "grokking_time": [5.051667744834271, 20.206670979337083, 6.238324625039507,
                      4.890268063245991, 2.0794415416798357, 0.0, NAN],
    "grokking_time_uncentred": [1.67063815752106, 6.68255263008424, 2.599301927099795,
                                18.883018640187, 3.4657359027997265, 0.0, 5.746069825490197],
    "initial_weights": [1.393495619467268, 1.0114813355590866, 0.058853213356395984,
                        -253.51964673196125],
    "training_set": [[-4.139120377649703, -0.0874807744834492, -0.10262012888387831,
                      241.61317321984967],
                     [0.04147487999646704, -0.9524148427504571, 1.3931795287436057,
                      10.882779211273162],
                     [11.517970298264201, 0.16292567921707077, 1.3540038211195944,
                      178.98346901749198]],
    "kernel_flow": {
        "train_loss": [0.480760049988663, 0.3861046046700683, 0.15568491772201504,
                       0.003988942586805162],
        "test_loss": [0.34661564329487765, 0.31096386645830093, 0.23178457421130644,
                      0.11551166755161284],
        "linear_power": [0.0, 0.003537607087264189, 0.04175134137178459, 0.0226346780864544]},
    "kernel_flow_average": {
        "train_loss": [0.7553550764982093, 0.5626691654435115, 0.24092570140075342,
                       0.013917693608680753],
        "test_loss": [0.9375, 0.8842710510693564, 0.7621992825714367, 0.4951371568174061],
        "variance_error": [0.3125, 0.2711051769995258, 0.14916547089925358,
                           0.030768222498088915]},
    "lazy_curves": {
        "train_loss": [0.7500000000410465, 0.5855137746825719, 0.303555189243308,
                       0.0051694829103683055],
        "test_loss": [0.75, 0.7318177786045417, 0.7513027669349923, 0.7172947113066133],
        "constant": [0.0, 0.03414131915504652, 0.15509606560022604, 0.33812446983895583]},
    "lazy_curves_small_kappa": {
        "train_loss": [0.7500000000000202, 0.2759555333469702, 0.021386734072328842,
                       1.2022983590919284e-09],
        "test_loss": [0.75, 0.804198840757814, 1.0675367275253844, 1.2172747906949506]},
    "lazy_spectrum": {
        "bulk_w": [0.3333333333333338, 3.965451320707522e-09, 2.847077705945894e-10,
                   9.246991782555781],
        "nu_bulk_w": [0.5925925925925936, 2.3763814841108104e-08, 4.0205413376053565e-10,
                      15.326346496028531],
        "nu_atoms": [0.6666666666666666] * 4, "nu_atom_w": [0.40740740757159166] * 4},
}


def test_valid_calls_keep_their_numbers():
    _close([G.critical_step_size(SETUP), G.critical_step_size(UNCENTRED),
            G.critical_step_size(SETUP, init_key=KEY)], BEFORE["critical_step_size"])
    _close(list(G.grokking_time(SETUP, n_quad=64)), BEFORE["grokking_time"])
    _close(list(G.grokking_time(UNCENTRED, n_quad=64)), BEFORE["grokking_time_uncentred"])
    weights = G.initial_weights(SETUP, KEY)
    _close(_fingerprint(weights), BEFORE["initial_weights"])
    for array, expected in zip(G.training_set(SETUP), BEFORE["training_set"]):
        _close(_fingerprint(array), expected)
    flows = [(lambda t: G.kernel_flow(SETUP, t), "kernel_flow"),
             (lambda t: G.kernel_flow(SETUP, t, average_teacher=True), "kernel_flow_average"),
             (lambda t: G.lazy_curves(t, 3.0, 0.5, 64), "lazy_curves"),
             (lambda t: G.lazy_curves(t, 0.5, 0.25), "lazy_curves_small_kappa")]
    jax_taus = jnp.asarray(TAUS)  # float32 outside hdsgd's 64-bit scope: 0.3 is rounded
    for flow, name in flows:
        for taus in (TAUS, list(TAUS)):
            out = flow(taus)
            for k, expected in BEFORE[name].items():
                _close(out[k], expected)
        # a jax array gives what the same numbers in numpy give
        out, expected = flow(jax_taus), flow(np.asarray(jax_taus))
        for k in BEFORE[name]:
            _close(out[k], expected[k], rtol=1e-14)
    # an unsorted grid is evaluated point by point
    _close(G.lazy_curves(TAUS[::-1], 3.0, 0.5, 64)["test_loss"],
           BEFORE["lazy_curves"]["test_loss"][::-1])
    spectrum = G.lazy_spectrum(3.0, 0.5, n_quad=64)._asdict()
    for k, expected in BEFORE["lazy_spectrum"].items():
        _close(_fingerprint(spectrum[k]), expected)
    assert math.isclose(spectrum["null"], 2.0 / 3.0, rel_tol=1e-12)


def test_loss_decomposition_is_plain_arithmetic_numpy_jax_and_traced():
    a = LOSS_ARGS
    expected = {"variance_error": 0.25 * (a["teacher_norm"]
                                          - a["alpha"] * a["eps"] * a["trace"]) ** 2,
                "misalignment_error": 0.5 * (a["alpha"] ** 2 * a["eps"] ** 2 * a["frobenius"]
                                             - 2.0 * a["alpha"] * a["eps"] * a["overlap"]
                                             + a["teacher_norm"] ** 2),
                "linear_power": a["alpha"] ** 2 * a["linear"]}
    expected["test_loss"] = sum(expected.values())
    rng = np.random.default_rng(0)
    arrays = dict(a, trace=rng.normal(size=5), frobenius=rng.uniform(size=5))
    with jax.enable_x64(True):
        for args in (a, {k: np.float64(v) for k, v in a.items()},
                     {k: jnp.asarray(v) for k, v in a.items()}):
            out = G.loss_decomposition(**args)
            for k, v in expected.items():
                _close(out[k], v, rtol=1e-14)
        numpy_out = G.loss_decomposition(**arrays)
        list_out = G.loss_decomposition(**{k: np.asarray(v).tolist() for k, v in arrays.items()})
        jax_out = G.loss_decomposition(**{k: jnp.asarray(v) for k, v in arrays.items()})
        traced = jax.jit(G.loss_decomposition)(**arrays)
        for k in expected:
            _close(jax_out[k], numpy_out[k], rtol=1e-14)
            _close(list_out[k], numpy_out[k], rtol=1e-14)
            _close(traced[k], numpy_out[k], rtol=1e-14)
        # differentiable in every argument (no check on a traced value)
        grad = jax.grad(lambda *x: G.loss_decomposition(*x)["test_loss"], argnums=tuple(range(7)))(
            *[jnp.asarray(v) for v in a.values()])
        _close(grad[6], a["alpha"] ** 2, rtol=1e-14)
        # a traced value out of range is not checked (jit cannot raise on values)
        jax.jit(G.loss_decomposition)(**dict(a, frobenius=-1.0))


def test_critical_step_size_at_vanishing_eps_is_the_gauss_newton_edge():
    """eps -> 0 (centred): R -> 0 and k -> 1, so lambda* = lambda_max(X X^T) / P. The Newton
    start is then the root itself, a few ulps off 1 (eps = 1e-30 returned an edge of inf)."""
    setup = SETUP.replace(quadratic_strength=1e-30)
    x = G.training_set(setup)[0]
    expected = setup.n_samples / np.linalg.eigvalsh(x @ x.T)[-1]
    assert math.isclose(G.critical_step_size(setup), expected, rel_tol=1e-9)
