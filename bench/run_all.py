"""Run every benchmark in bench/ (each script named bench_*.py), one after another.

    python bench/run_all.py            # all
    python bench/run_all.py embedded   # those whose name contains 'embedded'
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    pattern = sys.argv[1] if len(sys.argv) > 1 else ""
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        if pattern not in script.stem:
            continue
        print(f"=== {script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
