"""The circuit breaker: pure looks, a probe claimed only by the call that uses it, outcomes from every path.

Pure logic with an injected clock; the strategies' use of it runs against real servers in
tests/reasoning/test_failures.py.
"""

from __future__ import annotations

import pytest

from junto.errors import BackendError
from junto.health import HealthTracker


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def tracker(failures: int = 2, seconds: float = 10.0, **kw) -> tuple[HealthTracker, Clock]:
    clock = Clock()
    return HealthTracker(failures, seconds, clock=clock, **kw), clock


def half_open(h: HealthTracker, clock: Clock, name: str) -> None:
    for _ in range(h.failures):
        h.failure(name)
    assert h.state(name) == "cooling" and not h.available(name)
    clock.t += h.seconds
    assert h.state(name) == "half-open"


def test_unknown_and_healthy_deployments_are_ok():
    h, _ = tracker()
    assert h.state("a") == "ok" and h.available("a")
    h.failure("a")  # one failure of two: still ok
    assert h.state("a") == "ok" and h.available("a")
    p = h.try_acquire("a")
    assert p is not None and not p.probe
    p.success()
    assert h.total_failures("a") == 1


def test_looking_has_no_side_effects():
    h, clock = tracker()
    half_open(h, clock, "b")
    for _ in range(5):  # ranking, filtering and readiness pages look as often as they like
        assert h.available("b") and h.state("b") == "half-open"
        assert h.order(["a", "b"]) == ["a", "b"]
    p = h.try_acquire("b")
    assert p is not None and p.probe, "the probe is still free for the call that uses it"


def test_the_single_probe_goes_to_the_first_call():
    h, clock = tracker()
    half_open(h, clock, "b")
    probe = h.try_acquire("b")
    assert probe is not None and probe.probe
    assert h.state("b") == "probing" and not h.available("b")
    assert h.try_acquire("b") is None, "a second concurrent call may not probe too"
    assert h.order(["a", "b"]) == ["a"]
    probe.success()
    assert h.state("b") == "ok" and h.available("b")
    assert h.try_acquire("b") is not None


def test_a_failed_probe_cools_it_again():
    h, clock = tracker(seconds=10.0)
    half_open(h, clock, "b")
    probe = h.try_acquire("b")
    probe.failure()
    assert h.state("b") == "cooling" and h.try_acquire("b") is None
    clock.t += 9.9
    assert h.state("b") == "cooling"
    clock.t += 0.2
    assert h.state("b") == "half-open" and h.try_acquire("b").probe


def test_ranked_second_and_never_called_keeps_its_probe_free():
    # the regression: one request ranked a half-open deployment second, answered from the first, and the
    # second stayed unavailable for good
    h, clock = tracker()
    half_open(h, clock, "recovering")
    ranked = h.order(["healthy", "recovering"])
    assert ranked == ["healthy", "recovering"]
    with h.try_acquire(ranked[0]):
        pass  # the request is answered by the first-ranked deployment; the second is never called
    assert h.state("recovering") == "half-open" and h.available("recovering")
    # a later request that does call it gets the probe; its success brings it back for good
    probe = h.try_acquire("recovering")
    assert probe is not None and probe.probe
    probe.success()
    assert h.state("recovering") == "ok"


def test_recovering_deployment_ranked_first_is_probed_once():
    h, clock = tracker()
    half_open(h, clock, "recovering")
    probe = h.try_acquire("recovering")
    assert probe.probe
    # a concurrent request sees it probing and goes to the next one
    assert h.order(["recovering", "healthy"]) == ["healthy"]
    probe.report(BackendError("HTTP 500", status_code=500, retryable=True))
    assert probe.outcome == "failure" and h.state("recovering") == "cooling"


@pytest.mark.parametrize("exc,outcome,state", [
    (None, "success", "ok"),
    (BackendError("HTTP 503", status_code=503, retryable=True), "failure", "cooling"),
    (BackendError("connection refused", retryable=True), "failure", "cooling"),
    (BackendError("broke off after 3 chunks", retryable=False), "failure", "cooling"),
    # the deployment refused this request: nothing learnt about it, the probe is freed
    (BackendError("HTTP 400", status_code=400), "released", "half-open"),
    (KeyboardInterrupt(), "released", "half-open"),
])
def test_every_path_reports(exc, outcome, state):
    h, clock = tracker()
    half_open(h, clock, "b")
    permit = h.try_acquire("b")
    permit.report(exc)
    assert permit.outcome == outcome and h.state("b") == state


def test_context_manager_reports_from_the_exception():
    h, clock = tracker()
    half_open(h, clock, "b")
    with pytest.raises(BackendError):
        with h.try_acquire("b"):
            raise BackendError("HTTP 502", status_code=502, retryable=True)
    assert h.state("b") == "cooling"
    clock.t += h.seconds
    with h.try_acquire("b") as permit:
        assert permit.probe
    assert h.state("b") == "ok"


def test_the_first_outcome_counts():
    h, clock = tracker()
    half_open(h, clock, "b")
    permit = h.try_acquire("b")
    permit.success()
    permit.failure()
    permit.release()
    assert permit.outcome == "success" and h.state("b") == "ok" and h.total_failures("b") == 2


def test_an_unreported_probe_is_given_up_after_its_timeout():
    h, clock = tracker(probe_timeout_s=60.0)
    half_open(h, clock, "b")
    lost = h.try_acquire("b")  # its holder never reports (a bug, a killed task)
    assert h.state("b") == "probing"
    clock.t += 59.0
    assert h.try_acquire("b") is None
    clock.t += 2.0
    assert h.state("b") == "half-open"
    fresh = h.try_acquire("b")
    assert fresh is not None and fresh.probe
    lost.release()  # a stale permit cannot free the new probe
    assert h.state("b") == "probing"
    fresh.success()
    assert h.state("b") == "ok"


def test_force_tries_a_cooling_deployment_without_taking_the_probe():
    h, clock = tracker()
    for _ in range(2):
        h.failure("a")
    assert h.try_acquire("a") is None
    forced = h.try_acquire("a", force=True)
    assert forced is not None and not forced.probe
    forced.success()
    assert h.state("a") == "ok"


def test_order_keeps_the_ranked_list_when_nothing_may_be_called():
    h, _ = tracker()
    for name in ("a", "b"):
        for _ in range(2):
            h.failure(name)
    assert h.order(["a", "b"]) == ["a", "b"]


def test_outcomes_without_a_permit_still_work():
    h, clock = tracker()
    half_open(h, clock, "b")
    h.try_acquire("b")
    h.success("b")  # a caller doing its own bookkeeping
    assert h.state("b") == "ok"
    h.failure("b")
    h.failure("b")
    assert h.state("b") == "cooling"
