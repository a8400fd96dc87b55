#!/usr/bin/env python3
"""Draws docs/counting.png for the README: what `--line`/`--zone` output looks like.

    python -m scripts.readme_figures

The scene is drawn, not filmed (two grey figures on a gradient), so the repository holds no
one's photo; the tracks, counts and drawing go through the real Tracker, Counter and
annotators, with boxes given as if detected.
"""

from __future__ import annotations

import numpy as np

from annotate.analytics.counting import Counter
from annotate.analytics.geometry import parse_shapes
from annotate.annotators import CountAnnotator, default_annotators
from annotate.pipeline.stages import CountStage, FrameContext, TrackStage, run_stages
from annotate.tracking import Tracker
from annotate.types import Detections, Frame
from scripts.harness import ROOT

LABELS = ("person",)


def main() -> None:
    import cv2

    width, height = 960, 540
    ys, xs = np.mgrid[0:height, 0:width]
    background = np.dstack(
        [80 + 50 * xs / width, 100 + 40 * ys / height, np.full(xs.shape, 110.0)]
    ).astype(np.uint8)
    tracker = Tracker()
    door = parse_shapes(["door=0.1,0.55,0.55,0.55"], "line")
    shop = parse_shapes(["shop=0.6,0.2,0.95,0.2,0.95,0.95,0.6,0.95"], "zone")
    stages = [TrackStage(tracker), CountStage(Counter(door, shop))]
    annotators = [*default_annotators(trails=20), CountAnnotator(door, shop)]
    image = background
    for i in range(40):
        walkers = [(150 + 2 * i, 120 + 8 * i), (420 - 3 * i, 480 - 6 * i), (560 + 6 * i, 260)]
        boxes = [[x - 30, y - 130, x + 30, y] for x, y in walkers]
        found = Detections(boxes, [0.91, 0.87, 0.83], [0, 0, 0], labels=LABELS)
        context = FrameContext(Frame(i, i / 15, background, "figure"), i / 15, detected=True)
        tracked = run_stages(stages, found, context)
        image = background.copy()
        for x1, y1, x2, y2 in np.round(tracked.xyxy).astype(int).tolist():
            cv2.ellipse(image, ((x1 + x2) // 2, y1 + 18), (16, 18), 0, 0, 360, (70, 70, 70), -1)
            cv2.rectangle(image, (x1 + 8, y1 + 36), (x2 - 8, y2), (70, 70, 70), -1)
        for annotator in annotators:
            image = annotator.annotate(image, tracked)
    out = ROOT / "docs" / "counting.png"
    cv2.imwrite(str(out), image)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
