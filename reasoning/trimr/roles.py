"""Which deployment plays which part in the thinking strategies (reasoner, planner, verifier).

In order: the deployment a parameter names (``reasoner=…``, ``planner=…``, ``verifier=…``); else a
deployment tagged with the role in the pool file (``tags: [reasoner]``), the router's candidates first in
their rank order, then the pool's order; else the router's ranking — the reasoner is the best-ranked
candidate, a helper (planner, verifier) the last-ranked candidate that is not the reasoner, or the
reasoner itself when the run has one candidate.
"""

from __future__ import annotations

from junto.errors import ConfigError
from junto.reasoning.context import RunContext


def pick(ctx: RunContext, role: str, named: str | None, *, reasoner: str | None = None) -> str:
    names = [d.name for d in ctx.pool.deployments]
    if named is not None:
        if named not in names:
            raise ConfigError(f"{role} {named!r} is not a deployment of pool {ctx.pool.name!r}",
                              hint=f"choose one of: {', '.join(names)}", param=role)
        return named
    order = list(dict.fromkeys([*ctx.candidates, *names]))
    for name in order:
        if role in ctx.pool.deployment(name).tags:
            return name
    if role == "reasoner" or reasoner is None:
        return ctx.candidates[0]
    others = [c for c in ctx.candidates if c != reasoner]
    return others[-1] if others else reasoner


__all__ = ["pick"]
