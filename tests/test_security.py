"""Security promises: nothing runs from model metadata, downloads are checked before use
(see test_models), the preview stays on loopback unless told, names are escaped."""

from __future__ import annotations

import json

import numpy as np
import pytest

from annotate.detector.families import metadata_names
from annotate.sinks.web import parse_address
from annotate.testing.models import constant_model
from tests.helpers import IMAGES


@pytest.mark.shared
def test_model_metadata_is_never_executed(cli, tmp_path):
    marker = tmp_path / "pwned"
    evil = f"__import__('pathlib').Path({str(marker)!r}).touch() or {{0: 'x'}}"
    assert metadata_names({"names": evil}) is None
    out = np.zeros((1, 84, 2100), np.float32)
    model = constant_model(tmp_path / "evil.onnx", out, [1, 3, 320, 320], {"names": evil})
    r = cli("run", IMAGES / "coffee.png", "--model", model, "--json", "-", "-q")
    assert r.code == 0 and json.loads(r.out)["detections"] == []
    assert not marker.exists()


def test_preview_binds_to_loopback_by_default():
    assert parse_address("8000")[0] == "127.0.0.1"


def test_control_characters_in_file_names_do_not_reach_the_terminal(cli, tmp_path):
    name = tmp_path / "clip\x1b[2J\x1b]0;pwned\x07.mp4"
    r = cli("run", name)
    assert r.code == 2
    assert "\x1b" not in r.err and "\x07" not in r.err
    assert r.err.startswith("Error: no image files match ") and "clip\\x1b[2J" in r.err
