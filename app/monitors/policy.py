"""What a flag does (pure logic): ``block``, ``flag`` or ``log``, chosen per API key, per model, or by default.

* ``block``: the flagged request and every later one in the conversation get an OpenAI-shaped refusal
  (``finish_reason: "content_filter"``); the model is never called for them.
* ``flag``: the answer goes out with the header ``x-junto-monitor: flagged;p=<probability>`` and a metric.
* ``log``: the answer goes out unchanged; the flag is logged and counted.
* ``off``: no monitor for this key or model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Action = Literal["block", "flag", "log", "off"]
REFUSAL = ("I can't help with this conversation: taken together, its requests were flagged by the safety monitor "
           "as pursuing a harmful goal.")
FINISH_REASON = "content_filter"


def action_for(default: Action, keys: Mapping[str, Action], models: Mapping[str, Action], key: str | None,
               model: str | None) -> Action:
    """The action for one request: the API key's, else the model's, else the default."""
    if key is not None and key in keys:
        return keys[key]
    if model is not None and model in models:
        return models[model]
    return default


@dataclass(frozen=True)
class Outcome:
    refuse: bool       # answer with the refusal, without calling the model
    header: str | None  # value of x-junto-monitor, or None
    blocked: bool      # the conversation stays blocked from now on
    event: str         # for metrics and logs: pass | flagged | blocked | refused-earlier


def decide(action: Action, already_blocked: bool, flagged: bool, probability: float | None) -> Outcome:
    """What happens to this request, given the action, whether the conversation was blocked before, and the flag."""
    p = "" if probability is None else f";p={probability:.3f}"
    if action == "block" and already_blocked:
        return Outcome(True, "blocked", True, "refused-earlier")
    if not flagged:
        return Outcome(False, None, already_blocked, "pass")
    if action == "block":
        return Outcome(True, f"blocked{p}", True, "blocked")
    if action == "flag":
        return Outcome(False, f"flagged{p}", False, "flagged")
    return Outcome(False, None, False, "flagged")  # log


def refusal_completion(cid: str, created: int, model: str) -> dict:
    """The OpenAI chat.completion a refused request gets."""
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": REFUSAL},
                         "finish_reason": FINISH_REASON, "logprobs": None}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def refusal_chunks(cid: str, created: int, model: str) -> list[dict]:
    """The chat.completion.chunk objects a refused streamed request gets (before ``[DONE]``)."""
    base = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model}
    return [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": REFUSAL},
                                  "finish_reason": None}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": FINISH_REASON}]}]
