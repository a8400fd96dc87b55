"""Would an appearance cue bring identities back after ``--track-buffer``? Measured before
adding one (issue: "only if measured better").

The tracker's output on the MOTChallenge sequences (the same person boxes as
``scripts.mot_eval``, replayed through :class:`annotate.tracking.Tracker` at the CLI's
defaults) is relabelled causally: a track confirmed at frame f takes the identity of a track
that ended within ``gap`` seconds before f, is not in view at f, and whose colour histogram
(hue and saturation of the box's middle, 16 x 8 bins, a running mean over its frames) is
nearest by Bhattacharyya distance under ``threshold``. That is the usual cheap re-entry
cue; a learned embedding would cost a second model per box.

    python -m scripts.reid_study   # needs the study extra, as scripts.mot_eval
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from scripts import mot_eval
from scripts.mot_eval import Tracks

#: (seconds a finished identity waits, largest histogram distance) pairs tried.
TRIED = [(g, t) for g in (3.0, 10.0) for t in (0.2, 0.3, 0.4)]


def replay(frames: list[tuple[np.ndarray, np.ndarray]], fps: float) -> Tracks:
    from annotate.tracking import Tracker, TrackerSettings
    from annotate.types import Detections

    tracker = Tracker(TrackerSettings(high=0.3))  # --conf's default, as `annotate run`
    out: Tracks = {}
    for index, (boxes, scores) in enumerate(frames):
        given = Detections(boxes.astype(np.float32), scores.astype(np.float32),
                           np.zeros(len(boxes), np.int32), labels=("person",))  # fmt: skip
        result = tracker.update(given, index / fps)
        assert result.track_id is not None
        keep = result.track_id > 0
        out[index + 1] = (
            result.track_id[keep].tolist(),
            [[x1, y1, x2 - x1, y2 - y1] for x1, y1, x2, y2 in result.xyxy[keep].tolist()],
        )
    return out


def histograms(video: Path, found: Tracks) -> dict[tuple[int, int], Any]:
    """(frame, identity) → the normalised hue-saturation histogram of the box's middle (its
    edges are background more often than not)."""
    import av
    import cv2

    out = {}
    with av.open(str(video)) as container:
        for index, picture in enumerate(container.decode(video=0)):
            ids, boxes = found.get(index + 1, ([], []))
            if not ids:
                continue
            hsv = cv2.cvtColor(picture.to_ndarray(format="bgr24"), cv2.COLOR_BGR2HSV)
            height, width = hsv.shape[:2]
            for identity, (x, y, w, h) in zip(ids, boxes):
                x1, y1 = int(max(0, x + 0.2 * w)), int(max(0, y + 0.1 * h))
                x2, y2 = int(min(width, x + 0.8 * w)), int(min(height, y + 0.9 * h))
                if x2 - x1 < 2 or y2 - y1 < 4:
                    continue
                hist = cv2.calcHist([hsv[y1:y2, x1:x2]], [0, 1], None, [16, 8],
                                    [0, 180, 0, 256])  # fmt: skip
                out[(index + 1, identity)] = cv2.normalize(hist, None, 1, 0, cv2.NORM_L1)
    return out


def relabel(found: Tracks, hists: dict[tuple[int, int], Any], fps: float, gap_s: float,
            threshold: float) -> Tracks:  # fmt: skip
    import cv2

    seen: set[int] = set()
    same: dict[int, int] = {}  # a new identity → the earlier one it is taken for
    gallery: dict[int, tuple[int, Any]] = {}  # identity → (last frame, running histogram)
    for frame in sorted(found):
        ids = found[frame][0]
        for identity in ids:
            hist = hists.get((frame, identity))
            if identity not in seen:
                seen.add(identity)
                in_view = {same.get(i, i) for i in ids if i != identity}
                best, nearest = None, threshold
                for old, (last, kept) in gallery.items() if hist is not None else ():
                    if old in in_view or not 0 < (frame - last) / fps <= gap_s:
                        continue
                    distance = cv2.compareHist(hist, kept, cv2.HISTCMP_BHATTACHARYYA)
                    if distance < nearest:
                        best, nearest = old, distance
                if best is not None:
                    same[identity] = best
            root = same.get(identity, identity)
            if hist is not None:
                kept = gallery.get(root, (frame, hist))[1]
                gallery[root] = (frame, 0.9 * kept + 0.1 * hist)
    return {f: ([same.get(i, i) for i in ids], boxes) for f, (ids, boxes) in found.items()}


def main() -> None:
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, video, truth_file, scale, fps in mot_eval.sequences(mot_eval.ROOT_DIR):
            truth = mot_eval.read_mot(truth_file, scale)
            found = replay(mot_eval.detections(video, Path(tmp)), fps)
            runs.append((name, truth, found, histograms(video, found), fps))
    print("| cue | " + " | ".join(f"{name} IDF1 / IDSW" for name, *_ in runs) + " | switches |")
    print("|---" * (len(runs) + 2) + "|")
    for gap, threshold in [(0.0, 0.0), *TRIED]:
        cells, total = [], 0
        for _name, truth, found, hists, fps in runs:
            tracks = relabel(found, hists, fps, gap, threshold) if gap else found
            row = mot_eval.score(truth, tracks)
            cells.append(f"{row['idf1']:.3f} / {row['idsw']}")
            total += int(row["idsw"])
        label = "none (as shipped)" if not gap else f"within {gap:g} s, distance < {threshold}"
        print(f"| {label} | " + " | ".join(cells) + f" | {total} |")


if __name__ == "__main__":
    main()
