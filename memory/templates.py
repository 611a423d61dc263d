"""Thought-level fusion: a faiss-backed store of thought templates.

FusionFactory (Feng et al., github.com/ulab-uiuc/FusionFactory, ``thought_level/``) distils the
best answers that several models gave to past queries into short "thought templates" — the core
task, the reasoning steps, the answer format — with an LLM, and prepends the templates of the most
similar past queries to a new prompt. Published defaults mirrored here: the top 3 answers per
query (by score, cheaper first on ties), each cut to 1,000 characters, summarized at temperature
0.2 into a 1–5 sentence template.

Store layout (a directory, every file replaced atomically):
    templates.jsonl   one template per line: id, query, template, sources, created
    vectors.npy       the queries' embeddings (row i ↔ line i), L2-normalized
    meta.json         the embedder spec and dimension

Searching embeds the new query in memory (``Embedder.encode_one``): nothing about it is written to
disk, neither here nor in the embedding cache. Adding a template embeds its query the same way; its
vector is kept in ``vectors.npy`` with the template, which is all the persistence it needs.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from junto.errors import ConfigError
from junto.paths import atomic_write_text

TOP_ANSWERS = 3
ANSWER_CHARS = 1000


@dataclass
class ThoughtTemplate:
    id: str
    query: str
    template: str
    sources: list[str] = field(default_factory=list)
    created: str = ""


@dataclass
class Candidate:
    """One past answer to a query: who gave it, what it said, how it scored, what it cost."""

    model: str
    answer: str
    score: float
    cost: float = 0.0


def best_answers(candidates: Sequence[Candidate], top_n: int = TOP_ANSWERS) -> list[Candidate]:
    """The top answers by score, cheaper first among equals; answers that scored 0 are left out."""
    good = [c for c in candidates if c.score > 0 and c.answer.strip()]
    return sorted(good, key=lambda c: (-c.score, c.cost))[:top_n]


def template_prompt(query: str, answers: Sequence[Candidate]) -> str:
    """Ask a model to distil reusable guidance from good answers (wording is junto's own)."""
    parts = [f"A question and {len(answers)} good answer(s) to it follow. Write a short thought template that "
             "would help solve similar questions.\n", f"Question: {query}\n"]
    for i, a in enumerate(answers, 1):
        text = a.answer if len(a.answer) <= ANSWER_CHARS else a.answer[:ANSWER_CHARS] + " …"
        parts.append(f"Answer {i}:\n{text}\n")
    parts.append("In 1 to 5 sentences: name the kind of problem and the general approach; give the key "
                 "reasoning steps; say what form the final answer should take.\n\nThought template:")
    return "\n".join(parts)


def prompt_with_templates(query: str, found: Sequence[tuple[ThoughtTemplate, float]]) -> str:
    """The new prompt: similar past questions with their templates, then the query."""
    if not found:
        return query
    lines = ["Guidance from similar questions solved before:"]
    for i, (t, _sim) in enumerate(found, 1):
        lines.append(f"{i}. Similar question: {t.query.strip()[:300]}\n   Template: {t.template.strip()}")
    lines.append("\nUse the guidance where it applies.\n\nQuestion: " + query)
    return "\n".join(lines)


class ThoughtTemplateStore:
    """Templates and their query vectors in a directory; nearest-neighbour search through faiss.

    ``blocking``: True when the store's embedder is a torch/sentence-transformers model (``minilm``,
    ``st:...``), so that :meth:`search` / :meth:`prompt` cost milliseconds of CPU per query and belong
    in a worker thread (``asyncio.to_thread``) under an event loop; False for the static model2vec
    embedder (~0.1 ms per query plus a faiss search over the templates). :meth:`search` writes
    nothing to disk and keeps nothing about the query; it may run in several threads at once, beside
    :meth:`add`. Opening the store loads the embedder, which always blocks.
    """

    def __init__(self, path: str | os.PathLike[str], embedder: str | dict[str, Any] | None = None):
        from junto.routers.embeddings import get_embedder, parse_embedder_spec

        self.path = Path(path).expanduser()
        meta_path = self.path / "meta.json"
        stored = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        spec = parse_embedder_spec(embedder if embedder is not None else (stored or {}).get("embedder"))
        if stored is not None and stored.get("embedder") != spec:
            raise ConfigError(f"template store {self.path} was built with embedder {stored.get('embedder')}, not {spec}",
                              hint="open it without an embedder argument, or use a new store directory")
        self.embedder = get_embedder(spec)
        self.spec = spec
        self.templates: list[ThoughtTemplate] = []
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        self._index = None
        self._lock = threading.Lock()  # add() swaps (templates, index) under it; search() reads one snapshot
        self._load()

    @property
    def blocking(self) -> bool:
        """True when embedding a query here is torch work (sentence-transformers): search in a thread."""
        return bool(getattr(self.embedder, "blocking", True))

    def _embed_one(self, text: str) -> np.ndarray:
        """The query's vector (1 × dim), computed in memory: never read from or written to the disk cache."""
        return np.asarray(self.embedder.encode_one(text), dtype=np.float32)[None, :]

    def _load(self) -> None:
        tpath, vpath = self.path / "templates.jsonl", self.path / "vectors.npy"
        if tpath.is_file() and vpath.is_file():
            self.templates = [ThoughtTemplate(**json.loads(line)) for line in tpath.read_text(encoding="utf-8").splitlines()
                              if line.strip()]
            self.vectors = np.load(vpath, allow_pickle=False).astype(np.float32)
            if len(self.vectors) != len(self.templates):
                raise ConfigError(f"template store {self.path} is inconsistent ({len(self.templates)} templates, "
                                  f"{len(self.vectors)} vectors)", hint="rebuild the store")
        self._rebuild_index()

    def _rebuild_index(self) -> None:
        import faiss

        if len(self.templates) == 0:
            self._index = None
            return
        self._index = faiss.IndexFlatIP(self.vectors.shape[1])
        self._index.add(np.ascontiguousarray(self.vectors))

    def __len__(self) -> int:
        return len(self.templates)

    def add(self, query: str, template: str, sources: Sequence[str] = ()) -> ThoughtTemplate:
        vec = self._embed_one(query)
        t = ThoughtTemplate(id=secrets.token_hex(6), query=query, template=template.strip(), sources=list(sources),
                            created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        with self._lock:
            # new list and array objects: a search running meanwhile keeps its consistent old snapshot
            self.templates = [*self.templates, t]
            self.vectors = vec if len(self.vectors) == 0 else np.concatenate([self.vectors, vec])
            self._save()
            self._rebuild_index()
        return t

    def _save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        tmp = self.path / f".vectors.{os.getpid()}.tmp.npy"
        np.save(tmp, self.vectors)
        # vectors first, then templates: a reader between the two sees a length mismatch, never a wrong pairing
        os.replace(tmp, self.path / "vectors.npy")
        atomic_write_text(self.path / "templates.jsonl",
                          "".join(json.dumps(asdict(t), ensure_ascii=False) + "\n" for t in self.templates))
        atomic_write_text(self.path / "meta.json", json.dumps({"embedder": self.spec, "dim": int(self.vectors.shape[1])}))

    def search(self, query: str, k: int = 2, min_similarity: float = 0.0) -> list[tuple[ThoughtTemplate, float]]:
        """The ``k`` templates whose queries are most similar (cosine) to ``query``.

        The query is embedded in memory only; no cache or file is written.
        """
        with self._lock:
            index, templates = self._index, self.templates
        if index is None:
            return []
        from junto.routers.base import faiss_search

        vec = self._embed_one(query)
        sims, ids = faiss_search(index, vec, min(k, len(templates)))
        return [(templates[i], float(s)) for s, i in zip(sims[0], ids[0]) if i >= 0 and s >= min_similarity]

    def prompt(self, query: str, k: int = 2, min_similarity: float = 0.0) -> str:
        return prompt_with_templates(query, self.search(query, k, min_similarity))

    async def summarize_and_add(self, client, deployment: str, query: str, candidates: Sequence[Candidate], *,
                                max_tokens: int = 160, temperature: float = 0.2) -> ThoughtTemplate | None:
        """Distil the best answers to ``query`` into a template with a pool model and store it.

        Returns None when no answer scored above 0 (nothing worth learning from).
        """
        best = best_answers(candidates)
        if not best:
            return None
        res = await client.chat(deployment, [{"role": "user", "content": template_prompt(query, best)}],
                                max_tokens=max_tokens, temperature=temperature)
        text = res.text.strip()
        if not text:
            return None
        return self.add(query, text, [c.model for c in best])
