"""What every router shares: the decision type, routing records, costs, and versioned artifacts.

A router artifact is a directory written atomically (temp dir + rename):

    router.json   format version, method, config, models, costs, embedder spec, data hash,
                  best single model (chosen on the fit data), fit statistics
    arrays.npz    the numbers: centroids and score tables, kNN vectors and labels, model weights

Nothing is pickled; loading reads JSON and numpy arrays only, and imports torch only when the
artifact's embedder needs it (sentence-transformers). Routers are registered by method name.

Routing records may carry, beside each model's score, what answering cost: ``usage`` maps a model
to ``{"prompt_tokens", "completion_tokens", "latency_s", "cost"}`` (any of them; ``junto route
calibrate`` writes all four, cost in US dollars from the pool's prices). Records without it load as
before. Only ``cost`` is used in fitting (Avengers-Pro's per-cluster realized cost).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from junto.errors import ConfigError, JuntoError
from junto.paths import replace_dir

FORMAT = "junto-router"
FORMAT_VERSION = 1


@dataclass
class RoutingDecision:
    """Models ranked best first with their scores, the choice, and how long deciding took."""

    ranked: list[tuple[str, float]]
    chosen: str
    latency_ms: float
    details: dict[str, Any] = field(default_factory=dict)


USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "latency_s", "cost")


@dataclass
class Records:
    """Routing records: questions and each model's score on them (the shared data's format).

    ``realized_costs`` (n × M, NaN where unknown) is the cost each model's answer actually had,
    from the records' ``usage``; None when no record carries any cost.
    """

    questions: list[str]
    models: list[str]
    scores: np.ndarray  # n × M
    realized_costs: np.ndarray | None = None  # n × M, NaN = unknown

    def __len__(self) -> int:
        return len(self.questions)

    def subset(self, idx: Sequence[int]) -> Records:
        idx = list(idx)
        rc = None if self.realized_costs is None else self.realized_costs[idx]
        return Records([self.questions[i] for i in idx], self.models, self.scores[idx], rc)

    def select_models(self, models: Sequence[str]) -> Records:
        missing = [m for m in models if m not in self.models]
        if missing:
            raise ConfigError(f"the records have no scores for model(s) {', '.join(missing)}",
                              hint=f"the records score: {', '.join(self.models)}")
        cols = [self.models.index(m) for m in models]
        rc = None if self.realized_costs is None else self.realized_costs[:, cols]
        return Records(self.questions, list(models), self.scores[:, cols], rc)

    @property
    def has_realized_costs(self) -> bool:
        """True when every model has a realized cost on at least one record (enough to use them)."""
        rc = self.realized_costs
        return rc is not None and len(rc) > 0 and bool(np.isfinite(rc).any(axis=0).all())

    def mean_realized_costs(self) -> dict[str, float] | None:
        """Each model's mean realized cost over the records that carry one; None unless :attr:`has_realized_costs`."""
        if not self.has_realized_costs:
            return None
        assert self.realized_costs is not None
        return {m: float(v) for m, v in zip(self.models, np.nanmean(self.realized_costs, axis=0))}

    def data_hash(self) -> str:
        h = hashlib.sha256()
        h.update(json.dumps(self.models).encode())
        for q, row in zip(self.questions, self.scores):
            h.update(q.encode("utf-8"))
            h.update(np.asarray(row, dtype=np.float64).tobytes())
        if self.realized_costs is not None:  # records without costs hash as they always did
            h.update(b"realized_costs")
            h.update(np.asarray(self.realized_costs, dtype=np.float64).tobytes())
        return h.hexdigest()[:16]


