"""``xolver``: a planned team of agents, rounds over a shared store of judged answers, an experience memory.

Paper: Hosain, Rahman, Morol and Parvez, "Xolver: Multi-Agent Reasoning with Holistic Experience Learning
Just Like an Olympiad Team" (arXiv 2506.14234, 2025; code: github.com/kagnlp/Xolver). A planner drafts
more agent roles than needed and picks a team of m; over I rounds each agent answers seeing the problem,
the top exemplars retrieved from an episodic (experience) memory, its own previous answer and the shared
(intermediate) memory's best answers with their judge scores; a judge scores every answer; the run stops
early once the judge's best answer is verified, and what was solved goes back into the memory. Published
defaults: m = 3 agents, I = 2 rounds, the planner over-generating roles before choosing.

Here (:mod:`.graph`): plan → recall → (agents → judge) × rounds → finish, one LangGraph superstep per
phase, so a checkpointed run killed mid-way resumes without asking a finished round's agents again.

* **plan** — the planner drafts ``drafted`` roles (default m + 2) and names its team on a ``TEAM:`` line
  (:func:`.logic.parse_roles`, one pass over the reply); too few usable roles → built-in ones, and the
  ``xolver_roles`` event says so. Local defaults: m = 2 agents, I = 2 rounds (a 2-core CPU machine).
* **agents** — the m agents of a round are concurrent requests through the pool client (llama-server's
  parallel slots decode them together); agent i runs on ``agent_models[i mod len]`` (default: the
  router's best-ranked candidate). Prompts fit ``context_chars`` (:func:`.logic.agent_messages`).
* **judge** — code problems (a function prompt: signature + docstring) get no LLM judge: the problem's own
  examples (:mod:`.examples`) run against the agent's code in :func:`junto.sandbox.run_python`;
  score = share of examples passed, verified = all passed and at least one (:mod:`.judge`). The hidden
  tests of a benchmark are never seen. Other problems, and code whose prompt states no example: an LLM
  judge's P(Yes) from logprobs (the house
  judge of :mod:`junto.reasoning.ets.scorers`); verified = P ≥ ``threshold`` (0.8).
* **memory** — ``ctx.memory`` when it is a :class:`junto.memory.experience.ExperienceStore` (else no
  exemplars): ``memory_k`` (2) verified experiences retrieved by hybrid search, the problem itself
  excluded; at the end the best *verified* answer — and only a verified one — is written back (task,
  source ``xolver:<deployment>``, score, meta: rounds, round, role). The reference code writes the last
  response back whatever its verdict, which teaches later runs wrong solutions: a bug not repeated here.
  Memory calls are synchronous (SQLite, faiss) and run in a worker thread.

Final answer: the best-scored answer over all rounds (ties: the later round). Events (LangGraph custom
stream): ``xolver_roles``, ``xolver_memory`` (hits: problem snippet, fused score), ``xolver_round``,
``model_call``, ``xolver_agent`` (answer, score, verdict), ``xolver_judge``, ``xolver_stop``,
``xolver_memory_write``. ``StrategyResult.extra``: roles, rounds_run, round_scores, memory_hits,
wrote_memory, tokens_per_agent, verified, best.
"""

from __future__ import annotations

import time

from junto.reasoning.base import Strategy
from junto.reasoning.xolver.graph import graph
from junto.reasoning.xolver.state import XolverParams


def _input(ctx, messages, params: XolverParams) -> dict:
    return {"messages": messages, "params": params, "started": time.monotonic()}


STRATEGY = Strategy(name="xolver", graph=graph, params_model=XolverParams, make_input=_input, uses_memory=True,
                    summary="Xolver: planned agents over rounds, judged (code: run on its examples), with experience "
                            "memory", doc=__doc__ or "")
