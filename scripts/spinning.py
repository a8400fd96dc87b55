#!/usr/bin/env python3
"""ONNX Runtime's intra-op threads spinning, per mode: sequential FPS on files and live
frame age.

    python -m scripts.spinning [--frames 300] [--rounds 3]

Three settings, alternating rounds:
- **off**: idle threads sleep at once; every parallel step of a run wakes them;
- **during runs** (what ``annotate`` uses for the sequential loop): they spin inside a run and
  stop as soon as it returns (``session.force_spinning_stop``);
- **ONNX Runtime's default**: they spin inside a run and for a while after it, as in the loop
  a user writes by hand.
Measured: the sequential loop on files (``annotate run --sequential``, H.264 out, x264
``ultrafast``; best in-loop FPS of the rounds), and a live 720p camera at 30 FPS
(``scripts/live.py``'s stand-in, JSON Lines out or an H.264 recording; medians of the
rounds' median and 90th-percentile frame age, capture → drawn, and frames drawn per second).
The concurrent runner is not measured here: its workers have one thread each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from scripts.harness import FOOTAGE, against, alternate, measure, scaled
from scripts.live import ours

MODES = ("off", "during runs", "ONNX Runtime's default")


def settings(mode: str):
    from annotate.detector import SessionSettings

    return SessionSettings(spinning={"off": False, "during runs": True}.get(mode))


def main() -> int:
    import annotate.pipeline.build as build

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Spinning None is ONNX Runtime's default only if the pipeline does not choose for it.
    build.spinning_for = lambda plan: None  # type: ignore[assignment,return-value]
    with tempfile.TemporaryDirectory(prefix="annotate-spin-") as name:
        tmp = Path(name)
        frames = args.frames + 10
        inputs = [
            ("768x432", FOOTAGE),
            ("720p", scaled(FOOTAGE, tmp / "720.mp4", 720, frames)),
            ("1080p", scaled(FOOTAGE, tmp / "1080.mp4", 1080, frames)),
        ]
        print("| mode | " + " | ".join(MODES) + " |")
        print("|---|" + "---|" * len(MODES))
        for label, path in inputs:
            runs = {
                mode: lambda mode=mode, path=path: measure(
                    path, tmp, args.frames, sequential=True, session=settings(mode)
                )[0]
                for mode in MODES
            }
            compared = against(alternate(runs, args.rounds), "off")
            cells = " | ".join(
                f"{compared[m].best:.1f} FPS ({compared[m].best_ratio:.2f}×)" for m in MODES
            )
            print(f"| `--sequential`, {label}, H.264 out | {cells} |", flush=True)
        camera = scaled(
            FOOTAGE.parent / "bottle-detection.mp4", tmp / "cam.mp4", 720, args.frames * 2
        )
        for record in (None, tmp / "rec.mp4"):
            seen: dict[str, list[tuple[float, list[float]]]] = {m: [] for m in MODES}
            for _ in range(args.rounds):
                for mode in MODES:
                    seen[mode].append(ours(camera, 30, args.frames, record, settings(mode)))
            cells = []
            for mode in MODES:
                fps = statistics.median(f for f, _ in seen[mode])
                med = statistics.median(statistics.median(a) for _, a in seen[mode])
                p90 = statistics.median(sorted(a)[int(0.9 * len(a))] for _, a in seen[mode])
                cells.append(f"{med:.1f} / {p90:.1f} ms, {fps:.1f} FPS")
            what = "H.264 recording" if record else "JSON Lines"
            print(
                f"| live 720p camera at 30 FPS, {what}: age median / p90, drawn FPS | "
                + " | ".join(cells)
                + " |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
