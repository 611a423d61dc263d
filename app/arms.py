"""Routing arms: what a router chooses among — a (deployment, strategy, parameters) triple.

A query may be best served by a small model with self-consistency, a bigger one directly, or a bigger
one reasoning step by step. An *arm* names one such way of answering; a pool file may list them::

    arms:
      - name: qwen-0.5b/sc5
        deployment: qwen2.5-coder-0.5b
        strategy: sc
        params: {samples: 5}
      - name: qwen-1.5b/cot
        deployment: qwen2.5-coder-1.5b
        system: "Think step by step, then give the final answer."

Calibration (``junto route calibrate``) runs every arm over labelled queries through the facade and
records each arm's score, tokens, latency and cost; the routers (Avengers, Avengers-Pro, FusionFactory's
kNN/MLP/SVM) are fitted on those records with arm names where model names would be, so they learn the
choice from measured data instead of a fixed "when to reason" rule (vLLM Semantic Router's reasoning
switch, FusionFactory's query-level fusion). A pool without ``arms`` has one implicit arm per deployment
(``direct``, named after the deployment), so routers fitted on plain deployment records keep working.

The request strategy ``auto`` (``junto-auto`` in the gateway; the default) runs the top-ranked arm;
an explicit strategy (``junto-sc``) runs on the deployment the router ranks best instead.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

#: the request strategy that lets the router pick the arm
AUTO = "auto"


class Arm(BaseModel):
    """One way of answering: this deployment, this strategy, these parameters (and an optional system prompt)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/@:+-]*$")
    deployment: str = Field(min_length=1)
    strategy: str = Field("direct", min_length=1)
    params: dict[str, Any] = Field(default_factory=dict, description="the strategy's parameters (and sampling fields)")
    system: str | None = Field(None, description="a system prompt this arm adds (e.g. step-by-step reasoning)")

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The conversation as this arm sends it: its system prompt first, unless the caller gave one."""
        if not self.system or any(m.get("role") == "system" for m in messages):
            return messages
        return [{"role": "system", "content": self.system}, *messages]


def implicit_arms(deployments: list[str]) -> list[Arm]:
    """One ``direct`` arm per deployment, named after it (a pool that lists no arms)."""
    return [Arm(name=d, deployment=d) for d in deployments]


def arm_problems(arms: list[Arm], deployments: list[str]) -> list[str]:
    """What is wrong with a pool's arms (names must be unique; each names a deployment of the pool)."""
    problems, seen = [], set()
    for i, arm in enumerate(arms):
        if arm.name in seen:
            problems.append(f"arms[{i}].name {arm.name!r} appears twice; arm names must be unique")
        seen.add(arm.name)
        if arm.deployment not in deployments:
            problems.append(f"arms[{i}].deployment {arm.deployment!r} is not a deployment of this pool "
                            f"(have: {', '.join(deployments)})")
    return problems
