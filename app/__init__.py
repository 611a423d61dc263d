"""junto: route queries across pools of small local models and reason over them at test time.

    from junto import Junto
    with Junto.from_config("embedded") as j:
        print(j.ask("What is the capital of France?"))

The public names are imported lazily so that ``import junto`` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Junto", "JuntoError", "JuntoResult", "__version__"]


def __getattr__(name: str):
    if name in ("Junto", "JuntoResult"):
        from junto import facade

        return getattr(facade, name)
    if name == "JuntoError":
        from junto.errors import JuntoError

        return JuntoError
    raise AttributeError(f"module 'junto' has no attribute {name!r}")
