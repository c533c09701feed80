"""Bad arguments to the public functions of `hdsgd.lstsq` raise a ValueError that names the
parameter, its value and the allowed range ("name=value is invalid; allowed: ..."), before any
numpy or JAX work; valid calls keep their numbers, and `spectral_risk` takes numpy arrays."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hdsgd
from hdsgd import lstsq, spectra

NAN = float("nan")
LAM = spectra.ramp(12, 0.2, 1.5)
RHO = np.linspace(0.05, 0.15, 12)
SETUP = hdsgd.StreamingLeastSquares(LAM, initial_error=RHO, noise_std=0.3, step_size=1.5,
                                    batch_size=2)
HEAVY = SETUP.replace(momentum=0.6, step_size=0.8)
SCHEDULED = SETUP.replace(step_size=hdsgd.Schedule.even([1.5, 0.5], 10))
STEPS = np.array([0, 1, 7, 40, 300])
SPECTRAL = dict(eigenvalues=LAM, initial_error=RHO, noise_var=0.09, step_size=1.5,
                batch_size=2.0, momentum=0.0, steps=STEPS)
ISOTROPIC = dict(t=np.array([0.0, 0.5, 3.0]), step_size=1.3, batch_size=2, noise_std=0.4,
                 initial_risk=1.1)

BAD_SETUPS = (None, "abc", 1.0, hdsgd.SpikedSingleIndex())
BAD_REALS = ("abc", None, NAN, math.inf, -math.inf, True, 1j, 1e31, [1.0])
BAD_SPECTRA = ([], [1.0, -1.0], [1.0, 0.0], [1.0, NAN], [1.0, math.inf], [[1.0, 1.0]], 3.0,
               "abc", None, [1e31], ["a", "b"])
BAD_FORMS = ("abc", None, 1, "Exact", ["exact"])

SETUP_FUNCTIONS = (lstsq.asymptotic_rate, lstsq.critical_batch_size, lstsq.critical_step_size,
                   lstsq.effective_step_size, lstsq.feedback,
                   lstsq.homogenized_critical_step_size, lstsq.homogenized_kernel_mass,
                   lstsq.kernel_mass, lstsq.limit_excess_risk, lstsq.limit_risk,
                   lstsq.recursion_matrix)
#: the quantities of one constant step size (a Schedule has one per piece)
CONSTANT_STEP = (lstsq.asymptotic_rate, lstsq.effective_step_size, lstsq.feedback,
                 lstsq.homogenized_kernel_mass, lstsq.kernel_mass, lstsq.limit_excess_risk,
                 lstsq.limit_risk, lstsq.recursion_matrix)


def _spectral(**changes):
    return lstsq.spectral_risk(**{**SPECTRAL, **changes})


def _isotropic(**changes):
    return lstsq.isotropic_risk(**{**ISOTROPIC, **changes})


def _traced(fn, *args):
    """Call ``fn`` on traced ``args`` (under jit: only shapes and dtypes are known)."""
    return jax.jit(fn)(*args)


def _cases():
    return [
        # the setup argument of every function that takes one
        *[(lambda v, f=f: f(v), "setup", v) for v in BAD_SETUPS for f in SETUP_FUNCTIONS],
        *[(lambda v, f=f: f(v), "step_size", SCHEDULED) for f in CONSTANT_STEP],
        # recursion_matrix: plain SGD's d x d matrix, small d only
        (lambda v: lstsq.recursion_matrix(v), "momentum", HEAVY),
        (lambda v: lstsq.recursion_matrix(hdsgd.StreamingLeastSquares(spectra.isotropic(v))),
         "dim", 4097),
        # limit_risk and limit_excess_risk: form
        *[(lambda v, f=f: f(SETUP, v), "form", v) for v in BAD_FORMS
          for f in (lstsq.limit_risk, lstsq.limit_excess_risk)],
        # accelerated_hyperparameters and accelerated_critical_batch_size
        *[(lambda v, f=f: f(v), "eigenvalues", v) for v in BAD_SPECTRA
          for f in (lstsq.accelerated_hyperparameters, lstsq.accelerated_critical_batch_size)],
        *[(lambda v: lstsq.accelerated_critical_batch_size(LAM, v), "form", v)
          for v in BAD_FORMS],
        # isotropic_risk
        *[(lambda v: _isotropic(t=v), "t", v) for v in (
            "abc", None, NAN, -1.0, True, [0.0, -1.0], [0.0, NAN], [0.0, math.inf], [1e31],
            ["a"], [[0.0, -0.5]])],
        *[(lambda v: _isotropic(step_size=v), "step_size", v) for v in (*BAD_REALS, 0, -1.0)],
        *[(lambda v: _isotropic(batch_size=v), "batch_size", v) for v in (*BAD_REALS, 0, 0.5)],
        *[(lambda v: _isotropic(noise_std=v), "noise_std", v) for v in (*BAD_REALS, -0.1)],
        *[(lambda v: _isotropic(initial_risk=v), "initial_risk", v)
          for v in (*BAD_REALS, -1.0, 0.05)],  # 0.05 < sigma^2 / 2 = 0.08: below the floor
        # spectral_risk: concrete values
        *[(lambda v: _spectral(eigenvalues=v, initial_error=np.ones(np.size(v))), "eigenvalues",
           v) for v in BAD_SPECTRA if not isinstance(v, str)],
        (lambda v: _spectral(eigenvalues=v), "eigenvalues", "abc"),
        *[(lambda v: _spectral(initial_error=v), "initial_error", v) for v in (
            [], -RHO, np.where(RHO > 0.1, NAN, RHO), RHO[:-1], RHO[None], "abc", None, 0.1)],
        *[(lambda v: _spectral(noise_var=v), "noise_var", v) for v in (*BAD_REALS, -0.1)],
        *[(lambda v: _spectral(step_size=v), "step_size", v) for v in (*BAD_REALS, 0, -1.0)],
        *[(lambda v: _spectral(batch_size=v), "batch_size", v) for v in (*BAD_REALS, 0, 0.5)],
        *[(lambda v: _spectral(momentum=v), "momentum", v)
          for v in (*BAD_REALS, -0.1, 1.0, 2.5, 2**40)],
        # the default exact steps ~66 / (1 - momentum) would pass the recursion's bound
        (lambda v: _spectral(momentum=v), "momentum", 1 - 1e-7),
        *[(lambda v: _spectral(steps=v), "steps", v) for v in (
            "abc", None, 5, [0, -1], [0, 2.5], [[0, 1]], [0, NAN], [2**60], ["a"])],
        *[(lambda v: _spectral(exact_steps=v), "exact_steps", v)
          for v in ("abc", NAN, -1, 2.5, 2**40, True, [3])],
        *[(lambda v: _spectral(momentum=0.5, exact_steps=v), "exact_steps", v)
          for v in (-1, 2**25)],
        *[(lambda v: _spectral(sums=v), "sums", v)
          for v in ("abc", NAN, 0, True, "Direct", np.array(["direct", "fast"]))],
        (lambda v: _spectral(eigenvalues=LAM[:2], initial_error=RHO[:2], sums=v), "sums", "fast"),
        # spectral_risk under jit: shapes, dtypes and the Python-level options are still checked
        (lambda v: _traced(lambda lam: _spectral(eigenvalues=lam, initial_error=v), v),
         "eigenvalues", jnp.ones((3, 4))),
        (lambda v: _traced(lambda rho: _spectral(initial_error=rho), v), "initial_error",
         jnp.ones(11)),
        (lambda v: _traced(lambda s2: _spectral(noise_var=s2), v), "noise_var", jnp.ones(2)),
        (lambda v: _traced(lambda b: _spectral(momentum=b), v), "momentum", 0.5),
        (lambda v: _traced(lambda k: _spectral(steps=k), v), "steps", jnp.arange(4.0)),
        (lambda v: _traced(lambda k: _spectral(steps=k), v), "steps", jnp.zeros((2, 2), int)),
        # predict: its method, and the heavy-ball Volterra equation's O(steps^2) horizon
        *[(lambda v: hdsgd.predict(HEAVY, 1.0, method=v), "method", v) for v in ("abc", "ode")],
        (lambda v: hdsgd.predict(HEAVY, v, method="volterra"), "horizon", 200_001 / 12),
        # predict's ODE grid and the spectra: counts that size arrays are bounded
        (lambda v: hdsgd.predict(SETUP, 1.0, method="ode", exact_steps=0, n_grid=v), "n_grid",
         2**20 + 1),
        *[(lambda v, f=f: f(v), "dim", 2**26 + 1) for f in (spectra.isotropic, spectra.power_law,
                                                             spectra.ramp)],
        (lambda v: spectra.from_density_quantiles(4, v), "quantile_function", "abc"),
        # the Setup: one initial error per eigenvalue
        (lambda v: hdsgd.StreamingLeastSquares(LAM, initial_error=v), "initial_error", RHO[:-1]),
    ]


def _id(case):
    call, parameter, value = case
    shown = type(value).__name__ if hasattr(value, "dim") or np.size(value) > 4 else repr(value)
    return f"{parameter}={shown}"


CASES = _cases()


@pytest.mark.parametrize(("call", "parameter", "value"), CASES, ids=[_id(c) for c in CASES])
def test_bad_arguments_raise_value_errors_naming_themselves(call, parameter, value):
    with pytest.raises(ValueError, match=rf"^{parameter}=.* is invalid; allowed: "):
        call(value)


def _close(actual, expected, rtol=1e-12):
    np.testing.assert_allclose(np.asarray(actual, dtype=float), np.asarray(expected, dtype=float),
                               rtol=rtol, atol=0.0)


# Recorded from the code before these input checks (commit 1c4d311) by the very calls below
# (spectral_risk with jnp float64 arrays inside jax.enable_x64: numpy arrays failed then).
BEFORE = {
    "plain": {"asymptotic_rate": 0.9515207583922897, "critical_batch_size": 6.8,
              "critical_step_size": 3.570255540963202, "effective_step_size": 1.5,
              "feedback": 0.35387971253021194,
              "homogenized_critical_step_size": 4.705882352941177,
              "homogenized_kernel_mass": 0.31875, "kernel_mass": 0.3412346560657225,
              "limit_excess_risk": 0.024646474306232277, "limit_risk": 0.06964647430623228},
    "plain_volterra": [0.06830960434447121, 0.023309604344471213],
    "heavy": {"asymptotic_rate": 0.9336044909613506, "critical_batch_size": 6.8,
              "critical_step_size": 1.6276432500788696, "effective_step_size": 2.0,
              "feedback": 0.45497954142096336,
              "homogenized_critical_step_size": 4.705882352941177,
              "homogenized_kernel_mass": 0.425, "kernel_mass": 0.43449117194355213,
              "limit_excess_risk": 0.03756570793199736, "limit_risk": 0.08256570793199736},
    "heavy_volterra": [0.07957435457666842, 0.03457435457666842],
    "recursion_matrix": [[0.6953125, 0.01619318181818182, 0.014808238636363637],
                         [0.01619318181818182, 0.7142148760330579, 0.013641528925619836]],
    "recursion_matrix_sum": 10.512826704545454,
    "accelerated_hyperparameters": [17.17078963284264, 0.21626426565968668],
    "accelerated_critical_batch_size": [41.43984422802923, 34.44962439542637,
                                        9.311283477587821],
    "isotropic_risk": [1.1, 0.5266392927893677, 0.12359218204631442],
    "spectral_risk": [0.47818181818181865, 0.42750714512114996, 0.23902648125101894,
                      0.07797400623906674, 0.06964648462132583],
}


def test_valid_calls_keep_their_numbers():
    for setup, name in ((SETUP, "plain"), (HEAVY, "heavy")):
        for function, expected in BEFORE[name].items():
            _close(getattr(lstsq, function)(setup), expected)
        _close([lstsq.limit_risk(setup, "volterra"), lstsq.limit_excess_risk(setup, "volterra")],
               BEFORE[f"{name}_volterra"])
    matrix = lstsq.recursion_matrix(SETUP)
    _close(matrix[:2, :3], BEFORE["recursion_matrix"])
    _close(matrix.sum(), BEFORE["recursion_matrix_sum"])
    for lam in (LAM, list(LAM), jnp.asarray(LAM)):
        _close(lstsq.accelerated_hyperparameters(lam), BEFORE["accelerated_hyperparameters"],
               rtol=1e-6 if isinstance(lam, jax.Array) else 1e-12)  # jnp: float32 entries
    _close([lstsq.accelerated_critical_batch_size(LAM, form)
            for form in ("exact", "homogenized", "bulk")], BEFORE["accelerated_critical_batch_size"])
    _close(_isotropic(), BEFORE["isotropic_risk"])
    _close(_isotropic(t=list(ISOTROPIC["t"])), BEFORE["isotropic_risk"])
    _close([_isotropic(t=t) for t in ISOTROPIC["t"]], BEFORE["isotropic_risk"])


def test_spectral_risk_takes_numpy_and_runs_in_float64():
    # numpy arrays (a Setup's own) failed with a TracerArrayConversionError; jnp arrays made
    # outside jax.enable_x64 are float32, and the computation was float32 with them
    expected = BEFORE["spectral_risk"]
    out = _spectral()
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    _close(out, expected)
    _close(_spectral(eigenvalues=list(LAM), initial_error=list(RHO), steps=list(STEPS),
                     batch_size=2), expected)
    single = jnp.asarray(LAM), jnp.asarray(RHO)
    assert single[0].dtype == jnp.float32
    out = _spectral(eigenvalues=single[0], initial_error=single[1], steps=jnp.asarray(STEPS))
    assert out.dtype == np.float64
    _close(out, _spectral(eigenvalues=np.asarray(single[0]), initial_error=np.asarray(single[1])))
    _close(out, expected, rtol=1e-6)  # the inputs' own float32 rounding
    with jax.enable_x64(True):
        _close(_spectral(eigenvalues=jnp.asarray(LAM), initial_error=jnp.asarray(RHO)), expected)
    # integer-valued float steps are steps; the plain solution ignores exact_steps
    _close(_spectral(steps=STEPS.astype(float), exact_steps=3), expected)
    # and an empty set of steps gives an empty curve
    assert _spectral(steps=np.array([], int)).shape == (0,)
