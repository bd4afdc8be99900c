"""Run every benchmark in turn: ``python -m benchmarks`` (what ``make bench`` calls).

Order: embedding, adaround, filter_pruning, mixed_precision, app; a module
that does not exist (yet) is skipped. Each runs in its own interpreter
(``python -m benchmarks.<name>``) from the repository root, so one failure
or crash does not stop the others; a summary is printed at the end and the
exit status is 1 if any benchmark failed.

    python -m benchmarks [--only NAME ...] [--quick]

``--quick`` is passed on to the benchmarks that accept it (they say so in
their ``--help``).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ORDER = ("embedding", "adaround", "filter_pruning", "mixed_precision", "app")
HERE = Path(__file__).resolve().parent


def accepts_quick(name: str) -> bool:
    """Whether benchmarks/<name>.py declares a --quick option."""
    return '"--quick"' in (HERE / f"{name}.py").read_text(encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description="Run the benchmarks in benchmarks/ one after another.")
    parser.add_argument("--only", nargs="+", choices=ORDER, help="run only these benchmarks")
    parser.add_argument("--quick", action="store_true", help="pass --quick to benchmarks that support it")
    args = parser.parse_args(argv)
    names = [n for n in ORDER if (args.only is None or n in args.only)]
    summary: list[tuple[str, str, float]] = []
    for name in names:
        if not (HERE / f"{name}.py").is_file():
            summary.append((name, "not present, skipped", 0.0))
            continue
        cmd = [sys.executable, "-m", f"benchmarks.{name}"]
        if args.quick and accepts_quick(name):
            cmd.append("--quick")
        print(f"\n===== {' '.join(cmd[1:])} =====", flush=True)
        t0 = time.perf_counter()
        code = subprocess.call(cmd, cwd=HERE.parent)
        took = time.perf_counter() - t0
        summary.append((name, "ok" if code == 0 else f"FAILED (exit {code})", took))
    print("\n===== summary =====")
    for name, status, took in summary:
        print(f"{name:16s} {status:24s} {took:8.1f} s")
    return 0 if all(s in ("ok", "not present, skipped") for _, s, _ in summary) else 1


if __name__ == "__main__":
    raise SystemExit(main())
