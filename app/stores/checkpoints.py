"""Checkpoints of strategy runs: LangGraph's savers, so a long run killed mid-way resumes where it stopped.

``checkpoints: sqlite:///runs.db`` in the junto config (SQLite, one machine; several gateway processes
on it may share the file) or ``checkpoints: postgresql://user@host/db`` (several machines; needs
``pip install langgraph-checkpoint-postgres "psycopg[binary,pool]"``). A strategy run is one
LangGraph thread whose id is the request's trace id plus a fingerprint of what the run is (strategy,
messages, parameters): asking again with the same trace id (the gateway's ``x-request-id``, the
SDK's ``trace_id=``) resumes the unfinished run from its last checkpoint. LangGraph saves each
finished task's writes as it completes, so a resumed run redoes only the model calls that were in
flight when the process died. A thread is deleted once its run ends, with an answer or an error; a
run that was killed or cancelled keeps its checkpoints until it is resumed.

The saver is opened on first use inside the running event loop (LangGraph's async savers are bound
to one loop) and closed with the stores.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from junto.errors import ConfigError

#: URL schemes and what they open
SQLITE = "sqlite:///"
POSTGRES = ("postgres://", "postgresql://")


def parse_checkpoint_url(url: str) -> tuple[str, str]:
    """``("sqlite", path)`` or ``("postgres", url)``; ValueError with the accepted forms otherwise.

    SQLite URLs follow SQLAlchemy's: ``sqlite:///runs.db`` is relative, ``sqlite:////var/junto/runs.db`` absolute.
    """
    if url.startswith(SQLITE):
        path = url[len(SQLITE):]
        if not path or path.endswith("/"):
            raise ValueError(f"{url!r} names no file: use sqlite:///<file>, e.g. sqlite:///runs.db")
        return "sqlite", path
    if url.startswith(POSTGRES):
        return "postgres", url
    raise ValueError("must be sqlite:///<file> (one machine; sqlite:////abs/path.db for an absolute path) "
                     "or postgresql://user@host/db (several machines)")


class Checkpoints:
    """Where strategy runs are checkpointed, and which strategies are.

    ``strategies``: the strategy names checkpointed (None: every strategy run as a graph).
    ``base``: the folder a relative SQLite path is taken from (the config file's).
    """

    def __init__(self, url: str, strategies: Sequence[str] | None = None, base: Path | None = None):
        self.kind, where = parse_checkpoint_url(url)
        if self.kind == "sqlite":
            p = Path(where).expanduser()
            self.target = str(p if p.is_absolute() or base is None else base / p)
        else:
            self.target = where
        self.url = url
        self.strategies = set(strategies) if strategies is not None else None
        self._saver: Any = None
        self._stack: AsyncExitStack | None = None
        self._lock: asyncio.Lock | None = None

    def wants(self, strategy: str) -> bool:
        return strategy != "direct" and (self.strategies is None or strategy in self.strategies)

    async def saver(self) -> Any:
        """The LangGraph checkpoint saver, opened on first use (in the running loop)."""
        if self._saver is not None:
            return self._saver
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._saver is None:
                stack = AsyncExitStack()
                try:
                    self._saver = await stack.enter_async_context(self._open())
                except BaseException:
                    await stack.aclose()
                    raise
                self._stack = stack
        return self._saver

    def _open(self) -> Any:
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

        # strict: a checkpoint is read back into LangGraph's safe types only; the registry widens it per graph
        # to the types that graph's state holds (BaseCheckpointSaver.with_allowlist), nothing else
        serde = JsonPlusSerializer(allowed_msgpack_modules=None)
        if self.kind == "sqlite":
            try:
                from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
            except ImportError:
                raise ConfigError("checkpoints: sqlite needs the langgraph-checkpoint-sqlite package",
                                  hint="pip install 'junto[stores]'") from None
            Path(self.target).parent.mkdir(parents=True, exist_ok=True)
            return _sqlite(AsyncSqliteSaver, self.target, serde)
        try:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        except ImportError:
            raise ConfigError("checkpoints: postgresql needs the langgraph-checkpoint-postgres package",
                              hint="pip install langgraph-checkpoint-postgres 'psycopg[binary,pool]'") from None
        return _postgres(AsyncPostgresSaver, self.target, serde)

    async def aclose(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()
        self._stack = self._saver = None

    @staticmethod
    def thread_id(trace_id: str, strategy: str, messages: Sequence[Mapping[str, Any]], what: Mapping[str, Any]) -> str:
        """The run's thread: its trace id, and a fingerprint of the run, so that a trace id reused for
        another question starts afresh instead of resuming someone else's run."""
        blob = json.dumps({"strategy": strategy, "messages": list(messages), "what": what}, sort_keys=True,
                          default=str, separators=(",", ":"))
        return f"{trace_id}/{strategy}/{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


@asynccontextmanager
async def _sqlite(cls: Any, path: str, serde: Any) -> AsyncIterator[Any]:
    import aiosqlite

    async with aiosqlite.connect(path) as conn:
        yield cls(conn, serde=serde)


class _postgres:
    """AsyncPostgresSaver's context, with its tables created on entry."""

    def __init__(self, cls: Any, url: str, serde: Any):
        self.cm = cls.from_conn_string(url, serde=serde)

    async def __aenter__(self) -> Any:
        saver = await self.cm.__aenter__()
        await saver.setup()
        return saver

    async def __aexit__(self, *exc: Any) -> Any:
        return await self.cm.__aexit__(*exc)
