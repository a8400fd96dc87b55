#!/usr/bin/env python3
"""Tracking on real pedestrians with ground truth: ``annotate run --track`` against
Roboflow's ByteTrack (``trackers``, Apache-2.0) and a greedy IoU matcher (what a hand-written
loop does) on the same detector, scored with ``motmetrics`` (CLEAR-MOT and IDF1, IoU 0.5).

    pip install ".[study]"      # motmetrics, trackers
    python -m scripts.mot_eval [--root ../shared/data/mot] [--args "--track-buffer 2"]

Each sequence is a folder in MOTChallenge layout: a video, ``gt.txt`` (``frame,id,x,y,w,h,…``,
frames from 1) and ``seqinfo.ini``; ground truth made on a larger original is scaled to the
video (``imWidth`` against the video's width: PETS09-S2L1's 0.625).

- **annotate**: ``annotate run VIDEO --track --classes person --mot OUT`` at its defaults,
  as a user runs it (``--args`` adds options, to try a change).
- **peers**: the same model's person boxes at score ≥ 0.1 (``annotate run --conf 0.1
  --classes person --json``, no tracking), given to ByteTrack at its defaults (its frame rate
  the video's); those at ≥ 0.3, a hand-written loop's threshold, to the greedy matcher (each
  box takes the id of last frame's box it overlaps most, IoU ≥ 0.3, else a new one).
"""

from __future__ import annotations

import argparse
import configparser
import json
import shlex
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from scripts.harness import MODEL, SHARED, save, table

ROOT_DIR = SHARED / "data" / "mot"
PEER_CONF = 0.1
HAND_CONF = 0.3  # the greedy matcher's boxes: what a hand-written loop keeps

#: frame (from 1) → (ids, xywh boxes)
Tracks = dict[int, tuple[list[int], list[list[float]]]]


def sequences(root: Path) -> list[tuple[str, Path, Path, float, float]]:
    """(name, video, gt.txt, scale of the ground truth to the video, fps) per sequence."""
    import av

    found = []
    for folder in sorted(p for p in root.iterdir() if (p / "gt.txt").is_file()):
        video = next(p for p in folder.iterdir() if p.suffix in (".mp4", ".avi", ".mkv"))
        info = configparser.ConfigParser()
        info.read(folder / "seqinfo.ini")
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            width, fps = stream.width, float(stream.average_rate or 0)
        scale = width / int(info["Sequence"]["imWidth"])
        found.append((folder.name, video, folder / "gt.txt", scale, fps))
    return found


def read_mot(path: Path, scale: float = 1.0) -> Tracks:
    out: Tracks = defaultdict(lambda: ([], []))
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        f, i, x, y, w, h = (float(v) for v in line.split(",")[:6])
        ids, boxes = out[int(f)]
        ids.append(int(i))
        boxes.append([x * scale, y * scale, w * scale, h * scale])
    return dict(out)


def annotate(args: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", "annotate", *args, "-q"], capture_output=True,
                          text=True)  # fmt: skip
    if done.returncode:
        raise RuntimeError(done.stderr.strip().splitlines()[-1])


def ours(video: Path, tmp: Path, extra: list[str]) -> Tracks:
    out = tmp / "annotate.txt"
    annotate(["run", str(video), "--track", "--classes", "person", "--mot", str(out),
              "--model", str(MODEL), *extra])  # fmt: skip
    return read_mot(out)


