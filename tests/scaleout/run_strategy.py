"""Run one strategy through the SDK and print its events as JSON lines (for tests that kill it mid-way).

    python tests/scaleout/run_strategy.py CONFIG TRACE_ID QUESTION STRATEGY [JSON_PARAMS]
"""

from __future__ import annotations

import asyncio
import json
import sys

from junto import Junto
from junto.facade import ResultEvent, StrategyEvent


async def main(config: str, trace_id: str, question: str, strategy: str, params: dict) -> None:
    async with Junto.from_config(config) as junto:
        async for ev in junto.astream(question, strategy=strategy, trace_id=trace_id, **params):
            if isinstance(ev, StrategyEvent):
                out = ev.data
            elif isinstance(ev, ResultEvent):
                out = {"type": "result", "answer": ev.result.answer, "samples": ev.result.samples,
                       "votes": ev.result.votes}
            else:
                continue
            print(json.dumps(out, default=str), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4],
                     json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}))
