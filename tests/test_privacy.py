"""--blur end to end with the real model: no frame shows a hidden person, outputs included."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from annotate.pipeline import RunOptions, run
from annotate.pipeline.runner import Emitter
from annotate.providers import CPU, Resolution
from annotate.types import Detections
from tests.conftest import MODEL, decode_video
from tests.scenes import Scene, Walker, write_scene
from tests.test_preview import Running

pytestmark = pytest.mark.slow


def _sharpness(image: np.ndarray) -> float:
    import cv2

    return float(cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())


@pytest.mark.parametrize("sequential", [True, False])
def test_no_frame_shows_a_person_the_detector_missed(tmp_path, monkeypatch, sequential):
    """The detector misses the walker for 3 frames; her
    track's predicted box stays blurred, so no output frame shows her: the blurred region
    keeps under a quarter of the original's detail in every frame, and the rest of each
    frame is as it was (encoding noise only)."""
    scene = Scene("walk", 50, [Walker((60, 300), (10, 0))])
    clip = tmp_path / "walk.mp4"
    truths = write_scene(scene, clip)
    originals = [image for image, _truth in scene.render()]
    real = Emitter.emit
    missed = []

    def gappy(self, frame, detections, times, decode_s):
        """The detector's output for frames 20-22 replaced by nothing found (here, where
        frames arrive in order in both runners)."""
        if frame.index in (20, 21, 22) and detections is not None:
            missed.append(frame.index)
            detections = Detections.empty()
        return real(self, frame, detections, times, decode_s)

    monkeypatch.setattr(Emitter, "emit", gappy)
    out, dets = tmp_path / "anon.mp4", tmp_path / "d.jsonl"
    options = RunOptions(source=str(clip), model=MODEL, resolution=Resolution((CPU,), "test"),
                         output=out, json_path=str(dets), track=True, blur=["person"],
                         boxes=False, sequential=sequential)  # fmt: skip
    run(options)
    assert missed == [20, 21, 22]
    records = [json.loads(line) for line in dets.read_text().splitlines()]
    assert [len(r["detections"]) for r in records].count(0) == 3  # the misses are real
    _facts, _times, images = decode_video(out)
    assert len(images) == len(originals) == 50
    # The same clip through the same encoder with nothing drawn: the encoding noise alone.
    plain_out = tmp_path / "plain.mp4"
    run(RunOptions(source=str(clip), model=MODEL, resolution=Resolution((CPU,), "test"),
                   output=plain_out, boxes=False, sequential=sequential))  # fmt: skip
    plains = decode_video(plain_out)[2]
    for i, (image, original, truth) in enumerate(zip(images, originals, truths)):
        ((_k, box),) = truth
        x1, y1, x2, y2 = (round(v) for v in box)
        region = (slice(y1, y2), slice(x1, x2))
        assert _sharpness(image[region]) * 4 <= _sharpness(original[region]), f"frame {i}"
        outside = np.ones(image.shape[:2], bool)
        pad_x, pad_y = round(0.3 * (x2 - x1)), round(0.3 * (y2 - y1))  # blur pad + motion
        outside[max(0, y1 - pad_y) : y2 + pad_y, max(0, x1 - pad_x) : x2 + pad_x] = False
        difference = np.abs(image[outside].astype(int) - original[outside].astype(int))
        noise = np.abs(plains[i][outside].astype(int) - original[outside].astype(int))
        assert difference.mean() < noise.mean() + 0.5, f"frame {i}"


def test_the_web_preview_shows_the_blurred_picture(tmp_path, caplog):
    import cv2

    scene = Scene("stand", 900, [Walker((500, 300), (0, 0))])
    clip = tmp_path / "stand.mp4"
    write_scene(scene, clip)
    original = next(scene.render())[0]
    running = Running(caplog, source=clip, track=True, blur=["person"], boxes=False,
                      lines=["0,0.2,1,0.2"])  # fmt: skip
    try:
        time.sleep(1.5)
        shot = cv2.imdecode(np.frombuffer(running.get("/frame.jpg"), np.uint8), cv2.IMREAD_COLOR)
        stats = json.loads(running.get("/stats"))
        page = running.get("/")
    finally:
        running.stop()
    assert stats["tracks"] == 1  # identities so far, and the line's counts, for the page
    assert stats["counts"]["lines"]["line1"] == {"in": 0, "out": 0, "by_class": {}}
    assert b'id="tracks"' in page and b'id="counts"' in page
    ((_k, box),) = next(scene.render())[1]
    x1, y1, x2, y2 = (round(v) for v in box)
    region = (slice(y1, y2), slice(x1, x2))
    assert shot.shape == original.shape
    assert _sharpness(shot[region]) * 4 <= _sharpness(original[region])
