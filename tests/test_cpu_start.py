"""The CPU stands in while a GPU's session starts: the first frames are detected at once, the
accelerator takes over when it has run a frame, and one that cannot start leaves the CPU
detecting. There is no GPU here: the accelerator's opening is replaced (CUDA requested from a
CPU-only ONNX Runtime falls back to the CPU, as a broken CUDA install does for a user)."""

from __future__ import annotations

import json
import logging
import threading
import time

import numpy as np
import pytest

import annotate.detector as detector_module
from annotate.detector import Detector, SessionSettings
from annotate.providers import CPU, Resolution

pytestmark = pytest.mark.shared

CUDA = Resolution(("CUDAExecutionProvider", CPU), "test")
STAND_IN = SessionSettings(cpu_start=True)


def boxes(found):
    return sorted(zip(found.class_ids.tolist(), np.round(found.xyxy, 0).tolist()))


@pytest.fixture
def gate(monkeypatch):
    """The accelerator opens only once the gate is set."""
    opened = threading.Event()
    real = detector_module.open_accelerator

    def gated(*args):
        assert opened.wait(30), "the test never opened the gate"
        return real(*args)

    monkeypatch.setattr(detector_module, "open_accelerator", gated)
    return opened


def test_the_cpu_detects_until_the_accelerator_has_started(gate, caplog):
    from tests.helpers import MODEL, read_image

    caplog.set_level(logging.DEBUG, logger="annotate")
    image = read_image("astronaut")
    detector = Detector.load(MODEL, CUDA, settings=STAND_IN)
    stand_in = detector.session
    assert detector.provider == "CUDAExecutionProvider"  # what is starting, for the summary
    assert "Detecting on the CPU while CUDAExecutionProvider starts" in caplog.text
    found = detector(image)
    assert "person" in [detector.labels[i] for i in found.class_ids]
    assert detector.stand_in_frames == 1 and not detector.wait_ready(0)
    gate.set()
    assert detector.wait_ready(30)
    assert detector.session is not stand_in
    assert "the CPU detected 1 frame meanwhile" in caplog.text
    # This ONNX Runtime has no CUDA, so it fell back, and says so, as a broken install would.
    assert "could not start CUDAExecutionProvider and fell back" in caplog.text
    assert detector.provider == CPU
    assert boxes(detector(image)) == boxes(found)
    assert detector.stand_in_frames == 1
    detector.close()


