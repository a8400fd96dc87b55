#!/usr/bin/env python3
"""Peak memory of ``annotate run`` on a 1080p H.264 file, for a short and a long run.

    python -m scripts.memory [--frames 1200]

The 1080p input is the shared footage scaled up (as in ``scripts/throughput.py``). Each run is
a separate process; its peak RSS comes from ``getrusage`` once it exits. Flat memory means the
long run peaks no higher than the short one (a quarter of the frames).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from scripts.harness import FOOTAGE, MODEL, scaled


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="annotate-memory-") as name:
        tmp = Path(name)
        clip = scaled(FOOTAGE, tmp / "1080p.mp4", 1080, args.frames)
        for frames in (args.frames // 4, args.frames):
            for mode in ([], ["--sequential"]):
                cmd = [
                    sys.executable,
                    "-m",
                    "annotate",
                    "run",
                    str(clip),
                    "-o",
                    str(tmp / "out.mp4"),
                    "--json",
                    str(tmp / "d.jsonl"),
                    "--model",
                    str(MODEL),
                    "--max-frames",
                    str(frames),
                    "-q",
                    *mode,
                ]
                label = "sequential" if mode else "concurrent"
                print(f"1080p, {frames} frames, {label}: peak RSS {peak_rss_mb(cmd):.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