def _parse_usage(usage: Any, models: list[str], where: str) -> list[float]:
    """A record's ``usage`` → its realized cost per model (NaN where none); validates every field."""
    costs = [float("nan")] * len(models)
    if usage is None:
        return costs
    if not isinstance(usage, dict):
        raise ConfigError(f"{where}: 'usage' is not an object",
                          hint='"usage": {"model": {"prompt_tokens": 12, "completion_tokens": 40, '
                               '"latency_s": 0.8, "cost": 0.0001}}')
    for m, u in usage.items():
        if m not in models:
            raise ConfigError(f"{where}: 'usage' names model {m!r}, which the record does not score",
                              hint="usage keys must be models of 'scores'")
        if u is None:
            continue
        if not isinstance(u, dict):
            raise ConfigError(f"{where}: usage of {m!r} is not an object", hint=f"fields: {', '.join(USAGE_FIELDS)}")
        for f in USAGE_FIELDS:
            v = u.get(f)
            if v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ConfigError(f"{where}: usage {f} of {m!r} is {v!r}", hint="usage values are non-negative numbers")
        if u.get("cost") is not None:
            costs[models.index(m)] = float(u["cost"])
    return costs


def parse_records(items: Any, source: str = "<records>") -> Records:
    """Validate ``[{"question": str, "scores": {model: number}, "usage"?: {model: {...}}}, ...]``.

    Every record must score the same models. ``usage`` is optional per record and per model
    (``usages``, the Avengers-Pro reference's name, is read too); see the module docstring.
    """
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{source}: expected a non-empty list of records",
                          hint='each record is {"question": "...", "scores": {"model": 0.0-1.0, ...}}')
    models: list[str] | None = None
    questions: list[str] = []
    rows: list[list[float]] = []
    cost_rows: list[list[float]] = []
    for i, rec in enumerate(items):
        where = f"{source}: record {i + 1}"
        if not isinstance(rec, dict):
            raise ConfigError(f"{where} is not an object", hint='write {"question": "...", "scores": {...}}')
        q = rec.get("question", rec.get("query"))
        if not isinstance(q, str) or not q.strip():
            raise ConfigError(f"{where} has no 'question' text", hint="every record needs a non-empty 'question'")
        sc = rec.get("scores")
        if not isinstance(sc, dict) or not sc:
            raise ConfigError(f"{where} has no 'scores'",
                              hint="every record needs 'scores': {model: score}; run `junto route calibrate` to make them")
        if models is None:
            models = list(sc)
        elif set(sc) != set(models):
            extra = sorted(set(sc) - set(models))
            lack = sorted(set(models) - set(sc))
            raise ConfigError(f"{where} scores different models than record 1"
                              + (f" (extra: {', '.join(extra)})" if extra else "")
                              + (f" (missing: {', '.join(lack)})" if lack else ""),
                              hint="every record must score the same set of models")
        row = []
        for m in models:
            v = sc[m]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
                raise ConfigError(f"{where}: score of {m!r} is {v!r}, not a number", hint="scores are numbers in [0, 1]")
            row.append(float(v))
        questions.append(q)
        rows.append(row)
        cost_rows.append(_parse_usage(rec.get("usage", rec.get("usages")), models, where))
    assert models is not None
    realized = np.asarray(cost_rows, dtype=np.float64)
    return Records(questions, models, np.asarray(rows, dtype=np.float64),
                   realized if np.isfinite(realized).any() else None)


