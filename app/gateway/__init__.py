"""The routed OpenAI-compatible HTTP gateway (``junto serve``). The HTTP layer only translates the
protocol to ``Junto`` calls; ``Junto`` knows nothing of HTTP."""

from junto.gateway.app import create_app

__all__ = ["create_app"]