def test_while_standing_in_every_thread_detects_at_once_not_through_the_service(gate, monkeypatch):
    """Many sources share one service; while the CPU stands in, their threads call the CPU
    session side by side (its cores in parallel), not one frame at a time behind the
    service's thread. Seen from ONNX Runtime's own ``run``: calls overlap."""
    import onnxruntime as ort

    from tests.helpers import MODEL, read_image

    running, most, lock = [0], [0], threading.Lock()
    real = ort.InferenceSession.run

    def counted(self, *args, **kw):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.02)  # long enough for the other threads' calls to arrive meanwhile
            return real(self, *args, **kw)
        finally:
            with lock:
                running[0] -= 1

    detector = Detector.load(MODEL, CUDA, settings=STAND_IN)
    detector.serve(8)
    monkeypatch.setattr(ort.InferenceSession, "run", counted)
    image = read_image("astronaut")
    found: list[list[str]] = []

    def source() -> None:
        for _ in range(3):
            found.append([detector.labels[i] for i in detector(image).class_ids])

    threads = [threading.Thread(target=source) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(found) == 12 and all("person" in labels for labels in found)
    assert most[0] >= 2, "the stand-in ran one frame at a time"
    assert detector.stand_in_frames == 12 and not detector.wait_ready(0)
    gate.set()
    assert detector.wait_ready(30)
    detector.close()


def test_an_accelerator_that_cannot_start_leaves_the_cpu_detecting(monkeypatch, caplog):
    from tests.helpers import MODEL, read_image

    def broken(*args):
        raise RuntimeError("libcudnn.so.9: cannot open shared object file\nmore detail")

    monkeypatch.setattr(detector_module, "open_accelerator", broken)
    detector = Detector.load(MODEL, CUDA, settings=STAND_IN)
    assert detector.wait_ready(30)
    assert detector.provider == CPU
    assert (
        "CUDAExecutionProvider did not start (libcudnn.so.9: cannot open shared object file); "
        "detecting on the CPU"
    ) in caplog.text
    assert "person" in [detector.labels[i] for i in detector(read_image("astronaut")).class_ids]


@pytest.mark.parametrize("cpu_start", [None, False])
def test_without_cpu_start_the_accelerator_is_waited_for(monkeypatch, caplog, cpu_start):
    from tests.helpers import MODEL

    def unused(*args):
        raise AssertionError("no stand-in, no accelerator opened beside it")

    caplog.set_level(logging.INFO, logger="annotate")
    monkeypatch.setattr(detector_module, "open_accelerator", unused)
    detector = Detector.load(MODEL, CUDA, settings=SessionSettings(cpu_start=cpu_start))
    assert detector.wait_ready(0) and detector.stand_in_frames == 0
    assert "Detecting on the CPU" not in caplog.text
    assert "Using execution provider: CPUExecutionProvider" in caplog.text


@pytest.mark.parametrize(("live", "cpu_start", "light", "stands_in"), [
    (True, None, False, True), (False, None, True, True), (False, None, False, False),
    (False, True, False, True), (True, False, True, False), (False, False, True, False),
])  # fmt: skip
def test_by_default_cameras_and_light_models_get_the_stand_in(
    monkeypatch, caplog, live, cpu_start, light, stands_in
):
    """A camera's first frame is what its user waits for. A file's run has the CPU stand
    in too for a light model (its first frame comes at once and the run ends sooner); a
    heavy model's CPU frames would come after the GPU's, so its start is waited for, and
    a line says so (docs/performance.md, "GPU")."""
    from annotate import defaults
    from annotate.pipeline.build import load_detector
    from annotate.pipeline.options import RunOptions
    from annotate.pipeline.plan import plan_threads
    from tests.helpers import MODEL

    caplog.set_level(logging.INFO, logger="annotate")
    monkeypatch.setattr(defaults, "STAND_IN_MAX_BYTES", 10**12 if light else 0)
    gate = threading.Event()
    real = detector_module.open_accelerator
    monkeypatch.setattr(detector_module, "open_accelerator", lambda *a: gate.wait(30) and real(*a))
    options = RunOptions(
        "clip.mp4", MODEL, CUDA, session=SessionSettings(cpu_start=cpu_start)
    ).resolved()
    detector = load_detector(options, plan_threads(options, 2), None, live=live)
    assert detector.wait_ready(0) is not stands_in
    assert ("Detecting on the CPU while CUDAExecutionProvider starts" in caplog.text) is stands_in
    waited = f"Waiting for CUDAExecutionProvider: {MODEL.name} is too heavy to detect on the CPU"
    assert (waited in caplog.text) is (not stands_in and cpu_start is None)
    gate.set()
    detector.close()


@pytest.mark.parametrize("batch", [None, 4])
def test_a_run_hands_over_mid_stream_and_loses_no_frame(tmp_path, monkeypatch, caplog, batch):
    """The whole run, the accelerator ready after some frames: every frame is in the JSON,
    in order, with the boxes the CPU alone finds; with ``--batch`` the service widens only
    once the accelerator is there."""
    from annotate.pipeline.build import run
    from annotate.pipeline.options import RunOptions
    from tests.helpers import MODEL, VIDEOS

    caplog.set_level(logging.DEBUG, logger="annotate")
    common = {
        "source": str(VIDEOS / "bottle-detection.mp4"),
        "model": MODEL,
        "max_frames": 60,
        "canvas": "square",  # as an accelerator plans it
    }
    plain, handed = tmp_path / "plain.jsonl", tmp_path / "handed.jsonl"
    run(RunOptions(json_path=plain, resolution=Resolution((CPU,), "test"), **common))
    real = detector_module.open_accelerator
    seen: list[Detector] = []
    load = Detector.load.__func__  # type: ignore[attr-defined]

    def keep(cls, *args, **kwargs):
        seen.append(load(cls, *args, **kwargs))
        return seen[-1]

    def after_ten_frames(*args):
        deadline = time.monotonic() + 30
        while (not seen or seen[0].stand_in_frames < 10) and time.monotonic() < deadline:
            time.sleep(0.002)
        return real(*args)

    monkeypatch.setattr(Detector, "load", classmethod(keep))
    monkeypatch.setattr(detector_module, "open_accelerator", after_ten_frames)
    summary = run(
        RunOptions(json_path=handed, resolution=CUDA, batch=batch, session=STAND_IN, **common)
    )
    assert summary.frames == 60
    meanwhile = int(caplog.text.split("the CPU detected ")[1].split()[0])
    assert 10 <= meanwhile < 60
    a = [json.loads(line) for line in plain.read_text().splitlines()]
    b = [json.loads(line) for line in handed.read_text().splitlines()]
    assert [r["frame"] for r in b] == list(range(60))
    assert sum(len(r["detections"]) for r in a) > 60
    for ra, rb in zip(a, b):
        assert [d["label"] for d in ra["detections"]] == [d["label"] for d in rb["detections"]]
        for da, db in zip(ra["detections"], rb["detections"]):
            assert da["box"] == pytest.approx(db["box"], abs=0.5)
    if batch:
        assert "Inference service: batch sizes [1, 2, 4] warmed" in caplog.text or (
            "Inference service: batches of up to 4" in caplog.text
        )


class Session:
    """An accelerator's session as a CPU one stands in for it: ``wrong`` multiplies every
    output by a factor that grows with each call, as CUDA's ``fuse_conv_bias`` did on the
    lent H200 (docs/performance.md, "GPU", "Correction")."""

    def __init__(self, session, wrong: bool) -> None:
        self.session, self.wrong, self.calls = session, wrong, 0
        self.batches: list[int] = []  # each plain call's batch size

    def run(self, fetch, feed, *rest):
        outputs = self.session.run(fetch, feed, *rest)
        self.calls += 1
        self.batches.append(next(iter(feed.values())).shape[0])
        return [o * (10.0**self.calls) for o in outputs] if self.wrong else outputs

    def __getattr__(self, name):
        return getattr(self.session, name)


def as_cuda(opened, wrong: bool):
    from annotate.detector.session import SessionInfo

    session, info = opened
    return Session(session, wrong), SessionInfo(
        info.requested, ("CUDAExecutionProvider", CPU), info.reason, info.startup_s
    )


@pytest.mark.parametrize("wrong", [True, False])
def test_an_accelerator_computing_unlike_the_cpu_is_replaced_by_it(monkeypatch, caplog, wrong):
    """A file's run (no stand-in): one noise image on both, in the background; a GPU whose
    outputs differ gives way to the CPU with a line that says so."""
    from tests.helpers import MODEL, read_image

    caplog.set_level(logging.DEBUG, logger="annotate")
    real = detector_module.open_session

    def opened(model, resolution, *args, **kwargs):
        session = real(model, resolution, *args, **kwargs)
        return session if resolution.providers == (CPU,) else as_cuda(session, wrong)

    monkeypatch.setattr(detector_module, "open_session", opened)
    detector = Detector.load(MODEL, CUDA, settings=SessionSettings(cpu_start=False))
    detector.close()  # waits for the check, as a run's end does
    image = read_image("astronaut")
    reference = Detector.load(MODEL, Resolution((CPU,), "test"))
    if wrong:
        assert detector.provider == CPU
        assert (
            "CUDAExecutionProvider gives outputs unlike the CPU's (a mean difference of"
            in caplog.text
        )
        assert "detecting on the CPU from now on" in caplog.text
    else:
        assert detector.provider == "CUDAExecutionProvider"
        assert "CUDAExecutionProvider checked: its outputs are the CPU's" in caplog.text
        assert "unlike" not in caplog.text
    assert boxes(detector(image)) == boxes(reference(image))


@pytest.mark.parametrize("wrong", [True, False])
def test_a_stand_in_takes_back_over_when_the_accelerator_computes_unlike_it(
    monkeypatch, caplog, wrong
):
    """The GPU takes over as soon as it has run (a live source waits for nothing), then the
    stand-in's session checks it; computing unlike the CPU, it hands back."""
    from tests.helpers import MODEL, read_image

    caplog.set_level(logging.DEBUG, logger="annotate")
    real = detector_module.open_accelerator
    monkeypatch.setattr(
        detector_module, "open_accelerator", lambda *a: as_cuda(real(*a), wrong=wrong)
    )
    detector = Detector.load(MODEL, CUDA, settings=STAND_IN)
    stand_in = detector.session
    detector.close()  # waits for the start and its check
    assert "CUDAExecutionProvider took over" in caplog.text
    if wrong:
        assert (
            "CUDAExecutionProvider gives outputs unlike the CPU's (a mean difference of"
            in caplog.text
        )
        assert detector.session is stand_in and detector.provider == CPU
    else:
        assert "CUDAExecutionProvider checked: its outputs are the CPU's" in caplog.text
        assert detector.session is not stand_in
        assert detector.provider == "CUDAExecutionProvider"
    image = read_image("astronaut")
    assert boxes(detector(image)) == boxes(Detector.load(MODEL, Resolution((CPU,), "t"))(image))


@pytest.mark.parametrize("batch", [1, 4])
def test_the_stand_ins_check_runs_the_accelerator_at_the_batch_size_it_serves(monkeypatch, batch):
    """On CUDA each new input shape is planned again, for seconds, while every other call
    waits (seen on the lent H200 as four seconds in which 24 cameras drew nothing): once
    the stand-in has handed over, the check's image goes in a batch of the service's size."""
    from tests.helpers import MODEL

    real = detector_module.open_session  # the accelerator's opening calls it too
    made: list[Session] = []

    def opened(model, resolution, *args, **kwargs):
        session = real(model, resolution, *args, **kwargs)
        if resolution.providers == (CPU,):
            return session
        wrapped, info = as_cuda(session, wrong=False)
        made.append(wrapped)
        return wrapped, info

    monkeypatch.setattr(detector_module, "open_session", opened)
    detector = Detector.load(MODEL, CUDA, settings=STAND_IN, batch=batch)
    detector.close()  # waits for the start and the check
    assert detector.provider == "CUDAExecutionProvider"
    assert len(made) == 1 and made[0].batches == [batch]


def grouped_convolutions(model, prepared: bytes | None) -> int:
    import onnx

    nodes = (
        onnx.load(str(model)) if prepared is None else onnx.load_from_string(prepared)
    ).graph.node
    groups = [a.i for n in nodes if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
    return sum(1 for g in groups if g > 1)


@pytest.fixture
def opened(monkeypatch) -> list[tuple[str, int]]:
    """Each session opened: its first provider and how many grouped convolutions it got."""
    real = detector_module.open_session
    made: list[tuple[str, int]] = []

    def recorded(model, resolution, *args, prepared=None, **kwargs):
        made.append((resolution.providers[0], grouped_convolutions(model, prepared)))
        return real(model, resolution, *args, prepared=prepared, **kwargs)

    monkeypatch.setattr(detector_module, "open_session", recorded)
    return made


@pytest.mark.parametrize("cpu_start", [True, False])
def test_cuda_runs_depthwise_convolutions_dense_and_the_cpu_keeps_them(opened, cpu_start):
    """cuDNN compiles depthwise kernels for seconds at every start and has dense ones ready:
    CUDA's session gets the dense graph, the CPU (standing in, or checking) the model's own
    depthwise one, and the boxes do not change when CUDA takes over."""
    from tests.helpers import MODEL, read_image

    image = read_image("astronaut")
    reference = boxes(Detector.load(MODEL, Resolution((CPU,), "test"))(image))
    opened.clear()
    detector = Detector.load(MODEL, CUDA, settings=SessionSettings(cpu_start=cpu_start))
    assert detector.wait_ready(30)
    detector.close()  # and its check against the CPU
    assert boxes(detector(image)) == reference
    # YOLOX-Nano has 30 depthwise convolutions. Waited for, CUDA is checked against the CPU
    # only where it really started (here ONNX Runtime fell back: no GPU).
    want = (
        [(CPU, 30), ("CUDAExecutionProvider", 0)] if cpu_start else [("CUDAExecutionProvider", 0)]
    )
    assert sorted(opened) == sorted(want)


def test_cuda_keeps_the_face_models_depthwise_convolutions(opened):
    """CenterFace's dense form would cost 18x its arithmetic at 960 pixels: on CUDA the
    face model keeps its own depthwise convolutions."""
    from tests.helpers import SHARED

    faces = SHARED / "models" / "centerface.onnx"
    Detector.load(faces, CUDA, family="centerface", settings=SessionSettings(cpu_start=False))
    assert opened == [("CUDAExecutionProvider", 17)]
