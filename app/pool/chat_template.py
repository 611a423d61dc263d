"""A deployment's own chat template, read from its model files and rendered the way the servers do.

Sources: a GGUF's metadata (``tokenizer.chat_template`` and the BOS/EOS token texts, read with the
``gguf`` package, llama.cpp's own reader) and a Hugging Face model directory's
``tokenizer_config.json`` (what vLLM loads; junto's converted models live in
``<cache>/models/<key>-hf``). Rendering follows Hugging Face's ``apply_chat_template``: jinja2's
``ImmutableSandboxedEnvironment`` with ``trim_blocks``/``lstrip_blocks``, ``raise_exception`` and
``strftime_now``; ``continue_final=True`` renders the conversation whole and cuts it just after the
last occurrence of the final (assistant) message's text, as HF and vLLM do for
``continue_final_message``, so the prompt ends exactly with the text already written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from junto.errors import ConfigError

Message = Mapping[str, Any]

#: appended to the final message before rendering, so the cut falls exactly after its text
_SENTINEL = "\u2063JUNTO-CONTINUE-FINAL\u2063"


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and the special-token texts it refers to."""

    template: str
    bos_token: str = ""
    eos_token: str = ""
    #: where it was read from (a GGUF file, a tokenizer_config.json, a server URL), for messages
    source: str = ""
    #: the server's tokenizer adds BOS itself (GGUF ``tokenizer.ggml.add_bos_token``); None: unknown
    add_bos: bool | None = None

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = False,
               continue_final: bool = False) -> str:
        """:func:`render` with this template's tokens."""
        return render(messages, self.template, bos_token=self.bos_token, eos_token=self.eos_token,
                      add_generation_prompt=add_generation_prompt, continue_final=continue_final)

    def completion_prompt(self, messages: Sequence[Message], *, add_generation_prompt: bool = False,
                          continue_final: bool = False) -> str:
        """The rendered prompt as a raw completion should send it: when the server adds BOS itself, the
        template's leading BOS text is dropped (else the model would see two)."""
        text = self.render(messages, add_generation_prompt=add_generation_prompt, continue_final=continue_final)
        if self.add_bos and self.bos_token and text.startswith(self.bos_token):
            text = text[len(self.bos_token):]
        return text


# -- reading --------------------------------------------------------------------------------------
def from_gguf(path: str | Path) -> ChatTemplate:
    """The chat template and BOS/EOS texts in a GGUF file's metadata (ConfigError when it has none)."""
    p = Path(path).expanduser()
    try:
        st = p.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read the GGUF file {p}: {exc.strerror or exc}",
                          hint="check the deployment's 'model' path") from None
    return _from_gguf_cached(str(p.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=16)
def _from_gguf_cached(path: str, _mtime_ns: int, _size: int) -> ChatTemplate:
    try:
        import gguf
    except ImportError:  # pragma: no cover - a core dependency
        raise ConfigError("reading a GGUF's chat template needs the gguf package", hint="pip install gguf") from None
    try:
        reader = gguf.GGUFReader(path, "r")
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{path} is not a readable GGUF file: {exc}",
                          hint="re-pull the model (`junto models pull`) or fix the deployment's 'model'") from None
    fields = reader.fields

    def value(key: str) -> Any:
        f = fields.get(key)
        return f.contents() if f is not None else None

    template = value("tokenizer.chat_template")
    if not template:
        raise ConfigError(f"{path} carries no chat template (tokenizer.chat_template)",
                          hint="use a GGUF with a chat template, or set launch.chat_format and let the server "
                               "render it")
    tokens = fields.get("tokenizer.ggml.tokens")

    def token_text(key: str) -> str:
        tid = value(key)
        if tid is None or tokens is None:
            return ""
        try:
            return str(tokens.contents(int(tid)))
        except (IndexError, ValueError, TypeError):
            return ""

    add_bos = value("tokenizer.ggml.add_bos_token")
    return ChatTemplate(str(template), token_text("tokenizer.ggml.bos_token_id"),
                        token_text("tokenizer.ggml.eos_token_id"), source=path,
                        add_bos=bool(add_bos) if add_bos is not None else None)


def _token_text(v: Any) -> str:
    # tokenizer_config.json writes a special token as text or as an AddedToken dict
    if isinstance(v, dict):
        v = v.get("content")
    return v if isinstance(v, str) else ""


def from_hf_dir(path: str | Path) -> ChatTemplate:
    """The chat template and BOS/EOS texts of a Hugging Face model directory (``tokenizer_config.json``,
    or a ``chat_template.jinja`` / ``chat_template.json`` beside it)."""
    d = Path(path).expanduser()
    cfg_file = d / "tokenizer_config.json"
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{d} has no tokenizer_config.json", hint="point the deployment at a Hugging Face model "
                                                                    "directory with its tokenizer") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {cfg_file}: {exc}") from None
    template = cfg.get("chat_template")
    if isinstance(template, list):  # named templates: [{"name": "default", "template": ...}, ...]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if not template and (d / "chat_template.jinja").is_file():
        template = (d / "chat_template.jinja").read_text(encoding="utf-8")
    if not template and (d / "chat_template.json").is_file():
        try:
            template = json.loads((d / "chat_template.json").read_text(encoding="utf-8")).get("chat_template")
        except (OSError, ValueError, AttributeError):
            template = None
    if not isinstance(template, str) or not template:
        raise ConfigError(f"{d} carries no chat template (tokenizer_config.json, chat_template.jinja)",
                          hint="use an instruct model's directory, which ships its chat template")
    return ChatTemplate(template, _token_text(cfg.get("bos_token")), _token_text(cfg.get("eos_token")),
                        source=str(d), add_bos=None)


