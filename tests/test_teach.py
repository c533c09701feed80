"""``hdsgd teach``: the server's endpoints (no browser) and the page in headless Chromium.

The browser test needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium``
package (``.ci/run`` installs Chromium where it can); without them it is skipped, saying which
is missing.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import shutil
import socket
import statistics
import tempfile
import threading
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import jax
import numpy as np
import pytest

import hdsgd
from hdsgd.cli import build_parser
from hdsgd.cli import teach as cli_teach
from hdsgd.cli._fields import attribute_docs
from hdsgd.teach import VIEWS, App, TeachServer

ROOT = Path(__file__).resolve().parents[1]
LSTSQ_VIEWS = ("lstsq", "lstsq-dimension", "lesson-stability")
ALL_VIEWS = tuple(v.id for v in VIEWS)
REDRAW_LIMIT_MS = 100.0
MC = {"dim": 100, "seeds": 8}   # every Monte Carlo here: one chunk of 8 runs at d = 100


@pytest.fixture(scope="module")
def server():
    srv = TeachServer(port=0, field_docs=attribute_docs, warm=False)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def call(server, path, body=None, *, raw: bytes | None = None, headers=None):
    """(status, JSON) of one request; ``raw`` sends those bytes as the body."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(server.url.rstrip("/") + path, data=data,
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})},
                                     method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_job(server, job_id, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, st = call(server, f"/api/jobs/{job_id}")
        assert status == 200
        if st["state"] != "running":
            return st
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} still running after {timeout} s")


# ----------------------------------------------------------------------------- the server
def test_listens_on_loopback_only_by_default(server):
    assert server.server_address[0] == "127.0.0.1"
    args = build_parser().parse_args(["teach", "--no-browser"])
    assert args.host == "127.0.0.1" and args.port == 8765 and args.no_browser
    # a request addressed to another name (DNS rebinding) is refused
    status, data = call(server, "/api/views", headers={"Host": "attacker.example:80"})
    assert status == 403 and "127.0.0.1" in data["error"]


