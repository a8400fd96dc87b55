"""What --track costs per frame: Tracker.update over synthetic scenes of N moving objects.

    python -m scripts.tracker_cost [--objects 10 50 200] [--frames 600]

Objects move at random constant speeds with 10 % of detections missing, so every frame runs
all four association rounds. Prints the median and 95th percentile per update.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from annotate.tracking import Tracker
from annotate.types import Detections


def measure(objects: int, frames: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    start = rng.uniform(0, 1800, (objects, 2))
    velocity = rng.normal(0, 4, (objects, 2))
    classes = rng.integers(0, 3, objects)
    tracker = Tracker()
    times = []
    for frame in range(frames):
        xy = start + velocity * frame
        keep = rng.random(objects) > 0.1
        xyxy = np.hstack([xy, xy + np.array([40.0, 90.0])])[keep]
        scores = rng.uniform(0.05, 1.0, objects)[keep]
        detections = Detections(xyxy, scores, classes[keep])
        t0 = time.perf_counter()
        tracker.update(detections, frame / 30)
        times.append(time.perf_counter() - t0)
    return times[10:]  # past the start, once tracks exist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[10, 50, 200])
    parser.add_argument("--frames", type=int, default=600)
    args = parser.parse_args()
    print("| objects | median ms | p95 ms |")
    print("|---|---|---|")
    for n in args.objects:
        t = np.array(measure(n, args.frames)) * 1000
        print(f"| {n} | {np.median(t):.3f} | {np.percentile(t, 95):.3f} |")


if __name__ == "__main__":
    main()
