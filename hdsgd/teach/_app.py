"""What the page asks of the server, as plain functions of JSON-like data (the HTTP layer is
`hdsgd.teach._server`). Every number comes from the library's public calls, made exactly as a
user would make them: the Setup of the slider position, `hdsgd.predict`, `hdsgd.simulate` and
the system face's derived quantities.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from . import _jobs
from ._views import (
    FieldError,
    Resolved,
    View,
    build_setup,
    check_values,
    describe,
    python_code,
    resolve,
)

MAX_SEEDS = 1024


class NotFound(LookupError):
    """An unknown view or job (HTTP 404)."""


class Busy(RuntimeError):
    """A simulation is already running (HTTP 409)."""


def _finite(values) -> list:
    """A JSON list: finite numbers as floats, everything else (inf, nan) as null."""
    arr = np.asarray(values, dtype=np.float64)
    return [float(x) if math.isfinite(x) else None for x in arr.ravel().tolist()] \
        if arr.ndim <= 1 else [_finite(row) for row in arr]


def curve_json(curve, dim=None) -> dict:
    """A theory Curve as the page draws it."""
    return {"dim": dim, "time": _finite(curve.time),
            "observables": {k: _finite(v) for k, v in curve.observables.items()},
            "diverged": [bool(x) for x in curve.diverged_mask.tolist()],
            "method": curve.meta.get("method"), "warning": curve.meta.get("warning")}


def mc_json(curve, dim=None, *, runs: bool = False, theory: dict | None = None) -> dict:
    """A Monte Carlo Curve: seed mean and standard error (`Curve.mean`, `Curve.sem`), how many
    runs had diverged at each time, and (``runs``) every run."""
    mean = curve.mean()
    with np.errstate(invalid="ignore"):
        sem = curve.sem() if curve.seeds >= 2 else None
    out = {"dim": dim, "seeds": curve.seeds, "time": _finite(curve.time),
           "mean": {k: _finite(v) for k, v in mean.observables.items()},
           "sem": {k: _finite(v) for k, v in sem.observables.items()} if sem is not None else None,
           "diverged_runs": [int(x) for x in curve.diverged_mask.sum(axis=0).tolist()],
           "method": curve.meta.get("method"), "warning": curve.meta.get("warning"),
           "theory": theory}
    if runs:
        out["runs"] = {k: _finite(v) for k, v in curve.observables.items()}
    return out


def _integer(body: Mapping, name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok:
        ok = math.isfinite(float(value)) and float(value) == int(value) and low <= value <= high
    if not ok:
        raise FieldError(name, f"{name}={value!r} is invalid; allowed: an integer in "
                         f"[{low}, {high}]")
    return int(value)


class App:
    """The teaching page's server side, independent of HTTP.

    Args:
        views: the views offered (`hdsgd.teach.VIEWS` by default).
        field_docs: ``Setup class -> {field: its docstring entry}`` for the sliders' help text
            (the command line passes the reader of the ``Attributes:`` section it uses for its
            own options); None: no help text.
    """

    def __init__(self, views: Iterable[View], field_docs: Callable[[type], Mapping[str, str]]
                 | None = None):
        self.views = {v.id: v for v in views}
        self.field_docs = field_docs
        self.jobs = _jobs.Jobs()
        self._resolved: dict[str, Resolved | str] = {}
        self._lock = threading.Lock()
        self.warm = threading.Event()
        self.stopping = threading.Event()
        # a dimension view's theories run side by side (XLA releases the GIL): the largest d
        # sets the time of a slider move, the smaller ones ride along on the other core
        self._theories = ThreadPoolExecutor(max_workers=4, thread_name_prefix="hdsgd-theory")

    # ------------------------------------------------------------ views
    def resolved(self, view_id) -> Resolved:
        if not isinstance(view_id, str) or view_id not in self.views:
            raise FieldError("view", f"view={view_id!r} is invalid; allowed: "
                             f"{', '.join(self.views)}")
        with self._lock:
            if view_id not in self._resolved:
                try:
                    self._resolved[view_id] = resolve(self.views[view_id])
                except ValueError as err:
                    self._resolved[view_id] = str(err)
            r = self._resolved[view_id]
        if isinstance(r, str):
            raise NotFound(f"view {view_id!r} is not available: {r}")
        return r

    def catalog(self) -> dict:
        """Every available view's description, and why the others are not available."""
        import hdsgd

        views, unavailable = [], []
        for view_id, view in self.views.items():
            try:
                views.append(describe(self.resolved(view_id), self.field_docs))
            except NotFound as err:
                unavailable.append({"id": view_id, "title": view.title, "menu": view.menu,
                                    "kind": view.kind, "reason": str(err)})
        return {"views": views, "unavailable": unavailable, "version": hdsgd.__version__,
                "warm": self.warm.is_set()}

    def _request(self, body) -> tuple[Resolved, dict, float, str | None]:
        if not isinstance(body, Mapping):
            raise FieldError(None, "the request body must be a JSON object")
        r = self.resolved(body.get("view"))
        values = check_values(r, body.get("values"))
        horizon = body.get("horizon", r.view.horizons[0])
        if isinstance(horizon, bool) or horizon not in r.view.horizons:
            raise FieldError("horizon", f"horizon={horizon!r} is invalid; allowed: "
                             f"{', '.join(map(repr, r.view.horizons))}")
        observable = body.get("observable")
        if observable is not None and observable not in r.view.observables:
            raise FieldError("observable", f"observable={observable!r} is invalid; allowed: "
                             f"{', '.join(r.view.observables)}")
        return r, values, float(horizon), observable

    def _dims(self, r: Resolved, body: Mapping, simulate: bool) -> list:
        view = r.view
        if view.kind == "dimension":
            dims = body.get("dims", list(view.dims))
            if (not isinstance(dims, list) or not dims
                    or any(isinstance(d, bool) or d not in view.dims for d in dims)):
                raise FieldError("dims", f"dims={dims!r} is invalid; allowed: a non-empty list "
                                 f"from {list(view.dims)}")
            return sorted({int(d) for d in dims})
        if not simulate or "dim" not in body or body["dim"] == view.theory_dim:
            return [view.theory_dim]
        dim = body["dim"]
        if isinstance(dim, bool) or dim not in view.mc_dims:
            allowed = ", ".join(map(str, view.mc_dims)) or f"only {view.theory_dim!r}"
            raise FieldError("dim", f"dim={dim!r} is invalid; allowed: {allowed}")
        return [int(dim)]

    # ------------------------------------------------------------ theory
    def predict(self, body) -> dict:
        """The theory curve(s) of a slider position (one per dimension in a dimension view)."""
        import hdsgd

        start = time.perf_counter()
        r, values, horizon, observable = self._request(body)
        dims = self._dims(r, body, simulate=False)
        setups = [build_setup(r, values, dim) for dim in dims]
        def theory(setup):  # no progress bars on the server's terminal
            return hdsgd.predict(setup, horizon, method=r.view.method, progress=False)

        predicted = (self._theories.map(theory, setups) if len(setups) > 1
                     else [theory(setups[0])])
        curves = [curve_json(curve, dim) for curve, dim in zip(predicted, dims)]
        return {"view": r.view.id, "values": values, "horizon": horizon, "curves": curves,
                "python": python_code(r, values, horizon, observable=observable),
                "elapsed_ms": round(1e3 * (time.perf_counter() - start), 2)}

    def details(self, body) -> dict:
        """The stability edge, the readouts, the time marks and the stability diagram."""
        start = time.perf_counter()
        r, values, horizon, _ = self._request(body)
        view = r.view
        out: dict[str, Any] = {"edge": None, "readouts": [], "marks": [], "diagram": None}
        if view.kind == "dimension":
            return out
        setup = build_setup(r, values)
        face = r.face
        if view.edge is not None:
            out["edge"] = {"field": view.edge.field, "label": view.edge.label,
                           **_attempt(lambda: float(getattr(face, view.edge.compute)(setup)))}
        for q in view.readouts:
            out["readouts"].append({"label": q.label, **_attempt(lambda q=q: q.value(face, setup))})
        for q in view.marks:
            out["marks"].append({"label": q.label, **_attempt(lambda q=q: q.value(face, setup))})
        if view.diagram is not None and view.edge is not None:
            out["diagram"] = self._diagram(r, values)
        out["elapsed_ms"] = round(1e3 * (time.perf_counter() - start), 2)
        return out

    def _diagram(self, r: Resolved, values: Mapping) -> dict:
        view = r.view
        slider = view.slider(view.diagram.x)
        n = view.diagram.points
        if slider.scale == "log":
            xs = np.geomspace(slider.low, slider.high, n)
        else:
            xs = np.linspace(slider.low, slider.high, n)
        if slider.integer:
            xs = np.unique(np.round(xs))
        edge = []
        for x in xs:
            x = int(x) if slider.integer else float(x)
            try:
                s = build_setup(r, {**values, slider.name: x})
                edge.append(float(getattr(r.face, view.edge.compute)(s)))
            except (ValueError, ArithmeticError):
                edge.append(float("nan"))
        setup = build_setup(r, values)
        marks = [{"label": q.label, **_attempt(lambda q=q: q.value(r.face, setup))}
                 for q in view.diagram.marks]
        return {"x": slider.name, "y": view.edge.field, "xs": _finite(xs),
                "edge": _finite(edge), "marks": marks}

    # ------------------------------------------------------------ Monte Carlo
    def simulate(self, body) -> dict:
        """Start a background Monte Carlo job; returns its id (poll `job`)."""
        r, values, horizon, observable = self._request(body)
        view = r.view
        seeds = _integer(body, "seeds", view.seeds, 2, MAX_SEEDS)
        seed = _integer(body, "seed", 0, 0, 2**31 - 1)
        method = body.get("method", view.simulate_methods[0] if view.simulate_methods else None)
        if view.simulate_methods and method not in view.simulate_methods:
            raise FieldError("method", f"method={method!r} is invalid; allowed: "
                             f"{', '.join(view.simulate_methods)}")
        if not view.simulate_methods and method is not None:
            raise FieldError("method", f"method={method!r} is invalid; allowed: none (this view "
                             "runs the system's default Monte Carlo)")
        dims = self._dims(r, body, simulate=True)
        setups = {d: build_setup(r, values, d) for d in dims}
        sizes = {d: float(d if d is not None else getattr(setups[d], "dim", 1)) for d in dims}
        chunks = {d: _jobs.chunk_size(setups[d], horizon, sizes[d], view.chunk_seeds)
                  for d in dims}
        costs = {d: float(setups[d].output_steps(horizon)[-1]) * sizes[d]
                 * float(setups[d].samples_per_step) for d in dims}
        simulation = {"dims": dims, "seeds": seeds, "seed": seed, "method": method,
                      "chunk_seeds": chunks, "horizon": horizon}

        def work(job: _jobs.Job):
            return self._run(job, r, values, setups, simulation, costs, observable)

        try:
            job = self.jobs.start(work, total=sum(costs.values()) * seeds)
        except RuntimeError as err:
            raise Busy(str(err)) from None
        return {"job": job.id, "dims": dims, "seeds": seeds,
                "chunk_seeds": [chunks[d] for d in dims]}

    def _run(self, job, r: Resolved, values, setups, simulation, costs, observable) -> dict:
        import jax

        import hdsgd

        view = r.view
        horizon, seeds = simulation["horizon"], simulation["seeds"]
        options = {"progress": False}
        if simulation["method"] is not None:
            options["method"] = simulation["method"]
        key = jax.random.key(simulation["seed"])
        done = []
        for dim in simulation["dims"]:
            setup = setups[dim]
            theory = None
            if view.kind != "dimension" and dim != view.theory_dim:
                theory = curve_json(hdsgd.predict(setup, horizon, method=view.method,
                                                  progress=False), dim)
            chunk = simulation["chunk_seeds"][dim]
            pieces = []
            for c in range(-(-seeds // chunk)):
                count = min(chunk, seeds - c * chunk)
                where = "" if dim is None else f"d = {dim}: "
                first = " (compiling first)" if c == 0 else ""
                job.step(0.0, f"{where}runs {c * chunk + 1}–{c * chunk + count} of {seeds}{first}")
                pieces.append(hdsgd.simulate(setup, horizon, key=jax.random.fold_in(key, c),
                                             seeds=count, **options))
                job.step(costs[dim] * count)
            mc = hdsgd.Curve.concatenate(pieces)
            done.append(mc_json(mc, dim, runs=view.kind == "dimension", theory=theory))
            job.publish({"runs": list(done)})
        return {"runs": done, "seeds": seeds, "method": simulation["method"],
                "python": python_code(r, values, horizon, observable=observable,
                                      simulation=simulation)}

    def job(self, job_id: str) -> dict:
        try:
            return self.jobs.get(job_id).status()
        except KeyError:
            raise NotFound(f"no job {job_id!r}") from None

    def cancel(self, job_id: str) -> dict:
        try:
            job = self.jobs.get(job_id)
        except KeyError:
            raise NotFound(f"no job {job_id!r}") from None
        job.cancel()
        return job.status()

    # ------------------------------------------------------------ warm-up
    def warm_up(self) -> None:
        """Compile every available view's theory once (at the starting values, then with each
        slider at its ends, then at the other horizons), so the first slider moves are fast."""
        try:
            ids = [v["id"] for v in self.catalog()["views"]]
            for horizons in ("first", "rest"):
                for view_id in ids:
                    r = self.resolved(view_id)
                    chosen = r.view.horizons[:1] if horizons == "first" else r.view.horizons[1:]
                    for horizon in chosen:
                        self._warm(view_id, r, horizon)
                if horizons == "first":
                    self.warm.set()
        except Exception:  # warming is an optimisation; a failure shows on the first request
            import traceback

            traceback.print_exc()
        finally:
            self.warm.set()

    def _warm(self, view_id: str, r: Resolved, horizon: float) -> None:
        attempts = [{}]
        for s in r.view.sliders:
            attempts += [{s.name: s.low}, {s.name: s.high}]
        for values in attempts:
            if self.stopping.is_set():
                return
            try:
                self.predict({"view": view_id, "values": values, "horizon": horizon})
            except (ValueError, ArithmeticError):
                continue
        try:
            if not self.stopping.is_set():
                self.details({"view": view_id, "horizon": horizon})
        except (ValueError, ArithmeticError):
            pass

    def stop(self, wait: float = 30.0) -> None:
        """Stop warming up and cancel the jobs, waiting up to ``wait`` seconds for the chunk
        or prediction in flight (JAX must not be computing when the interpreter exits)."""
        self.stopping.set()
        self.jobs.cancel_all(wait=wait)


def _attempt(compute: Callable[[], float]) -> dict:
    """``{"value": x}`` (null when not finite), or ``{"value": null, "error": why}``."""
    try:
        value = float(compute())
    except (ValueError, ArithmeticError, TypeError) as err:
        return {"value": None, "error": str(err)}
    return {"value": value if math.isfinite(value) else None,
            "text": None if math.isfinite(value) else ("∞" if value > 0 else "−∞")}
