"""The package version (read by ``pyproject.toml`` and written into every ``Curve.meta``)."""

__version__ = "0.2.0"
