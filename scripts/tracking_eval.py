"""How well --track keeps identities, on clips with known paths (annotate/testing/scenes.py).

Runs the real detector on every frame of each scene, then scores two trackers on the same
detections: annotate's (ByteTrack-style, annotate/tracking) and a naive baseline (greedy IoU
matching frame to frame, no motion model, a new id for anything unmatched). Prints a
Markdown table for docs/tracking.md.

    python -m scripts.tracking_eval [--save-frames DIR]
"""

from __future__ import annotations

import argparse

import numpy as np

from annotate.detector import Detector
from annotate.providers import resolve_here
from annotate.testing.baselines import GreedyIou, track
from annotate.testing.scenes import Scene, scenes
from annotate.tracking import Tracker
from annotate.tracking.metrics import FrameBoxes, evaluate
from annotate.types import Detections
from scripts.harness import MODEL

PERSON = 0


def detect_scene(scene: Scene, detector: Detector) -> tuple[list[FrameBoxes], list[Detections]]:
    truth, found = [], []
    for image, boxes in scene.render():
        truth.append(
            (
                np.array([k for k, _ in boxes], np.int64),
                np.array([b for _, b in boxes], np.float64).reshape(-1, 4),
            )
        )
        detections = detector(image)
        found.append(detections[detections.class_ids == PERSON])
    return truth, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    # The tracker's low round needs boxes below --conf, as `annotate run --track` asks for.
    detector = Detector.load(MODEL, resolve_here(None, None), conf=0.1)
    rows = []
    for scene in scenes():
        truth, found = detect_scene(scene, detector)
        ours = Tracker()
        # The baseline sees what `annotate run` gives without --track: scores ≥ 0.3.
        runs = (
            ("annotate --track", ours, found),
            ("greedy IoU baseline", GreedyIou(), [d[d.scores >= 0.3] for d in found]),
        )
        for name, tracker, boxes in runs:
            score = evaluate(truth, track(tracker, boxes))
            rows.append(
                f"| {scene.name} | {name} | {score.id_switches} | {score.idf1:.3f} "
                f"| {score.mota:.3f} | {score.misses} | {score.false_positives} |"
            )
    print("| clip | tracker | ID switches | IDF1 | MOTA | missed | false |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
