"""Experience memory: solved problems in SQLite (WAL), found again by hybrid dense + BM25 retrieval.

Xolver (Hosain et al., "Xolver: Multi-Agent Reasoning with Holistic Experience Learning Just Like an
Olympiad Team", arXiv 2506.14234) keeps an episodic memory of solved problems and retrieves the most
similar ones as exemplars for a new problem; FusionFactory's thought templates (junto.memory.templates)
live in the same store as ``kind="template"`` rows. One entry point: :class:`ExperienceStore`.

Retrieval is hybrid, as in the usual dense + sparse recipe:

* dense: cosine similarity of the problems' embeddings (the routers' :class:`~junto.routers.embeddings.Embedder`,
  default all-MiniLM-L6-v2), searched exactly with a faiss ``IndexFlatIP``;
* lexical: BM25 over the problems' words (the ``bm25s`` library; Lucene's BM25 with its defaults
  k1=1.5, b=0.75; English stop words dropped, no stemming);
* fused by reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009) with their published
  constant k=60: ``score(d) = Σ_lists 1 / (60 + rank_list(d))`` over the top :data:`DEPTH` of each list,
  a document missing from a list contributing nothing there (BM25 lists only documents sharing at
  least one word with the query). ``search(mode="dense")`` returns cosine similarities instead,
  ``mode="lexical"`` BM25 scores.

Persistence: one SQLite file in WAL mode, so several processes read and write it at once (readers
never block; writers wait up to ``busy_timeout_s`` for each other). Each write is one short
``BEGIN IMMEDIATE`` transaction with ``synchronous=FULL``: when :meth:`ExperienceStore.add` returns the
experience is on disk, and a process killed mid-write (SIGKILL) leaves every committed row intact and
no partial one. Each row holds its embedding (float32 BLOB), so nothing has to be re-embedded; the
faiss and BM25 indexes are in memory only and rebuilt from SQLite, per kind, lazily on the first
search after any process changed that kind (a per-kind generation counter, bumped in the writing
transaction, tells a reader its indexes are stale).

Bounded size: at most ``max_items`` rows per kind. When a write goes over, the same transaction drops
the lowest rows by ``(verified, score, created)``: unverified before verified, then the lowest score,
then the oldest. The row just added can be the one dropped (an unverified zero-score experience in a
full store of verified ones).

The embedder's spec is stored in the file: opening it with another embedder is a :class:`ConfigError`
(vectors of different spaces cannot be compared); open it with ``embedder=None`` to use the stored one.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from junto.errors import ConfigError

KINDS = ("experience", "template")
#: reciprocal rank fusion constant (Cormack et al. 2009)
RRF_K = 60
#: how deep each ranked list (dense, lexical) goes into the fusion
DEPTH = 100
SCHEMA_VERSION = 1
MODES = ("hybrid", "dense", "lexical")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiences (
    rowid INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    task TEXT NOT NULL,
    problem TEXT NOT NULL,
    solution TEXT NOT NULL,
    score REAL NOT NULL,
    verified INTEGER NOT NULL,
    source TEXT NOT NULL,
    meta TEXT NOT NULL,
    created REAL NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS experiences_evict ON experiences (kind, verified, score, created);
"""
_COLUMNS = "id, kind, task, problem, solution, score, verified, source, meta, created, vector"


@dataclass(frozen=True)
class Experience:
    """One solved problem (or, with ``kind="template"``, one thought template)."""

    problem: str
    solution: str
    score: float = 0.0            # 0..1, the judge's / tests' score of the solution
    verified: bool = False        # checked (tests passed / judge verified), not merely scored
    task: str = ""                # "humaneval", "gsm8k", "" ...
    source: str = ""              # who wrote it: "xolver:qwen2.5-coder-1.5b", "canonical", "template" ...
    kind: str = "experience"      # "experience" | "template"
    meta: dict = field(default_factory=dict)   # JSON-serialisable extras (task_id, tokens, ...)
    id: str = ""                  # assigned by add()
    created: float = 0.0          # assigned by add() (time.time())


