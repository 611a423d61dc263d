"""junto's top-level configuration: which pool, which router, strategy defaults, gateway settings.

``Junto.from_config(path)`` and ``junto serve --config FILE`` take either this file or a bare pool
file (a YAML with ``deployments``), which is then wrapped with defaults. Everything is validated
by pydantic and every problem becomes a ConfigError naming the file and the field.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from junto.errors import ConfigError
from junto.pool.config import Pool, find_pool_file, format_validation_error, load_pool, parse_pool, read_yaml


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _UrlSettings(_Strict):
    """Settings whose YAML may be the URL alone (``store: redis://…``) or a mapping with ``url`` and more."""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"url": data} if isinstance(data, str) else data


class ApiKey(_Strict):
    """One gateway API key. Store ``sha256`` (hex of the key) rather than the key itself."""

    name: str = Field(min_length=1)
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    key_env: str | None = Field(None, description="environment variable holding the plain key")
    requests_per_minute: int | None = Field(None, ge=1)
    tokens_per_minute: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> ApiKey:
        if bool(self.sha256) == bool(self.key_env):
            raise ValueError("give exactly one of 'sha256' (hex digest of the key) or 'key_env'")
        return self

    def digest(self) -> str | None:
        if self.sha256:
            return self.sha256
        value = os.environ.get(self.key_env or "")
        return hashlib.sha256(value.encode()).hexdigest() if value else None


class Cooldown(_Strict):
    """A deployment that fails ``failures`` times in a row is skipped for ``seconds``, then probed back."""

    failures: int = Field(3, ge=1)
    seconds: float = Field(30.0, gt=0)


class GatewaySettings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: list[ApiKey] = Field(default_factory=list)
    #: plain keys, comma-separated, in this environment variable (hashed at start-up)
    api_keys_env: str | None = "JUNTO_API_KEYS"
    default_requests_per_minute: int | None = Field(None, ge=1)
    default_tokens_per_minute: int | None = Field(None, ge=1)
    allow_unauthenticated_public: bool = Field(False, description="listen beyond loopback with no API key")
    max_body_bytes: int = Field(1_000_000, ge=1024)
    max_tokens_limit: int | None = Field(None, ge=1, description="clamp each request's max_tokens to this")
    max_samples_limit: int | None = Field(None, ge=1, description="budget of samples per request for strategies")
    request_timeout_s: float = Field(300.0, gt=0)
    cors_origins: list[str] = Field(default_factory=list)
    cooldown: Cooldown = Field(default_factory=Cooldown)
    graceful_shutdown_s: float = Field(30.0, ge=0)


class MemorySettings(_Strict):
    """Thought templates (FusionFactory's thought-level fusion) prepended to matching prompts."""

    templates: str | None = Field(None, description="a thought-template store directory (junto.memory.templates)")
    template_k: int = Field(2, ge=1, le=16)
    min_similarity: float = Field(0.5, ge=-1, le=1)
    experience: str | None = Field("auto", description="the experience-memory SQLite file (junto.memory.experience) "
                                                       "of strategies that learn from past runs (xolver): 'auto' "
                                                       "(<state dir>/memory/experience.db), a path relative to the "
                                                       "config file, or null / 'off' (no memory); created on first use")
    experience_max_items: int = Field(10_000, ge=1, description="the most experiences kept per kind (lowest "
                                                                "(verified, score, created) dropped first)")


class StoreSettings(_UrlSettings):
    """Where shared state lives (rate limits, cool-downs, conversations, experience memory): see junto.stores.

    ``store: memory`` (default: this process) or ``store: redis://127.0.0.1:6379/0`` (several gateway
    replicas share it); the mapping form sets the rest.
    """

    url: str = Field("memory", description="'memory', or redis://[user:password@]host:port/db (rediss:// for TLS)")
    prefix: str = Field("junto", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                        description="key prefix: replicas of one deployment share it, others pick their own")
    timeout_s: float = Field(0.25, gt=0, le=10, description="wait on Redis per command before serving locally")
    retry_s: float = Field(1.0, gt=0, le=60, description="while Redis is down, try it again this often")
    health_sync_s: float = Field(0.5, gt=0, le=60, description="share cool-downs with other replicas this often")
    conversation_ttl_s: float = Field(86_400.0, gt=0, description="conversation state expires after this")
    experience_ttl_s: float = Field(30 * 86_400.0, gt=0, description="experience records expire after this")
    max_experiences: int = Field(100_000, ge=1)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from urllib.parse import urlsplit

        if v == "memory":
            return v
        shape = ("must be 'memory' or a Redis URL: redis://127.0.0.1:6379/0 (rediss:// for TLS, "
                 "redis://:password@host:6379/0 with a password)")
        try:
            parts = urlsplit(v)
            port = parts.port
        except ValueError:
            raise ValueError(shape) from None
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError(shape)
        if port == 0:
            raise ValueError("the Redis port must be 1-65535")
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError(f"the database after the host must be a number (got {db!r}): redis://host:6379/0")
        return v

    @property
    def shared(self) -> bool:
        return self.url != "memory"


class MonitorSettings(_Strict):
    """A sequential monitor against decomposition attacks, checked before the model is called (junto.monitors;
    docs/monitors.md). ``action`` applies by default; ``keys`` (API key name → action) and ``models`` (requested
    model → action) override it."""

    kind: Literal["off", "classifier", "prompted", "cascade"] = Field(
        "off", description="classifier (embeddings, ms), prompted (a pool model's verdict), cascade (both)")
    action: Literal["block", "flag", "log"] = Field(
        "block", description="block: refuse this and every later request of the conversation; flag: answer with "
                             "the x-junto-monitor header; log: answer, log and count")
    keys: dict[str, Literal["block", "flag", "log", "off"]] = Field(default_factory=dict)
    models: dict[str, Literal["block", "flag", "log", "off"]] = Field(default_factory=dict)
    classifier: str | None = Field(None, description="classifier artifact; default configs/monitors/classifier.json")
    deployment: str | None = Field(None, description="the prompted monitor's judge; default: the pool's default")
    threshold: float | None = Field(None, ge=0, le=1, description="override the tuned threshold (classifier or "
                                                                   "prompted)")
    band: tuple[float, float] | None = Field(None, description="cascade: the classifier's unsure band [low, high)")
    max_requests: int = Field(32, ge=1, le=256, description="newest requests of a conversation the monitor reads")
    ttl_s: float = Field(3600.0, gt=0, description="a conversation's monitor state expires after this")
    timeout_s: float = Field(30.0, gt=0, description="the prompted monitor's call")
    on_error: Literal["allow", "block"] = Field("allow", description="when the monitor itself fails")

    @field_validator("band")
    @classmethod
    def _band(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        if v is not None and not 0.0 <= v[0] <= v[1] <= 1.0:
            raise ValueError("band must be [low, high] with 0 <= low <= high <= 1")
        return v


class CheckpointSettings(_UrlSettings):
    """Checkpoints of strategy runs (LangGraph savers), so that a killed run resumes: see junto.stores.checkpoints."""

    url: str = Field(description="sqlite:///runs.db (relative to this file), sqlite:////abs/runs.db, or "
                                 "postgresql://user@host/db")
    strategies: list[str] | None = Field(None, description="strategies to checkpoint; default: every graph strategy")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        from junto.stores.checkpoints import parse_checkpoint_url

        parse_checkpoint_url(v)
        return v


class JuntoConfig(_Strict):
    pool: str | Pool = Field("embedded", description="pool file path or built-in name, or an inline pool")
    router: str | None = Field(None, description="router artifact directory; overrides the pool's")
    strategy: str = Field("auto", description="auto: the router picks the arm (junto.arms); direct without one")
    strategies: dict[str, dict[str, Any]] = Field(default_factory=dict, description="default parameters per strategy")
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    checkpoints: CheckpointSettings | None = None
    monitor: MonitorSettings = Field(default_factory=MonitorSettings)
    source: Path | None = Field(None, exclude=True)

    @field_validator("strategies")
    @classmethod
    def _dicts(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name, params in v.items():
            if not isinstance(params, dict):
                raise ValueError(f"parameters of strategy {name!r} must be a mapping")
        return v

    def load_pool(self) -> Pool:
        if isinstance(self.pool, Pool):
            return self.pool
        ref = self.pool
        if self.source is not None and not Path(ref).is_absolute() and (self.source.parent / ref).exists():
            ref = str(self.source.parent / ref)
        return load_pool(ref)

    def relative(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() or self.source is None else self.source.parent / p

    def router_path(self, pool: Pool) -> Path | None:
        if self.router:
            p = Path(self.router).expanduser()
            return p if p.is_absolute() or self.source is None else self.source.parent / p
        return pool.resolve_path(pool.router) if pool.router else None


def load_config(ref: str | os.PathLike[str] | None = None) -> JuntoConfig:
    """A junto config file, or a pool file / built-in pool name wrapped in default settings."""
    if ref is None:
        return JuntoConfig()
    path = Path(ref).expanduser()
    if not path.is_file():
        # a built-in pool name, or a missing file (find_pool_file says which)
        find_pool_file(ref)
        return JuntoConfig(pool=str(ref))
    data = read_yaml(path)
    if isinstance(data, dict) and "deployments" in data:
        cfg = JuntoConfig(pool=parse_pool(data, str(path), path.resolve()))
        cfg.source = path.resolve()
        return cfg
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a junto config must be a YAML mapping (pool, router, strategy, gateway)",
                          hint="see configs/junto.yaml for an example")
    try:
        cfg = JuntoConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(str(path), err),
                          hint="fix the field(s) named above; see configs/junto.yaml for an example") from None
    cfg.source = path.resolve()
    return cfg
