"""Search spaces written on the command line: ``--space 'step_size=1e-3:10:log'``.

Forms (``NAME`` a Setup field or derived coordinate):

    NAME=a,b,c             these values
    NAME=LOW:HIGH:log[:N]  N (default 9) log-spaced values, refined by tune
    NAME=LOW:HIGH:lin:N    N evenly spaced values
"""

from __future__ import annotations

import numpy as np

from ..autotune import LogRange


def parse_space(items) -> dict:
    """``["step_size=1e-3:10:log", "batch_size=1,4,16"]`` -> {name: LogRange or array}."""
    space: dict = {}
    for item in items or ():
        if "=" not in item:
            raise ValueError(f"--space {item!r} is invalid; allowed: NAME=a,b,c or "
                             "NAME=LOW:HIGH:log[:N] or NAME=LOW:HIGH:lin:N")
        name, text = (p.strip() for p in item.split("=", 1))
        if name in space:
            raise ValueError(f"--space names {name!r} twice; allowed: one --space per name")
        try:
            if ":" in text:
                parts = text.split(":")
                low, high, kind = float(parts[0]), float(parts[1]), parts[2].strip()
                if kind == "log":
                    space[name] = LogRange(low, high, int(parts[3]) if len(parts) > 3 else 9)
                elif kind == "lin" and len(parts) == 4 and int(parts[3]) >= 1:
                    space[name] = np.linspace(low, high, int(parts[3]))
                else:
                    raise ValueError(kind)
            else:
                space[name] = np.array([float(v) for v in text.split(",") if v.strip()])
                if space[name].size == 0:
                    raise ValueError(text)
        except (ValueError, IndexError):
            raise ValueError(f"--space {item!r} is invalid; allowed: NAME=a,b,c or "
                             "NAME=LOW:HIGH:log[:N] or NAME=LOW:HIGH:lin:N") from None
    return space
