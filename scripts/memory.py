#!/usr/bin/env python3
"""Peak memory of ``annotate run`` on a 1080p H.264 file, for a short and a long run.

    python -m scripts.memory [--frames 300] [--runs 20]

The 1080p input is the shared footage scaled up (as in ``scripts/throughput.py``), written to
1080p H.264 and JSON Lines. Each run is a separate process; its peak RSS comes from
``getrusage`` once it exits. Every configuration (plain, ``--track``, lines and zones,
``--blur``) runs ``--runs`` times, taking turns; the budget the docs state is the median and
the maximum. (The peak does not grow with length: docs/performance.md, "Memory".)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.harness import FOOTAGE, MODEL, save, scaled


def peak_rss_mb(args: list[str]) -> float:
    """Peak RSS of a child process (Linux reports KiB)."""
    code = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=True
    ).stdout
    return int(out.strip().splitlines()[-1]) / 1024


#: The run as a user runs it, and with each per-frame stage that holds state on.
CONFIGS: dict[str, list[str]] = {
    "plain": [],
    "--track": ["--track"],
    "lines and zones": [
        "--track",
        "--line",
        "0,540,1920,540",
        "--zone",
        "200,200,900,200,900,900,200,900",
    ],
    "--blur": ["--blur", "--blur-style", "pixelate"],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--runs", type=int, default=20, help="runs of each configuration")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="annotate-memory-") as name:
        tmp = Path(name)
        clip = scaled(FOOTAGE, tmp / "1080p.mp4", 1080, args.frames)
        peaks: dict[str, list[float]] = {label: [] for label in CONFIGS}
        for _ in range(args.runs):  # the configurations take turns, so drift hits all alike
            for label, extra in CONFIGS.items():
                cmd = [
                    sys.executable, "-m", "annotate", "run", str(clip),
                    "-o", str(tmp / "out.mp4"), "--json", str(tmp / "d.jsonl"),
                    "--model", str(MODEL), "-q", *extra,
                ]  # fmt: skip
                peaks[label].append(round(peak_rss_mb(cmd), 1))
        for label, values in peaks.items():
            row = {
                "run": label,
                "runs": len(values),
                "median_mb": round(statistics.median(values), 1),
                "max_mb": max(values),
                "min_mb": min(values),
                "peaks": values,
            }
            results.append(row)
            spread = f"max {row['max_mb']} MB, min {row['min_mb']} MB over {len(values)} runs"
            print(f"1080p, {args.frames} frames, {label}: median {row['median_mb']} MB, {spread}")
    save("memory", {"frames": args.frames, "rows": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