def normalize_problem(text: str) -> str:
    """Whitespace-normalised problem text (what ``exclude_problem`` compares)."""
    return " ".join(text.split())


def rrf_fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion of ranked id lists (best first): ``[(id, Σ 1/(k + rank))]``, best first.

    Ties break by the best rank the id reached in any list, then by the earlier list.
    """
    score: dict[int, float] = {}
    best: dict[int, tuple[int, int]] = {}
    for li, ranking in enumerate(rankings):
        for rank, doc in enumerate(ranking, 1):
            score[doc] = score.get(doc, 0.0) + 1.0 / (k + rank)
            best[doc] = min(best.get(doc, (rank, li)), (rank, li))
    return sorted(score.items(), key=lambda kv: (-kv[1], best[kv[0]]))


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    # bm25s's token pattern \b\w\w+\b runs in linear time over any text
    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


@dataclass
class _Snapshot:
    """One kind's rows and in-memory indexes, as of one generation of the file (never changed once built)."""

    generation: int
    max_rowid: int
    rows: list[Experience]
    norms: list[str]
    tokens: list[list[str]]
    vectors: np.ndarray | None = None
    index: Any = None        # faiss.IndexFlatIP over the problems' vectors
    bm25: Any = None         # bm25s.BM25 over the problems' tokens


