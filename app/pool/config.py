"""Pool configuration: which deployments exist, how to launch them, what they cost.

A pool is a YAML file (``configs/pools/*.yaml``) validated by the pydantic models below. Loading
never raises a pydantic traceback at a user: :func:`load_pool` turns every problem into a
:class:`~junto.errors.ConfigError` that names the file, the field and what is allowed.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from junto.arms import Arm, arm_problems, implicit_arms
from junto.errors import ConfigError

Backend = Literal["llamacpp", "vllm", "openai", "litellm"]
BACKENDS: tuple[str, ...] = ("llamacpp", "vllm", "openai", "litellm")
#: Backends whose servers junto can start and stop itself.
MANAGED_BACKENDS = ("llamacpp", "vllm")

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


LLAMACPP_SERVERS: tuple[str, ...] = ("llama-server", "llama-cpp-python")


class LlamaCppLaunch(_Strict):
    """Settings for a llama.cpp server: llama.cpp's own ``llama-server`` (the default: parallel slots,
    continuous batching; built by ``make install``) or llama-cpp-python's (``python -m llama_cpp.server``,
    one request at a time)."""

    kind: Literal["llamacpp"] = Field("llamacpp", exclude=True, description="set from the deployment's backend")
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="fixed port; default: a free one")
    n_threads: int | Literal["auto"] = Field(
        "auto", description="CPU threads: a whole number ≥ 1, or 'auto' (junto.pool.threads: cores the process may "
                            "use, less a reserve, shared among the pool's local llama.cpp deployments)")
    n_threads_batch: int | Literal["auto"] = Field("auto", description="prompt-processing threads; 'auto': n_threads")
    n_batch: int = Field(512, ge=1)
    chat_format: str | None = None
    server: Literal["llama-server", "llama-cpp-python"] = Field(
        "llama-server", description="which llama.cpp server runs it: 'llama-server' (llama.cpp's own: parallel slots "
                                    "= max_concurrency, continuous batching) or 'llama-cpp-python' (serial)")
    server_binary: str | None = Field(None, description="llama-server only: the binary to run; default "
                                                        "$JUNTO_LLAMA_SERVER, else the one `make install` built")
    startup_timeout_s: float = Field(120.0, gt=0)
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("server", mode="before")
    @classmethod
    def _server(cls, v: Any) -> Any:
        if v is None:
            return "llama-server"
        if v not in LLAMACPP_SERVERS:
            raise ValueError(f"must be one of {', '.join(LLAMACPP_SERVERS)}")
        return v

    @model_validator(mode="after")
    def _server_binary_needs_llama_server(self) -> LlamaCppLaunch:
        if self.server_binary and self.server != "llama-server":
            raise ValueError("server_binary applies to 'server: llama-server' only")
        return self

    @field_validator("n_threads", "n_threads_batch", mode="before")
    @classmethod
    def _threads(cls, v: Any) -> Any:
        # one clear message instead of pydantic's two (one per member of the union)
        if v is None or (isinstance(v, str) and v.strip().lower() == "auto"):
            return "auto"
        if isinstance(v, int) and not isinstance(v, bool) and v >= 1:
            return v
        raise ValueError("must be a whole number ≥ 1 or 'auto' (auto: junto picks from the cores it may use)")


class VllmLaunch(_Strict):
    """Settings for a vLLM OpenAI-compatible server (``python -m vllm.entrypoints.openai.api_server``)."""

    kind: Literal["vllm"] = Field("vllm", exclude=True, description="set from the deployment's backend")
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535)
    python: str | None = Field(None, description="the vLLM virtualenv's python; default $JUNTO_VLLM_PYTHON")
    dtype: str = "auto"
    max_model_len: int | None = Field(None, ge=16)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1,
                                                 description="fraction of each of its GPUs' memory (vLLM default 0.9)")
    device: int | None = Field(None, ge=0, description="GPU index, for layout validation and CUDA_VISIBLE_DEVICES")
    devices: list[int] | None = Field(None, min_length=1, description="GPU indices, for tensor/data parallelism")
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1, description="engine replicas behind this one server (vLLM DP)")
    max_num_seqs: int | None = Field(None, ge=1, description="sequences batched at once (vLLM default 256 on GPU)")
    enable_prefix_caching: bool = True
    cpu_kvcache_space_gib: int | None = Field(None, ge=1, description="CPU build: KV cache GiB (VLLM_CPU_KVCACHE_SPACE)")
    cpu_threads_bind: str | None = Field(None, description="CPU build: 'auto', 'nobind' or core ids (VLLM_CPU_OMP_THREADS_BIND)")
    cpu_reserved_cores: int | None = Field(None, ge=0, description="CPU build: cores kept free of OpenMP threads")
    startup_timeout_s: float = Field(900.0, gt=0)
    extra_args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)

    def device_list(self) -> list[int]:
        """The GPU indices this server is pinned to (empty: not pinned, vLLM takes the first ones visible)."""
        if self.devices is not None:
            return list(self.devices)
        return [self.device] if self.device is not None else []


LAUNCH_MODELS: dict[str, type[_Strict]] = {"llamacpp": LlamaCppLaunch, "vllm": VllmLaunch}


class Price(_Strict):
    """US dollars per million tokens."""

    input: float = Field(0.0, ge=0)
    output: float = Field(0.0, ge=0)

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input + completion_tokens * self.output) / 1_000_000


#: what a deployment can be asked to do (junto.pool.capabilities declares each backend's defaults)
CAPABILITIES = ("chat", "completions", "prefill", "logprobs", "top_logprobs", "native_n", "tokenize", "reasoning")


class Thinking(_Strict):
    """How a deployment thinks: the tags its reasoning is written between, and (for an instruct model that
    does not think by itself) the system prompt that makes it think inside them."""

    open: str = Field("<think>", min_length=1)
    close: str = Field("</think>", min_length=1)
    prompt: str | None = Field(None, description="system prompt that makes an instruct model think inside the "
                                                  "tags; used by the thinking strategies (thoughtmani, trimr)")
    starts_inside: bool = Field(False, description="the chat template opens the thinking (DeepSeek-R1 distills, "
                                                   "QwQ): the completion starts inside it, with no open tag")


class Deployment(_Strict):
    """One model behind one endpoint."""

    name: str = Field(pattern=NAME_PATTERN)
    backend: Backend
    model: str = Field(min_length=1, description="path, model id, litellm model string, or embedded:<key>")
    url: str | None = Field(None, description="base URL of a running OpenAI-compatible server (…/v1)")
    urls: list[str] | None = Field(None, min_length=1, description="backend 'openai' only: base URLs of replicas "
                                   "serving the same model; requests spread over them in turn and fail over "
                                   "between them (a replica refusing connections is skipped for a while)")
    api_key_env: str | None = Field(None, description="environment variable holding the endpoint's API key")
    launch: Annotated[LlamaCppLaunch | VllmLaunch, Field(discriminator="kind")] | None = None
    context_length: int = Field(2048, ge=16)
    price: Price = Field(default_factory=Price)
    tags: list[str] = Field(default_factory=list)
    max_concurrency: int = Field(4, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    connect_retries: int = Field(2, ge=0, le=10)
    capabilities: dict[Literal[CAPABILITIES], bool] = Field(  # type: ignore[valid-type]
        default_factory=dict, description="override the backend's declared capabilities, e.g. {prefill: false}")
    thinking: Thinking | None = Field(None, description="the deployment is a thinking model (or is prompted to be "
                                                        "one): where its reasoning is and how to ask for it")

    @model_validator(mode="before")
    @classmethod
    def _launch_for_backend(cls, data: Any) -> Any:
        # the backend decides which launch model applies; tag the mapping so errors name its fields
        if isinstance(data, dict) and isinstance(data.get("launch"), dict):
            if data.get("backend") in LAUNCH_MODELS:
                data = {**data, "launch": {**data["launch"], "kind": data["backend"]}}
            elif data.get("backend") in BACKENDS:
                raise ValueError(f"backend {data['backend']!r} is not started by junto, so it takes no 'launch' settings")
        elif isinstance(data, dict) and data.get("backend") in LAUNCH_MODELS and data.get("launch") is None:
            data = {**data, "launch": {"kind": data["backend"]}}
        return data

    @field_validator("url")
    @classmethod
    def _url_shape(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if not v.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return v.rstrip("/")

    @model_validator(mode="before")
    @classmethod
    def _replica_urls(cls, data: Any) -> Any:
        # 'urls' lists replicas; 'url' is then the first of them (launcher, probes and logs keep working on one URL)
        if isinstance(data, dict) and isinstance(data.get("urls"), list) and data["urls"]:
            urls = [u.rstrip("/") if isinstance(u, str) else u for u in data["urls"]]
            first = urls[0]
            if data.get("url") is not None and str(data["url"]).rstrip("/") != first:
                raise ValueError("give either 'url' (one server) or 'urls' (replicas of one model), not both")
            data = {**data, "urls": urls, "url": first}
        return data

    @field_validator("urls")
    @classmethod
    def _urls_shape(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        for i, u in enumerate(v):
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"urls[{i}] {u!r} must start with http:// or https://")
        if len(set(v)) != len(v):
            raise ValueError("lists a replica twice; each URL once")
        return v

    @model_validator(mode="after")
    def _backend_needs(self) -> Deployment:
        if self.backend == "openai" and not self.url:
            raise ValueError("backend 'openai' needs 'url', the base URL of the server (e.g. http://host:8000/v1)")
        if self.urls is not None and self.backend != "openai":
            raise ValueError(f"'urls' (a replica set) is for backend 'openai'; a {self.backend!r} deployment is one "
                             f"server at one URL: list running replicas under a backend 'openai' deployment, or use "
                             f"vLLM's launch.data_parallel_size (see docs/scale-out.md)")
        return self

    @property
    def managed(self) -> bool:
        """True when junto starts and stops this deployment's server itself."""
        return self.backend in MANAGED_BACKENDS and self.url is None

    @property
    def api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class Pool(_Strict):
    """A named set of deployments, plus the optional router that chooses among them."""

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    deployments: list[Deployment] = Field(min_length=1)
    default: str | None = Field(None, description="deployment used when nothing routes; default: the first")
    router: str | None = Field(None, description="path to a router artifact directory (junto route fit)")
    arms: list[Arm] = Field(default_factory=list, description="routing arms: (deployment, strategy, params); "
                                                              "default one direct arm per deployment")
    source: Path | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _names(self) -> Pool:
        seen: set[str] = set()
        for dep in self.deployments:
            if dep.name in seen:
                raise ValueError(f"deployment name {dep.name!r} appears twice; names must be unique")
            seen.add(dep.name)
        if self.default is not None and self.default not in seen:
            raise ValueError(f"default {self.default!r} is not a deployment of this pool (have: {', '.join(sorted(seen))})")
        problems = arm_problems(self.arms, [d.name for d in self.deployments])
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _layout(self) -> Pool:
        # impossible placements (over-committed GPUs, clashing ports or served names) fail at load, not at start
        from junto.pool.layout import layout_problems

        problems = layout_problems(self.deployments)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def arm_list(self) -> list[Arm]:
        """The pool's routing arms: those it lists, else one direct arm per deployment."""
        return list(self.arms) or implicit_arms([d.name for d in self.deployments])

    def arm(self, name: str) -> Arm:
        for a in self.arm_list():
            if a.name == name:
                return a
        raise ConfigError(f"pool {self.name!r} has no arm {name!r}",
                          hint=f"choose one of: {', '.join(a.name for a in self.arm_list())}")

    def deployment(self, name: str) -> Deployment:
        for dep in self.deployments:
            if dep.name == name:
                return dep
        raise ConfigError(
            f"pool {self.name!r} has no deployment {name!r}",
            hint=f"choose one of: {', '.join(d.name for d in self.deployments)}",
        )

    @property
    def default_deployment(self) -> Deployment:
        return self.deployment(self.default) if self.default else self.deployments[0]

    def resolve_path(self, value: str) -> Path:
        """A path from the file, taken relative to the file's folder."""
        p = Path(value).expanduser()
        if not p.is_absolute() and self.source is not None:
            p = self.source.parent / p
        return p


