"""ThoughtMani's planner prompt and the reading of its reply (pure, linear time)."""

from __future__ import annotations

#: the planner's instructions, after the paper's thought-generation prompt (arXiv 2504.13626, §4): key
#: points only, no calculations, no final answer, ``<STOP>`` when done or when it cannot help
PLANNER_PROMPT = (
    "You are a teacher. List the key steps needed to solve the user's problem, as short high-level points. "
    "Do not do any calculation and do not give the final answer. Write <STOP> when the key points are done. "
    "If you cannot help with this problem, write only <STOP>.")

STOP = "<STOP>"

#: a plan longer than this is cut (a small planner that rambles must not fill the reasoner's context)
MAX_PLAN_CHARS = 4000


def parse_plan(text: str | None) -> str | None:
    """The plan before the first ``<STOP>``, stripped; ``None`` when there is none (``<STOP>`` alone,
    empty, or only whitespace and punctuation)."""
    if not text:
        return None
    cut = text.find(STOP)
    plan = (text if cut < 0 else text[:cut]).strip()
    if len(plan) > MAX_PLAN_CHARS:
        plan = plan[:MAX_PLAN_CHARS].rstrip()
    if not any(ch.isalnum() for ch in plan):
        return None
    return plan


__all__ = ["PLANNER_PROMPT", "STOP", "parse_plan"]