def detections(video: Path, tmp: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame, the person boxes (xyxy) and scores at ``PEER_CONF``."""
    out = tmp / "boxes.jsonl"
    annotate(["run", str(video), "--conf", str(PEER_CONF), "--classes", "person",
              "--json", str(out), "--model", str(MODEL)])  # fmt: skip
    frames = []
    for line in out.read_text().splitlines():
        found = json.loads(line)["detections"]
        boxes = np.array([d["box"] for d in found], np.float64).reshape(-1, 4)
        frames.append((boxes, np.array([d["score"] for d in found], np.float64)))
    return frames


def bytetrack(frames: list[tuple[np.ndarray, np.ndarray]], fps: float) -> Tracks:
    import supervision as sv
    from trackers import ByteTrackTracker

    tracker = ByteTrackTracker(frame_rate=fps)
    out: Tracks = {}
    for index, (boxes, scores) in enumerate(frames):
        given = sv.Detections(xyxy=boxes, confidence=scores, class_id=np.zeros(len(boxes), int))
        result = tracker.update(given)
        keep = result.tracker_id is not None and np.asarray(result.tracker_id) >= 0
        ids = np.asarray(result.tracker_id)[keep] if result.tracker_id is not None else []
        xyxy = result.xyxy[keep] if len(result) else np.zeros((0, 4))
        out[index + 1] = (
            [int(i) for i in ids],
            [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in xyxy.tolist()],
        )
    return out


def greedy(frames: list[tuple[np.ndarray, np.ndarray]]) -> Tracks:
    from annotate.testing.baselines import GreedyIou
    from annotate.types import Detections

    tracker = GreedyIou()
    out: Tracks = {}
    for index, (boxes, scores) in enumerate(frames):
        given = Detections(boxes.astype(np.float32), scores.astype(np.float32),
                           np.zeros(len(boxes), np.int32))  # fmt: skip
        result = tracker.update(given, index)
        assert result.track_id is not None
        out[index + 1] = (
            result.track_id.tolist(),
            [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in result.xyxy.tolist()],
        )
    return out


def distances(gt: list[list[float]], hyp: list[list[float]]) -> np.ndarray:
    """1 - IoU of xywh boxes, NaN (no match) under IoU 0.5: motmetrics' convention (its own
    ``iou_matrix`` uses ``np.asfarray``, gone from NumPy 2)."""
    from annotate.tracking.tracker import iou_matrix

    a = np.array(gt, np.float64).reshape(-1, 4)
    b = np.array(hyp, np.float64).reshape(-1, 4)
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    d = 1.0 - iou_matrix(a, b)
    d[d > 0.5] = np.nan
    return d


def score(truth: Tracks, found: Tracks) -> dict[str, float]:
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for frame in sorted(set(truth) | set(found)):
        gt_ids, gt_boxes = truth.get(frame, ([], []))
        hyp_ids, hyp_boxes = found.get(frame, ([], []))
        acc.update(gt_ids, hyp_ids, distances(gt_boxes, hyp_boxes))
    names = ["idf1", "num_switches", "mota", "num_false_positives", "num_misses", "num_objects"]
    summary = mm.metrics.create().compute(acc, metrics=names, name="run")
    row = summary.loc["run"]
    return {
        "idf1": round(float(row["idf1"]), 3),
        "idsw": int(row["num_switches"]),
        "mota": round(float(row["mota"]), 3),
        "fp": int(row["num_false_positives"]),
        "fn": int(row["num_misses"]),
        "boxes": int(row["num_objects"]),
        "tracked_boxes": sum(len(ids) for ids, _ in found.values()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT_DIR)
    parser.add_argument("--args", default="", help="options added to annotate's run")
    parser.add_argument("--no-save", action="store_true", help="print only (for trials)")
    args = parser.parse_args()
    extra = shlex.split(args.args)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="annotate-mot-") as name:
        tmp = Path(name)
        for seq, video, gt, scale, fps in sequences(args.root):
            truth = read_mot(gt, scale)
            frames = detections(video, tmp)
            for tracker, found in (
                ("annotate --track", ours(video, tmp, extra)),
                ("ByteTrack (trackers 2.6)", bytetrack(frames, fps)),
                ("greedy IoU", greedy([(b[s >= HAND_CONF], s[s >= HAND_CONF]) for b, s in frames])),
            ):
                rows.append({"sequence": seq, "tracker": tracker, **score(truth, found)})
                print(rows[-1], flush=True)
    headers = ("sequence", "tracker", "IDF1", "ID switches", "MOTA", "FP", "FN", "boxes")
    print(table(headers, [(r["sequence"], r["tracker"], r["idf1"], r["idsw"], r["mota"],
                           r["fp"], r["fn"], r["boxes"]) for r in rows]))  # fmt: skip
    if not args.no_save:
        save("mot_eval", {"args": args.args, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