def builtin_pools_dir() -> Path:
    return Path(str(resources.files("junto.configs") / "pools"))


def builtin_pool_names() -> list[str]:
    return sorted(p.stem for p in builtin_pools_dir().glob("*.yaml"))


def find_pool_file(ref: str | os.PathLike[str] | None) -> Path:
    """Resolve ``--pool``: a path to a YAML file, or the name of a pool shipped with junto."""
    if ref is None:
        ref = os.environ.get("JUNTO_POOL", "embedded")
    path = Path(ref).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists() or os.sep in str(ref):
        if not path.is_file():
            raise ConfigError(
                f"pool file not found: {path}",
                hint=f"pass an existing YAML file, or a built-in pool name ({', '.join(builtin_pool_names())})",
            )
        return path
    builtin = builtin_pools_dir() / f"{ref}.yaml"
    if builtin.is_file():
        return builtin
    raise ConfigError(
        f"no pool named {str(ref)!r}",
        hint=f"built-in pools: {', '.join(builtin_pool_names())}; or pass a path to a pool YAML file",
    )


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def format_validation_error(source: str, err: ValidationError) -> str:
    lines = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        # drop the discriminator tag pydantic inserts after 'launch'
        loc = tuple(p for i, p in enumerate(loc) if not (i > 0 and loc[i - 1] == "launch" and p in LAUNCH_MODELS))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field (check the spelling; see configs/pools/embedded.yaml for the fields)"
        elif "input" in e and e["type"] not in ("missing",) and not isinstance(e["input"], (dict, list)):
            msg += f" (got {e['input']!r})"
        lines.append(f"{source}: {_format_loc(loc)}: {msg}")
    return "\n".join(lines)


def parse_pool(data: Any, source: str = "<pool>", path: Path | None = None) -> Pool:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a pool file must be a YAML mapping with 'name' and 'deployments'",
                          hint="see configs/pools/embedded.yaml for an example")
    try:
        pool = Pool.model_validate(data)
    except ValidationError as err:
        raise ConfigError(format_validation_error(source, err),
                          hint="fix the field(s) named above; see configs/pools/embedded.yaml for an example") from None
    pool.source = path
    return pool


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; unreadable or malformed files become ConfigErrors naming the line."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}",
                          hint="fix the YAML syntax (indentation, colons, quotes)") from None


def load_pool(ref: str | os.PathLike[str] | None = None) -> Pool:
    """Load and validate a pool from a file path or a built-in pool name (default ``embedded``)."""
    path = find_pool_file(ref)
    return parse_pool(read_yaml(path), str(path), path.resolve())
