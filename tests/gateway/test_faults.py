"""Fault injection with real loopback servers: fallback, cooldown, hangs, garbage, deaths, disconnects, drains."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import openai
import pytest
from helpers import serve, stub_pool, stub_server

Q = [{"role": "user", "content": "hi"}]


def stats(stub_url: str) -> dict:
    return httpx.get(stub_url.removesuffix("/v1") + "/stats").json()


def post(url: str, **body) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json={"model": "junto-auto", "messages": Q, **body}, timeout=30)


@pytest.mark.parametrize("mode", ["error500", "garbage", "hang"])
def test_fallback_to_next_deployment_before_first_token(tmp_path, mode):
    with stub_server(mode=mode) as (bad, _), stub_server() as (good, _):
        pool = stub_pool(("primary", bad), ("secondary", good), timeout_s=1.0)
        with serve({"pool": pool}, tmp_path) as (url, _):
            for stream in (False, True):
                r = post(url, stream=stream)
                assert r.status_code == 200, r.text
                assert r.headers["x-junto-deployment"] == "secondary"
                if stream:
                    assert r.text.rstrip().endswith("data: [DONE]")
                else:
                    assert r.json()["junto"]["fallbacks"][0]["deployment"] == "primary"
            assert 'junto_fallbacks_total{deployment="primary"}' in httpx.get(f"{url}/metrics").text


def test_failing_deployment_is_cooled_down_then_probed_back(tmp_path):
    with stub_server(mode="error500") as (bad, _), stub_server() as (good, _):
        cfg = {"pool": stub_pool(("primary", bad), ("secondary", good)),
               "gateway": {"cooldown": {"failures": 2, "seconds": 1.5}}}
        with serve(cfg, tmp_path) as (url, _):
            for _ in range(2):
                assert post(url).headers["x-junto-deployment"] == "secondary"
            seen = stats(bad)["chat_requests"]
            assert seen == 2
            assert "cooling" in httpx.get(f"{url}/readyz").json()["deployments"]["primary"]
            for _ in range(3):  # cooling: the failing primary is not even tried
                assert post(url).headers["x-junto-deployment"] == "secondary"
            assert stats(bad)["chat_requests"] == seen
            time.sleep(1.7)  # half-open: exactly one probe reaches it again
            assert post(url).headers["x-junto-deployment"] == "secondary"
            assert stats(bad)["chat_requests"] == seen + 1


def test_all_deployments_down_is_503(tmp_path):
    with stub_server(mode="error500") as (bad, _):
        with serve({"pool": stub_pool(("only", bad))}, tmp_path) as (url, _):
            r = post(url)
            assert r.status_code == 503 and r.json()["error"]["type"] == "service_unavailable"
            assert "Traceback" not in r.text


def test_backend_killed_mid_stream_reports_in_band(tmp_path):
    with stub_server(mode="die") as (dying, proc):
        with serve({"pool": stub_pool(("only", dying))}, tmp_path) as (url, _):
            c = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            got = []
            with pytest.raises(openai.APIError) as err:
                for chunk in c.chat.completions.create(model="junto-auto", messages=Q, stream=True):
                    got.append(chunk)
            assert proc.wait(timeout=5) == 3
            assert any(ch.choices and ch.choices[0].delta.content for ch in got), "tokens arrived before the death"
            assert "broke off" in str(err.value) or "without finishing" in str(err.value)
            # the gateway itself is fine afterwards
            assert httpx.get(f"{url}/healthz").status_code == 200


def test_client_disconnect_cancels_upstream(tmp_path):
    with stub_server(mode="trickle", tokens=200, delay=0.05) as (slow, _):
        with serve({"pool": stub_pool(("only", slow))}, tmp_path) as (url, _):
            with httpx.stream("POST", f"{url}/v1/chat/completions",
                              json={"model": "junto-auto", "messages": Q, "stream": True}) as r:
                for line in r.iter_lines():
                    if '"content"' in line and '""' not in line:
                        break  # one token seen: hang up
            deadline = time.monotonic() + 5
            while stats(slow)["aborted_streams"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            s = stats(slow)
            assert s["aborted_streams"] == 1 and s["completed_streams"] == 0


def test_graceful_shutdown_drains_in_flight_stream(tmp_path):
    with stub_server(mode="trickle", tokens=30, delay=0.05) as (slow, _):
        with serve({"pool": stub_pool(("only", slow))}, tmp_path) as (url, proc):
            lines: list[str] = []

            def consume() -> None:
                with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=30,
                                  json={"model": "junto-auto", "messages": Q, "stream": True}) as r:
                    lines.extend(r.iter_lines())

            t = threading.Thread(target=consume)
            t.start()
            time.sleep(0.5)  # mid-stream (30 tokens take ~1.5 s)
            proc.send_signal(signal.SIGTERM)
            t.join(timeout=30)
            # uvicorn re-raises the signal after its graceful shutdown, so the status says SIGTERM
            assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
            assert "data: [DONE]" in lines, "the in-flight stream finished before the gateway exited"
            assert stats(slow)["completed_streams"] == 1
