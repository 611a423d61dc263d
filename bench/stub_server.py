"""A fast OpenAI-compatible stub server on loopback, for overhead benchmarks and fault injection.

Not a model: it answers instantly with fixed words, so that a benchmark measures only what sits in
front of it, and it misbehaves on demand so that tests can watch junto handle a real failing server
process. Raw asyncio (no framework) keeps its own per-request cost far below what it measures.

    python bench/stub_server.py --port 8001 [--mode ok|die|hang|garbage|error500|error400|slow|trickle|think|think_inside] [--tokens 8]

``--mode`` sets the behaviour of every request; a request may override it with the header
``x-stub-mode``. Modes:

* ``ok``       answer (streamed or not, ``n`` choices, usage included)
* ``die``      stream two chunks, then the process exits (a backend killed mid-stream)
* ``hang``     accept the request and never answer
* ``garbage``  HTTP 200 with a body that is not JSON (and non-JSON SSE data when streaming)
* ``error500`` HTTP 500 with an OpenAI-shaped error
* ``error400`` HTTP 400 with an OpenAI-shaped error (the server refuses the request itself)
* ``slow``     wait ``--delay`` seconds before answering
* ``trickle``  stream with ``--delay`` seconds between tokens (to watch disconnects and drains)
* ``think``    answer with the fixed thinking-model text :data:`THINK_TEXT` (``<think>…</think>answer``),
  streamed three characters a chunk so that the tags are cut across chunks (reasoning-parsing tests);
  ``max_tokens`` cuts it after that many chunks (``finish_reason: length``: a thinking cut before its close tag)
* ``think_inside``  the same text without its open tag, as a model whose chat template opened the thinking

``POST /pooling`` answers as vLLM's pooling endpoint serving a process reward model (``task:
token_classify``, vLLM's step pooler): one ``[P(wrong), P(right)]`` row per occurrence of the step
separator ``<extra_0>`` in the assistant message (or the ``input`` text), P(right) = 0.2 for a step whose
text contains "wrong" and 0.9 otherwise. Modes ``prm_nosep`` (no rows: the separator is not the PRM's
step tag) and ``prm_logits`` (rows of raw logits, not probabilities) inject the format faults; every other
mode behaves as for chat (``error500``, ``garbage``, ``hang``, ``slow`` …).

``GET /stats`` returns counters: requests, chat requests, completed streams, and streams the client abandoned.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

WORDS = ["stub", "answer", "from", "the", "loopback", "server", "with", "fixed", "words", "only"]
THINK_TEXT = ("<think>\nThe user asks for 2 + 2. Two plus two is four; 3 would be wrong.\n</think>\n\n"
              "The answer is 4.")
THINK_MODES = {"think": THINK_TEXT, "think_inside": THINK_TEXT.removeprefix("<think>")}


def think_chunks(mode: str, max_tokens: int | None = None) -> list[str]:
    text = THINK_MODES[mode]
    return [text[i:i + 3] for i in range(0, len(text), 3)][:max_tokens]


def think_finish(mode: str, max_tokens: int | None) -> str:
    return "length" if max_tokens is not None and max_tokens < len(think_chunks(mode)) else "stop"


PRM_SEP = "<extra_0>"
PRM_MODES = ("prm_nosep", "prm_logits")


def pooling(body: dict, mode: str) -> dict:
    """vLLM's PoolingResponse for a PRM: per request item, one row per step separator."""
    if body.get("messages"):
        texts = ["".join(str(m.get("content", "")) for m in body["messages"] if m.get("role") == "assistant")]
    else:
        inp = body.get("input", "")
        texts = inp if isinstance(inp, list) else [inp]
    data = []
    for i, text in enumerate(texts):
        steps = str(text).split(PRM_SEP)[:-1]
        rows = [[0.8, 0.2] if "wrong" in st else [0.1, 0.9] for st in steps]
        if mode == "prm_nosep":
            rows = []
        elif mode == "prm_logits":
            rows = [[-3.5, 4.25] for _ in steps]
        data.append({"index": i, "object": "pooling", "data": rows})
    n_tok = sum(len(str(t).split()) for t in texts)
    return {"id": "pool-stub", "object": "list", "created": int(time.time()), "model": body.get("model", "stub"),
            "data": data, "usage": {"prompt_tokens": n_tok, "total_tokens": n_tok, "completion_tokens": 0}}


def completion(body: dict, tokens: int, mode: str = "ok") -> dict:
    n = int(body.get("n") or 1)
    text = " ".join(WORDS[i % len(WORDS)] for i in range(min(tokens, int(body.get("max_tokens") or tokens))))
    finish = "stop"
    if mode in THINK_MODES:
        text = "".join(think_chunks(mode, body.get("max_tokens")))
        finish = think_finish(mode, body.get("max_tokens"))
    prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stub"),
        "choices": [{"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
                    for i in range(n)],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()) * n,
                  "total_tokens": prompt_tokens + len(text.split()) * n},
    }


