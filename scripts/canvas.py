#!/usr/bin/env python3
"""The fitted canvas against the model's square, on the shared footage and photos: what each
finds, and how long one inference takes on each.

    python -m scripts.canvas [--every 5] [--iterations 200]

Detections: every ``--every``-th frame of each shared video and every photo, run through the
same detector with the canvas fitted (``--canvas fit``) and square (``--canvas square``). A
detection is the same object when the other canvas has one of its class with IoU ≥ 0.5;
reported: how many match, their score differences and IoUs, and the scores of those only
one canvas found. Timing: a bare ``session.run`` on a 16:9 frame's canvas of each kind,
alternating, with the sequential loop's thread count.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from scripts.harness import MODEL, SHARED


def frames(every: int) -> list[np.ndarray]:
    import cv2

    images = [cv2.imread(str(p)) for p in sorted((SHARED / "data" / "images").glob("*.png"))]
    for video in sorted((SHARED / "data" / "videos").glob("*.m[kp][v4]")):
        capture = cv2.VideoCapture(str(video))
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            if index % every == 0:
                images.append(image)
            index += 1
    return images


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area = lambda boxes: (boxes[:, 2:] - boxes[:, :2]).prod(axis=1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None] - inter)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=200)
    args = parser.parse_args()
    from annotate.detector import Detector
    from annotate.pipeline.options import RunOptions
    from annotate.pipeline.plan import cpu_cores, plan_threads
    from annotate.providers import CPU, Resolution

    plan = plan_threads(RunOptions("", sequential=True), cpu_cores())
    from annotate.detector.session import SessionSettings

    settings = SessionSettings(threads=plan.intra_op, spinning=True)
    detector = Detector.load(MODEL, Resolution((CPU,), "canvas"), settings=settings, free_size=True)
    assert detector.can_fit
    matched, square_only, fit_only, diffs, overlaps, counts = 0, [], [], [], [], [0, 0]
    images = frames(args.every)
    for image in images:
        detector.fit = False
        square = detector(image)
        detector.fit = True
        fit = detector(image)
        counts[0] += len(square)
        counts[1] += len(fit)
        same = iou(square.xyxy, fit.xyxy) * (square.class_ids[:, None] == fit.class_ids[None])
        used: set[int] = set()
        for i in np.argsort(-square.scores):
            j = int(np.argmax(same[i])) if len(fit) else -1
            if j >= 0 and same[i, j] >= 0.5 and j not in used:
                used.add(j)
                matched += 1
                diffs.append(float(fit.scores[j] - square.scores[i]))
                overlaps.append(float(same[i, j]))
            else:
                square_only.append(float(square.scores[i]))
        fit_only += [float(fit.scores[j]) for j in range(len(fit)) if j not in used]
    d = np.array(diffs)
    print(
        f"{len(images)} images (every {args.every}th video frame and the photos): "
        f"square {counts[0]} detections, fitted {counts[1]}, the same object {matched}"
    )
    print(
        f"  score fitted - square: mean {d.mean():+.4f}, mean |·| {np.abs(d).mean():.4f}, "
        f"p95 |·| {np.percentile(np.abs(d), 95):.4f}, max |·| {np.abs(d).max():.4f}"
    )
    print(
        f"  IoU of the same object: median {np.median(overlaps):.3f}, "
        f"5th percentile {np.percentile(overlaps, 5):.3f}"
    )
    for name, only in (("square", square_only), ("fitted", fit_only)):
        top = sorted(only, reverse=True)[:5]
        print(
            f"  only on the {name} canvas: {len(only)}, highest scores "
            f"{', '.join(f'{s:.2f}' for s in top) or '-'}"
        )

    times: dict[str, list[float]] = {"square": [], "fitted": []}
    image = np.zeros((720, 1280, 3), np.uint8)
    for _ in range(5):
        for name, fit in (("square", False), ("fitted", True)):
            detector.fit = fit
            blob = detector.preprocess(image)[0]
            for _ in range(10):
                detector.infer(blob)
            started = time.perf_counter()
            for _ in range(args.iterations // 5):
                detector.infer(blob)
            times[name].append(1000 * (time.perf_counter() - started) / (args.iterations // 5))
    print(
        f"bare session.run, {plan.intra_op} threads spinning during runs, 16:9 frame, best of "
        f"5 alternating rounds:"
    )
    for name, ms in times.items():
        print(f"  {name}: {min(ms):.2f} ms (median {np.median(ms):.2f})")
    print(f"  fitted / square: {min(times['fitted']) / min(times['square']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
