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


@pytest.mark.slow
@pytest.mark.shared
def test_soak_with_eight_sources(tmp_path, monkeypatch):
    """Eight stand-in cameras in one process, tracked, JSON out: memory stays flat once all
    eight run (the first third is their start: sessions, decoders, arenas; on 2 cores RSS
    was 300-309 MB from 2.5 s to 40 s on 2026-12-03) and what each keeps stays bounded."""
    import sys

    import annotate.pipeline.summary
    import annotate.sources.camera as camera
    from annotate.pipeline.many import SourceSpec, run_many

    monkeypatch.setattr(camera, "open_capture", lambda _i: LoopingCamera())
    monkeypatch.setattr(annotate.pipeline.summary, "AGES_KEPT", 100)
    base = RunOptions(source="camera:0", model=MODEL, resolution=Resolution((CPU,), "soak"),
                      json_path=f"{tmp_path}/", track=True, fps_every=10**6)  # fmt: skip
    stop = threading.Event()
    results: list = []
    specs = [SourceSpec(f"camera:{i}") for i in range(8)]
    worker = threading.Thread(
        target=lambda: results.extend(run_many(base, specs, stop=stop)), daemon=True
    )
    worker.start()
    samples, blocks = [], []
    seconds = max(SECONDS, 20.0)
    threading.Timer(seconds, stop.set).start()
    while worker.is_alive():
        worker.join(timeout=max(0.5, seconds / 24))
        samples.append(rss_mb())
        blocks.append(sys.getallocatedblocks())
    assert [r.error for r in results] == [None] * 8
    third = max(1, len(samples) // 3)
    early = sum(samples[third : 2 * third]) / third  # after the start
    late = sum(samples[-third:-1]) / (third - 1)  # the last: while the sources close
    early_b = sum(blocks[third : 2 * third]) / third
    late_b = sum(blocks[-third:-1]) / (third - 1)
    frames = [r.summary.frames for r in results]
    trace = [round(s) for s in samples]
    print(f"soak of 8 sources {seconds:g} s: frames {frames}, RSS {early:.0f} → {late:.0f} MB, "
          f"allocated blocks {early_b:.0f} → {late_b:.0f}; RSS {trace}")  # fmt: skip
    assert min(frames) > 30  # every source was served
    assert all(len(r.summary.ages) <= 100 for r in results)
    assert late - early < 25
    assert late_b - early_b < 8 * 2000, (early_b, late_b)
