"""The inference service: batches from many threads, each caller its own output, bounded
waits, errors to the callers of the failing batch, and a clean close; then the whole run
through it with the real model (the CPU provider standing in for CUDA, by injection)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from annotate.detector.service import InferenceService, ServiceClosedError


def per_image(blob: np.ndarray) -> np.ndarray:
    """An output that tells the images apart: each one's mean, as ``[N, 1, 1]``."""
    return blob.reshape(len(blob), -1).mean(axis=1, dtype=np.float32)[:, None, None]


def canvas(value: float, shape: tuple[int, ...] = (4, 4, 3)) -> np.ndarray:
    return np.full((1, *shape), value, np.float32)


def test_callers_on_many_threads_share_batches_and_get_their_own_outputs():
    calls: list[int] = []

    def run(blob: np.ndarray) -> np.ndarray:
        calls.append(len(blob))
        time.sleep(0.01)  # while one batch runs, the next one gathers
        return per_image(blob)

    with (
        InferenceService(run, max_batch=8, wait_s=0.005) as service,
        ThreadPoolExecutor(16) as pool,
    ):
        outputs = list(pool.map(lambda i: service.infer(canvas(i)), range(64)))
    assert [float(o[0, 0, 0]) for o in outputs] == list(range(64))
    assert all(o.shape == (1, 1, 1) for o in outputs)
    assert max(calls) == 8 and service.stats.images == 64
    assert service.stats.mean_batch > 2


def test_a_lone_canvas_waits_for_no_full_batch():
    """One live source: its frame runs after ``wait_s``, alone, not once 8 have come."""
    with InferenceService(per_image, max_batch=8, wait_s=0.05) as service:
        started = time.perf_counter()
        output = service.infer(canvas(3))
        waited = time.perf_counter() - started
    assert float(output[0, 0, 0]) == 3
    assert service.stats.batches == 1 and service.stats.largest == 1
    assert 0.04 < waited < 1.0


def test_batches_are_padded_to_the_planned_sizes_and_the_padding_dropped():
    seen: list[int] = []

    def run(blob: np.ndarray) -> np.ndarray:
        seen.append(len(blob))
        return per_image(blob)

    gate = threading.Barrier(3)

    def call(i: int) -> float:
        gate.wait()
        return float(service.infer(canvas(i))[0, 0, 0])

    with (
        InferenceService(run, max_batch=8, wait_s=0.5, sizes=(1, 2, 4, 8)) as service,
        ThreadPoolExecutor(3) as pool,
    ):
        values = list(pool.map(call, range(3)))
    assert values == [0, 1, 2]
    assert set(seen) <= {1, 2, 4, 8}
    assert service.stats.images == 3 and service.stats.padded == sum(seen) - 3


def test_canvases_of_another_shape_go_in_another_batch():
    shapes: list[tuple[int, ...]] = []

    def run(blob: np.ndarray) -> np.ndarray:
        shapes.append(blob.shape)
        return per_image(blob)

    gate = threading.Barrier(4)

    def call(i: int) -> float:
        gate.wait()
        shape = (4, 4, 3) if i % 2 else (8, 4, 3)
        return float(service.infer(canvas(i, shape))[0, 0, 0])

    with InferenceService(run, max_batch=8, wait_s=0.2) as service, ThreadPoolExecutor(4) as pool:
        values = list(pool.map(call, range(4)))
    assert values == [0, 1, 2, 3]
    assert {s[1:] for s in shapes} == {(4, 4, 3), (8, 4, 3)}
    assert all(len({s}) == 1 for s in shapes)


def test_an_error_reaches_every_caller_of_that_batch_and_the_service_goes_on():
    failing = threading.Event()
    failing.set()

    def run(blob: np.ndarray) -> np.ndarray:
        if failing.is_set():
            raise RuntimeError("out of device memory")
        return per_image(blob)

    gate = threading.Barrier(3)

    def call(i: int) -> str:
        gate.wait()
        try:
            service.infer(canvas(i))
        except RuntimeError as e:
            return str(e)
        return "ok"

    with InferenceService(run, max_batch=4, wait_s=0.2) as service, ThreadPoolExecutor(3) as pool:
        assert list(pool.map(call, range(3))) == ["out of device memory"] * 3
        failing.clear()
        assert float(service.infer(canvas(5))[0, 0, 0]) == 5


