#!/usr/bin/env python3
"""INT8 and FP16 variants of the shared model against the float one: speed and accuracy.

    python -m scripts.variants [--frames 40]

Makes both variants (INT8 calibrated on frames of the shared videos), times inference alone
(``annotate bench``'s loop, CPU) and compares detections with the float model's on frames
from every shared video and photo: boxes are matched by class at IoU ≥ 0.5, then the mean IoU
of matched boxes, the mean score change, the share of float boxes found, and extra boxes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

from scripts.harness import MODEL, SHARED

VIDEOS = sorted(str(p) for p in (SHARED / "data" / "videos").glob("*.mp*"))
IMAGES = sorted(str(p) for p in (SHARED / "data" / "images").glob("*.png"))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def compare(reference, other) -> tuple[list[float], list[float], int, int]:
    """Greedy matching by class and IoU; (IoUs, |score deltas|, matched, extra)."""
    ious, deltas, used = [], [], set()
    for i in np.argsort(-reference.scores):
        best, best_j = 0.5, None
        for j in range(len(other)):
            if j in used or other.class_ids[j] != reference.class_ids[i]:
                continue
            value = iou(reference.xyxy[i], other.xyxy[j])
            if value >= best:
                best, best_j = value, j
        if best_j is not None:
            used.add(best_j)
            ious.append(best)
            deltas.append(abs(float(other.scores[best_j] - reference.scores[i])))
    return ious, deltas, len(used), len(other) - len(used)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40, help="frames per video")
    args = parser.parse_args()

    from annotate.bench import BenchConfig, _bench_provider, bench_image
    from annotate.detector import Detector
    from annotate.detector.session import open_session
    from annotate.models.variants import convert_fp16, quantize_int8
    from annotate.providers import CPU, Resolution
    from annotate.sources import open_source

    resolution = Resolution((CPU,), "variants")
    with tempfile.TemporaryDirectory(prefix="annotate-variants-") as name:
        tmp = Path(name)
        models = {
            "float32": MODEL,
            "int8": quantize_int8(MODEL, tmp / "int8.onnx", VIDEOS, 60),
            "fp16": convert_fp16(MODEL, tmp / "fp16.onnx"),
        }
        detectors = {k: Detector.load(p, resolution) for k, p in models.items()}
        image, _ = bench_image(None)
        speed = {}
        for kind, path in models.items():
            config = BenchConfig(path, iterations=100, warmup=10)
            session, info = open_session(path, resolution)
            opened = (session, info)
            result = _bench_provider(config, resolution, image, lambda *_a, o=opened: o)
            speed[kind] = result.inference.mean
        frames = []
        for spec in VIDEOS:
            with open_source(spec) as source:
                step = max(1, (source.info.frames or 300) // args.frames)
                frames += [f.image for f in source if f.index % step == 0][: args.frames]
        for spec in IMAGES:
            with open_source(spec) as source:
                frames += [f.image for f in source]
        reference = [detectors["float32"](f) for f in frames]
        total = sum(len(r) for r in reference)
        print(f"{len(frames)} frames, {total} float32 detections; CPU inference, same run:")
        for kind in ("float32", "int8", "fp16"):
            ious, deltas, matched, extra = [], [], 0, 0
            for f, ref in zip(frames, reference):
                i, d, m, e = compare(ref, detectors[kind](f))
                ious += i
                deltas += d
                matched += m
                extra += e
            ratio = speed["float32"] / speed[kind]
            size = models[kind].stat().st_size / 1e6
            found = 100 * matched / total
            print(
                f"  {kind:8} {speed[kind]:6.2f} ms ({ratio:.2f}× float32), {size:.2f} MB; "
                f"found {found:.1f} % of float boxes, mean IoU {np.mean(ious):.3f}, "
                f"mean |score change| {np.mean(deltas):.3f}, {extra} extra boxes"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