def load_records(path: str | os.PathLike[str]) -> Records:
    """Read records from a JSON list or a JSONL file."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"records file not found: {p}", hint="pass a JSON list or JSONL file of {question, scores}")
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read records file {p}: {exc}") from None
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{p}: malformed JSON at line {exc.lineno}: {exc.msg}",
                              hint="a JSON list of records, or one JSON object per line (JSONL)") from None
    else:
        from junto.jsonl import parse_lines

        # lines end at "\n" only: U+2028 may sit inside a question
        items = [row for _, row in parse_lines(text.split("\n"), str(p), hint="a JSON list of records, or one "
                                                                               "JSON object per line (JSONL)")]
    return parse_records(items, str(p))


def load_costs(path: str | os.PathLike[str] | None, models: Sequence[str]) -> dict[str, float]:
    """Cost per query for each model from a JSON file ``{model: cost}`` (or ``{"costs": {...}}``); default 1 each."""
    if path is None:
        return {m: 1.0 for m in models}
    p = Path(path).expanduser()
    if not p.is_file():
        raise ConfigError(f"costs file not found: {p}", hint='a JSON object {"model": cost_per_query, ...}')
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read costs file {p}: {exc}", hint='a JSON object {"model": cost_per_query}') from None
    if isinstance(data, dict) and isinstance(data.get("costs"), dict):
        data = data["costs"]
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a JSON object mapping model → cost")
    missing = [m for m in models if m not in data]
    if missing:
        raise ConfigError(f"{p}: no cost for model(s) {', '.join(missing)}", hint="give every model in the records a cost")
    out = {}
    for m in models:
        v = data[m]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
            raise ConfigError(f"{p}: cost of {m!r} is {v!r}", hint="costs are non-negative numbers")
        out[m] = float(v)
    return out


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Router:
    """Base class: subclasses implement ``_fit`` (build arrays) and ``_scores`` (embeddings → scores).

    ``blocking`` (property): True when routing one query is heavy enough to keep off an event loop,
    i.e. the artifact's embedder is a sentence-transformers model (``minilm``, ``st:...``: a torch
    forward pass per query); False for the static model2vec embedder (~0.1 ms). Async callers run
    :meth:`route` in ``asyncio.to_thread`` when it is True. It is read from the artifact without
    loading the embedder; :meth:`warm` loads it (always blocking: call it at start-up, off the loop).
    Routing never writes to disk: the query is embedded in memory (``Embedder.encode_one``).

    Ties in the final score go to the cheaper model (``costs``), then to model order; a router
    with ``tie_break_by_name`` (Avengers-Pro) breaks the last tie by model name instead.
    """

    method: ClassVar[str]
    Config: ClassVar[type[RouterConfig]]
    tie_break_by_name: ClassVar[bool] = False

    def __init__(self, meta: dict[str, Any], arrays: dict[str, np.ndarray], path: Path | None = None):
        self.meta = meta
        self.arrays = arrays
        self.path = path
        self.config = self.Config.model_validate(meta["config"])
        self.models: list[str] = list(meta["models"])
        self.costs: dict[str, float] = {m: float(meta["costs"][m]) for m in self.models}
        self.cost_vector = np.array([self.costs[m] for m in self.models])
        self.embedder_spec: dict[str, Any] = meta["embedder"]
        self.best_single: str = meta["best_single"]
        # the last tie-break key of each model: its name's rank (tie_break_by_name) or its position
        by_name = {m: r for r, m in enumerate(sorted(self.models))}
        self.tie_rank = (np.array([by_name[m] for m in self.models]) if self.tie_break_by_name
                         else np.arange(len(self.models)))
        self._embedder = None
        self._setup()

    def _setup(self) -> None:
        """Build fast lookup structures (faiss indexes) from ``self.arrays``."""

    # -- fitting ---------------------------------------------------------------------------------
    @classmethod
    def fit(cls, records: Records, embeddings: np.ndarray, costs: dict[str, float], *,
            embedder_spec: dict[str, Any], config: dict[str, Any] | RouterConfig | None = None) -> Router:
        try:
            cfg = config if isinstance(config, RouterConfig) else cls.Config.model_validate(config or {})
        except ValidationError as err:
            msgs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors(include_url=False))
            raise ConfigError(f"invalid {cls.method} options: {msgs}") from None
        cost_vec = np.array([costs[m] for m in records.models], dtype=np.float64)
        arrays, extra = cls._fit(records, np.asarray(embeddings, dtype=np.float32), cost_vec, cfg)
        from junto.routers.scoring import best_single_index

        best = best_single_index(records.scores, cost_vec)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "method": cls.method,
            "config": cfg.model_dump(),
            "models": list(records.models),
            "costs": {m: float(costs[m]) for m in records.models},
            "embedder": embedder_spec,
            "embedding_dim": int(embeddings.shape[1]),
            "data": {"hash": records.data_hash(), "n_records": len(records)},
            "best_single": records.models[best],
            "fit_means": {m: float(v) for m, v in zip(records.models, records.scores.mean(axis=0))},
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **extra,
        }
        return cls(meta, arrays)

    @classmethod
    def _fit(cls, records: Records, emb: np.ndarray, costs: np.ndarray, cfg: Any
             ) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        raise NotImplementedError

    # -- routing ---------------------------------------------------------------------------------
    def _scores(self, emb: np.ndarray) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """(n × dim normalized embeddings) → (n × M scores, per-query details)."""
        raise NotImplementedError

    @property
    def blocking(self) -> bool:
        """True when the embedder is a torch/sentence-transformers model: route in a worker thread."""
        from junto.routers.embeddings import spec_is_blocking

        return spec_is_blocking(self.embedder_spec)

    def warm(self) -> None:
        """Load the embedder now (blocking: ~1 s for MiniLM; the static model may be distilled once)."""
        _ = self.embedder

    @property
    def embedder(self):
        if self._embedder is None:
            from junto.routers.embeddings import get_embedder

            self._embedder = get_embedder(self.embedder_spec)
            self._embedder.warm()
        return self._embedder

    def _decide(self, scores: np.ndarray, details: dict[str, Any], top_n: int | None,
                candidates: Sequence[str] | None, latency_ms: float) -> RoutingDecision:
        idx = range(len(self.models))
        if candidates is not None:
            allowed = set(candidates)
            idx = [i for i in idx if self.models[i] in allowed]
            if not idx:
                raise ConfigError(f"none of the candidates ({', '.join(candidates) or 'none'}) is a model of this router",
                                  hint=f"the router knows: {', '.join(self.models)}")
        # best first; ties go to the cheaper model, then to model order (or name: tie_break_by_name)
        order = sorted(idx, key=lambda i: (-float(scores[i]), self.cost_vector[i], self.tie_rank[i]))
        if top_n is not None:
            order = order[:max(1, top_n)]
        ranked = [(self.models[i], float(scores[i])) for i in order]
        return RoutingDecision(ranked=ranked, chosen=ranked[0][0], latency_ms=latency_ms, details=details)

    def route_embeddings(self, emb: np.ndarray, *, top_n: int | None = None,
                         candidates: Sequence[str] | None = None) -> list[RoutingDecision]:
        """Route already-embedded queries (n × dim): the decision without the embedding cost."""
        t0 = time.perf_counter()
        emb = np.asarray(emb, dtype=np.float32)
        if emb.ndim == 1:
            emb = emb[None, :]
        scores, details = self._scores(emb)
        per = (time.perf_counter() - t0) * 1000 / max(1, len(emb))
        return [self._decide(scores[i], details[i], top_n, candidates, per) for i in range(len(emb))]

    def choose_indices(self, emb: np.ndarray) -> np.ndarray:
        """Index of the chosen model for each embedded query (vectorized; for evaluation)."""
        scores, _ = self._scores(np.asarray(emb, dtype=np.float32))
        # ties → cheaper model → tie rank (index or name), like _decide
        key = np.lexsort((self.tie_rank[None, :].repeat(len(scores), 0),
                          self.cost_vector[None, :].repeat(len(scores), 0), -scores), axis=1)
        return key[:, 0]

    def route(self, query: str, *, top_n: int | None = None, candidates: list[str] | None = None) -> RoutingDecision:
        """Rank the models for one query; the query is embedded in memory only (nothing written to disk)."""
        if not isinstance(query, str):
            raise ConfigError("a query to route must be a string")
        embedder = self.embedder  # loaded outside the timed part
        t0 = time.perf_counter()
        vec = embedder.encode_one(query)
        scores, details = self._scores(vec[None, :])
        ms = (time.perf_counter() - t0) * 1000
        return self._decide(scores[0], details[0], top_n, candidates, ms)

    def route_batch(self, queries: Sequence[str], *, top_n: int | None = None,
                    candidates: list[str] | None = None) -> list[RoutingDecision]:
        queries = list(queries)
        if not queries:
            return []
        embedder = self.embedder
        t0 = time.perf_counter()
        emb = embedder.encode(queries)
        scores, details = self._scores(emb)
        per = (time.perf_counter() - t0) * 1000 / len(queries)
        return [self._decide(scores[i], details[i], top_n, candidates, per) for i in range(len(queries))]

    # -- artifacts -------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the artifact directory atomically: a reader sees the old one or the new one, never half."""
        target = Path(path).expanduser().resolve()
        if target.exists() and not (target.is_dir() and ((target / "router.json").is_file() or not any(target.iterdir()))):
            raise ConfigError(f"{target} exists and is not a router artifact",
                              hint="choose a new --out directory, or an existing router to replace")
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp.mkdir()
        try:
            with open(tmp / "arrays.npz", "wb") as fh:
                np.savez(fh, **self.arrays)
                fh.flush()
                os.fsync(fh.fileno())
            with open(tmp / "router.json", "w", encoding="utf-8") as fh:
                json.dump(self.meta, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            replace_dir(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        self.path = target
        return target

    def describe(self) -> dict[str, Any]:
        return {k: self.meta[k] for k in ("method", "config", "models", "costs", "embedder", "data", "best_single")}


def faiss_search(index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product search; small searches run on one thread.

    Routing searches are tiny (64 centroids, a few thousand neighbours): OpenMP's thread start-up
    and spin-waiting cost more than they save, and on a busy machine they turn 0.05 ms into 10 ms.
    """
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    if len(q) * index.ntotal > 2_000_000:
        return index.search(q, k)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        return index.search(q, k)
    finally:
        faiss.omp_set_num_threads(before)


_REGISTRY: dict[str, str] = {
    "avengers": "junto.routers.avengers:AvengersRouter",
    "avengers-pro": "junto.routers.avengers:AvengersProRouter",
    "knn": "junto.routers.fusion:KNNRouter",
    "mlp": "junto.routers.fusion:MLPRouter",
    "svm": "junto.routers.fusion:SVMRouter",
}
METHODS: tuple[str, ...] = tuple(_REGISTRY)


def router_class(method: str) -> type[Router]:
    try:
        target = _REGISTRY[method]
    except KeyError:
        raise ConfigError(f"unknown routing method {method!r}", hint=f"choose one of: {', '.join(METHODS)}") from None
    import importlib

    mod, name = target.split(":")
    return getattr(importlib.import_module(mod), name)


def load_router(path: str | os.PathLike[str]) -> Router:
    """Load a router artifact written by ``junto route fit`` (or :meth:`Router.save`)."""
    p = Path(path).expanduser()
    meta_path = p / "router.json"
    if not meta_path.is_file():
        raise ConfigError(f"no router artifact at {p} (router.json missing)",
                          hint="make one with: junto route fit --records FILE --method avengers --out DIR")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{meta_path}: unreadable ({exc})", hint="refit the router") from None
    if meta.get("format") != FORMAT:
        raise ConfigError(f"{meta_path} is not a junto router artifact")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(f"{p}: artifact format version {meta.get('format_version')} is not supported "
                          f"(this junto reads version {FORMAT_VERSION})", hint="refit the router with this junto")
    try:
        with np.load(p / "arrays.npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{p}/arrays.npz: unreadable ({exc})", hint="refit the router") from None
    cls = router_class(meta.get("method", ""))
    try:
        return cls(meta, arrays, p.resolve())
    except (KeyError, ValidationError) as exc:
        raise JuntoError(f"{p}: the artifact is incomplete or corrupt ({exc})", hint="refit the router") from None


def load_pool_router(pool: Any) -> Router | None:
    """The router named by a pool's ``router:`` field (relative to the pool file), or None.

    Its model names are the pool's arm names (``junto.arms``: a pool that lists no arms has one per
    deployment, named after it — calibration records use them as keys); a router that knows none of
    them is a configuration error. Route with ``candidates=pool_router_candidates(pool, router)``.
    """
    if not getattr(pool, "router", None):
        return None
    router = load_router(pool.resolve_path(pool.router))
    names = [a.name for a in pool.arm_list()]
    if not set(router.models) & set(names):
        raise ConfigError(f"the router of pool {pool.name!r} ({pool.router}) routes among {', '.join(router.models)}, "
                          f"none of which is an arm of the pool ({', '.join(names)})",
                          hint="fit the router on records keyed by the pool's arm (or deployment) names: "
                               "junto route calibrate --pool ...")
    return router


def pool_router_candidates(pool: Any, router: Router) -> list[str]:
    """The router's models that are arms of ``pool``."""
    names = {a.name for a in pool.arm_list()}
    return [m for m in router.models if m in names]