def test_an_output_without_one_row_per_image_is_an_error():
    """A graph that folds the batch into its anchors (YOLOX's export, unfixed)."""
    folded = lambda blob: np.zeros((1, 10 * len(blob), 6), np.float32)  # noqa: E731
    with (
        InferenceService(folded, 4, sizes=(2, 4)) as service,
        pytest.raises(RuntimeError, match="not one output per image"),
    ):
        service.infer(canvas(1))


def test_close_fails_the_waiting_and_later_callers():
    release = threading.Event()

    def run(blob: np.ndarray) -> np.ndarray:
        release.wait(5)
        return per_image(blob)

    service = InferenceService(run, max_batch=1, wait_s=0)
    results: list[str] = []

    def call(i: int) -> None:
        try:
            service.infer(canvas(i))
            results.append("ok")
        except ServiceClosedError:
            results.append("closed")

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # one is running, two wait
    closer = threading.Thread(target=service.close)
    closer.start()
    release.set()
    closer.join(10)
    for thread in threads:
        thread.join(10)
    assert not any(t.is_alive() for t in threads)
    assert sorted(results) == ["closed", "closed", "ok"]
    with pytest.raises(ServiceClosedError):
        service.infer(canvas(9))


def test_one_canvas_at_a_time():
    with InferenceService(per_image, 4) as service, pytest.raises(ValueError, match="one canvas"):
        service.infer(np.zeros((2, 4, 4, 3), np.float32))


def test_a_packed_input_is_prepared_in_the_graph_as_the_cpu_does_it(tmp_path):
    """uint8 NHWC BGR in; the graph casts, reorders, transposes and scales exactly as the
    CPU letterbox does (here for an Ultralytics-style model: RGB, 0-1)."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from annotate.detector.graph import PACKED_INPUT, Edits, edited_model
    from annotate.detector.preprocess import letterbox

    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output"])],
        "identity",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 32, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "identity.onnx"
    onnx.save(model, str(path))
    edited = edited_model(path, Edits(batch=True, packed=lambda i, o: (True, 1 / 255)))
    assert edited is not None
    session = ort.InferenceSession(edited, providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == PACKED_INPUT
    assert session.get_inputs()[0].shape == ["batch", 32, 64, 3]
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)
    expected, _ = letterbox(image, (32, 64), centered=True, rgb=True, scale=1 / 255)
    both = np.stack([image, image[::-1]])
    out = session.run(None, {PACKED_INPUT: both})[0]
    np.testing.assert_allclose(out[:1], expected, rtol=1e-6)
    assert out.shape == (2, 3, 32, 64)
    assert not np.array_equal(out[0], out[1])


def test_depthwise_convolutions_made_dense_give_the_same_outputs(tmp_path):
    """A depthwise convolution (stride 2, with a bias) beside a grouped one it must leave
    alone: the first becomes one dense convolution with the same outputs, the second stays."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from annotate.detector.graph import Edits, edit_model

    rng = np.random.default_rng(3)
    weights = [
        numpy_helper.from_array(rng.normal(size=(4, 1, 3, 3)).astype(np.float32), "dw"),
        numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "dw_bias"),
        numpy_helper.from_array(rng.normal(size=(4, 2, 1, 1)).astype(np.float32), "grouped"),
    ]
    nodes = [
        helper.make_node(
            "Conv", ["x", "dw", "dw_bias"], ["y"], group=4, strides=[2, 2], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Conv", ["y", "grouped"], ["z"], group=2),
    ]
    graph = helper.make_graph(
        nodes,
        "depthwise",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16, 16])],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 8, 8])],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "depthwise.onnx"
    onnx.save(model, str(path))
    made = edit_model(path, Edits(dense=True))
    assert made is not None and made.data is not None
    assert made.done == ["dense depthwise convolutions"]
    edited = onnx.load_from_string(made.data)
    groups = [next(a.i for a in n.attribute if a.name == "group") for n in edited.graph.node]
    assert groups == [1, 2]
    x = rng.normal(size=(2, 4, 16, 16)).astype(np.float32)
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(made.data, providers=["CPUExecutionProvider"])
    for image in x:
        feed = {"x": image[None]}
        np.testing.assert_allclose(got.run(None, feed)[0], want.run(None, feed)[0], atol=1e-5)


