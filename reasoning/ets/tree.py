"""The search tree as pure data, and the KV cache it holds (unique-prefix accounting).

A node is one reasoning *step*: the text the policy model generated from its parent's partial
solution up to the next step boundary. Node 0 is the root (the question; its ``tokens`` are the
prompt's). Nodes are plain dicts (``Node``) so the tree travels in a LangGraph state and lands in
the result trace unchanged (``extra["tree"]``).

**KV accounting** (:func:`kv_tokens`): a server with prefix caching (vLLM's automatic prefix
caching, llama.cpp's prompt cache, SGLang's radix tree in the paper) keeps one copy of a prefix that
several partial solutions share. The KV the retained tree holds is therefore the sum, over the
retained nodes *and all their ancestors*, of each node's own step tokens, every shared ancestor
counted once — the measure ETS (arXiv 2502.13575) minimises and the one its reference computes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict


class Node(TypedDict):
    id: int
    parent: int | None
    depth: int
    #: the step's text (the root: empty; the question is in the messages)
    text: str
    #: tokens of this step alone (the root: the prompt's tokens)
    tokens: int
    #: the scorer's P(step correct); the root: 1.0
    score: float
    #: no further expansion: it stated an answer, ended the turn, or hit a token cap
    finished: bool
    #: why it finished: "answer" (it states one) | "empty" (no text: the model ended) | "path_tokens" | "depth"
    finish: str | None
    #: the vote key of the answer the path gives (set on finished nodes)
    answer: str | None


def root(prompt_tokens: int = 0) -> Node:
    return Node(id=0, parent=None, depth=0, text="", tokens=prompt_tokens, score=1.0, finished=False, finish=None,
                answer=None)


def add_child(nodes: list[Node], parent: int, text: str, tokens: int, score: float = 0.0) -> Node:
    """Append a new step under ``parent`` (ids are list positions) and return it."""
    p = nodes[parent]
    node = Node(id=len(nodes), parent=parent, depth=p["depth"] + 1, text=text, tokens=int(tokens), score=score,
                finished=False, finish=None, answer=None)
    nodes.append(node)
    return node


def ancestors(nodes: Sequence[Node], node_id: int) -> list[int]:
    """The ids above ``node_id``, nearest first, the root last (not including ``node_id``)."""
    out = []
    p = nodes[node_id]["parent"]
    while p is not None:
        out.append(p)
        p = nodes[p]["parent"]
    return out


def path(nodes: Sequence[Node], node_id: int) -> list[int]:
    """Root-to-node ids, the root excluded (the steps of the partial solution, in order)."""
    ids = [node_id, *ancestors(nodes, node_id)]
    return [i for i in reversed(ids) if nodes[i]["parent"] is not None]


def steps(nodes: Sequence[Node], node_id: int) -> list[str]:
    """The partial solution's steps, in order."""
    return [nodes[i]["text"] for i in path(nodes, node_id)]


def path_tokens(nodes: Sequence[Node], node_id: int) -> int:
    """Generated tokens along the path (the root's prompt tokens excluded)."""
    return sum(nodes[i]["tokens"] for i in path(nodes, node_id))


def retained(nodes: Sequence[Node], ids: Iterable[int]) -> set[int]:
    """The retained nodes and every ancestor of them (the prefixes the server must keep)."""
    out: set[int] = set()
    for i in ids:
        j: int | None = i
        while j is not None and j not in out:
            out.add(j)
            j = nodes[j]["parent"]
    return out


def kv_tokens(nodes: Sequence[Node], ids: Iterable[int]) -> int:
    """Tokens of KV cache the retained nodes ``ids`` hold with prefix sharing: Σ own tokens over the
    retained nodes and their ancestors, each counted once."""
    return sum(nodes[i]["tokens"] for i in retained(nodes, ids))


def kv_tokens_unshared(nodes: Sequence[Node], ids: Iterable[int]) -> int:
    """The same paths without prefix sharing (each path's full prefix counted separately)."""
    total = 0
    for i in ids:
        total += nodes[i]["tokens"] + sum(nodes[a]["tokens"] for a in ancestors(nodes, i))
    return total


def branch_leaf_map(nodes: Sequence[Node], leaves: Sequence[int]) -> dict[int, list[int]]:
    """Every ancestor ("branch") of the candidate leaves → positions in ``leaves`` of the leaves under it
    (order of first appearance kept)."""
    out: dict[int, list[int]] = {}
    for pos, leaf in enumerate(leaves):
        for a in ancestors(nodes, leaf):
            out.setdefault(a, []).append(pos)
    return out


def leaves(nodes: Sequence[Node]) -> list[int]:
    """Finished nodes (the candidate answers)."""
    return [n["id"] for n in nodes if n["finished"] and n["parent"] is not None]


__all__ = ["Node", "root", "add_child", "ancestors", "path", "steps", "path_tokens", "retained", "kv_tokens",
           "kv_tokens_unshared", "branch_leaf_map", "leaves"]