def test_cli_reports_a_port_it_cannot_open(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = build_parser().parse_args(["teach", "--no-browser", "--port", str(port)])
        assert cli_teach.run(args) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert cli_teach.run(build_parser().parse_args(["teach", "--port", "70000"])) == 2


def test_page_is_served_from_the_package_and_loads_nothing_from_the_network(server):
    files = {}
    for name in ("index.html", "teach.js", "teach.css"):
        files[name] = resources.files("hdsgd.teach").joinpath("static", name).read_text()
    with urllib.request.urlopen(server.url, timeout=10) as resp:
        assert resp.status == 200 and resp.read().decode() == files["index.html"]
    for name in ("teach.js", "teach.css"):
        with urllib.request.urlopen(server.url + "static/" + name, timeout=10) as resp:
            assert resp.read().decode() == files[name]
    for name, text in files.items():
        for bad in ("http://", "https://", "//cdn", "@import"):
            assert bad not in text, f"{name} refers to {bad}"
    assert '<script src="/static/teach.js">' in files["index.html"]
    # the package data globs of pyproject.toml cover every static file
    section = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    line = re.search(r'^"hdsgd\.teach" = \[(.*)\]$', section, re.M).group(1)
    globs = [g.strip().strip('"') for g in line.split(",")]
    static = ROOT / "hdsgd" / "teach" / "static"
    covered = {p.name for g in globs for p in static.glob(g.removeprefix("static/"))}
    assert covered == {p.name for p in static.iterdir()} == set(files)


def test_catalog_lists_every_view_once_and_least_squares_is_available(server):
    status, data = call(server, "/api/views")
    assert status == 200
    available = [v["id"] for v in data["views"]]
    unavailable = {v["id"]: v["reason"] for v in data["unavailable"]}
    assert sorted(available + list(unavailable)) == sorted(v.id for v in VIEWS)
    assert set(ALL_VIEWS) == set(available) and not unavailable
    lstsq = next(v for v in data["views"] if v["id"] == "lstsq")
    step = next(s for s in lstsq["sliders"] if s["name"] == "step_size")
    assert step["scale"] == "log" and step["default"] == 1.0   # the Setup's own default
    assert step["help"] == attribute_docs(hdsgd.StreamingLeastSquares)["step_size"]
    assert lstsq["edge"] == {"field": "step_size", "label": "critical step size γc"}
    assert lstsq["fixed"]["eigenvalues"] == "power_law:500:1.0"


@pytest.mark.parametrize("view_id", ALL_VIEWS)
def test_slider_windows_lie_inside_the_setups_documented_ranges(view_id):
    app = App(VIEWS)
    r = app.resolved(view_id)
    from hdsgd.teach._views import build_setup, slider_defaults

    defaults = slider_defaults(r)
    for s in r.view.sliders:
        assert s.low <= defaults[s.name] <= s.high, s.name
        for end in (s.low, s.high):
            setup = build_setup(r, {**defaults, s.name: end})   # the Setup accepts both ends
            if s.name in r.defaults:
                assert getattr(setup, s.name) == end


def test_predict_is_the_librarys_and_the_copied_code_reproduces_it(server, tmp_path,
                                                                   monkeypatch):
    monkeypatch.chdir(tmp_path)   # the copied code writes its figure here
    values = {"step_size": 37.5, "batch_size": 3, "noise_std": 0.2, "exponent": 0.7}
    status, data = call(server, "/api/predict", {"view": "lstsq", "values": values,
                                                  "horizon": 1.0})
    assert status == 200
    [curve] = data["curves"]
    setup = hdsgd.StreamingLeastSquares("power_law:500:0.7", initial_error=500.0, noise_std=0.2,
                                        step_size=37.5, batch_size=3)
    direct = hdsgd.predict(setup, 1.0)
    np.testing.assert_array_equal(curve["time"], direct.time)
    np.testing.assert_array_equal(curve["observables"]["excess_risk"], direct["excess_risk"])
    scope: dict = {}
    exec(data["python"], scope)   # "copy as Python"
    assert (tmp_path / "teach.png").is_file()
    np.testing.assert_array_equal(scope["theory"]["excess_risk"], direct["excess_risk"])
    assert scope["edge"] == hdsgd.lstsq.critical_step_size(setup)
    status, details = call(server, "/api/details", {"view": "lstsq", "values": values})
    assert details["edge"]["value"] == scope["edge"]
    diagram = details["diagram"]
    assert diagram["x"] == "batch_size" and len(diagram["xs"]) == len(diagram["edge"])
    assert diagram["marks"][0]["value"] == pytest.approx(hdsgd.lstsq.critical_batch_size(setup))


def test_past_the_edge_the_prediction_is_marked_diverged(server):
    status, data = call(server, "/api/predict", {"view": "lesson-stability",
                                                  "values": {"step_size": 200.0}})
    assert status == 200
    [curve] = data["curves"]
    assert curve["diverged"][0] is False and all(curve["diverged"][1:])
    assert all(v is None for v in curve["observables"]["risk"][1:])   # inf travels as null
    assert "critical step size" in curve["warning"]


def test_dimension_view_predicts_each_dimension(server):
    status, data = call(server, "/api/predict", {"view": "lstsq-dimension", "dims": [100, 1000]})
    assert status == 200
    assert [c["dim"] for c in data["curves"]] == [100, 1000]
    ends = [c["observables"]["excess_risk"][-1] for c in data["curves"]]
    assert ends[0] == pytest.approx(ends[1], rel=0.05)   # one limit, O(1/d) apart
    assert "ramp:1000:0.5:1.5" in data["python"]


def test_slider_moves_compile_nothing_and_answer_within_100_ms(count_compiles):
    app = App(VIEWS)
    moves = [{"step_size": 2.0}, {"step_size": 3.1, "batch_size": 7}, {"noise_std": 0.4},
             {"exponent": 1.6}, {"momentum": 0.5}, {"momentum": 0.7, "step_size": 5.0},
             {"batch_size": 64, "step_size": 900.0}]
    for values in ({}, {"momentum": 0.9}):   # compile the plain and the heavy-ball recursion
        app.predict({"view": "lstsq", "values": values})
        app.details({"view": "lstsq", "values": values})
    with count_compiles() as compiles:
        times = []
        for values in moves * 2:
            start = time.perf_counter()
            app.predict({"view": "lstsq", "values": values})
            times.append(1e3 * (time.perf_counter() - start))
    assert compiles() == 0
    assert statistics.median(times) < REDRAW_LIMIT_MS, times


@pytest.mark.parametrize("view_id", [v for v in ALL_VIEWS if v not in LSTSQ_VIEWS])
def test_every_view_predicts_and_its_slider_moves_compile_nothing(view_id, count_compiles):
    from hdsgd.teach._views import slider_defaults

    app = App(VIEWS)
    r = app.resolved(view_id)
    defaults = slider_defaults(r)
    first = r.view.sliders[0]
    lo, hi = first.low, first.high
    middle = float(np.sqrt(lo * hi)) if first.scale == "log" and lo > 0 else 0.5 * (lo + hi)
    moves = [{}, {first.name: middle}, {first.name: 0.5 * (defaults[first.name] + middle)}]
    data = app.predict({"view": view_id, "values": moves[0]})
    app.predict({"view": view_id, "values": moves[1]})
    assert data["curves"]
    for curve in data["curves"]:
        for name, values in curve["observables"].items():
            assert values[0] is not None and np.isfinite(values[0]), (name, values[:3])
    with count_compiles() as compiles:
        app.predict({"view": view_id, "values": moves[2]})
    assert compiles() == 0


BAD = [
    ({"view": "lstsq", "values": {"step_size": -1.0}}, "step_size", "allowed"),
    ({"view": "lstsq", "values": {"step_size": "fast"}}, "step_size", "a number"),
    ({"view": "lstsq", "values": {"step_size": True}}, "step_size", "a number"),
    ({"view": "lstsq", "values": {"step_size": [1, 2]}}, "step_size", "a number"),
    ({"view": "lstsq", "values": {"batch_size": 2.5}}, "batch_size", "an integer"),
    ({"view": "lstsq", "values": {"batch_size": 0}}, "batch_size", "allowed"),
    ({"view": "lstsq", "values": {"momentum": 1.0}}, "momentum", "allowed"),
    ({"view": "lstsq", "values": {"exponent": 7.0}}, "exponent", "[0.0, 2.0]"),
    ({"view": "lstsq", "values": {"dim": 10}}, "dim", "held fixed"),
    ({"view": "lstsq", "values": {"eigenvalues": "isotropic:3"}}, "eigenvalues", "held fixed"),
    ({"view": "lstsq", "values": {"speed": 1}}, "speed", "not a slider"),
    ({"view": "lstsq", "values": [1, 2]}, "values", "an object"),
    ({"view": "lstsq", "horizon": 5.0}, "horizon", "allowed"),
    ({"view": "lstsq", "observable": "loss"}, "observable", "allowed"),
    ({"view": "nope"}, "view", "allowed"),
    ({"values": {}}, "view", "allowed"),
]


@pytest.mark.parametrize("body,field,words", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
@pytest.mark.parametrize("path", ["/api/predict", "/api/details", "/api/simulate"])
def test_bad_values_get_a_json_error_naming_the_field(server, path, body, field, words):
    status, data = call(server, path, body)
    assert status == 400, data
    assert data["field"] == field and words in data["error"], data


def test_malformed_requests_never_take_the_server_down(server):
    host, port = server.server_address[:2]
    nan = b'{"view": "lstsq", "values": {"step_size": NaN}}'
    status, data = call(server, "/api/predict", raw=nan)
    assert status == 400 and data["field"] == "step_size" and "finite" in data["error"]
    for raw in (b"{not json", b"[1, 2]", b"\xff\xfe"):
        status, data = call(server, "/api/predict", raw=raw)
        assert status == 400 and data["error"]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("POST", "/api/predict", body=b"", headers={"Content-Length": str(1 << 30)})
    resp = conn.getresponse()
    assert resp.status == 400 and "at most" in json.loads(resp.read())["error"]
    conn.close()
    for path, want in (("/api/nothing", 404), ("/static/../../setup.py", 404),
                       ("/api/jobs/999999", 404)):
        status, data = call(server, path)
        assert status == want and data["error"]
    for body, field in (({"view": "lstsq", **MC, "seeds": 1}, "seeds"),
                        ({"view": "lstsq", **MC, "seed": -3}, "seed"),
                        ({"view": "lstsq", "dim": 777}, "dim"),
                        ({"view": "lstsq", "method": "exact"}, "method"),
                        ({"view": "lstsq-dimension", "dims": [100, 5]}, "dims")):
        status, data = call(server, "/api/simulate", body)
        assert status == 400 and data["field"] == field, data
    assert call(server, "/api/views")[0] == 200   # still serving


def test_simulate_overlays_the_librarys_monte_carlo_and_copies_as_python(server, tmp_path,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = {"step_size": 20.0, "batch_size": 1}
    status, started = call(server, "/api/simulate", {"view": "lstsq", "values": values,
                                                      **MC, "seed": 3})
    assert status == 200 and started["dims"] == [100]
    st = wait_job(server, started["job"])
    assert st["state"] == "done" and st["progress"] == 1.0
    [run] = st["result"]["runs"]
    assert run["dim"] == 100 and run["seeds"] == 8 and len(run["sem"]["risk"]) == len(run["time"])
    assert run["theory"]["dim"] == 100   # the theory at the Monte Carlo's dimension
    scope: dict = {}
    exec(st["result"]["python"], scope)
    mc = scope["mc"]
    np.testing.assert_allclose(run["mean"]["excess_risk"], mc.mean()["excess_risk"], rtol=1e-12)
    np.testing.assert_allclose(run["sem"]["excess_risk"], mc.sem()["excess_risk"], rtol=1e-12)
    setup = hdsgd.StreamingLeastSquares("power_law:100:1.0", initial_error=100, step_size=20.0)
    direct = hdsgd.simulate(setup, 10.0, key=jax.random.fold_in(jax.random.key(3), 0), seeds=8)
    np.testing.assert_allclose(mc["excess_risk"], direct["excess_risk"], rtol=1e-12)


def test_simulate_can_be_cancelled_and_one_runs_at_a_time(server):
    status, started = call(server, "/api/simulate", {"view": "lstsq", **MC, "seeds": 1024})
    assert status == 200
    job = started["job"]
    status, busy = call(server, "/api/simulate", {"view": "lstsq", **MC})
    assert status == 409 and "cancel it first" in busy["error"]
    deadline = time.monotonic() + 60
    while call(server, f"/api/jobs/{job}")[1]["progress"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    status, st = call(server, f"/api/jobs/{job}/cancel", {})
    assert status == 200
    start = time.monotonic()
    st = wait_job(server, job, timeout=30)
    assert st["state"] == "cancelled" and 0 < st["progress"] < 0.5
    assert time.monotonic() - start < 10
    status, again = call(server, "/api/simulate", {"view": "lstsq", **MC})
    assert status == 200 and wait_job(server, again["job"])["state"] == "done"


# ----------------------------------------------------------------------------- the browser
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1400,1000")


@pytest.fixture(scope="module")
def browser():
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver_path))
               if path is None]
    if missing:
        pytest.skip(f"the browser test needs {' and '.join(missing)} (Debian: apt-get install "
                    "chromium chromium-driver; .ci/run installs them where it can)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("the browser test needs selenium (pip install -e '.[dev]')")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    profile = tempfile.mkdtemp(prefix="hdsgd-teach-test-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def until(driver, script, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def test_browser_slider_redraws_the_curve_fast_and_simulate_overlays(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.support.ui import Select

    driver = browser
    driver.get(server.url + "#lstsq")
    until(driver, "const s = window.hdsgdTeach && window.hdsgdTeach.state; return s && s.theory "
          "&& s.details && !s.inFlight", 60, "the first curve")
    read = ("const s = window.hdsgdTeach.state; return [s.theory.curves[0].observables"
            ".excess_risk, document.getElementById('plot').toDataURL(), s.values.step_size];")
    curve0, pixels0, step0 = driver.execute_script(read)
    slider = driver.find_element("id", "range-step_size")
    width = slider.size["width"]
    times = []
    for offset in (-0.3, 0.2, -0.1, 0.15, -0.25, 0.1, 0.25):
        count = driver.execute_script("return window.hdsgdTeach.stats.redraws.length")
        before = slider.get_attribute("value")
        ActionChains(driver).move_to_element_with_offset(slider, int(offset * width), 0).click() \
            .perform()
        assert slider.get_attribute("value") != before   # each click moves the slider
        until(driver, f"const h = window.hdsgdTeach; return h.stats.redraws.length > {count} "
              "&& !h.state.inFlight && !h.state.pending", 10, "the redraw")
        times.append(driver.execute_script("return window.hdsgdTeach.stats.lastRedrawMs"))
    curve1, pixels1, step1 = driver.execute_script(read)
    assert step1 != step0 and pixels1 != pixels0
    assert not np.allclose(np.array(curve1, dtype=float), np.array(curve0, dtype=float))
    assert statistics.median(times) < REDRAW_LIMIT_MS, f"redraws after a slider move: {times} ms"
    assert driver.find_element("id", "value-step_size").get_attribute("value") == str(step1)

    # a small Monte Carlo: d = 100, 8 runs, with progress, then the overlay
    Select(driver.find_element("id", "mc-dim")).select_by_value(str(MC["dim"]))
    Select(driver.find_element("id", "seeds")).select_by_value(str(MC["seeds"]))
    driver.find_element("id", "simulate-button").click()
    # the button turns to Cancel when the server has answered the request (asynchronously)
    until(driver, "return window.hdsgdTeach.state.job !== null", 10, "the job to start")
    state, text = driver.execute_script("return [window.hdsgdTeach.state.job.state, "
                                        "document.getElementById('simulate-button').textContent]")
    assert (state, text) == ("running", "Cancel")
    until(driver, "const j = window.hdsgdTeach.state.job; return j && j.state !== 'running'",
          60, "the Monte Carlo")
    assert driver.execute_script("return window.hdsgdTeach.state.job.state") == "done"
    legend = driver.execute_script("return window.hdsgdTeach.stats.legend")
    assert any(label.startswith("Monte Carlo at d = 100: mean ± 2 s.e., 8 runs")
               for label in legend), legend
    assert "theory at d = 100" in legend
    assert driver.find_element("id", "progress").get_attribute("value") == "1"
    assert "hdsgd.simulate" in driver.find_element("id", "code").get_attribute("textContent")
    assert driver.find_element("id", "simulate-button").text == "Simulate"

    # past the edge: the diverged part is marked; a typed bad value names the field
    box = driver.find_element("id", "value-step_size")
    box.clear()
    box.send_keys("5000\n")
    until(driver, "return window.hdsgdTeach.state.values.step_size === 5000 && "
          "!window.hdsgdTeach.state.inFlight", 10, "the diverged curve")
    until(driver, "return window.hdsgdTeach.stats.legend.includes('diverged (values infinite)')",
          10, "the diverged marking")
    assert driver.execute_script("return window.hdsgdTeach.stats.errors") == []
    box.clear()
    box.send_keys("-1\n")
    until(driver, "return document.querySelector('.slider[data-name=step_size] .error')"
          ".textContent.includes('step_size=-1')", 10, "the error under the slider")
    assert math.isfinite(times[-1])
