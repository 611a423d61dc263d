"""junto: route queries across pools of small local models and reason over them at test time.

The public surface is re-exported lazily so that ``import junto`` stays cheap (no httpx, pydantic
or LangGraph import until a name is used).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["JuntoError", "__version__"]


def __getattr__(name: str):
    if name == "JuntoError":
        from junto.errors import JuntoError

        return JuntoError
    raise AttributeError(f"module 'junto' has no attribute {name!r}")
