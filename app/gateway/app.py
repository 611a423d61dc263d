"""FastAPI application: OpenAI-compatible chat completions in front of ``Junto``.

``model`` picks the behaviour: ``junto-auto`` routes and answers directly (fallback across the
ranked deployments before the first token), ``junto-<strategy>`` runs a registered strategy,
and a deployment's own name answers with that deployment, unrouted. Routing headers
(``x-junto-deployment``, ``x-junto-strategy``, ``x-junto-routing-ms``, ``x-junto-request-id``) are
sent before the first byte; a stream therefore starts once the first token is known.
Every error is OpenAI-shaped JSON; no stack trace ever reaches a client.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException as StarletteHTTPException

from junto.config import GatewaySettings
from junto.errors import BackendError, ConfigError, JuntoError
from junto.facade import Junto, ResultEvent, RoutedEvent, TokenEvent
from junto.gateway.limits import KeyInfo, KeyStore
from junto.gateway.metrics import Metrics
from junto.gateway.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    ErrorResponse,
    Health,
    ModelList,
    Readiness,
)
from junto.monitors.guard import MonitorMetrics
from junto.monitors.policy import refusal_chunks, refusal_completion
from junto.stores import Stores

log = logging.getLogger("junto.gateway")

AUTO_MODEL = "junto-auto"
PREFIX = "junto-"


def _error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


#: what each route can answer besides its success (the OpenAPI document lists them all)
_AUTH_ERRORS = {401: _error_doc("missing or invalid API key"), 500: _error_doc("internal error (see the gateway log)")}
#: one server-sent event of a streamed answer: ``data`` is a chat.completion.chunk as JSON, an in-band
#: error object, or ``[DONE]``
_SSE_EVENT = {"type": "object", "required": ["data"],
              "properties": {"data": {"type": "string"}, "event": {"type": "string"}, "id": {"type": "string"}}}
_CHAT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": ChatCompletion, "description": "the answer; with stream=true, server-sent events of "
                                                  "chat.completion.chunk objects ending in `data: [DONE]`",
          "content": {"text/event-stream": {"schema": _SSE_EVENT}}},
    400: _error_doc("invalid request (bad JSON, a field out of range, a message without content, an unknown "
                    "strategy parameter) or refused by the deployment itself; `param` names the field"),
    **_AUTH_ERRORS,
    404: _error_doc("unknown model"),
    413: _error_doc("request body too large"),
    429: _error_doc("rate limit reached; see Retry-After"),
    503: _error_doc("every candidate deployment failed"),
    504: _error_doc("no answer within the gateway's request timeout"),
}
#: the validation statuses FastAPI documents by default (the gateway answers 400, as the OpenAI API does)
_FASTAPI_422 = ("HTTPValidationError", "ValidationError")


_BRANCH_NAMES = {"str", "int", "float", "bool", "none", "bytes"}


def _field_path(loc: tuple[Any, ...]) -> str | None:
    """``("body", "messages", 0, "content", "list[ContentPart]", 0, "type")`` → ``messages[0].content[0].type``.

    Pydantic names the branch of a union it tried (``str``, ``list[ContentPart]``): not a field, dropped.
    """
    out = ""
    for part in loc[1:] if loc and loc[0] in ("body", "query", "path", "header") else loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier() and part not in _BRANCH_NAMES:
            out += f".{part}" if out else part
    return out or None


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_response(status: int, message: str, type_: str, code: str | None = None, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type_, code, param), status_code=status, headers=headers)


class BodyLimit:
    """Pure ASGI middleware: refuse bodies over ``limit`` bytes with 413, before they are buffered."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                return await self._reject(send)
        seen = 0

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge(self.limit)
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(send)

    async def _reject(self, send: Any) -> None:
        body = json.dumps(error_body(f"request body larger than {self.limit} bytes", "invalid_request_error",
                                     "request_too_large")).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(StarletteHTTPException):
    """Raised from ``receive``; FastAPI re-raises HTTP exceptions met while reading a body."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes")


def build_keys(settings: GatewaySettings) -> KeyStore:
    import hashlib
    import os

    keys = []
    for k in settings.api_keys:
        digest = k.digest()
        if digest:
            keys.append(KeyInfo(k.name, digest, k.requests_per_minute or settings.default_requests_per_minute,
                                k.tokens_per_minute or settings.default_tokens_per_minute))
    raw = os.environ.get(settings.api_keys_env or "", "") if settings.api_keys_env else ""
    for i, key in enumerate(x.strip() for x in raw.split(",") if x.strip()):
        keys.append(KeyInfo(f"env-{i}", hashlib.sha256(key.encode()).hexdigest(),
                            settings.default_requests_per_minute, settings.default_tokens_per_minute))
    return KeyStore(keys)


def create_app(junto: Junto, settings: GatewaySettings | None = None, *, strategies: list[str] | None = None,
               stores: Stores | None = None) -> FastAPI:
    """The gateway in front of ``junto``. ``stores`` (default: ``junto.stores``, built from the config's
    ``store:``) hold the rate-limit buckets; with a Redis store every replica shares them."""
    settings = settings or junto.config.gateway
    keys = build_keys(settings)
    stores = junto.stores if stores is None else stores
    limits = stores.limits
    metrics = Metrics()
    guard = junto.guard  # the sequential monitor (config monitor:), or None
    monitor_metrics = MonitorMetrics(metrics.registry) if guard is not None else None
    metrics.registry.register(_StoreCollector(stores))
    if strategies is None:
        try:
            from junto.reasoning import strategy_names

            strategies = strategy_names()
        except ImportError:
            strategies = ["direct"]
    deployments = {d.name for d in junto.pool.deployments}
    # junto-auto: the router picks the arm (deployment, strategy, parameters; junto.arms), direct without one
    virtual = {AUTO_MODEL: "auto", **{f"{PREFIX}{s}": s for s in strategies if s not in ("direct", "auto")}}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await junto.aup()
        await stores.start()
        await junto.astart_stores()
        app.state.probe = httpx.AsyncClient(timeout=2.0)
        yield
        await app.state.probe.aclose()
        await junto.aclose()
        if stores is not junto.stores:
            await stores.aclose()

    app = FastAPI(title="junto gateway", version="0.1.0", lifespan=lifespan,
                  description="Routed OpenAI-compatible chat completions over a pool of small models.")
    app.state.metrics = metrics
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"],
                           expose_headers=["x-junto-deployment", "x-junto-strategy", "x-junto-arm", "x-junto-routing-ms",
                                           "x-junto-request-id", "x-junto-cost", "x-junto-monitor"])

    # -- errors: OpenAI-shaped, never a stack trace ------------------------------------------
    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        metrics.errors.labels("invalid_request").inc()
        errors = exc.errors()
        # of a union's failed branches, the deepest error is the one that says what is wrong
        first = max(errors, key=lambda e: len(e.get("loc", ()))) if errors else {}
        if first.get("type") == "json_invalid":
            return error_response(400, "request body is not valid JSON", "invalid_request_error", "invalid_json")
        if first.get("type") == "model_attributes_type" or first.get("loc") == ("body",):
            return error_response(400, "request body must be a JSON object", "invalid_request_error", "invalid_value")
        loc = _field_path(tuple(first.get("loc", ())))
        msg = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        return error_response(400, f"{loc}: {msg}" if loc else msg, "invalid_request_error", "invalid_value", loc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(exc.status_code)
        # keep the exception's headers: a 405 carries Allow (RFC 9110 §15.5.6)
        return error_response(exc.status_code, str(exc.detail), "invalid_request_error" if exc.status_code < 500
                              else "server_error", code, headers=dict(exc.headers or {}) or None)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        rid = uuid.uuid4().hex
        log.exception("unhandled error (request %s)", rid)
        metrics.errors.labels("internal").inc()
        return error_response(500, f"internal error (request id {rid}); see the gateway log", "server_error")

    # -- auth and limits ---------------------------------------------------------------------
    def authenticate(request: Request) -> tuple[KeyInfo | None, JSONResponse | None]:
        if not keys.enabled:
            return None, None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        info = keys.lookup(token.strip() if scheme.lower() == "bearer" else None)
        if info is None:
            metrics.errors.labels("auth").inc()
            return None, error_response(401, "missing or invalid API key: send 'Authorization: Bearer <key>'",
                                        "authentication_error", "invalid_api_key")
        return info, None

    async def admit(request: Request, info: KeyInfo | None) -> JSONResponse | None:
        rpm = info.requests_per_minute if info else settings.default_requests_per_minute
        tpm = info.tokens_per_minute if info else settings.default_tokens_per_minute
        if not rpm and not tpm:
            return None
        who = info.name if info else (request.client.host if request.client else "anonymous")
        # the store answers even when Redis is down (from this process's buckets): never a 5xx for want of it
        wait = await limits.check(who, rpm, tpm)
        if wait:
            metrics.errors.labels("rate_limit").inc()
            return error_response(429, f"rate limit reached for {who!r}; retry after {wait} s", "rate_limit_error",
                                  "rate_limit_exceeded", headers={"Retry-After": str(wait)})
        return None

    async def charge(request: Request, info: KeyInfo | None, tokens: int) -> None:
        tpm = info.tokens_per_minute if info else settings.default_tokens_per_minute
        if tpm:
            who = info.name if info else (request.client.host if request.client else "anonymous")
            await limits.charge_tokens(who, tpm, tokens)

    # -- routes ------------------------------------------------------------------------------
    @app.get("/healthz", response_model=Health, responses={500: _AUTH_ERRORS[500]})
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", response_model=Readiness,
             responses={503: {"model": Readiness, "description": "no deployment is ready"}, 500: _AUTH_ERRORS[500]})
    async def readyz() -> JSONResponse:
        endpoints = {**junto.launcher.endpoints()}
        states: dict[str, str] = {}

        async def probe(url: str) -> str:
            try:
                r = await app.state.probe.get(f"{url}/models")
                return "ready" if r.status_code == 200 else f"http {r.status_code}"
            except httpx.HTTPError as exc:
                return f"unreachable ({exc.__class__.__name__})"

        async def check(name: str, url: str) -> None:
            replicas = junto.pool.deployment(name).urls or []
            if len(replicas) < 2:
                states[name] = await probe(url)
                return
            # a replica set is ready while one replica is: the client fails over to it
            seen = await asyncio.gather(*(probe(u) for u in replicas))
            up = sum(v == "ready" for v in seen)
            states[name] = f"{'ready' if up else 'unreachable'} ({up}/{len(replicas)} replicas)"

        await asyncio.gather(*(check(n, u) for n, u in endpoints.items()))
        for d in junto.pool.deployments:
            states.setdefault(d.name, "no endpoint" if d.backend != "litellm" else "external")
            if junto.health.state(d.name) != "ok":
                states[d.name] += f", {junto.health.state(d.name)}"
        ok = any(v.startswith(("ready", "external")) for v in states.values())
        # the store never decides readiness: a gateway whose Redis is down still serves (on local state)
        return JSONResponse({"status": "ready" if ok else "unavailable", "deployments": states,
                             "store": stores.status()}, status_code=200 if ok else 503)

    @app.get("/metrics", response_class=Response, responses={
        200: {"description": "Prometheus metrics (text exposition format 0.0.4)",
              "content": {"text/plain; version=0.0.4": {"schema": {"type": "string"}}}}, **_AUTH_ERRORS})
    async def prometheus(request: Request) -> Response:
        _, denied = authenticate(request)
        if denied:
            return denied
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", response_model=ModelList, responses=_AUTH_ERRORS)
    async def models(request: Request) -> JSONResponse:
        _, denied = authenticate(request)
        if denied:
            return denied
        now = int(time.time())
        data = [{"id": m, "object": "model", "created": now, "owned_by": "junto", "junto": {"strategy": s}}
                for m, s in virtual.items()]
        data += [{"id": d.name, "object": "model", "created": now, "owned_by": "junto",
                  "junto": {"deployment": d.name, "backend": d.backend, "tags": d.tags}} for d in junto.pool.deployments]
        return JSONResponse({"object": "list", "data": data})

    @app.post("/v1/chat/completions", response_model=None, responses=_CHAT_RESPONSES)
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        info, denied = authenticate(request)
        if denied:
            return denied
        limited = await admit(request, info)
        if limited:
            return limited
        if body.model in virtual:
            strategy, deployment = virtual[body.model], None
        elif body.model in deployments:
            strategy, deployment = "direct", body.model
        else:
            metrics.errors.labels("model_not_found").inc()
            return error_response(404, f"model {body.model!r} does not exist; GET /v1/models lists "
                                       f"{AUTO_MODEL}, the strategies and the deployments",
                                  "invalid_request_error", "model_not_found", "model")
        params = body.sampling()
        if body.stream and (body.logprobs or body.top_logprobs):
            return error_response(400, "logprobs are returned with non-streamed answers only",
                                  "invalid_request_error", "invalid_value", "logprobs")
        if settings.max_tokens_limit:
            params["max_tokens"] = min(params.get("max_tokens", settings.max_tokens_limit), settings.max_tokens_limit)
        extra = body.junto or {}
        if strategy in ("direct", "auto") and extra:
            return error_response(400, "'junto' parameters apply to strategies (model junto-<strategy>), "
                                       "not to direct answers", "invalid_request_error", "invalid_value", "junto")
        if strategy != "direct":
            # validated with everything else by the facade's request contract (junto.request)
            params = {**params, **extra}
            if settings.max_samples_limit:
                params["max_samples"] = min(int(params.get("max_samples") or settings.max_samples_limit),
                                            settings.max_samples_limit)
        messages = [m.plain() for m in body.messages]
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        t0 = time.perf_counter()
        monitor_headers: dict[str, str] = {}
        if guard is not None and monitor_metrics is not None:  # before the model is called (junto.monitors)
            try:
                decision = await guard.check(messages, key=info.name if info else None, model=body.model,
                                             header=request.headers.get("x-junto-conversation"),
                                             metadata=getattr(body, "metadata", None), user=getattr(body, "user", None))
            except ConfigError as exc:
                return error_response(400, exc.message, "invalid_request_error", "invalid_value", exc.param)
            if decision is not None:
                monitor_metrics.observe(decision)
                if decision.header:
                    monitor_headers["x-junto-monitor"] = decision.header
                if decision.refuse:
                    metrics.requests.labels(body.model, strategy, "content_filter").inc()
                    return _refused(f"chatcmpl-{request_id[:24]}", body.model, body.stream,
                                    {**monitor_headers, "x-junto-request-id": request_id})
        events = junto.astream(messages, strategy=strategy, deployment=deployment, trace_id=request_id,
                               stream_tokens=body.stream, monitor=False, **params)
        try:
            async with asyncio.timeout(settings.request_timeout_s):  # no extra task, unlike wait_for
                first, routed = await _first_answer_event(events)
        except TimeoutError:
            await events.aclose()
            metrics.errors.labels("timeout").inc()
            metrics.requests.labels(body.model, strategy, "504").inc()
            return error_response(504, f"no answer within {settings.request_timeout_s:.0f} s", "timeout_error",
                                  "upstream_timeout")
        except JuntoError as exc:
            await events.aclose()
            return _backend_error(exc, body.model, strategy)
        if strategy == "auto":  # the strategy that runs: the chosen arm's, or direct without arms
            strategy = junto.pool.arm(routed.routing.arm).strategy if routed and routed.routing.arm else "direct"
        headers = {"x-junto-strategy": strategy, "x-junto-request-id": request_id,
                   "x-junto-routing-ms": f"{routed.routing.routing_ms:.3f}" if routed else "0", **monitor_headers}
        if routed and routed.routing.arm:
            headers["x-junto-arm"] = routed.routing.arm
        if isinstance(first, TokenEvent):
            headers["x-junto-deployment"] = first.deployment
        elif isinstance(first, ResultEvent):
            headers["x-junto-deployment"] = first.result.deployment
        created = int(time.time())
        cid = f"chatcmpl-{request_id[:24]}"
        if not body.stream:
            result = first.result if isinstance(first, ResultEvent) else None
            try:
                while result is None:
                    ev = await events.__anext__()
                    if isinstance(ev, ResultEvent):
                        result = ev.result
            except JuntoError as exc:
                return _backend_error(exc, body.model, strategy)
            finally:
                await events.aclose()
            _observe(result, body.model, strategy, t0, None)
            headers["x-junto-cost"] = f"{result.cost_usd:.8f}"
            # tokens are charged once the answer is on its way: the store's round trip adds no latency
            return JSONResponse(_completion(cid, created, body.model, result), headers=headers,
                                background=BackgroundTask(charge, request, info, result.usage.total_tokens))
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _sse(events, first, cid, created, body.model, strategy, include_usage, t0, request, info),
            media_type="text/event-stream", headers={**headers, "cache-control": "no-cache"})

    def openapi_with_models() -> dict[str, Any]:
        # the schema names the models this gateway serves, so clients and fuzzers know the valid values
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            props = schema["components"]["schemas"]["ChatCompletionRequest"]["properties"]
            props["model"]["enum"] = sorted(virtual) + sorted(deployments)
            for path in schema["paths"].values():
                for op in path.values():
                    op.get("responses", {}).pop("422", None)  # validation errors are answered 400
            for name in _FASTAPI_422:
                schema["components"]["schemas"].pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi_with_models  # type: ignore[method-assign]

    def _refused(cid: str, model: str, stream: bool, headers: dict[str, str]) -> Response:
        created = int(time.time())
        if not stream:
            return JSONResponse(refusal_completion(cid, created, model), headers=headers)
        body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in refusal_chunks(cid, created, model))
        return Response(body + b"data: [DONE]\n\n", media_type="text/event-stream",
                        headers={**headers, "cache-control": "no-cache"})

    async def _first_answer_event(events: AsyncIterator[Any]) -> tuple[Any, RoutedEvent | None]:
        routed = None
        async for ev in events:
            if isinstance(ev, RoutedEvent):
                routed = ev
            elif isinstance(ev, (TokenEvent, ResultEvent)):
                return ev, routed
        raise BackendError("the strategy ended without an answer")

    def _backend_error(exc: JuntoError, model: str, strategy: str) -> JSONResponse:
        if isinstance(exc, ConfigError):
            metrics.requests.labels(model, strategy, "400").inc()
            return error_response(400, exc.message, "invalid_request_error", "invalid_value", exc.param)
        if isinstance(exc, BackendError) and exc.client_fault:
            # the deployment rejected the request itself: the client's to fix, not an outage
            metrics.requests.labels(model, strategy, "400").inc()
            return error_response(400, f"the deployment rejected the request: {exc.message}",
                                  "invalid_request_error", "upstream_rejected")
        metrics.errors.labels("backend").inc()
        metrics.requests.labels(model, strategy, "503").inc()
        return error_response(503, exc.message, "service_unavailable", "backend_unavailable")

    def _observe(result: Any, model: str, strategy: str, t0: float, ttft: float | None) -> None:
        metrics.requests.labels(model, strategy, "200").inc()
        metrics.latency.labels(strategy).observe(time.perf_counter() - t0)
        if ttft is not None:
            metrics.ttft.labels(strategy).observe(ttft)
        for name in result.deployments or [result.deployment]:
            metrics.routed.labels(name).inc()
        for fb in result.fallbacks:
            metrics.fallbacks.labels(fb["deployment"]).inc()
        metrics.tokens.labels("prompt").inc(result.usage.prompt_tokens)
        metrics.tokens.labels("completion").inc(result.usage.completion_tokens)
        if result.usage.reasoning_tokens:
            metrics.tokens.labels("reasoning").inc(result.usage.reasoning_tokens)
        metrics.cost.inc(result.cost_usd)

    async def _sse(events: AsyncIterator[Any], first: Any, cid: str, created: int, model: str, strategy: str,
                   include_usage: bool, t0: float, request: Request, info: KeyInfo | None) -> AsyncIterator[bytes]:
        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        ttft = time.perf_counter() - t0
        result = None
        try:
            yield chunk({"role": "assistant", "content": ""})
            if isinstance(first, TokenEvent):
                # the model's thinking streams as delta.reasoning_content, the answer as delta.content
                # (the vLLM / DeepSeek convention)
                yield chunk({_DELTA_KEY[first.kind]: first.text})
                async for ev in events:
                    if isinstance(ev, TokenEvent):
                        yield chunk({_DELTA_KEY[ev.kind]: ev.text})
                    elif isinstance(ev, ResultEvent):
                        result = ev.result
            else:
                result = first.result
                if result.reasoning_content:
                    yield chunk({"reasoning_content": result.reasoning_content})
                yield chunk({"content": result.text if result.votes is not None else result.answer})
            yield chunk({}, result.finish_reason or "stop", junto=_junto_field(result))
            if include_usage:
                yield (b"data: " + json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created,
                                               "model": model, "choices": [],
                                               "usage": _usage(result.usage)}).encode() + b"\n\n")
            yield b"data: [DONE]\n\n"
            _observe(result, model, strategy, t0, ttft)
            await charge(request, info, result.usage.total_tokens)
        except JuntoError as exc:
            # headers are gone: report in-band, the way OpenAI streams report errors
            metrics.errors.labels("backend_midstream").inc()
            metrics.requests.labels(model, strategy, "error").inc()
            yield b"data: " + json.dumps(error_body(exc.message, "server_error", "backend_failed")).encode() + b"\n\n"
        finally:
            await events.aclose()  # a client that went away cancels the upstream request here

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


class _StoreCollector:
    """Prometheus view of the store: ``junto_store_up`` (1 shared store answering or in-process, 0 degraded),
    ``junto_store_fallbacks_total`` (operations served locally while Redis was down), ``junto_store_outages_total``."""

    def __init__(self, stores: Stores):
        self.stores = stores

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        conn = self.stores.connection
        up = GaugeMetricFamily("junto_store_up", "Whether the state store answers (0: degraded, serving on local "
                               "state)", labels=["kind"])
        up.add_metric([self.stores.kind], 0.0 if conn is not None and not conn.up else 1.0)
        yield up
        fb = CounterMetricFamily("junto_store_fallbacks", "Store operations served from local state because the "
                                 "shared store was unreachable")
        fb.add_metric([], float(conn.fallbacks if conn is not None else 0))
        yield fb
        out = CounterMetricFamily("junto_store_outages", "Times the shared store became unreachable")
        out.add_metric([], float(conn.outages if conn is not None else 0))
        yield out


#: where a streamed piece goes in a chunk's delta, by TokenEvent.kind
_DELTA_KEY = {"content": "content", "reasoning": "reasoning_content"}


def _junto_field(result: Any) -> dict[str, Any]:
    out = {"deployment": result.deployment, "deployments": result.deployments, "strategy": result.strategy,
           "votes": result.votes, "samples": result.samples, "trace_id": result.trace_id,
           "routing": {"ranked": result.routing.ranked, "router": result.routing.router, "arm": result.routing.arm},
           "cost_usd": result.cost_usd, "fallbacks": result.fallbacks}
    if result.usage.reasoning_tokens is not None:
        out["reasoning_tokens_estimated"] = result.usage.reasoning_estimated
    return out


def _usage(u: Any) -> dict[str, Any]:
    """OpenAI usage; ``completion_tokens_details.reasoning_tokens`` when the answer had thinking."""
    out: dict[str, Any] = {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                           "total_tokens": u.total_tokens}
    if u.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": u.reasoning_tokens}
    return out


def _completion(cid: str, created: int, model: str, result: Any) -> dict[str, Any]:
    message = {"role": "assistant", "content": result.text if result.votes is not None else result.answer}
    if result.reasoning_content is not None:
        message["reasoning_content"] = result.reasoning_content
    return {
        "id": cid, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": result.finish_reason or "stop", "logprobs": result.logprobs}],
        "usage": _usage(result.usage),
        "junto": _junto_field(result),
    }
