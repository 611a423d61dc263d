"""The pool layer: configuration, managed servers and the client. Imports nothing above it."""

from junto.pool.config import Deployment, Pool, load_pool
from junto.pool.types import ChatResult, Choice, StreamDelta, StreamEnd, Usage

__all__ = ["ChatResult", "Choice", "Deployment", "Pool", "StreamDelta", "StreamEnd", "Usage", "load_pool"]
