#!/usr/bin/env python3
"""ONNX Runtime's idle-thread spinning, per mode: sequential FPS and live frame age.

    python scripts/spinning.py [--frames 300] [--rounds 3]

- Sequential loop on files (``annotate run --sequential``, H.264 output), spinning on and
  off, alternating rounds, best in-loop FPS of each.
- A live source: a stand-in camera fed from a file at its real frame rate (the same
  ``cv2.VideoCapture`` interface a webcam has), JSON output; the median and 90th percentile
  age of each frame from capture to drawn, and the frames dropped.
The concurrent runner is not measured here: scripts/throughput.py covers it (spinning off).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts.throughput import FOOTAGE, MODEL, measure, scaled  # noqa: E402


def live(clip: Path, frames: int, spinning: bool) -> tuple[float, float, int]:
    """(median age ms, p90 age ms, dropped) for a stand-in camera playing ``clip``."""
    import annotate.sources.camera as camera
    from annotate.detector import SessionSettings
    from annotate.pipeline import RunOptions, run
    from annotate.providers import CPU, Resolution
    from tests.conftest import FileCamera

    camera.open_capture = lambda _index: FileCamera(clip)  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        settings = SessionSettings(spinning=spinning)
        options = RunOptions(source="camera", model=MODEL, resolution=Resolution((CPU,), "bench"),
                             json_path=str(Path(tmp) / "d.jsonl"), max_frames=frames,
                             fps_every=10**9, session=settings)  # fmt: skip
        summary = run(options)
    ages = np.array(list(summary.ages)[10:]) * 1000
    return float(np.median(ages)), float(np.percentile(ages, 90)), summary.dropped


def main() -> int:
    from annotate.detector import SessionSettings

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="annotate-spin-") as name:
        tmp = Path(name)
        inputs = [("768x432 (shared)", FOOTAGE),
                  ("720p", scaled(FOOTAGE, tmp / "720p.mp4", 720, args.frames + 10))]  # fmt: skip
        print("| input | mode | spinning off | spinning on | on ÷ off |")
        print("|---|---|---|---|---|")
        for label, path in inputs:
            best = {True: 0.0, False: 0.0}
            for _ in range(args.rounds):
                for spin in (False, True):
                    fps, _ = measure(path, tmp, args.frames, sequential=True,
                                     session=SessionSettings(spinning=spin))  # fmt: skip
                    best[spin] = max(best[spin], fps)
            print(f"| {label} | sequential, FPS (best of {args.rounds}) | {best[False]:.1f} | "
                  f"{best[True]:.1f} | {best[True] / best[False]:.2f}× |")  # fmt: skip
        bottles = FOOTAGE.parent / "bottle-detection.mp4"  # 29.83 FPS, like a webcam
        camera_clip = scaled(bottles, tmp / "cam720.mp4", 720, args.frames + 10)
        ages: dict[bool, list[tuple[float, float, int]]] = {True: [], False: []}
        for _ in range(args.rounds):
            for spin in (False, True):
                ages[spin].append(live(camera_clip, args.frames, spin))
        for spin in (False, True):
            med = np.median([a[0] for a in ages[spin]])
            p90 = np.median([a[1] for a in ages[spin]])
            dropped = np.median([a[2] for a in ages[spin]])
            print(f"live 720p camera at 30 FPS, spinning {'on' if spin else 'off'}: frame age "
                  f"median {med:.1f} ms, p90 {p90:.1f} ms, dropped {dropped:.0f} "
                  f"(medians of {args.rounds} runs)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
