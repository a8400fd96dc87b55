"""Face blur against deface, the tool people use for it, on the same inputs in one run.

- **Photos** (``../shared/data/faces``, WIDER FACE): AP50, recall and recall by face height,
  and time per photo, for deface (CenterFace at each photo's full size) and for annotate's
  face model at each canvas size (the photo's own, or its longer side capped).
- **Video** (720p and 1080p clips of the shared footage with people): end-to-end FPS of
  ``deface CLIP -o OUT`` and ``annotate run CLIP -o OUT --blur faces --no-boxes``.
- **Flicker**: the share of frames in which a face hidden in the frames before and after
  shows unhidden (:func:`flicker_rate`), from what each tool hid per frame (annotate's
  ``"hidden"`` in the JSON; deface's detections per frame, which is what it blurs).

deface is not a dependency: install it beside (``python -m venv /tmp/dvenv && /tmp/dvenv/bin/pip
install deface onnxruntime``) and pass ``--deface /tmp/dvenv/bin``.

    python -m scripts.faces --deface /tmp/dvenv/bin [--part photos|video|flicker] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from annotate.testing.faces import FACES, load_truth, score
from annotate.tracking.tracker import iou_matrix as iou
from scripts.harness import SHARED, save, scaled

FACE_MODEL = SHARED / "models" / "centerface.onnx"
#: Canvas sizes tried on the photos: the longer side at most this (``None``: the photo's own).
SIDES: tuple[int | None, ...] = (None, 1280, 960, 800, 640)
#: A street with pedestrians walking toward and past the camera (179 frames at 25 FPS).
CLIP = SHARED / "data" / "mot" / "TUD-Stadtmitte" / "TUD-Stadtmitte.mp4"
FRAMES = 179
THRESHOLD = 0.2  # deface's default, and annotate's --face-conf

# deface's own detector on each photo (what its image mode blurs), boxes and scores as JSON.
DEFACE_PHOTOS = """
import json, sys, time
import imageio.v2 as iio
from deface.centerface import CenterFace
net = CenterFace(in_shape=None, backend="auto")
out, started = {}, time.perf_counter()
for path in sys.argv[2:]:
    dets, _ = net(iio.imread(path), threshold=float(sys.argv[1]))
    out[path.rsplit("/", 1)[-1]] = dets.tolist()
print(json.dumps({"boxes": out, "s": time.perf_counter() - started}))
"""

# deface's detections on every frame of a video, as its video mode finds them.
DEFACE_FRAMES = """
import json, sys
import imageio.v2 as iio
from deface.centerface import CenterFace
net = CenterFace(in_shape=None, backend="auto")
frames = []
for frame in iio.get_reader(sys.argv[2]):
    dets, _ = net(frame, threshold=float(sys.argv[1]))
    frames.append([d[:4] for d in dets.tolist()])
print(json.dumps(frames))
"""


def photos(deface: Path) -> dict[str, Any]:
    from annotate.detector import Detector
    from annotate.providers import CPU, Resolution
    from annotate.sources.images import read_image

    truth, invalid = load_truth()
    paths = [FACES / "images" / name for name in truth]
    rows = []
    done = subprocess.run(
        [str(deface / "python"), "-c", DEFACE_PHOTOS, str(THRESHOLD), *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout)
    boxes = {k: np.asarray(v, np.float32).reshape(-1, 5) for k, v in found["boxes"].items()}
    scored = score({k: (v[:, :4], v[:, 4]) for k, v in boxes.items()}, truth, invalid)
    rows.append({"tool": "deface 1.5.0", "canvas": "full", "ms": 1000 * found["s"] / len(paths)})
    rows[-1].update(scored.as_json())
    resolution = Resolution((CPU,), "study")
    images = {path.name: read_image(path) for path in paths}
    for side in SIDES:
        detector = Detector.load(
            FACE_MODEL, resolution, THRESHOLD, 0.3, family="centerface", face_side=side
        )
        for image in images.values():  # each size's first run sets up memory, untimed
            detector.detect(image)
        ours = {}
        started = time.perf_counter()
        for name, image in images.items():
            d = detector(image)
            ours[name] = (d.xyxy, d.scores)
        ms = 1000 * (time.perf_counter() - started) / len(images)
        row: dict[str, Any] = {"tool": "annotate", "canvas": str(side or "full"), "ms": ms}
        row.update(score(ours, truth, invalid).as_json())
        rows.append(row)
        print(row, file=sys.stderr)
    return {"photos": len(paths), "faces": scored.faces, "rows": rows}


def clips(work: Path) -> dict[str, Path]:
    made = {}
    for width, height in ((1280, 720), (1920, 1080)):
        path = work / f"street_{height}p.mp4"
        made[f"{width}x{height}"] = (
            path if path.exists() else scaled(CLIP, path, height, FRAMES, width)
        )
    return made


def video(deface: Path, work: Path, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for label, clip in clips(work).items():
        annotate = [
            sys.executable, "-m", "annotate", "run", str(clip), "-o", str(work / "a.mp4"),
            "--blur", "faces", "--no-boxes", "-q", "--face-model", str(FACE_MODEL),
        ]  # fmt: skip
        runs = {
            "deface": [str(deface / "deface"), str(clip), "-o", str(work / "d.mp4")],
            "annotate": annotate,
            "annotate --face-size full": [*annotate, "--face-size", "full"],
        }
        seen: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(rounds):
            for name, command in runs.items():
                started = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                seen[name].append(FRAMES / (time.perf_counter() - started))
        row = {
            "input": f"{label}, {FRAMES} frames",
            **{k: round(max(v), 2) for k, v in seen.items()},
        }
        row["ratio"] = round(row["annotate"] / row["deface"], 2)
        rows.append(row)
        print(row, file=sys.stderr)
    return rows


def covered(boxes: np.ndarray, hidden: np.ndarray, samples: int = 10) -> np.ndarray:
    """The share of each box's area inside any of ``hidden`` (sampled on a grid)."""
    if not len(hidden):
        return np.zeros(len(boxes))
    steps = (np.arange(samples) + 0.5) / samples
    xs = boxes[:, None, 0] + steps[None, :] * (boxes[:, None, 2] - boxes[:, None, 0])
    ys = boxes[:, None, 1] + steps[None, :] * (boxes[:, None, 3] - boxes[:, None, 1])
    px = np.repeat(xs, samples, axis=1)[:, :, None]  # (n, s*s, 1)
    py = np.tile(ys, (1, samples))[:, :, None]
    inside = (
        (px >= hidden[None, None, :, 0])
        & (px <= hidden[None, None, :, 2])
        & (py >= hidden[None, None, :, 1])
        & (py <= hidden[None, None, :, 3])
    )
    return np.asarray(inside.any(axis=2).mean(axis=1))


