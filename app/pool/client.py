"""One async client for every deployment of a pool.

Two paths behind one interface:

* OpenAI-compatible servers (vLLM, llama.cpp, any OpenAI-compatible URL) are called directly over
  one shared, pooled ``aiohttp.ClientSession``. This is the hot path. aiohttp rather than httpx:
  measured here against a loopback stub, one call costs ~0.3 ms through aiohttp, ~0.9 ms through
  httpx, ~1.7 ms through the openai SDK and ~4.5 ms through ``litellm.acompletion``
  (bench/results/client_overhead.json), and the gateway's added latency is mostly this call.
* Providers that are not OpenAI-compatible (backend ``litellm``) go through ``litellm.acompletion``,
  imported lazily with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` so it never reaches the network.

``n > 1`` is one request where the backend honours ``n`` (vLLM: the prompt is prefilled once) and
``n`` concurrent requests otherwise (llama.cpp ignores ``n``), bounded by the deployment's
``max_concurrency``. Only connection errors (the request never reached the server) are retried,
with exponential backoff; anything else surfaces as a :class:`~junto.errors.BackendError` that says
whether a fallback to another deployment makes sense (``retryable``).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import aiohttp

from junto.errors import BackendError, ConfigError
from junto.pool.backends import get_backend
from junto.pool.config import Deployment, Pool
from junto.pool.replicas import ReplicaSet
from junto.pool.types import ChatResult, Choice, StreamDelta, StreamEnd, Usage

Message = Mapping[str, Any]

#: the request never got an answer: refused, or a pooled keep-alive connection found dead (the server
#: restarted or crashed). Safe to retry on a fresh connection: no answer was produced.
_CONNECTION_ERRORS = (aiohttp.ClientConnectorError, aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")

#: request fields junto passes through to the server when set
_PARAMS = ("temperature", "top_p", "max_tokens", "stop", "seed", "presence_penalty", "frequency_penalty",
           "top_logprobs")


def _parse_choice(raw: Any, index: int) -> Choice:
    msg = raw.get("message") or {}
    text = msg.get("content")
    if text is None:
        text = raw.get("text", "")
    lp = raw.get("logprobs")
    token_lps = None
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        token_lps = [float(t["logprob"]) for t in lp["content"] if isinstance(t, dict) and "logprob" in t]
    return Choice(index=index, text=text or "", finish_reason=raw.get("finish_reason"), token_logprobs=token_lps,
                  logprobs=lp if isinstance(lp, dict) else None)


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """A prompt's token count when the server reports none: ~4 characters a token plus the chat
    template's few tokens per message (role markers). An estimate: results carry ``estimated=True``."""
    chars = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            chars += sum(len(str(p.get("text") or "")) for p in content if isinstance(p, dict))
        else:
            chars += len(str(content or ""))
    return -(-chars // 4) + 4 * len(messages) + 2


def _usage_from(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    try:
        return Usage(int(raw.get("prompt_tokens") or 0), int(raw.get("completion_tokens") or 0))
    except (TypeError, ValueError):
        return None


class PoolClient:
    """Chat with any deployment of ``pool``; ``endpoints`` maps deployment name to base URL (…/v1)."""

    def __init__(self, pool: Pool, endpoints: Mapping[str, str] | None = None, *,
                 session: aiohttp.ClientSession | None = None, connect_timeout_s: float = 5.0):
        self.pool = pool
        self.endpoints = dict(endpoints or {})
        for dep in pool.deployments:
            if dep.url:
                self.endpoints.setdefault(dep.name, dep.url)
        self._http = session
        self._own_http = session is None
        self._connect_timeout_s = connect_timeout_s
        self._sems: dict[str, asyncio.Semaphore] = {}
        #: deployments served by several replicas (``urls``): requests spread over them and fail over
        self.replicas: dict[str, ReplicaSet] = {d.name: ReplicaSet(d.urls) for d in pool.deployments
                                                if d.urls and len(d.urls) > 1}

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def http(self) -> aiohttp.ClientSession:
        """The shared session, created on first use inside the running loop."""
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=30),
                timeout=aiohttp.ClientTimeout(total=None, connect=self._connect_timeout_s),
                # honour HTTP(S)_PROXY / NO_PROXY when set; otherwise skip the per-request proxy lookup,
                # which aiohttp runs in a thread pool (it doubled the client's cost per call here)
                trust_env=any(os.environ.get(v) for v in _PROXY_VARS),
            )
            self._own_http = True
        return self._http

    def _timeout(self, dep: Deployment, timeout: float | None) -> aiohttp.ClientTimeout:
        # sock_read bounds each wait for bytes: a hung server, or a stream that stalls
        return aiohttp.ClientTimeout(total=None, connect=self._connect_timeout_s, sock_read=timeout or dep.timeout_s)

    async def aclose(self) -> None:
        if self._http is not None and self._own_http:
            await self._http.close()
            self._http = None

    async def __aenter__(self) -> PoolClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- helpers -----------------------------------------------------------------------------
    def _sem(self, dep: Deployment) -> asyncio.Semaphore:
        sem = self._sems.get(dep.name)
        if sem is None:
            sem = self._sems[dep.name] = asyncio.Semaphore(dep.max_concurrency)
        return sem

    def _url(self, dep: Deployment) -> str:
        replicas = self.replicas.get(dep.name)
        if replicas is not None:
            return replicas.pick() or dep.url or ""
        url = self.endpoints.get(dep.name)
        if not url:
            raise BackendError(
                f"deployment {dep.name!r} has no running endpoint",
                hint=f"start the pool first: junto pool up --pool {self.pool.source or self.pool.name}",
                deployment=dep.name, retryable=True,
            )
        return url

    def _headers(self, dep: Deployment) -> dict[str, str]:
        key = dep.api_key
        return {"Authorization": f"Bearer {key}"} if key else {}

    def _body(self, dep: Deployment, messages: Sequence[Message], params: dict[str, Any], *, n: int,
              stream: bool, logprobs: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"model": get_backend(dep.backend).request_model(dep), "messages": list(messages)}
        for key in _PARAMS:
            if params.get(key) is not None:
                body[key] = params[key]
        body.update(params.get("extra") or {})
        if n > 1:
            body["n"] = n
        if logprobs:
            body["logprobs"] = True
            # llama-cpp-python returns per-token logprobs only when top_logprobs is sent too
            body.setdefault("top_logprobs", 1)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _send(self, dep: Deployment, url: str, body: dict[str, Any], timeout: float | None
                    ) -> aiohttp.ClientResponse:
        """POST ``body``; retry with backoff only when no answer was produced (connection errors).

        On a replica set a connection error first fails over to the replicas not tried yet, at once.
        """
        attempt = 0
        replicas = self.replicas.get(dep.name)
        tried: set[str] = set()
        while True:
            try:
                return await self.http.post(url, json=body, headers=self._headers(dep), timeout=self._timeout(dep, timeout))
            except _CONNECTION_ERRORS as exc:
                base = replicas.base_of(url) if replicas is not None else None
                if base is not None:
                    replicas.failed(base)
                    tried.add(base)
                    other = replicas.pick(exclude=tried)
                    if other is not None:
                        url = other + url[len(base):]
                        continue
                    tried.clear()  # every replica refused: back off, then go round again
                if attempt >= dep.connect_retries:
                    raise self._connect_error(dep, url, exc) from None
                await asyncio.sleep(0.1 * 2**attempt * (1 + random.random() * 0.25))
                attempt += 1
            except asyncio.TimeoutError:
                raise BackendError(f"{dep.name}: no answer within {timeout or dep.timeout_s:.0f}s from {url}",
                                   hint="raise timeout_s for this deployment, or check that the server is not stuck",
                                   deployment=dep.name, retryable=True) from None
            except aiohttp.ClientError as exc:
                raise BackendError(f"{dep.name}: request to {url} failed: {exc.__class__.__name__}: {exc}",
                                   deployment=dep.name, retryable=True) from None

    async def _post(self, dep: Deployment, body: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        url = f"{self._url(dep)}/chat/completions"
        resp = await self._send(dep, url, body, timeout)
        try:
            status, raw = resp.status, await resp.read()
        except asyncio.TimeoutError:
            raise BackendError(f"{dep.name}: no answer within {timeout or dep.timeout_s:.0f}s from {url}",
                               deployment=dep.name, retryable=True) from None
        except aiohttp.ClientError as exc:
            raise BackendError(f"{dep.name}: the answer from {url} broke off ({exc.__class__.__name__})",
                               deployment=dep.name, retryable=True) from None
        finally:
            resp.release()
        text = raw.decode("utf-8", errors="replace")
        self._raise_for_status(dep, status, text)
        try:
            data = json.loads(raw)
            if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
                raise ValueError("no 'choices' list")
        except ValueError as exc:
            raise BackendError(f"{dep.name}: malformed response from {url}: {exc}: {text[:200]!r}",
                               deployment=dep.name, retryable=True) from None
        return data

    @staticmethod
    def _connect_error(dep: Deployment, url: str, exc: Exception) -> BackendError:
        return BackendError(f"{dep.name}: cannot connect to {url} ({exc.__class__.__name__})",
                            hint="is the server running? `junto pool status` shows it; `junto pool up` starts it",
                            deployment=dep.name, retryable=True)

    @staticmethod
    def _raise_for_status(dep: Deployment, status: int, text: str) -> None:
        if status < 400:
            return
        detail = text[:300]
        try:
            err = json.loads(text).get("error")
            detail = err.get("message", detail) if isinstance(err, dict) else (err or detail)
        except (ValueError, AttributeError):
            pass
        raise BackendError(f"{dep.name}: server answered HTTP {status}: {detail}", deployment=dep.name,
                           retryable=status >= 500 or status == 429, status_code=status)

    def _result(self, dep: Deployment, choices: list[Choice], usage: Usage, t0: float, path: str,
                requests: int, model: str) -> ChatResult:
        return ChatResult(dep.name, model, choices, usage, dep.price.cost(usage.prompt_tokens, usage.completion_tokens),
                          time.perf_counter() - t0, path, requests)

    # -- public API --------------------------------------------------------------------------
    async def chat(self, deployment: str | Deployment, messages: Sequence[Message], *, n: int = 1,
                   logprobs: bool = False, timeout: float | None = None, **params: Any) -> ChatResult:
        """One chat completion with ``n`` choices. ``params``: temperature, top_p, max_tokens, stop, seed, extra."""
        dep = deployment if isinstance(deployment, Deployment) else self.pool.deployment(deployment)
        if n < 1:
            raise ConfigError(f"n must be at least 1 (got {n})")
        backend = get_backend(dep.backend)
        t0 = time.perf_counter()
        if not backend.openai_compatible:
            return await self._litellm_chat(dep, messages, n=n, logprobs=logprobs, timeout=timeout, params=params)
        if n == 1 or backend.native_n:
            async with self._sem(dep):
                data = await self._post(dep, self._body(dep, messages, params, n=n, stream=False, logprobs=logprobs),
                                        timeout)
            choices = [_parse_choice(c, i) for i, c in enumerate(data["choices"])]
            usage = _usage_from(data.get("usage")) or Usage(estimated=True)
            if not choices:
                raise BackendError(f"{dep.name}: the response has no choices", deployment=dep.name, retryable=True)
            path, requests = ("native-n" if n > 1 else "single"), 1
            if len(choices) < n:
                # the server ignored n: fetch the missing choices concurrently
                missing = n - len(choices)
                more, more_usage, _ = await self._fanout(dep, messages, missing, logprobs, timeout, params)
                choices += more
                usage = usage + more_usage
                path, requests = "fanout", 1 + missing
            for i, c in enumerate(choices[:n]):
                c.index = i
            return self._result(dep, choices[:n], usage, t0, path, requests, data.get("model", dep.name))
        choices, usage, model = await self._fanout(dep, messages, n, logprobs, timeout, params)
        return self._result(dep, choices, usage, t0, "fanout", n, model)

    async def _fanout(self, dep: Deployment, messages: Sequence[Message], k: int, logprobs: bool,
                      timeout: float | None, params: dict[str, Any]) -> tuple[list[Choice], Usage, str]:
        async def one(i: int) -> dict[str, Any]:
            p = dict(params)
            if p.get("seed") is not None:
                p["seed"] = int(p["seed"]) + i  # the same seed would give k identical samples
            async with self._sem(dep):
                return await self._post(dep, self._body(dep, messages, p, n=1, stream=False, logprobs=logprobs), timeout)

        datas = await asyncio.gather(*(one(i) for i in range(k)))
        choices, usage = [], Usage()
        for i, d in enumerate(datas):
            if not d["choices"]:
                raise BackendError(f"{dep.name}: the response has no choices", deployment=dep.name, retryable=True)
            choices.append(_parse_choice(d["choices"][0], i))
            usage = usage + (_usage_from(d.get("usage")) or Usage(estimated=True))
        return choices, usage, datas[0].get("model", dep.name)

    async def stream(self, deployment: str | Deployment, messages: Sequence[Message], *,
                     timeout: float | None = None, **params: Any) -> AsyncIterator[StreamDelta | StreamEnd]:
        """Stream one answer: :class:`StreamDelta` events as tokens arrive, then one :class:`StreamEnd`."""
        dep = deployment if isinstance(deployment, Deployment) else self.pool.deployment(deployment)
        if not get_backend(dep.backend).openai_compatible:
            async for ev in self._litellm_stream(dep, messages, timeout=timeout, params=params):
                yield ev
            return
        url = f"{self._url(dep)}/chat/completions"
        body = self._body(dep, messages, params, n=1, stream=True, logprobs=False)
        t0 = time.perf_counter()
        ttft = None
        usage: Usage | None = None
        finish = None
        model = dep.name
        chunks = 0
        done = False
        async with self._sem(dep):
            resp = await self._send(dep, url, body, timeout)
            try:
                if resp.status >= 400:
                    self._raise_for_status(dep, resp.status, (await resp.read()).decode("utf-8", errors="replace"))
                async for raw_line in resp.content:
                    line = raw_line.decode("utf-8", errors="replace").strip()
                    if not line.startswith("data:"):
                        continue
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        done = True
                        break
                    try:
                        chunk = json.loads(payload)
                        if not isinstance(chunk, dict):
                            raise ValueError("not an object")
                    except ValueError:
                        raise BackendError(f"{dep.name}: malformed stream chunk from {url}: {payload[:200]!r}",
                                           deployment=dep.name, retryable=chunks == 0) from None
                    model = chunk.get("model", model)
                    usage = _usage_from(chunk.get("usage")) or usage
                    for c in chunk.get("choices") or []:
                        delta = (c.get("delta") or {}).get("content")
                        if c.get("finish_reason"):
                            finish = c["finish_reason"]
                        if delta:
                            if ttft is None:
                                ttft = time.perf_counter() - t0
                            chunks += 1
                            yield StreamDelta(delta, c.get("index", 0))
            except asyncio.TimeoutError:
                raise BackendError(f"{dep.name}: the stream stalled for more than {timeout or dep.timeout_s:.0f}s",
                                   deployment=dep.name, retryable=chunks == 0) from None
            except aiohttp.ClientError as exc:  # payload errors, server disconnects
                raise BackendError(f"{dep.name}: the stream from {url} broke off after {chunks} chunks "
                                   f"({exc.__class__.__name__})",
                                   hint="the server may have crashed: `junto pool status` shows it",
                                   deployment=dep.name, retryable=chunks == 0) from None
            finally:
                if done:
                    resp.release()  # finished cleanly: the connection goes back to the pool
                else:
                    resp.close()  # abandoned or broken: drop the connection so the server stops generating
        if not done and finish is None:
            raise BackendError(f"{dep.name}: the stream from {url} ended after {chunks} chunks without finishing",
                               hint="the server may have crashed: `junto pool status` shows it",
                               deployment=dep.name, retryable=chunks == 0)
        if usage is None:  # the server sent no usage (llama-cpp-python's streams): estimate, marked as such
            usage = Usage(estimate_prompt_tokens(messages), chunks, estimated=True)
        yield StreamEnd(dep.name, model, usage, dep.price.cost(usage.prompt_tokens, usage.completion_tokens),
                        time.perf_counter() - t0, ttft, finish, "single")

    # -- litellm path ------------------------------------------------------------------------
    @staticmethod
    def _litellm():
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the cost map at run time
        try:
            import litellm
        except ImportError:
            raise ConfigError("backend 'litellm' needs the litellm package",
                              hint="pip install 'junto[litellm]'") from None
        litellm.telemetry = False
        litellm.suppress_debug_info = True
        return litellm

    def _litellm_kwargs(self, dep: Deployment, messages: Sequence[Message], timeout: float | None,
                        params: dict[str, Any]) -> dict[str, Any]:
        kw: dict[str, Any] = {"model": dep.model, "messages": list(messages), "timeout": timeout or dep.timeout_s,
                              "num_retries": dep.connect_retries}
        if dep.url:
            kw["api_base"] = dep.url
            # a self-hosted endpoint often needs no key, but litellm's OpenAI route insists on one
            kw["api_key"] = dep.api_key or "no-key"
        elif dep.api_key:
            kw["api_key"] = dep.api_key
        for key in _PARAMS:
            if params.get(key) is not None:
                kw[key] = params[key]
        kw.update(params.get("extra") or {})
        return kw

    def _litellm_error(self, dep: Deployment, exc: Exception) -> BackendError:
        status = getattr(exc, "status_code", None)
        return BackendError(f"{dep.name}: litellm call failed: {exc.__class__.__name__}: {str(exc)[:300]}",
                            deployment=dep.name, retryable=status is None or status >= 500 or status == 429,
                            status_code=status)

    async def _litellm_chat(self, dep: Deployment, messages: Sequence[Message], *, n: int, logprobs: bool,
                            timeout: float | None, params: dict[str, Any]) -> ChatResult:
        litellm = self._litellm()
        t0 = time.perf_counter()

        async def one() -> Any:
            async with self._sem(dep):
                try:
                    return await litellm.acompletion(**self._litellm_kwargs(dep, messages, timeout, params),
                                                     **({"logprobs": True} if logprobs else {}))
                except Exception as exc:  # litellm raises its own hierarchy; normalise it
                    raise self._litellm_error(dep, exc) from None

        responses = await asyncio.gather(*(one() for _ in range(n)))
        choices, usage = [], Usage()
        for r in responses:
            data = r.model_dump() if hasattr(r, "model_dump") else dict(r)
            choices.append(_parse_choice(data["choices"][0], len(choices)))
            usage = usage + (_usage_from(data.get("usage")) or Usage(estimated=True))
        return self._result(dep, choices, usage, t0, "litellm", n, dep.model)

    async def _litellm_stream(self, dep: Deployment, messages: Sequence[Message], *, timeout: float | None,
                              params: dict[str, Any]) -> AsyncIterator[StreamDelta | StreamEnd]:
        litellm = self._litellm()
        t0 = time.perf_counter()
        ttft, finish, usage, chunks = None, None, None, 0
        async with self._sem(dep):
            try:
                resp = await litellm.acompletion(**self._litellm_kwargs(dep, messages, timeout, params), stream=True,
                                                 stream_options={"include_usage": True})
                async for chunk in resp:
                    data = chunk.model_dump() if hasattr(chunk, "model_dump") else dict(chunk)
                    usage = _usage_from(data.get("usage")) or usage
                    for c in data.get("choices") or []:
                        if c.get("finish_reason"):
                            finish = c["finish_reason"]
                        delta = (c.get("delta") or {}).get("content")
                        if delta:
                            ttft = ttft if ttft is not None else time.perf_counter() - t0
                            chunks += 1
                            yield StreamDelta(delta, 0)
            except BackendError:
                raise
            except Exception as exc:
                raise self._litellm_error(dep, exc) from None
        usage = usage or Usage(estimate_prompt_tokens(messages), chunks, estimated=True)
        yield StreamEnd(dep.name, dep.model, usage, dep.price.cost(usage.prompt_tokens, usage.completion_tokens),
                        time.perf_counter() - t0, ttft, finish, "litellm")
