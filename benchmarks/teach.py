"""``hdsgd teach``: how fast the predicted curve follows a slider, per view, measured side by side.

For each available view: the first prediction (compiling), then warm slider moves through
(1) ``hdsgd.predict`` itself on the moved Setup, (2) the server's predict (`App.predict`: the
Setup from the slider values, the same call, the JSON), (3) the same over HTTP, and (4) in
headless Chromium from the slider's input event to the redrawn canvas (when ``chromium`` and
``chromedriver`` are installed). The page's promise: (4) under 100 ms once warm.

Usage: python benchmarks/teach.py [--moves N] [--no-browser] [--views ID ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's hdsgd, not an installed one

from _timing import device_line  # noqa: E402  (benchmarks/_timing.py)

import hdsgd  # noqa: E402
from hdsgd.teach import VIEWS, App, TeachServer  # noqa: E402
from hdsgd.teach._views import build_setup, check_values  # noqa: E402


def moves(view, n: int) -> list[dict]:
    """``n`` slider positions: each slider in turn at evenly spread points of its window."""
    out = []
    for k in range(n):
        s = view.sliders[k % len(view.sliders)]
        f = (0.15 + 0.7 * ((k * 0.37) % 1.0))
        value = s.low * (s.high / s.low) ** f if s.scale == "log" else s.low + f * (s.high - s.low)
        out.append({s.name: round(value) if s.integer else float(f"{value:.3g}")})
    return out


def ms(seconds: list[float]) -> str:
    return f"{1e3 * statistics.median(seconds):8.1f}"


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as resp:
        return json.loads(resp.read())


def browser_redraws(url: str, view_id: str, n: int) -> list[float] | None:
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        return None
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        from selenium.webdriver.common.action_chains import ActionChains
    except ImportError:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                 f"--user-data-dir={tempfile.mkdtemp(prefix='hdsgd-teach-bench-')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    try:
        driver.get(f"{url}?bench={view_id}#{view_id}")
        wait = ("const s = window.hdsgdTeach && window.hdsgdTeach.state; return s && s.theory && "
                "!s.inFlight && !s.pending")
        deadline = time.monotonic() + 120
        while not driver.execute_script(wait) and time.monotonic() < deadline:
            time.sleep(0.05)
        slider = driver.find_element("css selector", "input[type=range]")
        width = slider.size["width"]
        out = []
        for k in range(n):
            count = driver.execute_script("return window.hdsgdTeach.stats.redraws.length")
            before = slider.get_attribute("value")
            offset = int(width * (0.3 if k % 2 else -0.3) * (1 - 0.1 * (k // 2)))
            ActionChains(driver).move_to_element_with_offset(slider, offset, 0).click().perform()
            if slider.get_attribute("value") == before:   # landed where it was: no move
                continue
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not driver.execute_script(
                    f"const h = window.hdsgdTeach; return h.stats.redraws.length > {count} && "
                    "!h.state.inFlight && !h.state.pending"):
                time.sleep(0.01)
            out.append(driver.execute_script("return window.hdsgdTeach.stats.lastRedrawMs") / 1e3)
        return out
    finally:
        driver.quit()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moves", type=int, default=12, help="slider moves per view")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium column")
    parser.add_argument("--views", nargs="*", metavar="ID", help="only these views (default: all)")
    args = parser.parse_args(argv)
    print(device_line())
    app = App(VIEWS)
    server = TeachServer(port=0, warm=False)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    available = [v["id"] for v in app.catalog()["views"]
                 if not args.views or v["id"] in args.views]
    missing = [v.id for v in VIEWS if v.id not in available
               and (not args.views or v.id in args.views)]
    print(f"views: {', '.join(available)}" + (f" (not available here: {', '.join(missing)})"
                                               if missing else ""))
    print("median milliseconds per slider move once warm (first: the first call, compiling)")
    print(f"{'view':<18} {'first':>8} {'predict':>8} {'server':>8} {'HTTP':>8} "
          f"{'browser':>8} {'server/predict':>15}")
    try:
        for view_id in available:
            r = app.resolved(view_id)
            start = time.perf_counter()
            app.predict({"view": view_id})
            first = time.perf_counter() - start
            positions = moves(r.view, args.moves)
            for values in positions:   # every path compiled once (e.g. momentum != 0)
                app.predict({"view": view_id, "values": values})
            lib, srv, http = [], [], []
            horizon = r.view.horizons[0]
            for values in positions:
                dims = list(r.view.dims) if r.view.kind == "dimension" else [None]
                setups = [build_setup(r, check_values(r, values), d) for d in dims]
                start = time.perf_counter()
                for setup in setups:
                    hdsgd.predict(setup, horizon, method=r.view.method)
                lib.append(time.perf_counter() - start)
                start = time.perf_counter()
                app.predict({"view": view_id, "values": values})
                srv.append(time.perf_counter() - start)
                start = time.perf_counter()
                post(server.url + "api/predict", {"view": view_id, "values": values})
                http.append(time.perf_counter() - start)
            shown = None if args.no_browser else browser_redraws(server.url, view_id,
                                                                  min(args.moves, 8))
            browser = ms(shown) if shown else f"{'-':>8}"
            print(f"{view_id:<18} {first * 1e3:8.0f} {ms(lib)} {ms(srv)} {ms(http)} {browser} "
                  f"{statistics.median(srv) / statistics.median(lib):15.2f}", flush=True)
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
