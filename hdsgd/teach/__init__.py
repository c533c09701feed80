"""``hdsgd teach``: a local interactive page for teaching with hdsgd (docs/teach.md).

One view per system, with sliders for its main fields: the predicted curve follows each move
(the theory is compiled once per view: the shapes never change), a "simulate" control runs the
Monte Carlo in the background and overlays its mean +- 2 standard errors, a dimension view runs
several d side by side, and four short lessons. Every number is the library's: the page calls
`hdsgd.predict` and `hdsgd.simulate` on the Setup of the slider position, and "copy as Python"
gives that code.

    from hdsgd.teach import TeachServer
    server = TeachServer(port=0)          # 127.0.0.1, any free port
    print(server.url); server.serve_forever()

The server uses only the standard library; the page's script is in the package
(``hdsgd/teach/static/``) and loads nothing from the network.
"""

from ._app import App
from ._catalog import VIEWS
from ._server import DEFAULT_HOST, DEFAULT_PORT, TeachServer, serve
from ._views import Diagram, Edge, FieldError, Quantity, Slider, View, derive

__all__ = [
    "App",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "Diagram",
    "Edge",
    "FieldError",
    "Quantity",
    "Slider",
    "TeachServer",
    "VIEWS",
    "View",
    "derive",
    "serve",
]
