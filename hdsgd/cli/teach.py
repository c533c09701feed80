"""``hdsgd teach``: serve the interactive teaching page (`hdsgd.teach`) on this machine."""

from __future__ import annotations

import argparse
import sys

from ._fields import attribute_docs


def add_parser(sub) -> argparse.ArgumentParser:
    """The ``teach`` subcommand of ``hdsgd``."""
    from ..teach import DEFAULT_HOST, DEFAULT_PORT

    parser = sub.add_parser(
        "teach", help="interactive page for teaching: sliders, Monte Carlo, lessons",
        description="hdsgd teach: a local web page with one view per system (sliders for its "
                    "main fields, the predicted curve redrawn at once, Monte Carlo overlaid on "
                    "demand), a view of several dimensions side by side and four short "
                    "lessons. Works with no internet; everything is served from the package.")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"port to listen on (default: {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--host", default=DEFAULT_HOST,
                        help=f"address to listen on (default: {DEFAULT_HOST}, this machine only)")
    parser.add_argument("--no-browser", action="store_true",
                        help="do not open a browser window (print the address only)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def run(args) -> int:
    """Serve until Ctrl-C; exit status 2 when the port cannot be opened."""
    from ..teach import serve

    if not 0 <= args.port <= 65535:
        print(f"hdsgd teach: error: --port {args.port} is invalid; allowed: 0 to 65535",
              file=sys.stderr)
        return 2
    try:
        serve(args.host, args.port, open_browser=not args.no_browser, field_docs=attribute_docs,
              verbose=args.verbose)
    except OSError as err:
        print(f"hdsgd teach: error: cannot listen on {args.host}:{args.port}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 2
    return 0