class ExperienceStore:
    """Experiences in one SQLite file; hybrid search (faiss + BM25, fused by rank). See the module docstring.

    ``path``: the database file (created with its parent folders unless ``create=False``).
    ``embedder``: a spec (``"minilm"``, ``"static"``, ``"st:<folder>"``, ``"m2v:<folder>"``, a spec dict) or
    an :class:`~junto.routers.embeddings.Embedder`; None uses the file's stored embedder (``minilm`` for a
    new file). ``max_items``: the most rows kept per kind. Thread-safe; any number of processes may
    open the same file.
    """

    def __init__(self, path: str | os.PathLike[str], embedder: Any = None, *, max_items: int = 10_000,
                 create: bool = True, busy_timeout_s: float = 30.0):
        from junto.routers.embeddings import Embedder, get_embedder, parse_embedder_spec

        if isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1:
            raise ConfigError(f"max_items must be a positive integer, not {max_items!r}",
                              hint="e.g. max_items=10000 (the most experiences kept per kind)", param="max_items")
        self.path = Path(path).expanduser()
        self.max_items = max_items
        self._lock = threading.RLock()      # the connection, one statement or transaction at a time
        self._snap_lock = threading.Lock()  # one index rebuild at a time
        self._snaps: dict[str, _Snapshot] = {}
        self._conn: sqlite3.Connection | None = None
        self._check_path(create)
        given = None
        if isinstance(embedder, Embedder):
            given = parse_embedder_spec(embedder.spec)
        elif embedder is not None:
            given = parse_embedder_spec(embedder)
        self._conn = self._connect(busy_timeout_s)
        try:
            self.spec = self._init_schema(given)
            self.embedder = embedder if isinstance(embedder, Embedder) else get_embedder(self.spec)
        except BaseException:
            self.close()
            raise

    # -- opening --------------------------------------------------------------------------------------
    def _check_path(self, create: bool) -> None:
        p = self.path
        if p.is_dir():
            raise ConfigError(f"experience store path {p} is a directory",
                              hint=f"give a database file path, e.g. {p / 'memory.db'}", param="path")
        if not p.exists():
            if not create:
                raise ConfigError(f"experience store {p} does not exist",
                                  hint="check the path, or open it with create=True to start an empty store",
                                  param="path")
            try:
                p.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot create the folder of experience store {p}: {exc.strerror or exc}",
                                  hint="choose a path in a writable folder", param="path") from None
        # WAL needs the folder writable too (the -wal and -shm files live beside the database)
        if not os.access(p.parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.R_OK | os.W_OK)):
            raise ConfigError(f"experience store {p} is not writable by this user",
                              hint="fix the permissions of the file and its folder, or choose another path",
                              param="path")

    def _connect(self, busy_timeout_s: float) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(str(self.path), timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute("PRAGMA synchronous = FULL")
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"cannot open experience store {self.path}: {exc}",
                              hint="the file is not a junto experience store (SQLite); choose another path",
                              param="path") from None
        if str(mode).lower() != "wal":
            conn.close()
            raise ConfigError(f"experience store {self.path} cannot use SQLite's WAL mode (got {mode!r})",
                              hint="put the store on a local file system (WAL needs shared memory)", param="path")
        return conn

    def _init_schema(self, given: dict[str, Any] | None) -> dict[str, Any]:
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('embedder', ?)",
                         (json.dumps(given or {"kind": "minilm"}, sort_keys=True),))
            rows = dict(conn.execute("SELECT key, value FROM meta WHERE key IN ('schema', 'embedder')").fetchall())
        if rows["schema"] != str(SCHEMA_VERSION):
            raise ConfigError(f"experience store {self.path} has schema {rows['schema']}, this junto reads "
                              f"{SCHEMA_VERSION}", hint="use a junto version that matches, or a new store file")
        stored = json.loads(rows["embedder"])
        if given is not None and given != stored:
            raise ConfigError(f"experience store {self.path} was built with embedder {stored}, not {given}",
                              hint="open it without an embedder argument (it uses the stored one), or use a new "
                                   "store file for this embedder", param="embedder")
        return stored

    # -- transactions ---------------------------------------------------------------------------------
    class _Tx:
        def __init__(self, store: ExperienceStore):
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            conn = self.store._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except BaseException:
                self.store._lock.release()
                raise
            return conn

        def __exit__(self, et, ev, tb) -> None:
            conn = self.store._conn
            try:
                if conn is not None:
                    try:
                        conn.execute("COMMIT" if et is None else "ROLLBACK")
                    except sqlite3.Error:
                        if conn.in_transaction:  # a failed COMMIT (disk full, I/O error): undo, then report
                            conn.execute("ROLLBACK")
                        raise
            finally:
                self.store._lock.release()

    def _write(self) -> ExperienceStore._Tx:
        return ExperienceStore._Tx(self)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ConfigError(f"experience store {self.path} is closed", hint="open a new ExperienceStore")
        return self._conn

    # -- validation -----------------------------------------------------------------------------------
    @staticmethod
    def _check(exp: Experience) -> Experience:
        if not isinstance(exp, Experience):
            raise ConfigError(f"expected an Experience, got {type(exp).__name__}",
                              hint="build one with junto.memory.experience.Experience(problem=..., solution=...)")
        if not isinstance(exp.problem, str) or not exp.problem.strip():
            raise ConfigError("an experience needs a non-empty problem text",
                              hint="pass the problem the solution solves as Experience(problem=...)", param="problem")
        if not isinstance(exp.solution, str):
            raise ConfigError(f"an experience's solution must be text, not {type(exp.solution).__name__}",
                              hint="pass the solution as a string", param="solution")
        score = exp.score
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not (0.0 <= float(score) <= 1.0):
            raise ConfigError(f"an experience's score must be a number from 0 to 1, not {score!r}",
                              hint="scale the judge's or the tests' score into 0..1", param="score")
        if exp.kind not in KINDS:
            raise ConfigError(f"unknown experience kind {exp.kind!r}", hint=f"use one of {', '.join(KINDS)}",
                              param="kind")
        for name in ("task", "source", "id"):
            if not isinstance(getattr(exp, name), str):
                raise ConfigError(f"an experience's {name} must be a string", hint=f"pass {name}='...'", param=name)
        if not isinstance(exp.meta, dict):
            raise ConfigError("an experience's meta must be a dict", hint="pass meta={...}", param="meta")
        try:
            json.dumps(exp.meta, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"an experience's meta is not JSON-serialisable: {exc}",
                              hint="keep only strings, numbers, booleans, lists and dicts in meta", param="meta") from None
        return exp

    @staticmethod
    def _check_kind(kind: str) -> None:
        if kind not in KINDS:
            raise ConfigError(f"unknown experience kind {kind!r}", hint=f"use one of {', '.join(KINDS)}", param="kind")

    # -- writing --------------------------------------------------------------------------------------
    def add(self, exp: Experience) -> str:
        """Store one experience; returns its id. It is on disk (committed) when this returns."""
        return self.add_many([exp])[0]

    def add_many(self, exps: Sequence[Experience]) -> list[str]:
        """Store several experiences in one transaction (all or none); returns their ids in order."""
        exps = [self._check(e) for e in exps]
        if not exps:
            return []
        vecs = np.asarray(self.embedder.encode([e.problem for e in exps]), dtype=np.float32)  # outside the lock
        return self.import_rows(exps, vecs)

    def import_rows(self, exps: Sequence[Experience], vectors: np.ndarray, *, once: str | None = None) -> list[str]:
        """Store experiences with their precomputed problem vectors (this store's embedder's), one transaction.

        ``once``: a marker key; when the file already holds it nothing is written and ``[]`` returned
        (a migration that several processes may attempt at once runs once). Ids and creation times
        already set on the experiences are kept.
        """
        exps = [self._check(e) for e in exps]
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(exps):
            raise ConfigError(f"{len(exps)} experiences but vectors of shape {vectors.shape}",
                              hint="pass one vector per experience")
        now = time.time()
        rows = []
        for e, v in zip(exps, vectors):
            e = replace(e, id=e.id or secrets.token_hex(8), created=e.created or now, score=float(e.score),
                        verified=bool(e.verified))
            rows.append((e, np.ascontiguousarray(v, dtype=np.float32)))
        with self._write() as conn:
            if once is not None:
                if conn.execute("SELECT 1 FROM meta WHERE key = ?", ("once:" + once,)).fetchone():
                    return []
                conn.execute("INSERT INTO meta VALUES (?, ?)", ("once:" + once, str(now)))
            dim = conn.execute("SELECT value FROM meta WHERE key = 'dim'").fetchone()
            if dim is None and rows:
                conn.execute("INSERT INTO meta VALUES ('dim', ?)", (str(vectors.shape[1]),))
            elif rows and int(dim[0]) != vectors.shape[1]:
                raise ConfigError(f"vectors of dimension {vectors.shape[1]} for a store of dimension {dim[0]}",
                                  hint="embed with the store's own embedder")
            try:
                conn.executemany(
                    f"INSERT INTO experiences ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(e.id, e.kind, e.task, e.problem, e.solution, e.score, int(e.verified), e.source,
                      json.dumps(e.meta, ensure_ascii=False), e.created, v.tobytes()) for e, v in rows])
            except sqlite3.IntegrityError:
                raise ConfigError("an experience with one of these ids is already stored",
                                  hint="leave Experience.id empty: add() assigns a fresh one", param="id") from None
            for kind in sorted({e.kind for e, _ in rows}):
                self._evict(conn, kind)
                conn.execute("INSERT INTO meta VALUES (?, '1') ON CONFLICT(key) DO UPDATE "
                             "SET value = CAST(value AS INTEGER) + 1", ("generation:" + kind,))
        return [e.id for e, _ in rows]

    def _evict(self, conn: sqlite3.Connection, kind: str) -> None:
        """Drop the lowest (verified, score, created) rows of ``kind`` beyond ``max_items``."""
        (n,) = conn.execute("SELECT COUNT(*) FROM experiences WHERE kind = ?", (kind,)).fetchone()
        if n > self.max_items:
            conn.execute("DELETE FROM experiences WHERE rowid IN (SELECT rowid FROM experiences WHERE kind = ? "
                         "ORDER BY verified ASC, score ASC, created ASC, rowid ASC LIMIT ?)",
                         (kind, n - self.max_items))

    # -- reading --------------------------------------------------------------------------------------
    @staticmethod
    def _row(r: Sequence[Any]) -> Experience:
        return Experience(id=r[0], kind=r[1], task=r[2], problem=r[3], solution=r[4], score=float(r[5]),
                          verified=bool(r[6]), source=r[7], meta=json.loads(r[8]), created=float(r[9]))

    def get(self, id: str) -> Experience | None:
        with self._lock:
            r = self._connection().execute(f"SELECT {_COLUMNS} FROM experiences WHERE id = ?", (id,)).fetchone()
        return None if r is None else self._row(r)

    def count(self, kind: str | None = None) -> int:
        if kind is not None:
            self._check_kind(kind)
        with self._lock:
            conn = self._connection()
            if kind is None:
                return conn.execute("SELECT COUNT(*) FROM experiences").fetchone()[0]
            return conn.execute("SELECT COUNT(*) FROM experiences WHERE kind = ?", (kind,)).fetchone()[0]

    def all(self, kind: str = "experience") -> list[Experience]:
        """Every row of ``kind``, oldest first."""
        return list(self._snapshot(kind).rows)

    def _generation(self, conn: sqlite3.Connection, kind: str) -> int:
        r = conn.execute("SELECT value FROM meta WHERE key = ?", ("generation:" + kind,)).fetchone()
        return 0 if r is None else int(r[0])

    def _snapshot(self, kind: str) -> _Snapshot:
        """The kind's indexes, refreshed from the file when any process changed the kind since the last build.

        Rows only added since: the new ones are read and appended (the indexes are rebuilt from the
        kept vectors and tokens). Rows deleted (eviction): everything is read again.
        """
        self._check_kind(kind)
        with self._lock:
            gen = self._generation(self._connection(), kind)
        snap = self._snaps.get(kind)
        if snap is not None and snap.generation == gen:
            return snap
        with self._snap_lock:
            snap = self._snaps.get(kind)
            with self._lock:
                conn = self._connection()
                conn.execute("BEGIN")  # one read snapshot: the generation, the count and the rows agree
                try:
                    gen = self._generation(conn, kind)
                    if snap is not None and snap.generation == gen:
                        return snap
                    (count,) = conn.execute("SELECT COUNT(*) FROM experiences WHERE kind = ?", (kind,)).fetchone()
                    after = snap.max_rowid if snap is not None else 0
                    raw = conn.execute(f"SELECT rowid, {_COLUMNS} FROM experiences WHERE kind = ? AND rowid > ? "
                                       "ORDER BY rowid", (kind, after)).fetchall()
                    if snap is not None and len(snap.rows) + len(raw) != count:  # some were deleted: read all
                        snap = None
                        raw = conn.execute(f"SELECT rowid, {_COLUMNS} FROM experiences WHERE kind = ? "
                                           "ORDER BY rowid", (kind,)).fetchall()
                finally:
                    conn.execute("COMMIT")
            snap = self._build(gen, snap, raw)
            self._snaps[kind] = snap
            return snap

    def _build(self, gen: int, base: _Snapshot | None, raw: list[Sequence[Any]]) -> _Snapshot:
        """A new snapshot: ``base``'s rows (or none) and the ``raw`` rows read after them."""
        new = [self._row(r[1:]) for r in raw]
        rows = [*(base.rows if base else []), *new]
        snap = _Snapshot(gen, int(raw[-1][0]) if raw else (base.max_rowid if base else 0), rows,
                         [*(base.norms if base else []), *(normalize_problem(e.problem) for e in new)],
                         [*(base.tokens if base else []), *(_tokenize([e.problem for e in new]) if new else [])])
        if not rows:
            return snap
        import bm25s
        import faiss

        parts = [np.frombuffer(r[11], dtype=np.float32)[None, :] for r in raw]
        if base is not None and base.vectors is not None:
            parts.insert(0, base.vectors)
        try:
            snap.vectors = np.ascontiguousarray(np.concatenate(parts))
        except ValueError:
            raise ConfigError(f"experience store {self.path} holds vectors of different sizes",
                              hint="it was written by inconsistent embedders; start a new store file") from None
        snap.index = faiss.IndexFlatIP(snap.vectors.shape[1])
        snap.index.add(snap.vectors)
        if any(snap.tokens):  # bm25s cannot index a corpus without a single word (nothing to match anyway)
            snap.bm25 = bm25s.BM25()
            snap.bm25.index(snap.tokens, show_progress=False)
        return snap

    @property
    def blocking(self) -> bool:
        """True when embedding a query is torch work (sentence-transformers): call search() in a thread."""
        return bool(getattr(self.embedder, "blocking", True))

    def search(self, query: str, k: int = 3, *, kind: str = "experience", task: str | None = None,
               verified_only: bool = False, exclude_problem: str | None = None, mode: str = "hybrid",
               depth: int = DEPTH) -> list[tuple[Experience, float]]:
        """The ``k`` experiences whose problems best match ``query``, best first, with their scores.

        Filters: ``kind``; ``task`` (None: any); ``verified_only``; ``exclude_problem`` drops rows whose
        problem equals it after whitespace normalisation (never retrieve the problem being solved).
        ``mode``: ``hybrid`` (RRF score, k=60), ``dense`` (cosine similarity) or ``lexical`` (BM25 score).
        The query is embedded in memory only; nothing is written.
        """
        if not isinstance(query, str):
            raise ConfigError(f"a search query must be text, not {type(query).__name__}", param="query")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer, not {k!r}", hint="e.g. k=3", param="k")
        if mode not in MODES:
            raise ConfigError(f"unknown search mode {mode!r}", hint=f"use one of {', '.join(MODES)}", param="mode")
        snap = self._snapshot(kind)
        n = len(snap.rows)
        if n == 0:
            return []
        excluded = normalize_problem(exclude_problem) if exclude_problem is not None else None
        allowed = [(task is None or e.task == task) and (not verified_only or e.verified)
                   and (excluded is None or snap.norms[i] != excluded) for i, e in enumerate(snap.rows)]
        if not any(allowed):
            return []
        lists: list[list[int]] = []
        values: list[dict[int, float]] = []
        if mode in ("hybrid", "dense") and query.strip():
            from junto.routers.base import faiss_search

            vec = np.asarray(self.embedder.encode_one(query), dtype=np.float32)[None, :]
            sims, ids = faiss_search(snap.index, vec, n)  # exact, over every row: filters never starve it
            ranked = [(int(i), float(s)) for s, i in zip(sims[0], ids[0]) if i >= 0 and allowed[i]][:depth]
            lists.append([i for i, _ in ranked])
            values.append(dict(ranked))
        if mode in ("hybrid", "lexical") and snap.bm25 is not None:
            tokens = [t for t in _tokenize([query])[0] if t in snap.bm25.vocab_dict]
            if tokens:
                scores = snap.bm25.get_scores(tokens)
                order = np.argsort(-scores, kind="stable")
                ranked = [(int(i), float(scores[i])) for i in order if scores[i] > 0 and allowed[i]][:depth]
                lists.append([i for i, _ in ranked])
                values.append(dict(ranked))
        if mode == "hybrid":
            fused = rrf_fuse(lists)
        else:
            fused = [(i, values[0][i]) for i in lists[0]] if lists else []
        return [(snap.rows[i], s) for i, s in fused[:k]]

    # -- closing --------------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            self._snaps.clear()
        if conn is not None:
            conn.close()

    def __enter__(self) -> ExperienceStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # a store dropped without close() still releases its file
        conn = getattr(self, "_conn", None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - interpreter shutdown
                pass
