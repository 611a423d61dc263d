"""Pure logic of ``xolver``: the planner's prompt and its reply parsed, agent prompts, ranking, stopping, write-back.

No I/O here; every parser of model text is a single pass over its lines (linear time).
"""

from __future__ import annotations

from typing import Any

__all__ = ["BUILTIN_ROLES", "agent_messages", "best_answer", "best_verified", "choose_roles", "parse_roles",
           "planner_messages", "snippet", "stop_reason", "top_answers"]

#: roles used when the planner's reply gives too few (written here; the paper's planner drafts them per problem)
BUILTIN_ROLES: list[dict[str, str]] = [
    {"name": "Solver", "description": "works the problem out step by step and writes a complete, correct answer"},
    {"name": "Reviewer", "description": "checks the best answers so far for mistakes and writes a corrected one"},
    {"name": "Edge-case analyst", "description": "finds the special and boundary inputs an answer must handle"},
    {"name": "Simplifier", "description": "looks for the simplest correct approach and writes it cleanly"},
]

MAX_ROLE_NAME = 60
MAX_ROLE_DESCRIPTION = 300


def snippet(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    text = text or ""
    return text if len(text) <= limit else text[:max(limit - 1, 0)] + "…"


def planner_messages(question: str, drafted: int, m: int, limit: int = 3000) -> list[dict[str, str]]:
    """Ask the planner for ``drafted`` roles, then for the team of ``m`` it picks (numbers of the drafted roles)."""
    return [{"role": "system", "content": "You plan a team of expert agents who will solve a problem together."},
            {"role": "user", "content": (
                f"Problem:\n{snippet(question, limit)}\n\n"
                f"Propose {drafted} different expert roles that could help solve this problem, one per line, as\n"
                "1. <role name>: <what this expert does>\n"
                f"Then choose the {m} roles that make the best team, on a last line as\n"
                "TEAM: <numbers of the chosen roles, separated by commas>\n"
                "Do not solve the problem.")}]


def _strip_marks(s: str) -> str:
    return s.replace("**", "").replace("__", "").strip().strip("*#-• \t").strip()


def _numbers(s: str) -> list[int]:
    """The integers written in ``s`` (one pass)."""
    out, cur = [], ""
    for c in s + " ":
        if "0" <= c <= "9":
            cur += c
        elif cur:
            if len(cur) <= 3:
                out.append(int(cur))
            cur = ""
    return out


def parse_roles(text: str) -> tuple[list[dict[str, str]], list[int]]:
    """The planner's drafted roles (``N. name: description``, numbered from 1 as written) and the numbers it
    picked on its ``TEAM:`` line (also ``Selected:``/``Chosen:``), each in order of appearance."""
    roles: list[dict[str, str]] = []
    numbers: list[int] = []
    picks: list[int] = []
    seen: set[str] = set()
    for raw in (text or "").splitlines():
        line = _strip_marks(raw)
        low = line[:12].lower()
        if low.startswith(("team", "selected", "chosen", "final team")):
            picks = _numbers(line)
            continue
        j = 0
        while j < len(line) and j < 3 and "0" <= line[j] <= "9":
            j += 1
        if j == 0 or j >= len(line) or line[j] not in ".)":
            continue
        rest = _strip_marks(line[j + 1:])
        colon = rest.find(":")
        dash = rest.find(" - ")
        cut = colon if colon != -1 and (dash == -1 or colon < dash) else dash
        name, desc = (rest[:cut], rest[cut + (1 if cut == colon else 3):]) if cut != -1 else (rest, "")
        name, desc = _strip_marks(name), desc.strip()
        if not name or len(name) > MAX_ROLE_NAME or "<" in name or ">" in name or name.lower() == "role name":
            continue  # empty, too long, or the prompt's placeholder echoed back
        if name.lower() in seen:
            continue  # the same role drafted twice counts once
        seen.add(name.lower())
        roles.append({"name": name, "description": snippet(desc, MAX_ROLE_DESCRIPTION)})
        numbers.append(int(line[:j]))
    # the picks name roles by their written numbers
    index = {num: i for i, num in reversed(list(enumerate(numbers)))}
    chosen = list(dict.fromkeys(index[k] for k in picks if k in index))
    return roles, chosen


def choose_roles(text: str, m: int) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """``m`` roles from the planner's reply, and how they were chosen: its picks, else its first drafted roles,
    topped up with :data:`BUILTIN_ROLES` when it drafted fewer than ``m`` (``fallback`` says why)."""
    drafted, picked = parse_roles(text)
    info: dict[str, Any] = {"drafted": [r["name"] for r in drafted], "picked": len(picked), "fallback": None}
    chosen = [drafted[i] for i in picked][:m]
    if len(chosen) < m:
        rest = [r for i, r in enumerate(drafted) if i not in set(picked)]
        chosen += rest[:m - len(chosen)]
        if drafted and len(picked) < m:
            info["fallback"] = "the planner picked no team of that size: its first drafted roles were taken"
    if len(chosen) < m:
        names = {r["name"].lower() for r in chosen}
        extra = [r for r in BUILTIN_ROLES if r["name"].lower() not in names] or BUILTIN_ROLES
        i = 0
        while len(chosen) < m:  # more agents than built-in roles: they repeat, numbered
            r = extra[i % len(extra)]
            name = r["name"] if i < len(extra) and r["name"].lower() not in names else f"{r['name']} {i + 1}"
            chosen.append({"name": name, "description": r["description"]})
            i += 1
        info["fallback"] = ("the planner's reply held no usable roles: built-in roles were used" if not drafted else
                            f"the planner drafted only {len(drafted)} role(s): built-in roles were added")
    return chosen, info


def top_answers(answers: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The shared store's best ``k`` judged answers: highest score first, a later round first on ties, one per
    distinct answer."""
    judged = [a for a in answers if a.get("score") is not None]
    judged.sort(key=lambda a: (-a["score"], -a["round"], a["agent"]))
    out, seen = [], set()
    for a in judged:
        key = (a.get("answer") or a.get("text") or "").strip()
        if key in seen:
            continue
        seen.add(key)
        out.append(a)
        if len(out) >= k:
            break
    return out


def best_answer(answers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The final answer: the best-scored judged answer (ties: the later round, then the lower agent number)."""
    judged = [a for a in answers if a.get("score") is not None]
    return min(judged, key=lambda a: (-a["score"], -a["round"], a["agent"])) if judged else None


def best_verified(answers: list[dict[str, Any]]) -> dict[str, Any] | None:
    """What goes back into the experience memory: the best *verified* answer, or None when none was verified.
    (The reference implementation writes the last answer whatever its verdict; an unverified answer would
    teach later runs a wrong solution.)"""
    return best_answer([a for a in answers if a.get("verified")])


def stop_reason(answers: list[dict[str, Any]], round_no: int, rounds: int, early_stop: bool) -> str | None:
    """Why the run stops after round ``round_no`` (1-based), or None to run another round."""
    best = best_answer([a for a in answers if a["round"] == round_no]) if early_stop else None
    if best is not None and best.get("verified"):
        return "verified"
    if round_no >= rounds:
        return "rounds"
    return None


def agent_messages(question: str, role: dict[str, str], *, m: int, round_no: int, rounds: int, code: bool,
                   hits: list[dict[str, Any]], previous: dict[str, Any] | None, shared: list[dict[str, Any]],
                   budget: int, entry: str | None = None) -> list[dict[str, str]]:
    """One agent's prompt: its role, the problem, the retrieved exemplars, the shared store's top answers with
    their scores, and its own previous answer. The problem is shown whole; the other texts share ``budget``
    characters less the problem's (each at least 200), so the prompt fits a small model's context."""
    pieces = 2 * len(hits) + len(shared) + (previous is not None)
    limit = max(200, (budget - len(question)) // pieces) if pieces else budget
    system = (f"You are the {role['name']}: {role['description'] or 'an expert on this problem'}. "
              f"You are one of {m} experts solving a problem together over {rounds} round(s); "
              "a judge scores every answer.")
    parts = []
    if hits:  # first, so the problem to solve is the last thing before the answers and the request
        ex = "\n\n".join(f"Example {i + 1} (score {h['score']:.2f}):\nProblem:\n"
                          f"{snippet(h['problem'], limit)}\nSolution:\n{snippet(h['solution'], limit)}"
                          for i, h in enumerate(hits))
        parts.append("Solved examples of OTHER, similar problems (for ideas only; do not answer them):\n\n"
                     f"{ex}\n\n---")
    parts.append(f"{'Now solve this problem' if hits else 'Problem'}:\n{question.strip()}")
    if shared:
        sh = "\n\n".join(f"Answer by {a['role']} (round {a['round']}, judge score {a['score']:.2f}"
                          f"{', verified' if a.get('verified') else ''}):\n{snippet(a['text'], limit)}" for a in shared)
        parts.append(f"Best answers to this problem so far:\n\n{sh}")
    if previous is not None:
        parts.append(f"Your previous answer (judge score {previous.get('score') or 0:.2f}):\n"
                     f"{snippet(previous['text'], limit)}")
    if code:
        what = f"the function `{entry}`" if entry else "the function"
        ask = (f"Write the complete {what}, signature included, in one ```python code block. Use only the "
               "standard library." + (" Fix what the judge found wrong, or improve on the best answer."
                                      if shared or previous else ""))
    else:
        ask = ("Solve it step by step, then give the final answer on its own last line as \"Answer: <answer>\"."
               + (" Check the answers above and correct any mistake." if shared or previous else ""))
    parts.append(f"Round {round_no} of {rounds}. {ask}")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n\n".join(parts)}]
