#!/usr/bin/env python3
"""--detect-every N: how much faster, and how many of the every-frame boxes it still finds.

    python -m scripts.detect_every [--frames 300] [--rounds 2] [--every 1 2 3 5]

For each input at 720p, runs ``annotate run --track --detect-every N`` (the library call the
CLI makes), alternating the values of N for ``--rounds`` rounds and keeping each one's best
in-loop FPS, twice: writing JSON Lines only (what a camera feeding a counter or a preview
does) and also encoding an H.264 ``-o`` (where the encoder's share of the time is fixed).
"Boxes kept" is the share of the N=1 run's boxes that the N run has on the same frame, same
class, at IoU ≥ 0.5: of all of them, and of those of confirmed tracks (an object that shows
up between two detections cannot be found before the next one, and neither can a one-frame
false alarm). Inputs: two shared videos scaled to 720p and the crossing scene of
annotate/testing/scenes.py (1280×720, real pixels, known paths).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from annotate.testing.scenes import scenes, write_scene
from annotate.tracking.tracker import iou_matrix
from scripts.harness import SHARED, alternate, measure, scaled


def boxes(path: Path, confirmed: bool = False) -> list[list[tuple[int, list[float]]]]:
    """Each frame's ``(class, box)``; with ``confirmed``, only those of confirmed tracks."""
    return [
        [
            (d["class_id"], d["box"])
            for d in json.loads(line)["detections"]
            if d["track_id"] or not confirmed
        ]
        for line in path.read_text().splitlines()
    ]


def kept(reference: list, other: list) -> float:
    """Share of ``reference``'s boxes that ``other`` has (same frame and class, IoU ≥ 0.5)."""
    found = total = 0
    for ref, got in zip(reference, other):
        total += len(ref)
        for cls, box in ref:
            same = [b for c, b in got if c == cls]
            if same and iou_matrix(np.array([box]), np.array(same)).max() >= 0.5:
                found += 1
    return found / total if total else 1.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 5])
    args = parser.parse_args()
    videos = SHARED / "data" / "videos"
    with tempfile.TemporaryDirectory(prefix="annotate-every-") as name:
        tmp = Path(name)
        crossing = tmp / "crossing.mp4"
        write_scene(scenes()[0], crossing)
        inputs = [
            (
                "car-detection 720p",
                scaled(videos / "car-detection.mp4", tmp / "cars.mp4", 720, args.frames + 10),
            ),
            (
                "one-by-one-person 720p",
                scaled(
                    videos / "one-by-one-person-detection.mp4",
                    tmp / "people.mp4",
                    720,
                    args.frames + 10,
                ),
            ),
            ("crossing scene 720p", crossing),
        ]
        print(
            "| input | N | FPS, JSON only | × N=1 | FPS, JSON + H.264 | × N=1 | boxes kept "
            "| of confirmed tracks |"
        )
        print("|---|---|---|---|---|---|---|---|")
        for label, path in inputs:
            # (N, with H.264): FPS; N 0 is the same run without --track (what it costs).
            runs: dict[tuple[int, bool], Callable[[], float]] = {}
            for n in (0, *args.every):
                for video in (False, True):
                    runs[n, video] = lambda n=n, video=video, path=path: measure(
                        path,
                        tmp,
                        args.frames,
                        track=n > 0,
                        detect_every=max(n, 1),
                        json_path=str(tmp / f"d{n}.jsonl"),
                        output=tmp / "o.mp4" if video else None,
                    )[0]
            seen = alternate(runs, args.rounds)
            best = {key: max(values) for key, values in seen.items()}
            untracked = {video: best[0, video] for video in (False, True)}
            # Each N's last run (with H.264) left its detections in d{N}.jsonl.
            found = {n: boxes(tmp / f"d{n}.jsonl") for n in args.every}
            confirmed = boxes(tmp / "d1.jsonl", confirmed=True)
            print(
                f"| {label} | no --track | {untracked[False]:.1f} | "
                f"{untracked[False] / best[1, False]:.2f}× | {untracked[True]:.1f} | "
                f"{untracked[True] / best[1, True]:.2f}× | – | – |"
            )
            for n in args.every:
                print(
                    f"| {label} | {n} | {best[n, False]:.1f} | "
                    f"{best[n, False] / best[1, False]:.2f}× | {best[n, True]:.1f} | "
                    f"{best[n, True] / best[1, True]:.2f}× | "
                    f"{100 * kept(found[1], found[n]):.0f} % | "
                    f"{100 * kept(confirmed, found[n]):.0f} % |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
