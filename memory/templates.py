"""Thought-level fusion: a faiss-backed store of thought templates.

FusionFactory (Feng et al., github.com/ulab-uiuc/FusionFactory, ``thought_level/``) distils the
best answers that several models gave to past queries into short "thought templates" — the core
task, the reasoning steps, the answer format — with an LLM, and prepends the templates of the most
similar past queries to a new prompt. Published defaults mirrored here: the top 3 answers per
query (by score, cheaper first on ties), each cut to 1,000 characters, summarized at temperature
0.2 into a 1–5 sentence template.

Storage: the templates are ``kind="template"`` rows of junto's experience memory
(:class:`junto.memory.experience.ExperienceStore`, SQLite in WAL mode, several processes at once):
a template store is a folder holding ``memory.db`` (the template text in ``solution``, the query in
``problem``, the models it was distilled from in ``meta["sources"]``).

Migration: a folder in the old layout (``templates.jsonl`` + ``vectors.npy`` + ``meta.json``, used
before the SQLite store) is copied into ``memory.db`` beside them on first open, once, with the same
vectors and embedder; the old files are kept untouched and are not read again after that.

Searching embeds the new query in memory (``Embedder.encode_one``): nothing about it is written to
disk, neither here nor in the embedding cache. Adding a template embeds its query and keeps the
vector in ``memory.db`` with the template, which is all the persistence it needs.
"""

from __future__ import annotations

import calendar
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from junto.errors import ConfigError

TOP_ANSWERS = 3
ANSWER_CHARS = 1000
#: the store's SQLite file inside a template-store folder
DB_NAME = "memory.db"
#: the pre-SQLite layout, migrated into memory.db on first open
LEGACY_FILES = ("templates.jsonl", "vectors.npy", "meta.json")


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


def _epoch(created: str) -> float:
    try:
        return calendar.timegm(time.strptime(created, "%Y-%m-%dT%H:%M:%SZ"))
    except (TypeError, ValueError):
        return 0.0


def _template(exp: Any) -> ThoughtTemplate:
    created = exp.meta.get("created") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(exp.created))
    return ThoughtTemplate(id=exp.id, query=exp.problem, template=exp.solution,
                           sources=list(exp.meta.get("sources", [])), created=created)


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
    """Thought templates as ``kind="template"`` rows of an :class:`~junto.memory.experience.ExperienceStore`.

    ``path`` is a folder; the store is the SQLite file ``<path>/memory.db`` in it (:data:`DB_NAME`).
    Search is dense only (cosine similarity of the queries' embeddings, through faiss), so that
    ``min_similarity`` keeps its meaning. ``blocking``: True when the store's embedder is a
    torch/sentence-transformers model (``minilm``, ``st:...``), so that :meth:`search` / :meth:`prompt`
    cost milliseconds of CPU per query and belong in a worker thread (``asyncio.to_thread``) under an
    event loop; False for the static model2vec embedder. :meth:`search` writes nothing to disk and
    keeps nothing about the query; it may run in several threads (and processes) at once, beside
    :meth:`add`. Opening the store loads the embedder, which always blocks.
    """

    def __init__(self, path: str | os.PathLike[str], embedder: str | dict[str, Any] | None = None, *,
                 max_items: int = 10_000):
        from junto.memory.experience import ExperienceStore
        from junto.routers.embeddings import parse_embedder_spec

        self.path = Path(path).expanduser()
        if self.path.exists() and not self.path.is_dir():
            raise ConfigError(f"template store {self.path} is not a folder",
                              hint="give the folder that holds (or will hold) memory.db", param="path")
        legacy = self._legacy_meta()
        if legacy is not None and embedder is not None and parse_embedder_spec(embedder) != legacy.get("embedder"):
            raise ConfigError(f"template store {self.path} was built with embedder {legacy.get('embedder')}, not "
                              f"{parse_embedder_spec(embedder)}",
                              hint="open it without an embedder argument, or use a new store directory")
        spec = embedder if embedder is not None else (legacy or {}).get("embedder")
        try:
            self.store = ExperienceStore(self.path / DB_NAME, spec, max_items=max_items)
        except ConfigError as exc:
            if exc.param == "embedder":
                raise ConfigError(f"template store {self.path}: {exc.message}", hint=exc.hint) from None
            raise
        self.embedder = self.store.embedder
        self.spec = self.store.spec
        if legacy is not None:
            self._migrate(legacy)

    # -- the pre-SQLite layout ------------------------------------------------------------------------
    def _legacy_meta(self) -> dict[str, Any] | None:
        """meta.json of a store in the old layout (templates.jsonl + vectors.npy + meta.json), or None."""
        files = [self.path / n for n in LEGACY_FILES]
        if not all(f.is_file() for f in files):
            return None
        try:
            return json.loads((self.path / "meta.json").read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"template store {self.path} has an unreadable meta.json: {exc}",
                              hint="restore it, or move the old files away to start a new store") from None

    def _migrate(self, legacy: dict[str, Any]) -> None:
        """Copy an old-layout store into memory.db once (the same vectors: nothing is re-embedded).

        The old files are kept, untouched and no longer read after this: every later add goes to memory.db.
        """
        from junto.memory.experience import Experience

        lines = (self.path / "templates.jsonl").read_text(encoding="utf-8").splitlines()
        try:
            old = [ThoughtTemplate(**json.loads(line)) for line in lines if line.strip()]
            vectors = np.load(self.path / "vectors.npy", allow_pickle=False).astype(np.float32)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"template store {self.path} has unreadable old-layout files: {exc}",
                              hint="restore them, or move them away to start a new store") from None
        if len(vectors) != len(old):
            raise ConfigError(f"template store {self.path} is inconsistent ({len(old)} templates, "
                              f"{len(vectors)} vectors)", hint="rebuild the store")
        exps = [Experience(problem=t.query, solution=t.template, kind="template", source="template", id=t.id,
                           created=_epoch(t.created), meta={"sources": list(t.sources), "created": t.created})
                for t in old]
        self.store.import_rows(exps, vectors.reshape(len(old), -1), once="templates.jsonl")

    # -- the store ------------------------------------------------------------------------------------
    @property
    def blocking(self) -> bool:
        """True when embedding a query here is torch work (sentence-transformers): search in a thread."""
        return bool(getattr(self.embedder, "blocking", True))

    @property
    def templates(self) -> list[ThoughtTemplate]:
        """Every template, oldest first."""
        return [_template(e) for e in self.store.all(kind="template")]

    def __len__(self) -> int:
        return self.store.count("template")

    def add(self, query: str, template: str, sources: Sequence[str] = ()) -> ThoughtTemplate:
        from junto.memory.experience import Experience

        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        exp = Experience(problem=query, solution=template.strip(), kind="template", source="template",
                         meta={"sources": list(sources), "created": created})
        tid = self.store.add(exp)
        return ThoughtTemplate(id=tid, query=query, template=exp.solution, sources=list(sources), created=created)

    def search(self, query: str, k: int = 2, min_similarity: float = 0.0) -> list[tuple[ThoughtTemplate, float]]:
        """The ``k`` templates whose queries are most similar (cosine) to ``query``.

        The query is embedded in memory only; no cache or file is written.
        """
        found = self.store.search(query, k, kind="template", mode="dense")
        return [(_template(e), s) for e, s in found if s >= min_similarity]

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> ThoughtTemplateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
