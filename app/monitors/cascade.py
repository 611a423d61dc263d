"""The cascade of arXiv 2506.10949's cost argument: the classifier answers alone when it is sure, and the prompted
monitor is asked only when the classifier's probability falls inside the unsure band ``[low, high)``.

Below ``low``: pass; at or above ``high``: flag; in between: the prompted monitor's verdict (one short model call).
The band is tuned on the validation split (bench/bench_monitors.py) and kept in configs/monitors/cascade.json.
"""

from __future__ import annotations

from collections.abc import Sequence

from junto.monitors.base import Monitor, Verdict


def cascade_decision(p_classifier: float, low: float, high: float) -> str:
    """``pass``, ``flag`` or ``ask`` (the prompted monitor decides)."""
    if p_classifier >= high:
        return "flag"
    if p_classifier < low:
        return "pass"
    return "ask"


class CascadeMonitor(Monitor):
    name = "cascade"

    def __init__(self, classifier: Monitor, prompted: Monitor, low: float, high: float):
        if not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"the cascade band needs 0 <= low <= high <= 1 (got {low}, {high})")
        self.classifier, self.prompted, self.low, self.high = classifier, prompted, low, high
        self.threshold = prompted.threshold

    async def score(self, requests: Sequence[str]) -> Verdict:
        first = await self.classifier.score(requests)
        step = cascade_decision(first.probability, self.low, self.high)
        if step != "ask":
            return Verdict(first.probability, step == "flag", self.name, {"by": "classifier"})
        second = await self.prompted.score(requests)
        return Verdict(second.probability, second.flagged, self.name,
                       {"by": "prompted", "classifier": first.probability})

    async def aclose(self) -> None:
        await self.prompted.aclose()