@pytest.mark.shared
def test_a_run_through_the_service_finds_what_the_cpu_workers_find(tmp_path, monkeypatch):
    """The real model and clip, the service plan chosen for the CPU provider by injection
    (as CUDA would choose it): one session with its batch freed and its canvas packed, fed by
    the workers in batches; frame for frame the same boxes as the CPU plan."""
    import annotate.detector as detector_module
    import annotate.pipeline.plan as plan_module
    from annotate.pipeline.build import run
    from annotate.pipeline.options import RunOptions
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, VIDEOS

    def records(path):
        return [json.loads(line) for line in path.read_text().splitlines()]

    plain, served = tmp_path / "plain.jsonl", tmp_path / "served.jsonl"
    common = {
        "source": str(VIDEOS / "bottle-detection.mp4"),
        "model": MODEL,
        "resolution": Resolution((CPU,), "test"),
        "max_frames": 90,
        "canvas": "square",
    }
    run(RunOptions(json_path=plain, **common))
    batching = frozenset({CPU})
    monkeypatch.setattr(detector_module, "BATCHING", batching)
    monkeypatch.setattr(plan_module, "BATCHING", batching)
    sizes: list[int] = []
    real = InferenceService._serve

    def watched(self):
        inner = self._run

        def run_batch(blob):
            sizes.append(len(blob))
            return inner(blob)

        self._run = run_batch
        real(self)

    monkeypatch.setattr(InferenceService, "_serve", watched)
    summary = run(RunOptions(json_path=served, batch=4, **common))
    assert summary.mode.startswith("inference service: one session, batches of up to 4")
    assert max(sizes) > 1 and set(sizes) <= {1, 4}
    a, b = records(plain), records(served)
    assert [r["frame"] for r in b] == list(range(90))
    assert sum(len(r["detections"]) for r in a) > 150
    for ra, rb in zip(a, b):
        assert [d["label"] for d in ra["detections"]] == [d["label"] for d in rb["detections"]]
        for da, db in zip(ra["detections"], rb["detections"]):
            assert da["box"] == pytest.approx(db["box"], abs=0.1)


@pytest.mark.shared
def test_an_accelerator_waited_for_runs_only_its_batch_shape_from_the_first_call(
    tmp_path, monkeypatch
):
    """Where the run waits for the accelerator (no CPU stand-in), its session meets one
    input shape from its first call to its last: the batch check, the planning, the check
    against the CPU and every frame. On CUDA each change of shape is planned again for
    seconds (2.6 s a time on an H100), and that is what every frame waited for."""
    import annotate.detector as detector_module
    import annotate.pipeline.plan as plan_module
    from annotate.detector import Detector
    from annotate.detector.session import BoundRun
    from annotate.pipeline.build import run
    from annotate.pipeline.options import RunOptions
    from annotate.providers import CPU, Resolution, SessionSettings
    from tests.helpers import MODEL, VIDEOS

    batching = frozenset({CPU})
    monkeypatch.setattr(detector_module, "BATCHING", batching)
    monkeypatch.setattr(plan_module, "BATCHING", batching)
    shapes: list[int] = []
    for owner, name in ((Detector, "_run_plain"), (Detector, "_run"), (BoundRun, "_call")):
        real = getattr(owner, name)

        def watched(self, blob, *rest, real=real):
            shapes.append(blob.shape[0])
            return real(self, blob, *rest)

        monkeypatch.setattr(owner, name, watched)
    checked: list[int] = []
    unlike = Detector._unlike_cpu
    monkeypatch.setattr(
        Detector, "_unlike_cpu", lambda self, a, c, n: checked.append(n) or unlike(self, a, c, n)
    )
    out = tmp_path / "served.jsonl"
    summary = run(
        RunOptions(
            source=str(VIDEOS / "bottle-detection.mp4"),
            model=MODEL,
            resolution=Resolution((CPU,), "test"),
            session=SessionSettings(cpu_start=False),
            max_frames=40,
            canvas="square",
            json_path=out,
            batch=4,
        )
    )
    assert summary.mode.startswith("inference service: one session, batches of up to 4")
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(40))
    assert sum(len(r["detections"]) for r in records) > 40
    assert len(shapes) >= 40 // 4 and set(shapes) == {4}
    assert checked == [4]


