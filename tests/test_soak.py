"""A stand-in camera at 30 FPS for a while: memory and frame age must stay flat.
``ANNOTATE_SOAK_SECONDS`` sets the length (default 8 s; 1800 for the half-hour run)."""

from __future__ import annotations

import os
import threading

import pytest

from annotate.pipeline import RunOptions, run
from annotate.providers import CPU, Resolution
from tests.helpers import MODEL, VIDEOS, FileCamera

SECONDS = float(os.environ.get("ANNOTATE_SOAK_SECONDS", "8"))


class LoopingCamera(FileCamera):
    """A 30 FPS stand-in that never runs out: the file starts again at its end."""

    def __init__(self) -> None:
        super().__init__(VIDEOS / "bottle-detection.mp4")

    def read(self):
        ok, image = super().read()
        if not ok:
            import cv2

            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = self._cap.read()
        return ok, image


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow
@pytest.mark.shared
def test_soak(tmp_path, monkeypatch):
    import sys

    import annotate.pipeline.summary
    import annotate.sources.camera as camera

    monkeypatch.setattr(camera, "open_capture", lambda _i: LoopingCamera())
    # A short soak still reaches the bound on what the run keeps per frame.
    monkeypatch.setattr(annotate.pipeline.summary, "AGES_KEPT", 100)
    options = RunOptions(
        source="camera",
        model=MODEL,
        resolution=Resolution((CPU,), "soak"),
        output=tmp_path / "soak.mp4",
        json_path=str(tmp_path / "soak.jsonl"),
        max_frames=int(SECONDS * 30),
        fps_every=10**6,
    )
    result = {}
    worker = threading.Thread(target=lambda: result.update(summary=run(options)), daemon=True)
    worker.start()
    samples, blocks = [], []
    while worker.is_alive():
        worker.join(timeout=max(0.5, SECONDS / 16))
        samples.append(rss_mb())
        blocks.append(sys.getallocatedblocks())  # Python objects of every kind, floats too
    summary = result["summary"]
    third = max(1, len(samples) // 3)
    early, late = sum(samples[:third]) / third, sum(samples[-third:]) / third
    ages = list(summary.ages)
    assert len(ages) == 100  # bounded, however long the run
    third_b = max(1, len(blocks) // 3)
    early_b, late_b = sum(blocks[:third_b]) / third_b, sum(blocks[-third_b:]) / third_b
    tenth = max(1, len(ages) // 10)
    first_age, last_age = sum(ages[:tenth]) / tenth, sum(ages[-tenth:]) / tenth
    print(
        f"soak {SECONDS:g} s: {summary.frames} frames, RSS {early:.0f} → {late:.0f} MB, "
        f"age {1000 * first_age:.0f} → {1000 * last_age:.0f} ms (max "
        f"{1000 * max(ages):.0f} ms), {summary.dropped} dropped"
    )
    assert summary.frames == int(SECONDS * 30)
    assert late - early < 25
    print(f"allocated blocks {early_b:.0f} → {late_b:.0f}")
    assert late_b - early_b < 2000, (early_b, late_b)  # no per-frame objects kept
    assert last_age < first_age + 0.05