def for_deployment(dep: Any, base: Path | None = None) -> ChatTemplate:
    """The template of a deployment's model files: the GGUF of a llamacpp deployment, the model directory
    of a vllm one (``embedded-hf:`` keys resolve to the converted directory). ConfigError when junto cannot
    reach the files (a remote server: use the server's own rendering)."""
    if dep.backend == "llamacpp" and dep.url is None:
        from junto.pool.models import resolve_model_file

        return from_gguf(resolve_model_file(dep.model, base))
    if dep.backend == "vllm" and dep.url is None:
        from junto.pool.convert import EMBEDDED_HF_PREFIX, converted_dir, is_converted

        if dep.model.startswith(EMBEDDED_HF_PREFIX):
            key = dep.model[len(EMBEDDED_HF_PREFIX):]
            if not is_converted(key):
                raise ConfigError(f"deployment {dep.name!r}: the converted model {key!r} is missing",
                                  hint=f"junto models convert {key}")
            return from_hf_dir(converted_dir(key))
        local = Path(dep.model).expanduser()
        if not local.is_absolute() and base is not None:
            local = base / local
        if local.is_dir():
            return from_hf_dir(local)
    raise ConfigError(f"deployment {dep.name!r}: junto cannot read its chat template from the model files "
                      f"(backend {dep.backend!r}, model {dep.model!r})",
                      hint="a llama.cpp server's template is read from its /props; a vLLM server renders it "
                           "itself (continue_final_message)")


# -- rendering ------------------------------------------------------------------------------------
def _raise_exception(message: str) -> None:
    import jinja2

    raise jinja2.exceptions.TemplateError(message)


def _tojson(x: Any, ensure_ascii: bool = False, indent: int | None = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    # as Hugging Face: no HTML escaping (jinja2's own tojson escapes <, >, &, ')
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


@lru_cache(maxsize=32)
def _compile(template: str) -> Any:
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"the chat template does not parse: {exc.message} (line {exc.lineno})",
                          hint="fix the template, or let the server render it") from None


def _render(messages: list[dict[str, Any]], template: str, **kw: Any) -> str:
    import jinja2

    try:
        return _compile(template).render(messages=messages, tools=None, documents=None, **kw)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"the chat template refused the conversation: {exc}",
                          hint="check the roles and their order (some templates need user/assistant to alternate)"
                          ) from None


def render(messages: Sequence[Message], template: str, *, bos_token: str = "", eos_token: str = "",
           add_generation_prompt: bool = False, continue_final: bool = False) -> str:
    """Render ``messages`` with ``template`` in a sandbox, as Hugging Face's ``apply_chat_template`` does.

    ``continue_final=True``: the last message is an assistant message whose text is already written; the
    prompt ends exactly with that text (no end-of-turn after it), ready for a raw completion to continue.
    As in Hugging Face (and so vLLM), a marker is appended to the final message, the whole conversation is
    rendered, and the prompt is cut at the marker. When the template rewrites the final message (a
    template that drops ``<think>…</think>`` from assistant turns), the marker alone is rendered as the
    message and the text is put after the cut as written.
    """
    msgs = [dict(m) for m in messages]
    kw = {"bos_token": bos_token, "eos_token": eos_token}
    if not continue_final:
        return _render(msgs, template, add_generation_prompt=add_generation_prompt, **kw)
    if add_generation_prompt:
        raise ConfigError("add_generation_prompt and continue_final exclude each other",
                          hint="continue_final continues the final (assistant) message; add_generation_prompt "
                               "opens a new one")
    if not msgs or msgs[-1].get("role") != "assistant":
        raise ConfigError("continue_final needs the conversation to end with an assistant message",
                          hint="append {'role': 'assistant', 'content': <the text already written>}")
    final = msgs[-1].get("content")
    if not isinstance(final, str):
        raise ConfigError("continue_final needs the final assistant message's content as text")
    msgs[-1]["content"] = final + _SENTINEL
    text = _render(msgs, template, add_generation_prompt=False, **kw)
    at = text.rfind(_SENTINEL)
    if at >= 0 and text[:at].endswith(final):
        return text[:at]
    msgs[-1]["content"] = _SENTINEL
    text = _render(msgs, template, add_generation_prompt=False, **kw)
    at = text.rfind(_SENTINEL)
    if at < 0:
        raise ConfigError("the chat template drops the final assistant message, so it cannot be continued",
                          hint="use a template that renders assistant messages, or a server-side prefill")
    return text[:at] + final
