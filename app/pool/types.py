"""Plain result types shared by the pool client, the strategies and the fronts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: True when the server sent no usage and the counts were estimated from the stream
    estimated: bool = False
    #: completion tokens spent thinking (junto.thinking); None: the completion had no thinking
    reasoning_tokens: int | None = None
    #: True when reasoning_tokens was estimated (the deployment cannot tokenize)
    reasoning_estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def __add__(self, other: Usage) -> Usage:
        if self.reasoning_tokens is None and other.reasoning_tokens is None:
            reasoning = None
        else:
            reasoning = (self.reasoning_tokens or 0) + (other.reasoning_tokens or 0)
        return Usage(self.prompt_tokens + other.prompt_tokens, self.completion_tokens + other.completion_tokens,
                     self.estimated or other.estimated, reasoning,
                     self.reasoning_estimated or other.reasoning_estimated)


@dataclass
class Choice:
    index: int
    text: str
    finish_reason: str | None = None
    #: per-token log probabilities of the generated text, when asked for and returned
    token_logprobs: list[float] | None = None
    #: the server's ``logprobs`` object as sent (OpenAI shape), for fronts that return it
    logprobs: dict | None = None

    @property
    def mean_logprob(self) -> float | None:
        if not self.token_logprobs:
            return None
        return sum(self.token_logprobs) / len(self.token_logprobs)


@dataclass
class ChatResult:
    deployment: str
    model: str
    choices: list[Choice]
    usage: Usage
    cost_usd: float
    latency_s: float
    #: how the request was served: "single", "native-n" (one request, n choices), "fanout"
    #: (n concurrent requests: the backend ignores n), or "litellm"
    path: str
    requests: int = 1

    @property
    def text(self) -> str:
        return self.choices[0].text if self.choices else ""


@dataclass
class StreamDelta:
    """A piece of generated text."""

    text: str
    index: int = 0


@dataclass
class StreamEnd:
    """The last event of a stream."""

    deployment: str
    model: str
    usage: Usage
    cost_usd: float
    latency_s: float
    ttft_s: float | None
    finish_reason: str | None = None
    path: str = "single"
    extra: dict = field(default_factory=dict)
