"""Screenshots of ``hdsgd teach`` for docs/ and README.md, taken in headless Chromium.

Starts the server on a free port, opens each view, runs its Monte Carlo where the picture
needs one (the dimension view runs d = 100, 1000 and 10 000: about a minute on a 2-core CPU)
and writes ``docs/teach-*.png``. Needs Debian's ``chromium`` and ``chromium-driver`` and the
``selenium`` package (``pip install -e ".[dev]"``).

Usage: python benchmarks/teach_screenshots.py [--out docs] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's hdsgd, not an installed one

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars")

# name -> (address, slider values, Monte Carlo request or None, what it shows)
SHOTS = {
    "lstsq": ("lstsq?step_size=40&batch_size=4&momentum=0&noise_std=0.1&exponent=1",
              {"seeds": 16}, "least squares: theory and a 16-run Monte Carlo, mean ± 2 s.e."),
    "diverged": ("lstsq?step_size=200&batch_size=1&momentum=0&noise_std=0.1&exponent=1",
                 {"seeds": 8}, "a step size past the edge: theory and runs diverge"),
    "lesson-stability": ("lesson-stability?step_size=100&batch_size=1", None,
                         "lesson 1: the stability edge and the critical batch size"),
    "dimension-lstsq": ("lstsq-dimension?step_size=1&batch_size=1&noise_std=0.1",
                        {"seeds": 8}, "d = 100, 1000, 10 000 against the theory"),
}


def browser(width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    options.add_argument(f"--user-data-dir={tempfile.mkdtemp(prefix='hdsgd-teach-')}")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def wait_for(driver, script: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def shoot(driver, url: str, fragment: str, simulate: dict | None, path: Path) -> float:
    driver.get(f"{url}?shot={path.stem}#{fragment}")  # a new document each time
    wait_for(driver, "const s = window.hdsgdTeach && window.hdsgdTeach.state; return s && "
             "s.theory && (s.details || s.view.kind === 'dimension');", 60, "the theory")
    start = time.monotonic()
    if simulate:
        driver.execute_script("document.getElementById('seeds').value = arguments[0];",
                              str(simulate["seeds"]))
        driver.find_element("id", "simulate-button").click()
        wait_for(driver, "const s = window.hdsgdTeach.state; return s.job && "
                 "s.job.state !== 'running' && s.job.state;", 600, "the Monte Carlo")
        state = driver.execute_script("return window.hdsgdTeach.state.job.state")
        if state != "done":
            raise RuntimeError(f"the Monte Carlo ended {state}")
    time.sleep(0.5)
    driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    for _ in range(2):  # the page's height, with the window as tall as the page
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1440, max(900, int(height) + 140))
        time.sleep(0.5)
    driver.save_screenshot(str(path))
    return time.monotonic() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder (default docs/)")
    parser.add_argument("--only", nargs="*", choices=list(SHOTS), help="only these screenshots")
    args = parser.parse_args(argv)
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        print("teach_screenshots: needs chromium and chromedriver (apt-get install chromium "
              "chromium-driver)", file=sys.stderr)
        return 2
    from hdsgd.cli._fields import attribute_docs
    from hdsgd.teach import TeachServer

    server = TeachServer(port=0, field_docs=attribute_docs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    server.app.warm.wait(300)
    driver = browser(1440, 900)
    try:
        for name in args.only or SHOTS:
            fragment, simulate, what = SHOTS[name]
            path = args.out / f"teach-{name}.png"
            seconds = shoot(driver, server.url, fragment, simulate, path)
            driver.set_window_size(1440, 900)
            print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {what} "
                  f"({seconds:.1f} s)")
    finally:
        driver.quit()
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
