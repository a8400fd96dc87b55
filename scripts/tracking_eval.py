"""How well --track keeps identities, on clips with known paths (tests/scenes.py).

Runs the real detector on every frame of each scene, then scores two trackers on the same
detections: annotate's (ByteTrack-style, annotate/tracking) and a naive baseline (greedy IoU
matching frame to frame, no motion model, a new id for anything unmatched). Prints a
Markdown table for docs/tracking.md.

    python scripts/tracking_eval.py [--save-frames DIR]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from annotate.detector import Detector  # noqa: E402
from annotate.providers import resolve_here  # noqa: E402
from annotate.tracking import Tracker  # noqa: E402
from annotate.tracking.metrics import FrameBoxes, evaluate  # noqa: E402
from annotate.tracking.tracker import iou_matrix  # noqa: E402
from annotate.types import Detections  # noqa: E402
from tests.scenes import FPS, Scene, scenes  # noqa: E402

MODEL = ROOT.parent / "shared" / "models" / "yolox_nano.onnx"
PERSON = 0


class GreedyIou:
    """What a hand-written tracker does: each box takes the id of last frame's box it
    overlaps most (same class, IoU ≥ 0.3), else a new id."""

    def __init__(self) -> None:
        self.previous = Detections(track_id=np.zeros(0, np.int64))
        self.next_id = 1

    def update(self, detections: Detections, _time: float) -> Detections:
        ids = np.zeros(len(detections), np.int64)
        iou = iou_matrix(self.previous.xyxy, detections.xyxy)
        same = self.previous.class_ids[:, None] == detections.class_ids[None, :]
        iou = np.where(same, iou, 0)
        while iou.size and iou.max() >= 0.3:
            p, d = np.unravel_index(iou.argmax(), iou.shape)
            ids[d] = self.previous.track_id[p]
            iou[p, :] = iou[:, d] = 0
        for d in np.flatnonzero(ids == 0):
            ids[d] = self.next_id
            self.next_id += 1
        out = Detections(detections.xyxy, detections.scores, detections.class_ids, ids)
        self.previous = out
        return out


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


def track(tracker: Tracker | GreedyIou, found: list[Detections]) -> list[FrameBoxes]:
    out = []
    for i, detections in enumerate(found):
        tracked = tracker.update(detections, i / FPS)
        confirmed = tracked.track_id > 0
        out.append((tracked.track_id[confirmed], tracked.xyxy[confirmed]))
    return out


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
