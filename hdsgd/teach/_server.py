"""The HTTP side of ``hdsgd teach``: the standard library's threading HTTP server, the page's
static files (shipped inside the package, nothing from the network) and JSON endpoints.

    GET  /                      the page            GET  /static/<file>   its script and style
    GET  /api/views             the views           POST /api/predict     theory curve(s)
    POST /api/details           edge, readouts, time marks, stability diagram
    POST /api/simulate          start a Monte Carlo job -> {"job": id}
    GET  /api/jobs/<id>         progress, partial and final results
    POST /api/jobs/<id>/cancel  stop it between two seed chunks

A bad request gets a JSON error ``{"error": ..., "field": ...}`` with status 400 (404 for an
unknown view or job, 409 while another simulation runs); the server never stops on one.
It listens on 127.0.0.1 unless told otherwise, and then answers only requests addressed to a
loopback name (a guard against DNS rebinding).
"""

from __future__ import annotations

import http.server
import json
import re
import sys
import threading
import traceback
from importlib import resources
from typing import Any, Callable, Iterable, Mapping

from ._app import App, Busy, NotFound
from ._views import FieldError, View

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY = 1 << 20
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "teach.js": "text/javascript; charset=utf-8",
    "teach.css": "text/css; charset=utf-8",
}
_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
_JOB = re.compile(r"^/api/jobs/(\d+)(/cancel)?$")


def static_file(name: str) -> bytes:
    """One of the page's files, read from the installed package."""
    return resources.files("hdsgd.teach").joinpath("static", name).read_bytes()


class Handler(http.server.BaseHTTPRequestHandler):
    server: "TeachServer"
    protocol_version = "HTTP/1.1"

    # ------------------------------------------------------------ plumbing
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        body = json.dumps(data, allow_nan=False, separators=(",", ":")).encode()
        self._send(status, body, "application/json; charset=utf-8")

    def _error(self, status: int, message: str, field: str | None = None) -> None:
        self._json(status, {"error": message, "field": field})

    def _host_allowed(self) -> bool:
        if self.server.server_address[0] not in _LOOPBACK:
            return True
        host = (self.headers.get("Host") or "").strip().lower()
        name = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
        return name in _LOOPBACK

    def _body(self) -> Any:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise FieldError(None, "the Content-Length header is not a number") from None
        if length < 0 or length > MAX_BODY:
            raise FieldError(None, f"the request body has {length} bytes; allowed: at most "
                             f"{MAX_BODY}")
        raw = self.rfile.read(length) if length else b"{}"
        try:
            return json.loads(raw.decode("utf-8") or "{}")
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise FieldError(None, f"the request body is not JSON: {err}") from None

    def _handle(self, route: Callable[[], None]) -> None:
        if not self._host_allowed():
            self._error(403, "this server answers only requests addressed to 127.0.0.1 or "
                        "localhost")
            return
        try:
            route()
        except FieldError as err:
            self._error(400, str(err), err.field)
        except NotFound as err:
            self._error(404, str(err))
        except Busy as err:
            self._error(409, str(err))
        except ValueError as err:  # a check of the library (an argument it rejects)
            self._error(400, str(err))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as err:  # never let one request take the server down
            traceback.print_exc(file=sys.stderr)
            try:
                self._error(500, f"internal error: {type(err).__name__}: {err}")
            except OSError:
                pass

    # ------------------------------------------------------------ routes
    def do_GET(self) -> None:  # noqa: N802 (the base class's name)
        self._handle(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        app = self.server.app
        if path in ("/", "/index.html"):
            self._send(200, static_file("index.html"), STATIC["index.html"])
        elif path.startswith("/static/") and path[len("/static/"):] in STATIC:
            name = path[len("/static/"):]
            self._send(200, static_file(name), STATIC[name])
        elif path == "/api/views":
            self._json(200, app.catalog())
        elif (match := _JOB.match(path)) and not match.group(2):
            self._json(200, app.job(match.group(1)))
        else:
            self._error(404, f"no such page: {path}")

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        app = self.server.app
        routes = {"/api/predict": app.predict, "/api/details": app.details,
                  "/api/simulate": app.simulate}
        if path in routes:
            self._json(200, routes[path](self._body()))
        elif (match := _JOB.match(path)) and match.group(2):
            self._body()
            self._json(200, app.cancel(match.group(1)))
        else:
            self._error(404, f"no such endpoint: POST {path}")


class TeachServer(http.server.ThreadingHTTPServer):
    """The page's server: one thread per request, an `App` behind it.

    Args:
        host, port: where to listen (port 0: any free port; see ``url``).
        views: the views offered (default: every view of `hdsgd.teach.VIEWS`).
        field_docs: ``Setup class -> {field: help}`` for the sliders' help text.
        warm: compile every available view's theory in a background thread at start.
        verbose: log every request to stderr.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *,
                 views: Iterable[View] | None = None,
                 field_docs: Callable[[type], Mapping[str, str]] | None = None,
                 warm: bool = True, verbose: bool = False):
        from ._catalog import VIEWS

        self.app = App(VIEWS if views is None else views, field_docs=field_docs)
        self.verbose = verbose
        self._warm_thread = None
        super().__init__((host, port), Handler)   # closes the server itself if it cannot bind
        if warm:
            self._warm_thread = threading.Thread(target=self.app.warm_up, daemon=True,
                                                 name="hdsgd-teach-warm-up")
            self._warm_thread.start()
        else:
            self.app.warm.set()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/"

    def server_close(self) -> None:
        """Close the socket; stop warming up and cancel the jobs, waiting for the computation
        in flight to end."""
        self.app.stop()
        if self._warm_thread is not None:
            self._warm_thread.join(30.0)
        super().server_close()


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, open_browser: bool = True,
          field_docs: Callable[[type], Mapping[str, str]] | None = None,
          verbose: bool = False, announce: Callable[[str], None] = print) -> None:
    """Serve the page until Ctrl-C (``hdsgd teach``)."""
    server = TeachServer(host, port, field_docs=field_docs, verbose=verbose)
    announce(f"hdsgd teach: serving {server.url} (Ctrl-C to stop)")
    if open_browser:
        import webbrowser

        threading.Timer(0.3, webbrowser.open, args=(server.url,)).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        announce("hdsgd teach: stopped")
    finally:
        server.server_close()
