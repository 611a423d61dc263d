"""Deployment health for fallbacks: a circuit breaker per deployment (pure logic, injectable clock).

After ``failures`` consecutive failures a deployment is *cooling*: skipped for ``seconds``. Then it
is *half-open*: a single request may *probe* it; success closes the breaker, failure cools it again.

Looking and calling are separate steps:

* :meth:`HealthTracker.available`, :meth:`~HealthTracker.state` and :meth:`~HealthTracker.order`
  only look (no side effects): ranking, filtering and readiness pages may call them freely.
* :meth:`HealthTracker.try_acquire` is called right before a request is sent to a deployment, by the
  code that sends it. It returns a :class:`Permit` (or ``None`` when the deployment may not be called
  now); on a half-open deployment the permit holds the single probe slot. The caller reports the
  outcome on the permit — :meth:`Permit.success`, :meth:`Permit.failure`, or :meth:`Permit.release`
  when the call says nothing about the deployment (cancelled, cut by the caller's own deadline,
  refused as the client's fault) — from every path; ``with permit:`` does it from the exception.

So a deployment that is ranked but never called keeps its probe free for the request that does call
it, and a probe whose holder vanished without a report is given up after ``probe_timeout_s``.

The state is process-local and the API synchronous (the hot path pays no I/O). Several gateway
replicas share cool-downs through a store (:mod:`junto.stores.health_sync`): the tracker tells its
``listener`` when a deployment starts cooling or recovers, and the sync applies the other replicas'
cool-downs with :meth:`HealthTracker.apply_remote` / :meth:`HealthTracker.clear_remote`.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

State = Literal["ok", "cooling", "half-open", "probing"]


@dataclass
class _State:
    consecutive_failures: int = 0
    cooling_until: float = 0.0
    probe: int | None = None        # token of the permit holding the probe slot
    probe_since: float = 0.0
    total_failures: int = 0
    remote: bool = False            # cooling because another replica said so (not our own failures)


class Permit:
    """Leave to send one request to ``name``; report its outcome exactly once (later reports are ignored).

    ``probe`` is True when this permit holds the half-open deployment's single probe slot.
    """

    __slots__ = ("tracker", "name", "probe", "_token", "outcome")

    def __init__(self, tracker: HealthTracker, name: str, token: int | None):
        self.tracker = tracker
        self.name = name
        self._token = token
        self.probe = token is not None
        #: "success", "failure", "released", or None while the call is in flight
        self.outcome: str | None = None

    def success(self) -> None:
        """The deployment answered: close its breaker."""
        if self.outcome is None:
            self.outcome = "success"
            self.tracker._settle(self.name, self._token, ok=True)

    def failure(self) -> None:
        """The deployment failed (unreachable, 5xx, timeout, broken stream): count it."""
        if self.outcome is None:
            self.outcome = "failure"
            self.tracker._settle(self.name, self._token, ok=False)

    def release(self) -> None:
        """No verdict on the deployment (the call was cancelled or refused as the client's fault): free the probe."""
        if self.outcome is None:
            self.outcome = "released"
            self.tracker._release(self.name, self._token)

    def report(self, exc: BaseException | None) -> None:
        """Report from how the call ended: no exception is a success; a ``BackendError`` a failure unless it
        is the client's fault (HTTP 4xx but 408/429), which is released like any other exception."""
        if exc is None:
            self.success()
            return
        from junto.errors import BackendError

        if isinstance(exc, BackendError) and not exc.client_fault:
            self.failure()
        else:
            self.release()

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.report(exc)

    def __repr__(self) -> str:
        return f"Permit({self.name!r}, probe={self.probe}, outcome={self.outcome!r})"


class HealthTracker:
    def __init__(self, failures: int = 3, seconds: float = 30.0, clock: Callable[[], float] = time.monotonic,
                 probe_timeout_s: float = 600.0):
        self.failures = failures
        self.seconds = seconds
        self.clock = clock
        #: a probe not reported within this many seconds is given up (its holder is gone)
        self.probe_timeout_s = probe_timeout_s
        self._states: dict[str, _State] = {}
        self._tokens = itertools.count(1)
        #: called as ``listener(name, "cool", seconds)`` when our own failures start a cool-down and
        #: ``listener(name, "recover", 0.0)`` when a deployment that was cooling answers again
        self.listener: Callable[[str, str, float], None] | None = None

    def _s(self, name: str) -> _State:
        return self._states.setdefault(name, _State())

    # -- looking (pure) ----------------------------------------------------------------------
    def state(self, name: str) -> State:
        """``ok``, ``cooling`` (skipped), ``half-open`` (its probe is free) or ``probing`` (a probe is in flight)."""
        s = self._states.get(name)
        if s is None or s.consecutive_failures < self.failures:
            return "ok"
        now = self.clock()
        if now < s.cooling_until:
            return "cooling"
        if s.probe is not None and now - s.probe_since < self.probe_timeout_s:
            return "probing"
        return "half-open"

    def available(self, name: str) -> bool:
        """May a request go to ``name`` now? Only looks: the probe is claimed by :meth:`try_acquire`."""
        return self.state(name) in ("ok", "half-open")

    def order(self, ranked: Iterable[str]) -> list[str]:
        """``ranked`` without the deployments that may not be called now; if none may, ``ranked`` unchanged."""
        ranked = list(ranked)
        ok = [n for n in ranked if self.available(n)]
        return ok or ranked

    # -- calling -----------------------------------------------------------------------------
    def try_acquire(self, name: str, *, force: bool = False) -> Permit | None:
        """A permit to call ``name`` now, or ``None`` (cooling, or its probe is taken).

        On a half-open deployment the permit claims the probe slot. ``force=True`` always gives a
        permit (never the probe slot): for a caller that tries a deployment anyway because every
        candidate is cooling.
        """
        st = self.state(name)
        if st == "ok":
            return Permit(self, name, None)
        if st == "half-open":
            s = self._s(name)
            s.probe = next(self._tokens)
            s.probe_since = self.clock()
            return Permit(self, name, s.probe)
        return Permit(self, name, None) if force else None

    def _settle(self, name: str, token: int | None, ok: bool) -> None:
        if ok:
            self.success(name)
            return
        s = self._s(name)
        if token is not None and s.probe == token:
            s.probe = None
        self._count_failure(name, s)

    def _release(self, name: str, token: int | None) -> None:
        s = self._states.get(name)
        if s is not None and token is not None and s.probe == token:
            s.probe = None

    # -- outcomes reported without a permit (kept for callers that do their own bookkeeping) ----
    def success(self, name: str) -> None:
        s = self._s(name)
        if s.consecutive_failures >= self.failures and self.listener is not None:
            self.listener(name, "recover", 0.0)
        s.consecutive_failures = 0
        s.probe = None
        s.remote = False

    def failure(self, name: str) -> None:
        s = self._s(name)
        s.probe = None
        self._count_failure(name, s)

    def _count_failure(self, name: str, s: _State) -> None:
        s.consecutive_failures += 1
        s.total_failures += 1
        if s.consecutive_failures >= self.failures:
            s.cooling_until = self.clock() + self.seconds
            s.remote = False
            if self.listener is not None:
                self.listener(name, "cool", self.seconds)

    # -- state shared by other replicas (junto.stores.health_sync) ---------------------------------
    def apply_remote(self, name: str, seconds_left: float) -> None:
        """Another replica cooled ``name`` down for ``seconds_left`` more seconds: skip it here too.

        Never shortens a cool-down of our own; the listener is not told (the news came from outside).
        """
        if seconds_left <= 0:
            return
        s = self._s(name)
        until = self.clock() + seconds_left
        if s.consecutive_failures >= self.failures and s.cooling_until >= until:
            return
        s.consecutive_failures = max(s.consecutive_failures, self.failures)
        s.cooling_until = until
        s.remote = True

    def clear_remote(self, name: str, margin_s: float = 0.0) -> None:
        """No replica reports ``name`` cooling any more: end a cool-down that came from outside.

        Only a cool-down with more than ``margin_s`` left is ended early (the other replica's probe
        succeeded); one about to run out becomes half-open as usual, so this replica probes too.
        Our own cool-downs are never ended from outside.
        """
        s = self._states.get(name)
        if s is None or not s.remote or s.consecutive_failures < self.failures:
            return
        if s.cooling_until - self.clock() > margin_s:
            s.consecutive_failures = 0
            s.cooling_until = 0.0
            s.remote = False

    def cooling(self) -> dict[str, tuple[float, bool]]:
        """The deployments cooling now: name → (seconds left, whether the cool-down came from another replica)."""
        now = self.clock()
        return {name: (s.cooling_until - now, s.remote) for name, s in self._states.items()
                if s.consecutive_failures >= self.failures and s.cooling_until > now}

    def seconds_left(self, name: str) -> float:
        """Seconds until ``name`` stops cooling (0 when it is not cooling)."""
        s = self._states.get(name)
        if s is None or s.consecutive_failures < self.failures:
            return 0.0
        return max(0.0, s.cooling_until - self.clock())

    def total_failures(self, name: str) -> int:
        s = self._states.get(name)
        return s.total_failures if s is not None else 0
