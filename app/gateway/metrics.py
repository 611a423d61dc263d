"""Prometheus metrics of one gateway (its own registry, so several apps in one process don't clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("junto_requests", "Chat completion requests", ["model", "strategy", "status"], registry=r)
        self.latency = Histogram("junto_request_latency_seconds", "Time to the last byte", ["strategy"],
                                 buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("junto_time_to_first_token_seconds", "Time to the first token (streams)", ["strategy"],
                              buckets=LATENCY_BUCKETS, registry=r)
        self.routed = Counter("junto_routed", "Requests answered per deployment", ["deployment"], registry=r)
        self.tokens = Counter("junto_tokens", "Tokens", ["kind"], registry=r)
        self.cost = Counter("junto_cost_usd", "Cost in US dollars from the pool's prices", registry=r)
        self.errors = Counter("junto_errors", "Errors by kind", ["kind"], registry=r)
        self.fallbacks = Counter("junto_fallbacks", "Fallbacks to the next-ranked deployment", ["deployment"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
