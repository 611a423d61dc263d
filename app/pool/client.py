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
import contextlib
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
    elif isinstance(lp, dict) and isinstance(lp.get("token_logprobs"), list):  # /v1/completions' legacy shape
        token_lps = [float(x) for x in lp["token_logprobs"] if x is not None]
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
        self._multi: dict[str, asyncio.Lock] = {}
        #: chat templates read per deployment (chat_template(): prefill and continuation render with them)
        self._templates: dict[str, Any] = {}
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

    @contextlib.asynccontextmanager
    async def _slots(self, dep: Deployment, k: int) -> AsyncIterator[None]:
        """Hold ``k`` of the deployment's concurrency permits (one request decoding ``k`` choices at once
        takes ``k`` server slots). Multi-permit holders queue on one lock, so two of them never each hold
        part of what the other waits for."""
        sem = self._sem(dep)
        lock = self._multi.setdefault(dep.name, asyncio.Lock())
        got = 0
        try:
            async with lock:
                for _ in range(k):
                    await sem.acquire()
                    got += 1
            yield
        finally:
            for _ in range(got):
                sem.release()

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

    async def _post(self, dep: Deployment, body: dict[str, Any], timeout: float | None,
                    path: str = "/chat/completions") -> dict[str, Any]:
        url = f"{self._url(dep)}{path}"
        data = await self._read_json(dep, await self._send(dep, url, body, timeout), url, timeout, dict)
        if not isinstance(data.get("choices"), list):
            raise BackendError(f"{dep.name}: malformed response from {url}: no 'choices' list: {str(data)[:200]!r}",
                               deployment=dep.name, retryable=True)
        return data

    async def _read_json(self, dep: Deployment, resp: aiohttp.ClientResponse, url: str, timeout: float | None,
                         expect: type) -> Any:
        """The response's body as JSON of type ``expect``; HTTP errors, broken answers and malformed JSON as
        :class:`BackendError` (the connection goes back to the pool either way)."""
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
            if not isinstance(data, expect):
                raise ValueError(f"not a JSON {expect.__name__}")
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
        per_request = min(backend.max_native_n(dep), dep.max_concurrency)
        if n > 1 and not backend.native_n and per_request > 1:
            return await self._slotted_n(dep, messages, n, per_request, logprobs, timeout, params, t0)
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

    async def _slotted_n(self, dep: Deployment, messages: Sequence[Message], n: int, per_request: int,
                         logprobs: bool, timeout: float | None, params: dict[str, Any], t0: float) -> ChatResult:
        """``n`` choices from a server that honours ``n`` only up to its slot count (llama-server): requests
        of at most ``per_request`` choices each, the prompt prefilled once per request and its KV copied to
        the other slots. Such a server's ``usage`` counts the first choice's tokens only, so every request
        asks for per-token logprobs and each choice's completion tokens are counted from them (exact)."""
        sizes = [per_request] * (n // per_request) + ([n % per_request] if n % per_request else [])

        async def one(i: int, k: int) -> dict[str, Any]:
            p = dict(params)
            if p.get("seed") is not None:
                p["seed"] = int(p["seed"]) + i * per_request  # distinct seeds per request
            body = self._body(dep, messages, p, n=k, stream=False, logprobs=True)
            async with self._slots(dep, k):
                return await self._post(dep, body, timeout)

        datas = await asyncio.gather(*(one(i, k) for i, k in enumerate(sizes)))
        choices: list[Choice] = []
        usage = Usage()
        for d in datas:
            raw = d["choices"]
            if not raw:
                raise BackendError(f"{dep.name}: the response has no choices", deployment=dep.name, retryable=True)
            server = _usage_from(d.get("usage"))
            counts = [len(c["logprobs"]["content"]) if isinstance(c.get("logprobs"), dict)
                      and isinstance(c["logprobs"].get("content"), list) else None for c in raw]
            exact = all(x is not None for x in counts)
            completion = sum(x or 0 for x in counts) if exact else (server.completion_tokens * len(raw) if server else 0)
            usage = usage + Usage(server.prompt_tokens if server else 0, completion, estimated=server is None or not exact)
            for c in raw:
                ch = _parse_choice(c, len(choices))
                if not logprobs:  # asked for only to count tokens
                    ch.token_logprobs = ch.logprobs = None
                choices.append(ch)
        if len(choices) < n:  # the server returned fewer choices than asked: fetch the rest one by one
            more, more_usage, _ = await self._fanout(dep, messages, n - len(choices), logprobs, timeout, params)
            for c in more:
                c.index = len(choices)
                choices.append(c)
            usage = usage + more_usage
        return self._result(dep, choices[:n], usage, t0, "native-n", len(datas), datas[0].get("model", dep.name))

    async def _fanout(self, dep: Deployment, messages: Sequence[Message], k: int, logprobs: bool,
                      timeout: float | None, params: dict[str, Any], *,
                      make_body: Any = None, path: str = "/chat/completions") -> tuple[list[Choice], Usage, str]:
        async def one(i: int) -> dict[str, Any]:
            p = dict(params)
            if p.get("seed") is not None:
                p["seed"] = int(p["seed"]) + i  # the same seed would give k identical samples
            body = make_body(p) if make_body is not None else self._body(dep, messages, p, n=1, stream=False,
                                                                           logprobs=logprobs)
            async with self._sem(dep):
                return await self._post(dep, body, timeout, path)

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
        chunks = 0  # text deltas delivered: a failure before the first one may fall back elsewhere
        broken = False
        raw = self._stream_chunks(dep, "/chat/completions", body, timeout)
        try:
            async for chunk in raw:
                if chunk.get("_ended"):
                    broken = True
                    break
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
        except BackendError as exc:
            # an HTTP error status keeps its own verdict; a stream that broke, stalled or sent garbage may be
            # retried elsewhere only while no text has reached the caller
            exc.retryable = exc.retryable if getattr(exc, "status_code", None) else chunks == 0
            raise
        finally:
            await raw.aclose()  # abandoned: the connection is dropped so the server stops generating
        if broken and finish is None:
            raise BackendError(f"{dep.name}: the stream from {url} ended after {chunks} chunks without finishing",
                               hint="the server may have crashed: `junto pool status` shows it",
                               deployment=dep.name, retryable=chunks == 0)
        if usage is None:  # the server sent no usage (llama-cpp-python's streams): estimate, marked as such
            usage = Usage(estimate_prompt_tokens(messages), chunks, estimated=True)
        yield StreamEnd(dep.name, model, usage, dep.price.cost(usage.prompt_tokens, usage.completion_tokens),
                        time.perf_counter() - t0, ttft, finish, "single")

    # -- raw completions, prefill, tokenize (the generation substrate) ------------------------------
    def _dep(self, deployment: str | Deployment) -> Deployment:
        return deployment if isinstance(deployment, Deployment) else self.pool.deployment(deployment)

    def _root(self, dep: Deployment) -> str:
        """The server's root URL (the base URL without its ``/v1``): where /tokenize, /props live."""
        url = self._url(dep).rstrip("/")
        return url[:-3] if url.endswith("/v1") else url

    def _completion_body(self, dep: Deployment, prompt: str | list[int], params: dict[str, Any], *, n: int,
                         stream: bool, logprobs: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"model": get_backend(dep.backend).request_model(dep), "prompt": prompt}
        for key in _PARAMS:
            if key != "top_logprobs" and params.get(key) is not None:
                body[key] = params[key]
        body.update(params.get("extra") or {})
        if n > 1:
            body["n"] = n
        if logprobs is not None:
            body["logprobs"] = int(logprobs)
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _get_json(self, dep: Deployment, url: str, body: dict[str, Any] | None, timeout: float | None,
                        *, expect: type = dict) -> Any:
        """POST ``body`` (GET when None) to a non-OpenAI endpoint of the server; the answer as JSON of type
        ``expect`` (an object, or a list for llama-server's /slots)."""
        if body is None:
            try:
                resp = await self.http.get(url, headers=self._headers(dep), timeout=self._timeout(dep, timeout))
            except _CONNECTION_ERRORS as exc:
                raise self._connect_error(dep, url, exc) from None
            except (asyncio.TimeoutError, aiohttp.ClientError) as exc:
                raise BackendError(f"{dep.name}: GET {url} failed ({exc.__class__.__name__})", deployment=dep.name,
                                   retryable=True) from None
        else:
            resp = await self._send(dep, url, body, timeout)
        return await self._read_json(dep, resp, url, timeout, expect)

    async def complete(self, deployment: str | Deployment, prompt: str, *, n: int = 1, logprobs: int | None = None,
                       timeout: float | None = None, **params: Any) -> ChatResult:
        """Raw completion (``/v1/completions``) of ``prompt`` as written (no template). ``Choice.text`` = the
        continuation. ``logprobs``: per-token log probabilities with that many top alternatives (0: the
        sampled token's only). Needs capability ``completions``."""
        from junto.pool.capabilities import require

        dep = self._dep(deployment)
        require(dep, "completions", purpose="a raw completion")
        if logprobs is not None:
            require(dep, "logprobs" if logprobs <= 1 else "top_logprobs", purpose="a completion with logprobs")
        return await self._complete(dep, prompt, n=n, logprobs=logprobs, timeout=timeout, params=params)

    async def _complete(self, dep: Deployment, prompt: str | list[int], *, n: int, logprobs: int | None,
                        timeout: float | None, params: dict[str, Any]) -> ChatResult:
        if n < 1:
            raise ConfigError(f"n must be at least 1 (got {n})")
        t0 = time.perf_counter()
        path = "/completions"
        choices: list[Choice] = []
        usage = Usage()
        model, how, requests = dep.name, "single", 0
        if n == 1 or get_backend(dep.backend).native_n:
            async with self._sem(dep):
                data = await self._post(dep, self._completion_body(dep, prompt, params, n=n, stream=False,
                                                                   logprobs=logprobs), timeout, path)
            choices = [_parse_choice(c, i) for i, c in enumerate(data["choices"])]
            if not choices:
                raise BackendError(f"{dep.name}: the response has no choices", deployment=dep.name, retryable=True)
            usage = _usage_from(data.get("usage")) or Usage(estimated=True)
            model = data.get("model", model)
            how, requests = ("native-n" if n > 1 else "single"), 1
        missing = n - len(choices)
        if missing > 0:  # llama.cpp, or a server that ignored n: concurrent requests for the rest
            def make_body(p: dict[str, Any]) -> dict[str, Any]:
                return self._completion_body(dep, prompt, p, n=1, stream=False, logprobs=logprobs)

            more, more_usage, m = await self._fanout(dep, (), missing, False, timeout, params, make_body=make_body,
                                                     path=path)
            model = m if not choices else model
            choices += more
            usage = usage + more_usage
            how, requests = "fanout", requests + missing
        for i, c in enumerate(choices[:n]):
            c.index = i
        return self._result(dep, choices[:n], usage, t0, how, requests, model)

    async def continue_chat(self, deployment: str | Deployment, messages: Sequence[Message], prefill: str, *,
                            n: int = 1, logprobs: int | None = None, timeout: float | None = None,
                            **params: Any) -> ChatResult:
        """"These messages, with this assistant text already written: continue." ``Choice.text`` = the
        continuation only (not the prefill). vLLM: chat/completions with ``continue_final_message``;
        llama.cpp: the deployment's own chat template renders the prompt (:mod:`junto.pool.chat_template`)
        and :meth:`complete` continues it. Needs capability ``prefill``."""
        from junto.pool.capabilities import require

        dep = self._dep(deployment)
        require(dep, "prefill", purpose="an assistant prefill (continue_chat)")
        if logprobs is not None:
            require(dep, "logprobs" if logprobs <= 1 else "top_logprobs", purpose="a prefill with logprobs")
        convo = [*messages, {"role": "assistant", "content": prefill}]
        if dep.backend == "llamacpp":
            prompt = await self.render_prompt(dep, convo, continue_final=True)
            return await self._complete(dep, prompt, n=n, logprobs=logprobs, timeout=timeout, params=params)
        # vLLM (and OpenAI-compatible servers declared with prefill): the server renders and continues
        extra = {"continue_final_message": True, "add_generation_prompt": False, **(params.get("extra") or {})}
        p = {**params, "extra": extra}
        if logprobs is not None and logprobs > 0:
            p.setdefault("top_logprobs", logprobs)
        return await self.chat(dep, convo, n=n, logprobs=logprobs is not None, timeout=timeout, **p)

    async def tokenize(self, deployment: str | Deployment, text: str, *, add_special: bool = False) -> list[int]:
        """The server's token ids for ``text`` (``add_special``: as a completion's prompt is tokenized, BOS
        included where the model adds one). Special-token text in ``text`` is parsed as the special token,
        as in a prompt. Needs capability ``tokenize``."""
        from junto.pool.capabilities import require

        dep = self._dep(deployment)
        require(dep, "tokenize", purpose="tokenize")
        if dep.backend == "llamacpp":
            body: dict[str, Any] = {"content": text, "add_special": add_special, "parse_special": True}
        else:  # vLLM's /tokenize
            body = {"model": get_backend(dep.backend).request_model(dep), "prompt": text,
                    "add_special_tokens": add_special}
        data = await self._get_json(dep, f"{self._root(dep)}/tokenize", body, None)
        tokens = data.get("tokens")
        if not isinstance(tokens, list):
            raise BackendError(f"{dep.name}: /tokenize answered without a token list", deployment=dep.name)
        return [int(t["id"]) if isinstance(t, dict) else int(t) for t in tokens]

    async def chat_template(self, deployment: str | Deployment) -> Any:
        """The deployment's :class:`~junto.pool.chat_template.ChatTemplate`, read once and cached: a
        llama-server's own (``/props``: the template it renders chats with, whatever its source), else the
        model files' (the GGUF, or a vLLM model directory)."""
        from junto.pool import chat_template as ct

        dep = self._dep(deployment)
        cache = self._templates
        tmpl = cache.get(dep.name)
        if tmpl is not None:
            return tmpl
        server = getattr(dep.launch, "server", "llama-server") if dep.backend == "llamacpp" else None
        if server == "llama-server":
            root = self._root(dep)
            props = await self._get_json(dep, f"{root}/props", None, None)
            if not isinstance(props.get("chat_template"), str) or not props["chat_template"]:
                raise ConfigError(f"deployment {dep.name!r}: the server reports no chat template",
                                  hint="use a GGUF with a chat template, or set launch.chat_format")
            # does the server put BOS before a prompt itself? then the template's BOS text must go
            bos = await self._get_json(dep, f"{root}/tokenize",
                                       {"content": "", "add_special": True, "parse_special": True}, None)
            tmpl = ct.ChatTemplate(props["chat_template"], str(props.get("bos_token") or ""),
                                   str(props.get("eos_token") or ""), source=f"{root}/props",
                                   add_bos=bool(bos.get("tokens")))
        else:
            tmpl = await asyncio.to_thread(ct.for_deployment, dep,
                                           self.pool.source.parent if self.pool.source else None)
        cache[dep.name] = tmpl
        return tmpl

    async def render_prompt(self, deployment: str | Deployment, messages: Sequence[Message], *,
                            add_generation_prompt: bool = False, continue_final: bool = False) -> str:
        """``messages`` rendered with the deployment's own chat template (read once, then cached), as a raw
        completion should send it (see :meth:`ChatTemplate.completion_prompt`)."""
        tmpl = await self.chat_template(deployment)
        return tmpl.completion_prompt(messages, add_generation_prompt=add_generation_prompt,
                                      continue_final=continue_final)

    async def completion_prompt(self, deployment: str | Deployment, messages: Sequence[Message], *,
                                add_generation_prompt: bool = False, continue_final: bool = False
                                ) -> str | list[int]:
        """The prompt a raw completion continues ``messages`` from: junto's rendering (:meth:`render_prompt`)
        where it can read the template; on a vLLM server whose model files junto cannot read (a hub model id,
        a remote URL), vLLM's own rendering as token ids (``POST /tokenize`` with ``messages``), which
        ``/v1/completions`` takes as the prompt."""
        dep = self._dep(deployment)
        if dep.backend == "vllm" and dep.name not in self._templates:
            try:
                await self.chat_template(dep)
            except ConfigError:
                return await self.server_prompt_ids(dep, messages, add_generation_prompt=add_generation_prompt,
                                                    continue_final=continue_final)
        return await self.render_prompt(dep, messages, add_generation_prompt=add_generation_prompt,
                                        continue_final=continue_final)

    async def server_prompt_ids(self, deployment: str | Deployment, messages: Sequence[Message], *,
                                add_generation_prompt: bool = False, continue_final: bool = False) -> list[int]:
        """vLLM's own rendering of ``messages``, as token ids (``POST /tokenize``; vLLM only)."""
        from junto.pool.capabilities import require

        dep = self._dep(deployment)
        require(dep, "tokenize", purpose="the server's own chat-template rendering")
        if dep.backend == "llamacpp":
            raise ConfigError(f"deployment {dep.name!r}: llama.cpp servers do not tokenize a conversation",
                              hint="use render_prompt(): junto renders llama.cpp's template itself")
        body = {"model": get_backend(dep.backend).request_model(dep), "messages": list(messages),
                "add_generation_prompt": add_generation_prompt, "continue_final_message": continue_final}
        data = await self._get_json(dep, f"{self._root(dep)}/tokenize", body, None)
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens):
            raise BackendError(f"{dep.name}: /tokenize answered without a token list", deployment=dep.name)
        return tokens

    async def _stream_chunks(self, dep: Deployment, path: str, body: dict[str, Any], timeout: float | None
                             ) -> AsyncIterator[dict[str, Any]]:
        """The parsed chunks of one SSE stream. Leaving early (``aclose``, a ``break`` in the caller) closes the
        connection, so the server stops generating; a stream that ends without ``[DONE]`` yields
        ``{"_ended": "broken"}`` last."""
        url = f"{self._url(dep)}{path}"
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
                    chunks += 1
                    yield chunk
            except asyncio.TimeoutError:
                raise BackendError(f"{dep.name}: the stream stalled for more than {timeout or dep.timeout_s:.0f}s",
                                   deployment=dep.name, retryable=chunks == 0) from None
            except aiohttp.ClientError as exc:
                raise BackendError(f"{dep.name}: the stream from {url} broke off after {chunks} chunks "
                                   f"({exc.__class__.__name__})",
                                   hint="the server may have crashed: `junto pool status` shows it",
                                   deployment=dep.name, retryable=chunks == 0) from None
            finally:
                if done:
                    resp.release()
                else:
                    resp.close()  # abandoned or broken: drop the connection so the server stops generating
        if not done:
            yield {"_ended": "broken"}

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
