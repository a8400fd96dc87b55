"""The GPU box's decode and encode paths on a machine without one: NVDEC and NVENC are in
PyAV's wheel but cannot open here, so what a user sees is the fallback — one line, and the
run goes on in software — or, for an NVENC codec asked for by name, a one-line error."""

from __future__ import annotations

import pytest

from annotate.sinks.encoding import EncodeOptions
from annotate.sinks.video import cannot_open, pick_codec
from tests.helpers import MODEL, VIDEOS, decode_video, probe

M = ("--model", str(MODEL))
BOTTLES = VIDEOS / "bottle-detection.mp4"


@pytest.fixture(autouse=True)
def _no_nvenc_here():
    if cannot_open("h264_nvenc") is None:
        pytest.skip("NVENC opens on this machine: the fallback cannot be seen here")


@pytest.fixture
def said(monkeypatch):
    """What the codec choice logs (whatever earlier tests did to the logger's handlers)."""
    import annotate.sinks.video as video

    lines: list[str] = []
    monkeypatch.setattr(video.log, "info", lambda msg, *args: lines.append(msg % args))
    return lines


def test_auto_codec_uses_x264_where_nvenc_does_not_open_and_says_why(said):
    chosen = pick_codec(EncodeOptions(), nvidia=True)
    assert chosen.codec == "h264"
    (line,) = said
    assert line.startswith("--codec auto: NVENC does not open here (")
    assert line.endswith("A100, H100 and H200 have no NVENC); encoding with x264")


def test_auto_codec_off_an_nvidia_gpu_is_x264_without_a_word(said):
    assert pick_codec(EncodeOptions(), nvidia=False).codec == "h264"
    assert pick_codec(EncodeOptions(preset="ultrafast"), nvidia=True).codec == "h264"
    assert said == []
    assert pick_codec(EncodeOptions(codec="hevc"), nvidia=True).codec == "hevc"


def test_auto_codec_in_webm_is_vp9_even_on_an_nvidia_gpu(said):
    """WebM cannot hold H.264, the codec auto writes elsewhere (NVENC's included)."""
    assert pick_codec(EncodeOptions(), nvidia=True, fmt="webm").codec == "vp9"
    assert pick_codec(EncodeOptions(), nvidia=False, fmt="webm").codec == "vp9"
    assert said == []


@pytest.mark.shared
def test_an_nvenc_codec_by_name_fails_in_one_line_before_any_output(cli, tmp_path):
    out = tmp_path / "out.mp4"
    r = cli("run", BOTTLES, "-o", out, "--codec", "h264_nvenc", "--max-frames", "5", *M)
    assert r.code == 1 and "Traceback" not in r.err
    (line,) = [line for line in r.err.splitlines() if line.startswith("Error")]
    assert r.err.strip().endswith(line)
    assert line.startswith("Error: --codec h264_nvenc cannot open here (")
    assert line.endswith("not on A100, H100 or H200; use --codec h264")
    assert not out.exists()


@pytest.mark.shared
def test_hwdec_cuda_falls_back_to_software_with_one_line(cli, tmp_path):
    """The same frames as a software run, and one warning saying why."""
    a, b = tmp_path / "gpu.mp4", tmp_path / "cpu.mp4"
    common = ("--max-frames", "12", "--codec", "h264", "--crf", "0", "--no-boxes", *M)
    r = cli("run", BOTTLES, "-o", a, "--hwdec", "cuda", *common)
    assert r.code == 0, r.err
    warnings = [line for line in r.err.splitlines() if "--hwdec" in line]
    assert len(warnings) == 1
    assert "--hwdec cuda: cannot decode on the GPU here (" in warnings[0]
    assert warnings[0].endswith("decoding in software")
    assert cli("run", BOTTLES, "-o", b, "--hwdec", "none", *common).code == 0
    (_, _, frames_a), (_, _, frames_b) = decode_video(a), decode_video(b)
    assert len(frames_a) == len(frames_b) == 12
    assert all((fa == fb).all() for fa, fb in zip(frames_a, frames_b))
    assert [s["codec"] for s in probe(a)["streams"]] == ["h264"]


@pytest.mark.shared
def test_hwdec_takes_only_known_values(cli):
    r = cli("run", BOTTLES, "--hwdec", "vaapi", *M)
    assert r.code == 2
    assert r.err.strip() == "Error: --hwdec takes auto, cuda, none; got 'vaapi'"


def test_hwdec_auto_decodes_in_software_even_for_the_gpu_service():
    """NVDEC beside the model halved the service's rate on an H100: auto never asks for it
    (``--hwdec cuda`` still does)."""
    from annotate.pipeline.build import decoder_for
    from annotate.pipeline.options import RunOptions
    from annotate.providers import Resolution

    cuda = Resolution(("CUDAExecutionProvider", "CPUExecutionProvider"), "test")
    assert decoder_for(RunOptions(str(BOTTLES), resolution=cuda, batch=8)) == "none"
    assert decoder_for(RunOptions(str(BOTTLES), resolution=cuda, hwdec="cuda")) == "cuda"