@pytest.mark.parametrize("fixed", [True, False])
@pytest.mark.shared
def test_the_service_starts_at_one_frame_and_widens_once_its_batch_checks_out(
    tmp_path, caplog, fixed
):
    """The first frames go one at a time (the shape the model already ran); a background
    warm-up runs and checks the full batch, then the service takes batches of it, every one
    padded to that one shape (on CUDA a new shape costs seconds each time it changes). A
    model that mixes a batch's images up stays at one frame, saying why."""
    import logging

    from annotate.detector import Detector
    from annotate.providers import CPU, Resolution
    from annotate.testing.models import batchable_yolox
    from tests.helpers import MODEL

    caplog.set_level(logging.DEBUG, logger="annotate")
    model = batchable_yolox(MODEL, tmp_path / "b.onnx", fixed)
    detector = Detector.load(model, Resolution((CPU,), "test"))
    service = detector.serve(8)
    assert service.max_batch == 1 and service.sizes == (1,)
    deadline = time.monotonic() + 30
    expected = "batches of up to 8 after" if fixed else "Batches of 8 ruled out"
    while expected not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)
    detector.close()
    if fixed:
        assert (service.max_batch, service.sizes) == (8, (8,))
    else:
        assert (service.max_batch, service.sizes) == (1, (1,))
        assert (
            "Batches of 8 ruled out: a batch of 8 gives output [1, 28392, 85], not "
            "[8, 3549, 85]; one frame per inference" in caplog.text
        )


@pytest.mark.shared
def test_an_accelerator_run_pads_every_call_to_its_one_batch(monkeypatch):
    """What the service calls on an accelerator: a lone frame and a batch of three both run
    as a batch of four, and each gets back its own images' outputs, the padding dropped."""
    from annotate.detector import Detector
    from annotate.detector.session import BoundRun
    from annotate.providers import CPU, Resolution
    from tests.helpers import MODEL, read_image

    detector = Detector.load(MODEL, Resolution((CPU,), "test"))
    image = read_image("astronaut")
    one = detector.preprocess(image)[0]
    other = detector.preprocess(image[::-1].copy())[0]
    shapes: list[int] = []
    real = BoundRun._call

    def watched(self, blob):
        shapes.append(blob.shape[0])
        return real(self, blob)

    monkeypatch.setattr(BoundRun, "_call", watched)
    # The model with its batch freed, as an accelerator gets it.
    from annotate.detector.graph import Edits
    from annotate.detector.session import open_session

    session, _ = open_session(MODEL, Resolution((CPU,), "test"), edits=Edits(batch=True))
    bound = BoundRun(session, batch=4)
    alone = bound(one)
    three = bound(np.concatenate([one, other, one]))
    assert shapes == [4, 4]
    assert alone.shape == (1, 3549, 85) and three.shape == (3, 3549, 85)
    plain = detector._run_plain
    np.testing.assert_allclose(alone, plain(one), atol=1e-3)
    np.testing.assert_allclose(three[1:2], plain(other), atol=1e-3)
    assert not np.allclose(three[0], three[1], atol=1e-3)