def flicker_rate(frames: list[np.ndarray], min_iou: float = 0.3) -> tuple[float, int]:
    """The share of frames where a region hidden in the frames before and after is not
    hidden; and the number of such frames.

    A region hidden at ``t-1`` and ``t+1`` (its boxes overlapping at ``min_iou``) is
    expected at ``t`` midway between them; it shows if less than half of that is inside the
    boxes hidden at ``t``. (Comparing one box with another counts a small face that moved a
    few pixels, or one covered by two boxes, as shown.)"""
    shown = 0
    for t in range(1, len(frames) - 1):
        before, now, after = frames[t - 1], frames[t], frames[t + 1]
        if not len(before) or not len(after):
            continue
        overlap = iou(before, after)
        pairs = overlap.max(axis=1) >= min_iou
        if not pairs.any():
            continue
        midway = (before[pairs] + after[overlap[pairs].argmax(axis=1)]) / 2
        if (covered(midway, now) < 0.5).any():
            shown += 1
    return shown / max(1, len(frames) - 2), shown


def flicker(deface: Path, work: Path) -> list[dict[str, Any]]:
    rows = []
    for label, clip in clips(work).items():
        out = subprocess.run(
            [str(deface / "python"), "-c", DEFACE_FRAMES, str(THRESHOLD), str(clip)],
            capture_output=True,
            text=True,
            check=True,
        )
        theirs = [np.asarray(f, np.float32).reshape(-1, 4) for f in json.loads(out.stdout)]
        record = work / "a.jsonl"
        subprocess.run(
            [sys.executable, "-m", "annotate", "run", str(clip), "--json", str(record),
             "--blur", "faces", "--no-boxes", "-q", "--face-model", str(FACE_MODEL)],
            check=True,
        )  # fmt: skip
        ours = [
            np.asarray(json.loads(line)["hidden"], np.float32).reshape(-1, 4)
            for line in record.read_text().splitlines()
        ]
        row = {"input": label, "frames": len(ours)}
        for name, frames in (("deface", theirs), ("annotate", ours)):
            rate, count = flicker_rate(frames)
            row[name] = {"rate": round(rate, 4), "frames": count}
        rows.append(row)
        print(row, file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deface", type=Path, required=True, help="bin/ of a venv with deface")
    parser.add_argument("--part", choices=("photos", "video", "flicker", "all"), default="all")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--work", type=Path, help="keep the clips here between runs")
    args = parser.parse_args()
    path = Path(__file__).parent / "results" / "faces.json"
    results: dict[str, Any] = json.loads(path.read_text())["results"] if path.exists() else {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) if args.work is None else args.work
        if args.part in ("photos", "all"):
            results["photos"] = photos(args.deface)
        if args.part in ("video", "all"):
            results["video"] = video(args.deface, work, args.rounds)
        if args.part in ("flicker", "all"):
            results["flicker"] = flicker(args.deface, work)
    print(save("faces", results))


if __name__ == "__main__":
    main()
