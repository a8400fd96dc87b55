"""The edited graph kept between runs: a later run starts without the ``onnx`` package, a
changed model is never given an old graph, and a cache that cannot be used only costs time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from annotate.testing.models import constant_model

LOAD = """
import json, sys
import numpy as np
from annotate.detector import Detector
from annotate.providers import PlatformInfo, resolve

resolution = resolve("cpu", "test", PlatformInfo("Linux", "x86_64"), ["CPUExecutionProvider"])
detector = Detector.load(__import__("pathlib").Path(sys.argv[1]), resolution, free_size=True)
found, _ = detector.detect(np.full((64, 64, 3), 128, np.uint8))
print(json.dumps({"onnx": "onnx" in sys.modules, "boxes": found.xyxy.round(1).tolist(),
                  "inputs": [str(d) for d in detector.session.get_inputs()[0].shape]}))
"""


def model_with_box(path: Path, at: int) -> Path:
    """A tiny YOLOX-layout model that finds one person at anchor ``at`` of the stride-8 grid."""
    out = np.zeros((1, 8 * 8 + 4 * 4 + 2 * 2, 85), np.float32)
    out[0, at, :6] = [0.5, 0.5, 0, 0, 1.0, 0.9]
    return constant_model(path, out, [1, 3, 64, 64])


def detect(path: Path) -> tuple[list[list[float]], list[str]]:
    from annotate.detector import Detector
    from annotate.providers import PlatformInfo, resolve

    resolution = resolve("cpu", "test", PlatformInfo("Linux", "x86_64"), ["CPUExecutionProvider"])
    detector = Detector.load(path, resolution, free_size=True)
    found, _ = detector.detect(np.full((64, 64, 3), 128, np.uint8))
    inputs = [str(d) for d in detector.session.get_inputs()[0].shape]
    return found.xyxy.round(1).tolist(), inputs


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache" / "annotate" / "graphs"


def test_a_second_run_starts_without_importing_onnx(tmp_path: Path, cache: Path) -> None:
    model = model_with_box(tmp_path / "m.onnx", 0)
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", LOAD, str(model)], env=env,
                              capture_output=True, text=True, check=True)  # fmt: skip
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["onnx"] and not runs[1]["onnx"]
    assert runs[0]["boxes"] == runs[1]["boxes"] != []
    assert runs[1]["inputs"][2:] == ["height", "width"]  # the edited graph, not the file
    assert len(list(cache.glob("*.onnx"))) == 1


def test_a_changed_model_gets_its_own_edit(tmp_path: Path, cache: Path) -> None:
    model = tmp_path / "m.onnx"
    first, _ = detect(model_with_box(model, 0))
    # The same path, a model that finds its person elsewhere: the kept graph is not it.
    second, _ = detect(model_with_box(model, 9))
    assert first != second
    assert second == detect(model_with_box(tmp_path / "fresh.onnx", 9))[0]
    assert len(list(cache.glob("*.onnx"))) == 2


def test_a_damaged_entry_is_made_again(tmp_path: Path, cache: Path) -> None:
    model = model_with_box(tmp_path / "m.onnx", 0)
    boxes, _ = detect(model)
    (entry,) = cache.glob("*.onnx")
    entry.write_bytes(entry.read_bytes()[:100])  # cut short
    assert detect(model) == (boxes, ["1", "3", "height", "width"])
    assert entry.stat().st_size > 100  # written whole again


def test_an_unusable_cache_only_costs_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    boxes, inputs = detect(model_with_box(tmp_path / "m.onnx", 0))
    assert boxes and inputs[2:] == ["height", "width"]


def test_the_cache_keeps_the_most_recent_entries(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from annotate.detector import edit_cache

    monkeypatch.setattr(edit_cache, "KEEP", 2)
    for at in range(3):
        detect(model_with_box(tmp_path / f"m{at}.onnx", at))
    kept = sorted(p.stem for p in cache.glob("*.json"))
    assert len(kept) == 2 and sorted(p.stem for p in cache.glob("*.onnx")) == kept
