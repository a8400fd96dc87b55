"""The OpenVINO execution provider, for real, where the onnxruntime-openvino build is installed.

CI installs it in a second environment and sets ANNOTATE_EXPECT_OPENVINO=1 there, so these
tests fail instead of skipping if that build is missing or broken.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.helpers import MODEL, VIDEOS

OPENVINO = "OpenVINOExecutionProvider"


def _available() -> bool:
    import onnxruntime

    return OPENVINO in onnxruntime.get_available_providers()


pytestmark = pytest.mark.skipif(
    not _available() and os.environ.get("ANNOTATE_EXPECT_OPENVINO") != "1",
    reason="needs the onnxruntime-openvino build (pip install '.[openvino]', docs/providers.md)",
)


@pytest.mark.shared
def test_auto_picks_openvino_on_linux_and_the_session_really_uses_it(cli, tmp_path):
    import platform

    from annotate.providers import resolve_here

    assert _available(), "ANNOTATE_EXPECT_OPENVINO=1 but this onnxruntime has no OpenVINO"
    if platform.system() == "Linux":
        assert resolve_here(None, None).preferred == OPENVINO
    dets = tmp_path / "d.jsonl"
    r = cli(
        "run",
        VIDEOS / "bottle-detection.mp4",
        "--json",
        dets,
        "--max-frames",
        "10",
        "--model",
        MODEL,
    )
    assert r.code == 0, r.err
    assert f"Using execution provider: {OPENVINO}" in r.err
    labels = {
        d["label"] for line in dets.read_text().splitlines() for d in json.loads(line)["detections"]
    }
    assert "bottle" in labels  # same model, same answers


def test_providers_lists_it(cli):
    r = cli("providers")
    assert r.code == 0 and OPENVINO in r.out


@pytest.mark.shared
def test_bench_compares_openvino_and_cpu_for_real(cli):
    r = cli(
        "bench",
        "--json",
        "--providers",
        "openvino,cpu",
        "--iterations",
        "5",
        "--warmup",
        "2",
        "--model",
        MODEL,
    )
    assert r.code == 0, r.err
    report = json.loads(r.out)
    openvino, cpu = report["results"]
    assert (openvino["provider"], openvino["status"], openvino["active"][0]) == (
        OPENVINO,
        "ran",
        OPENVINO,
    )
    assert cpu["status"] == "ran" and openvino["inference"]["mean"] > 0
    assert report["baseline"] == "CPUExecutionProvider"


@pytest.mark.shared
def test_a_precision_the_device_cannot_run_is_a_reported_fallback(cli):
    """OpenVINO on a CPU refuses FP16 and ONNX Runtime silently runs on the CPU instead:
    bench says so and does not time it as OpenVINO."""
    r = cli(
        "bench",
        "--json",
        "--providers",
        "openvino",
        "--openvino-device",
        "CPU",
        "--openvino-precision",
        "FP16",
        "--iterations",
        "2",
        "--model",
        MODEL,
    )
    assert r.code == 0, r.err
    (openvino,) = json.loads(r.out)["results"]
    assert openvino["status"] == "skipped" and openvino["inference"] is None
    assert openvino["reason"] == (
        f"ONNX Runtime fell back to CPUExecutionProvider (not timed as {OPENVINO})"
    )
    assert "ERROR" not in r.err  # ONNX Runtime's own multi-line log stays quiet
