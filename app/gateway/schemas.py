"""The OpenAI chat-completions wire format: the request validated as the OpenAI API validates it, the responses.

Every field junto acts on is typed and bounded the way OpenAI bounds it, and a message must carry its
content: a request the OpenAI API would refuse at once is refused here with 400 before any model is
called (a user message without content used to reach llama.cpp and come back a minute later as a
backend failure). Unknown OpenAI fields (``user``, ``metadata``, ``logit_bias``, ...) are accepted and
ignored so that existing clients work unchanged. The response models exist for the OpenAPI document:
what it promises is what the gateway serves (a schema fuzzer checks it in the test suite).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from junto.request import check_stops


class ContentPart(BaseModel):
    """A content part. Only text parts are served: junto's pools are text models."""

    model_config = ConfigDict(extra="allow")
    type: Literal["text"] = Field(description="only 'text' parts are supported")
    text: str


class Message(BaseModel):
    """A chat message. Tool messages are refused: junto's strategies do not run tool calls (yet)."""

    model_config = ConfigDict(extra="allow")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] = Field(description="required: a string or a non-empty list of text parts")
    name: str | None = Field(None, max_length=256)

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, v: Any) -> Any:
        if v is None:
            raise ValueError("a message needs content (a string or a list of text parts)")
        if isinstance(v, list) and not v:
            raise ValueError("content parts must not be an empty list")
        return v

    def plain(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(p.text for p in content)
        role = "system" if self.role == "developer" else self.role
        return {"role": role, "content": content}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1, max_length=1024)
    stream: bool = False
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(None, ge=1, le=1_000_000)
    n: int = Field(1, ge=1, le=1, description="one choice per request; junto-<strategy> models do the sampling")
    stop: str | list[str] | None = Field(None, description="up to 4 sequences")
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    logprobs: bool | None = Field(None, description="returned for non-streamed answers of a deployment or junto-auto")
    top_logprobs: int | None = Field(None, ge=0, le=20)
    junto: dict[str, Any] | None = Field(None, description="strategy parameters, e.g. {\"samples\": 8}")

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        return check_stops(v)  # one rule for every front

    def sampling(self) -> dict[str, Any]:
        """The request contract's sampling fields (``junto.request.Sampling``) that were given."""
        out: dict[str, Any] = {}
        for key in ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty", "stop", "logprobs",
                    "top_logprobs"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        mt = self.max_completion_tokens or self.max_tokens
        if mt is not None:
            out["max_tokens"] = mt
        return out


# -- responses (for the OpenAPI document) ----------------------------------------------------------

class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    """Every error the gateway answers, OpenAI-shaped."""

    error: ErrorDetail


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str = Field(description="the answer, without the model's thinking")
    reasoning_content: str | None = Field(
        None, description="the model's thinking (the text between its thinking tags, e.g. <think>…</think>); "
                          "present only when it thought. In streams: delta.reasoning_content chunks, then "
                          "delta.content chunks (the vLLM / DeepSeek convention)")


class CompletionChoice(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int
    message: AssistantMessage
    finish_reason: str
    logprobs: dict[str, Any] | None = None


class CompletionTokensDetails(BaseModel):
    model_config = ConfigDict(extra="allow")
    reasoning_tokens: int = Field(description="completion tokens spent thinking (thinking tags included); exact "
                                              "where the deployment tokenizes, else estimated (junto."
                                              "reasoning_tokens_estimated)")


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    completion_tokens_details: CompletionTokensDetails | None = Field(
        None, description="present when the answer had thinking")


class ChatCompletion(BaseModel):
    """A non-streamed answer; ``junto`` says who answered, how, and at what cost."""

    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage
    junto: dict[str, Any]


class ModelCard(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    model_config = ConfigDict(extra="allow")
    status: Literal["ready", "unavailable"]
    deployments: dict[str, str]
    store: str | None = Field(None, description="the shared store (store: redis://…): ok, or degraded while "
                                                "unreachable (each replica then serves on its own state)")
