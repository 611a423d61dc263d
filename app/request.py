"""The request contract: what any caller may ask of any strategy, validated once, in one place.

Every front (``junto chat``, the SDK, the gateway, ``junto eval``) hands the facade a flat mapping of
options; :func:`build_request` splits it into three validated parts:

* **sampling** — the OpenAI sampling fields (``temperature``, ``top_p``, ``max_tokens``, ``seed``,
  ``stop``, ``presence_penalty``, ``frequency_penalty``, ``logprobs``, ``top_logprobs``), typed and
  bounded as the OpenAI API bounds them; they reach every model call a strategy makes.
* **budgets** — ``max_samples`` (samples over all models) and ``deadline_s`` (wall-clock seconds).
* **strategy parameters** — everything else, validated by the strategy's own parameter model
  (``samples``, ``early_stop``, ``threshold``, …); sampling fields the strategy declares itself
  (its own ``temperature`` default, say) are given to it too, so an explicit request value wins.

Configured defaults (``strategies: {sc: {...}}`` in a junto config) go through the same function,
request values overriding them. A bad value raises :class:`~junto.errors.ConfigError` whose
``param`` names the field, so the gateway answers 400 naming it and the CLI exits 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from junto.errors import ConfigError


def check_stops(v: str | list[str] | None) -> str | list[str] | None:
    """OpenAI's rule for ``stop``: a string, or at most 4 non-empty strings."""
    if isinstance(v, list):
        if len(v) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not s for s in v):
            raise ValueError("stop sequences must not be empty")
    return v


class Sampling(BaseModel):
    """OpenAI sampling fields passed to the model calls (``None``: the server's default)."""

    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(None, ge=1, le=1_000_000)
    seed: int | None = Field(None, ge=-(2**63), lt=2**63)
    stop: str | list[str] | None = None
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=20)

    @field_validator("stop")
    @classmethod
    def _stops(cls, v: str | list[str] | None) -> str | list[str] | None:
        return check_stops(v)

    def given(self) -> dict[str, Any]:
        """The fields that were set, as keyword arguments for the pool client."""
        return {k: v for k, v in self.model_dump().items() if v is not None}


class Budgets(BaseModel):
    """Limits on a whole strategy run."""

    model_config = ConfigDict(extra="forbid")

    max_samples: int | None = Field(None, ge=1, le=4096, description="samples over all models")
    deadline_s: float | None = Field(None, gt=0, description="wall-clock seconds for the whole run")


SAMPLING_FIELDS: tuple[str, ...] = tuple(Sampling.model_fields)
BUDGET_FIELDS: tuple[str, ...] = tuple(Budgets.model_fields)


@dataclass(frozen=True)
class Request:
    """A validated request: the strategy, its sampling, budgets and parameters.

    ``params`` holds the strategy's own parameters as given (validated by its model; ``{}`` for
    ``direct``), ``passthrough`` the sampling fields the strategy does not declare, which the
    strategy's model calls carry unchanged (e.g. ``presence_penalty`` for ``sc``).
    """

    strategy: str
    sampling: Sampling
    budgets: Budgets
    params: dict[str, Any]
    passthrough: dict[str, Any]


def _field_error(where: str, err: ValidationError) -> ConfigError:
    first = err.errors(include_url=False)[0]
    field = ".".join(str(x) for x in first["loc"]) or "(request)"
    if first["type"] == "extra_forbidden":
        return ConfigError(f"{where}: unknown parameter {field!r}", param=field)
    return ConfigError(f"{where}: {field}: {first['msg']} (got {first.get('input')!r})", param=field)


def build_request(strategy: str, options: Mapping[str, Any] | None = None,
                  defaults: Mapping[str, Any] | None = None) -> Request:
    """Validate ``options`` (over ``defaults``) for ``strategy``; a :class:`ConfigError` naming the field."""
    if options is not None and not isinstance(options, Mapping):
        raise ConfigError(f"request options must be a mapping (got {type(options).__name__})")
    merged = {**(defaults or {}), **(options or {})}
    try:
        sampling = Sampling.model_validate({k: merged.pop(k) for k in SAMPLING_FIELDS if k in merged})
        budgets = Budgets.model_validate({k: merged.pop(k) for k in BUDGET_FIELDS if k in merged})
    except ValidationError as err:
        raise _field_error("request", err) from None
    given = sampling.given()
    if strategy in ("direct", "auto"):  # auto: the router's arm decides the strategy, later (junto.arms)
        if merged:
            name = sorted(merged)[0]
            raise ConfigError(f"strategy {strategy!r} takes no parameter {name!r}",
                              hint="direct takes only sampling fields (" + ", ".join(SAMPLING_FIELDS)
                                   + "); pick a strategy for the others (e.g. sc)", param=name)
        return Request(strategy, sampling, budgets, {}, given)
    if sampling.logprobs or sampling.top_logprobs:
        raise ConfigError(f"strategy {strategy!r} does not return logprobs",
                          hint="logprobs come back with direct answers; voting strategies weigh samples by them "
                               "with the parameter weight=logprob", param="logprobs")
    from junto.reasoning import get_strategy, validate_params  # the reasoning layer is optional

    declared = get_strategy(strategy).params_model.model_fields
    params = {**{k: v for k, v in given.items() if k in declared}, **merged}
    validate_params(strategy, params)  # raises a ConfigError naming each bad parameter
    # logprobs are the strategy's own business (weight=logprob): a false/zero value from the client means nothing
    passthrough = {k: v for k, v in given.items() if k not in declared and k not in ("logprobs", "top_logprobs")}
    return Request(strategy, sampling, budgets, params, passthrough)