def chunk(model: str, content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    obj = {"id": "chatcmpl-stub", "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
           "choices": [] if usage else [{"index": 0, "delta": {"content": content} if content else {},
                                         "finish_reason": finish}]}
    if usage:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class Stub:
    def __init__(self, mode: str, tokens: int, delay: float):
        self.mode, self.tokens, self.delay = mode, tokens, delay
        self.requests = 0
        self.chat_requests = 0
        self.completed_streams = 0
        self.aborted_streams = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests += 1
                keep = await self.respond(method, path, headers, body, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    @staticmethod
    def send(writer: asyncio.StreamWriter, status: str, payload: bytes, ctype: str = "application/json") -> None:
        writer.write(f"HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {len(payload)}\r\n\r\n".encode()
                     + payload)

    async def respond(self, method: str, path: str, headers: dict, raw: bytes, writer: asyncio.StreamWriter) -> bool:
        if method == "GET" and path.rstrip("/") in ("/v1/models", "/models"):
            self.send(writer, "200 OK", json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode())
            return True
        if method == "GET" and path == "/stats":
            self.send(writer, "200 OK", json.dumps({"requests": self.requests, "chat_requests": self.chat_requests,
                                                    "completed_streams": self.completed_streams,
                                                    "aborted_streams": self.aborted_streams}).encode())
            return True
        if method == "GET" and path == "/health":
            self.send(writer, "200 OK", b'{"status":"ok"}')
            return True
        is_pooling = method == "POST" and path.rstrip("/") in ("/pooling", "/v1/pooling")
        if (method != "POST" or not path.rstrip("/").endswith("/chat/completions")) and not is_pooling:
            self.send(writer, "404 Not Found", b'{"error":{"message":"not found","type":"not_found"}}')
            return True
        self.chat_requests += 1
        mode = headers.get("x-stub-mode", self.mode)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self.send(writer, "400 Bad Request", b'{"error":{"message":"invalid JSON","type":"invalid_request_error"}}')
            return True
        if mode == "hang":
            await asyncio.sleep(3600)
            return False
        if mode == "slow":
            await asyncio.sleep(self.delay)
        if mode == "error500":
            self.send(writer, "500 Internal Server Error",
                      b'{"error":{"message":"stub failure","type":"server_error"}}')
            return True
        if mode == "error400":
            self.send(writer, "400 Bad Request",
                      b'{"error":{"message":"stub refuses this request","type":"invalid_request_error"}}')
            return True
        if mode == "garbage":
            if body.get("stream"):
                self.send(writer, "200 OK", b"data: {not json\n\n", "text/event-stream")
            else:
                self.send(writer, "200 OK", b"<html>definitely not json", "text/html")
            return True
        if is_pooling:
            self.send(writer, "200 OK", json.dumps(pooling(body, mode)).encode())
            return True
        model = body.get("model", "stub")
        if not body.get("stream"):
            self.send(writer, "200 OK", json.dumps(completion(body, self.tokens, mode)).encode())
            return True
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        n_tokens = min(self.tokens, int(body.get("max_tokens") or self.tokens))
        pieces = think_chunks(mode, body.get("max_tokens")) if mode in THINK_MODES else None
        if pieces is not None:
            n_tokens = len(pieces)

        def emit(data: bytes) -> None:
            writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        try:
            for i in range(n_tokens):
                emit(chunk(model, pieces[i] if pieces is not None else ("" if i == 0 else " ") + WORDS[i % len(WORDS)]))
                if mode == "die" and i == 1:
                    await writer.drain()
                    os._exit(3)  # the backend dies mid-stream: connection reset, process gone
                if mode == "trickle":
                    await writer.drain()
                    if writer.is_closing() or reader_at_eof(writer):
                        raise ConnectionResetError
                    await asyncio.sleep(self.delay)
        except ConnectionError:
            self.aborted_streams += 1
            return False
        emit(chunk(model, None, think_finish(mode, body.get("max_tokens")) if pieces is not None else "stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            emit(chunk(model, None, usage={"prompt_tokens": 1, "completion_tokens": n_tokens,
                                           "total_tokens": n_tokens + 1}))
        emit(b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        try:
            await writer.drain()
        except ConnectionError:
            self.aborted_streams += 1
            return False
        self.completed_streams += 1
        return True


def reader_at_eof(writer: asyncio.StreamWriter) -> bool:
    """True once the peer has closed its side (the transport saw EOF)."""
    proto = writer.transport.get_protocol()
    reader = getattr(proto, "_stream_reader", None)
    return bool(reader is not None and reader.at_eof())


async def serve(host: str, port: int, stub: Stub) -> None:
    server = await asyncio.start_server(stub.handle, host, port, backlog=1024)
    print(f"stub listening on http://{host}:{port}/v1 mode={stub.mode}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", default="ok", choices=["ok", "die", "hang", "garbage", "error500", "error400", "slow",
                                                        "trickle", *THINK_MODES, *PRM_MODES])
    ap.add_argument("--tokens", type=int, default=8)
    ap.add_argument("--delay", type=float, default=1.0)
    args = ap.parse_args()
    try:
        import uvloop  # noqa: F401  (installed with uvicorn[standard]); faster loop, same semantics

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, Stub(args.mode, args.tokens, args.delay)))


if __name__ == "__main__":
    main()
