"""The detector: pre-process → ONNX Runtime session → post-process, each timed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from annotate import defaults
from annotate.detector.canvas import STRIDE, face_canvas, fitted
from annotate.detector.families import (
    FACE_LABEL,
    FACES,
    FAMILIES,
    Family,
    ModelSpec,
    classify,
    read_face_spec,
    read_spec,
)
from annotate.detector.graph import PACKED_INPUT, SCORED_OUTPUT, Edits, Packing, Scoring
from annotate.detector.labels import COCO_LABELS
from annotate.detector.postprocess import anchor_count
from annotate.detector.preprocess import Letterbox, letterbox, place
from annotate.detector.service import WAIT_S, InferenceService
from annotate.detector.session import BoundRun, SessionInfo, announce_provider, edit, open_session
from annotate.errors import ModelError, UsageError
from annotate.providers import BATCHING, CPU, Resolution, SessionSettings
from annotate.types import Detections

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("annotate")

__all__ = [
    "COCO_LABELS",
    "FAMILIES",
    "Detector",
    "Family",
    "ModelSpec",
    "SessionInfo",
    "SessionSettings",
    "StageTimes",
    "class_ids",
]


def class_ids(labels: Sequence[str], classes: Sequence[str], flag: str) -> frozenset[int]:
    """Class names or ids as the user gave them (``person,car``) → ids, any case."""
    import difflib

    lookup = {name.lower(): i for i, name in enumerate(labels)}
    ids = set()
    for item in classes:
        key = item.strip().lower()
        if key.isdigit() and int(key) < len(labels):
            ids.add(int(key))
        elif key in lookup:
            ids.add(lookup[key])
        else:
            close = difflib.get_close_matches(key, list(lookup), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"unknown class '{item.strip()}' in {flag}{hint}")
    return frozenset(ids)


def _exported_family(
    family: str | None, inputs: list[int | str], outputs: list[int | str]
) -> Family | None:
    """The family a model's exported shapes say (``None`` where they are not all fixed or
    name no family): the graph edits are chosen from it before the session exists."""
    if family is not None and family not in FAMILIES:
        return None  # read_spec says so
    dims = [*inputs[2:], *outputs]
    if len(inputs) != 4 or not all(isinstance(d, int) and d > 0 for d in dims):
        return None
    try:
        chosen, _ = classify(
            tuple(int(d) for d in outputs), (int(inputs[2]), int(inputs[3])), family
        )
    except ModelError:
        return None
    return chosen


def packing(family: str | None) -> Packing:
    """How a packed input is prepared for this model (:mod:`annotate.detector.graph`): its
    family's channel order and scale."""

    def choose(inputs: list[int | str], outputs: list[int | str]) -> tuple[bool, float] | None:
        if family == FACES.name:  # read by its outputs, not its shapes
            return FACES.preprocessing.rgb, FACES.preprocessing.scale
        chosen = _exported_family(family, inputs, outputs)
        return None if chosen is None else (chosen.preprocessing.rgb, chosen.preprocessing.scale)

    return choose


def scoring(family: str | None) -> Scoring:
    """How the scored output is computed for this model: its family's objectness and
    layout (:mod:`annotate.detector.graph`)."""

    def choose(inputs: list[int | str], outputs: list[int | str]) -> tuple[bool, bool] | None:
        chosen = _exported_family(family, inputs, outputs)
        return None if chosen is None else (chosen.objectness, chosen.transposed)

    return choose


@dataclass
class StageTimes:
    """Seconds spent in each stage for the last image."""

    preprocess: float = 0.0
    inference: float = 0.0
    postprocess: float = 0.0


def open_accelerator(
    model: Path, resolution: Resolution, settings: SessionSettings, prepared: bytes | None
) -> tuple[onnxruntime.InferenceSession, SessionInfo]:
    """The accelerator's session, opened beside a CPU stand-in (tests replace this)."""
    return open_session(model, resolution, settings, prepared=prepared, announce=False)


#: How far an accelerator's output for one image may be from the CPU's, as a share of the
#: CPU's mean magnitude, before the CPU takes over (TF32 rounding is far below it; a provider
#: that computes wrongly, as CUDA's ``fuse_conv_bias`` did, far above: docs/performance.md,
#: "GPU", "Correction").
CPU_AGREEMENT = 0.1


def dense_on(provider: str, settings: SessionSettings) -> bool:
    """Whether ``provider`` runs depthwise convolutions made dense (:mod:`.graph`)."""
    return provider == "CUDAExecutionProvider" and settings.cuda_depthwise == "dense"


def check_thresholds(conf: float, iou: float) -> None:
    if not 0.0 <= conf <= 1.0:
        raise UsageError(f"--conf must be between 0 and 1, got {conf}")
    if not 0.0 <= iou <= 1.0:
        raise UsageError(f"--iou must be between 0 and 1, got {iou}")


class Detector:
    """A YOLO-family detector on ONNX Runtime; maps a BGR image to :class:`Detections` in
    source pixels. The family (YOLOX, YOLOv5, YOLOv8/11), input size and labels are read from
    the model (see :mod:`annotate.detector.families`).

    Example:
        >>> det = Detector.load(Path("models/yolox_nano.onnx"), resolution)  # doctest: +SKIP
        >>> det(cv2.imread("astronaut.png"))  # doctest: +SKIP
    """

    def __init__(
        self,
        session: onnxruntime.InferenceSession,
        info: SessionInfo,
        conf: float = defaults.CONF,
        iou: float = defaults.IOU,
        name: str = "model",
        family: str | None = None,
        labels_file: Path | None = None,
        classes: Sequence[str] | None = None,
        min_area: float = 0.0,
        max_det: int = defaults.MAX_DET,
        free_size: bool = False,
        face_side: int | None = None,
    ) -> None:
        check_thresholds(conf, iou)
        self.session = session
        self.info = info
        self.conf = conf
        self.iou = iou
        #: A face model (``family="centerface"``): its canvas is the frame's own size, or
        #: shrunk to at most ``face_side`` on the longer side (:func:`face_canvas`).
        self.is_faces = family == FACES.name
        self.face_side = face_side
        if self.is_faces:
            side = face_side or defaults.FACE_SIDE
            self.spec = read_face_spec(session, name, (side, side))
        else:
            self.spec = read_spec(session, name, family, labels_file)
        self.labels = self.spec.labels
        self.input_name, self.input_hw = self.spec.input_name, self.spec.input_hw
        #: The model takes the ``uint8`` canvas and prepares it in its graph (on the GPU).
        self.packed = self.input_name == PACKED_INPUT
        #: The graph reduces the classes itself: inference fetches its scored output.
        outputs = [o.name for o in session.get_outputs()]
        self.scored = SCORED_OUTPUT in outputs[1:]
        self._fetch = [SCORED_OUTPUT] if self.scored else None
        #: The process's inference service, once :meth:`serve` starts it.
        self.service: InferenceService | None = None
        #: What to keep besides the score threshold: ``--classes`` (as ids), ``--min-area``
        #: (source pixels²) and ``--max-det``.
        self.classes = class_ids(self.labels, classes, "--classes") if classes else None
        self.min_area, self.max_det = min_area, max_det
        #: Whether this session takes canvases fitted to the frame (``free_size`` and tried
        #: once here), and whether :meth:`preprocess` uses one (``fit``, set per source).
        self.can_fit = free_size and not self.is_faces and self._takes_other_sizes()
        self.fit = False
        self._canvases: dict[tuple[int, int], tuple[int, int]] = {}
        #: A face model run beside this one on every image (:meth:`add_faces`), its boxes
        #: joined to this one's as class :attr:`face_id`.
        self.faces: Detector | None = None
        self.face_id = -1
        #: What the service calls on an accelerator once its session runs (IO-bound), and
        #: the batch asked for, with the one allowed and why if less (:meth:`batch_limit`).
        self._bound: BoundRun | None = None
        self._limit: tuple[int, int, str] | None = None
        #: While a CPU session stands in (:meth:`start_accelerator`): the provider starting,
        #: the thread starting it, and how many inferences the stand-in ran meanwhile.
        self._starting: str | None = None
        self._starter: threading.Thread | None = None
        self._ready = threading.Event()
        self._ready.set()
        self.stand_in_frames = 0
        #: The CPU session standing in, which every thread calls directly: through the
        #: service one inference at a time, one core would detect for every source.
        self._stand_in: onnxruntime.InferenceSession | None = None

    @classmethod
    def load(
        cls,
        model: Path,
        resolution: Resolution,
        conf: float = defaults.CONF,
        iou: float = defaults.IOU,
        settings: SessionSettings | None = None,
        family: str | None = None,
        labels_file: Path | None = None,
        classes: Sequence[str] | None = None,
        min_area: float = 0.0,
        max_det: int = defaults.MAX_DET,
        free_size: bool = False,
        packed: bool = True,
        scored: bool = True,
        batch: int = 1,
        face_side: int | None = None,
        announce: bool = True,
        stand_in_if_light: bool = False,
    ) -> Detector:
        """``free_size``: make the model take canvases fitted to the frame if it can, on the
        CPU provider (:mod:`annotate.detector.canvas`); :attr:`fit` then turns them on.

        On a batching accelerator (CUDA, TensorRT …) the model's batch axis is freed for
        :meth:`serve` and, with ``packed``, it takes the ``uint8`` canvas and prepares it
        on the device (:mod:`annotate.detector.graph`); accelerators keep the fixed canvas
        they plan for. With ``scored`` the graph reduces the class scores itself there, so
        what comes back to the host is six numbers per anchor (on the CPU provider it
        measured the same as numpy's reduction, so the model is left as it is).

        ``batch``: the one batch size the accelerator will run (:meth:`serve`'s), which a
        CPU stand-in lets it prepare before it takes over. ``announce=False``: a second model
        of the run, whose provider the first one's lines already said.

        ``stand_in_if_light``, where ``settings.cpu_start`` is unset: the CPU stands in for
        a light model (:data:`defaults.STAND_IN_MAX_BYTES`); a heavy one's accelerator is
        waited for. A stand-in's accelerator opens in the background from the start.
        """
        settings = settings or SessionSettings()
        batching = resolution.preferred in BATCHING
        if family == FACES.name:  # its sizes and batch always free, its maps joined
            edits = Edits(faces=True, packed=packing(family) if batching and packed else None)
        elif batching:
            edits = Edits(
                batch=True,
                packed=packing(family) if packed else None,
                scored=scoring(family) if scored else None,
            )
        else:
            edits = Edits(sizes=free_size)
        made = edit(model, edits, family)
        prepared = made.data if made is not None else None
        # The accelerator's own graph: on CUDA, depthwise convolutions made dense (graph.py).
        # Not a face model's: CenterFace's dense form at 960 pixels is 18x the arithmetic
        # (58 against 3.1 GMACs), where YOLOX-Nano's is 2.8x (1.5 against 0.52).
        accelerated = prepared
        if dense_on(resolution.preferred, settings) and family != FACES.name:
            dense = edit(model, replace(edits, dense=True), family)
            if dense is not None and dense.data is not None:
                accelerated = dense.data
        light = model.stat().st_size <= defaults.STAND_IN_MAX_BYTES
        auto = stand_in_if_light and settings.cpu_start is None and batching
        if auto and not light and resolution.preferred != CPU:
            log.info(
                "Waiting for %s: %s is too heavy to detect on the CPU meanwhile (--cpu-start "
                "does anyway)",
                resolution.preferred,
                model.name,
            )
        stand_in = (
            batching
            and resolution.preferred != CPU
            and (bool(settings.cpu_start) or (auto and light))
        )
        opening: Future[tuple[onnxruntime.InferenceSession, SessionInfo]] | None = None
        if stand_in:
            starter = ThreadPoolExecutor(1, thread_name_prefix="accelerator-open")
            opening = starter.submit(open_accelerator, model, resolution, settings, accelerated)
            starter.shutdown(wait=False)
            cpu = Resolution((CPU,), f"standing in while {resolution.preferred} starts")
            session, info = open_session(model, cpu, settings, prepared=prepared, announce=False)
        else:
            session, info = open_session(
                model, resolution, settings, prepared=accelerated, announce=announce
            )
        detector = cls(
            session,
            info,
            conf,
            iou,
            str(model),
            family,
            labels_file,
            classes,
            min_area,
            max_det,
            free_size,
            face_side,
        )
        if opening is not None:
            log.info(
                "Detecting on the CPU while %s starts (--no-cpu-start waits for it instead)",
                resolution.preferred,
            )
            detector.start_accelerator(model, resolution, settings, prepared, batch, opening)
        elif batching and detector.info.provider in BATCHING:
            # A face model's canvas is set per source, after this (use_face_canvas).
            size = detector.prepare(batch) if batch > 1 and not detector.is_faces else 1
            detector.check_against_cpu(model, settings, prepared, size)
        return detector

    def prepare(self, batch: int) -> int:
        """Check that the accelerator's session takes batches of ``batch`` and plan that one
        shape (:meth:`batch_limit`), before any frame runs; the batch it will run.

        Where the GPU is waited for, the service's first frames would otherwise go one at a
        time while this ran beside them: on CUDA each change between the two shapes is
        planned again for seconds, and every frame waits for it."""
        limit, why = self.batch_limit(batch)
        self._limit = (batch, limit, why)
        bound = self.bound_run(limit if limit > 1 else None)
        bound(self.probe(limit))
        self._bound = bound
        return limit

    def _unlike_cpu(
        self, session: onnxruntime.InferenceSession, cpu: onnxruntime.InferenceSession, n: int
    ) -> str:
        """Why ``session``'s output for one noise image is not ``cpu``'s (the same model on
        the CPU), or ``""``: the model's own first output, every number of it compared.

        The image goes in a batch of ``n``, the shape the accelerator runs (checked on the
        CPU: :meth:`batch_limit`): on CUDA another shape is planned again for seconds, and
        again when the service's shape comes back, while every call waits."""
        feed = {self.input_name: self.probe(n, noise=True)}
        want = np.asarray(cpu.run(None, feed)[0], dtype=np.float64)
        got = np.asarray(session.run(None, feed)[0], dtype=np.float64)
        if got.shape != want.shape:
            return f"output {list(got.shape)}, not {list(want.shape)}"
        if not np.isfinite(got).all():
            return "outputs that are not finite"
        error, scale = float(np.mean(np.abs(got - want))), float(np.mean(np.abs(want)))
        if error > CPU_AGREEMENT * scale + 1e-6:
            return f"a mean difference of {error:.3g} where the CPU's outputs average {scale:.3g}"
        return ""

    def check_against_cpu(
        self, model: Path, settings: SessionSettings, prepared: bytes | None, n: int = 1
    ) -> None:
        """In the background, one image on this accelerator and on the CPU (a session
        opened for it), in a batch of ``n``, the shape the accelerator runs: where they
        differ, the CPU takes over and a line says why."""
        accelerator, started_on = self.session, self.info

        def check() -> None:
            cpu_run = Resolution((CPU,), f"{started_on.provider}'s outputs were unlike the CPU's")
            self._check(
                accelerator,
                started_on,
                lambda: open_session(model, cpu_run, settings, prepared=prepared, announce=False),
                n,
            )

        self._starter = threading.Thread(target=check, name="check against the CPU", daemon=True)
        self._starter.start()

    def _check(
        self,
        accelerator: onnxruntime.InferenceSession,
        started_on: SessionInfo,
        open_cpu: Callable[[], tuple[onnxruntime.InferenceSession, SessionInfo]],
        n: int,
    ) -> None:
        """One noise image on the accelerator that now detects and on the CPU; where they
        differ, the CPU detects from then on. A provider that starts may still compute
        wrongly, and a GPU run with wrong boxes looks like any other."""
        try:
            cpu, info = open_cpu()
            why = self._unlike_cpu(accelerator, cpu, n)
        except Exception as e:  # the check is a guard, not a stage: the run goes on
            log.debug("%s not checked against the CPU (%s)", started_on.provider, e)
            return
        if not why:
            log.debug("%s checked: its outputs are the CPU's", started_on.provider)
            return
        log.warning(
            "%s gives outputs unlike the CPU's (%s); detecting on the CPU from now on",
            started_on.provider,
            why,
        )
        self.session, self.info = cpu, info
        self._bound = None  # and any binding to the accelerator is dropped

    def start_accelerator(
        self,
        model: Path,
        resolution: Resolution,
        settings: SessionSettings,
        prepared: bytes | None,
        batch: int,
        opening: Future[tuple[onnxruntime.InferenceSession, SessionInfo]],
    ) -> None:
        """Take the accelerator's session from ``opening`` (under way since the CPU's
        opened) in a background thread while this detector's CPU session detects, and
        switch to it once it has run a batch of ``batch`` frames (checked on the CPU first:
        :meth:`batch_limit`), the one shape it will run.

        On CUDA the libraries, the context and cuDNN's first plans take seconds (TensorRT's
        engines, minutes): meanwhile the first frames are detected on the CPU, so a live
        source shows annotated frames at once and a file's frames keep flowing. The same
        edited model runs on both, so the detections differ only by float rounding.
        """
        self._starting = resolution.preferred
        self._stand_in = self.session
        self._ready.clear()
        self._starter = threading.Thread(
            target=self._accelerate,
            args=(model, resolution, settings, prepared, batch, opening),
            name="accelerator-start",
            daemon=True,
        )
        self._starter.start()

    def _accelerate(
        self,
        model: Path,
        resolution: Resolution,
        settings: SessionSettings,
        prepared: bytes | None,
        batch: int,
        opening: Future[tuple[onnxruntime.InferenceSession, SessionInfo]],
    ) -> None:
        started = time.perf_counter()
        try:
            if batch > 1:  # a graph property: the CPU's answer is the accelerator's
                self._limit = (batch, *self.batch_limit(batch))
            session, info = opening.result()
            same = [(i.name, i.type) for i in session.get_inputs()] == [
                (i.name, i.type) for i in self.session.get_inputs()
            ] and [o.name for o in session.get_outputs()] == [
                o.name for o in self.session.get_outputs()
            ]
            if not same:
                raise RuntimeError("it took the model only unedited, unlike the CPU")
            size = self._limit[1] if self._limit else 1
            bound = BoundRun(session, self._fetch, size) if info.provider in BATCHING else None
            probe = self.probe(size)
            if bound is not None:
                bound(probe)  # its first plans, before any frame waits for them
            else:
                session.run(self._fetch, {self.input_name: probe})
        except Exception as e:  # the stand-in goes on; the run still works
            detail = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
            log.warning("%s did not start (%s); detecting on the CPU", resolution.preferred, detail)
            self._stand_in = None
            self._starting = None
            self._ready.set()
            return
        announce_provider(info, resolution)
        stand_in = (self.session, self.info)
        self._stand_in = None  # first: a call that still takes it runs on the CPU, as it should
        self._bound = bound
        self.session, self.info = session, info
        self._starting = None
        # Where ONNX Runtime fell back to the CPU itself, it has said so (announce_provider).
        log.log(
            logging.DEBUG if info.fell_back else logging.INFO,
            "%s took over after %.2f s; the CPU detected %d frame%s meanwhile",
            info.provider,
            time.perf_counter() - started,
            self.stand_in_frames,
            "" if self.stand_in_frames == 1 else "s",
        )
        self._ready.set()
        if info.provider != CPU:  # the stand-in's session is the CPU's answer
            self._check(session, info, lambda: stand_in, size)

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Wait for the accelerator's session (at once where none is starting)."""
        return self._ready.wait(timeout)

    def _takes_other_sizes(self) -> bool:
        """One inference a stride smaller each way: does the output have that canvas's grid?"""
        dims = self.session.get_inputs()[0].shape[2:]
        if all(isinstance(d, int) for d in dims) or min(self.input_hw) <= STRIDE:
            return False
        hw = (self.input_hw[0] - STRIDE, self.input_hw[1] - STRIDE)
        try:
            output = self._run_plain(np.zeros((1, 3, *hw), dtype=np.float32))
        except Exception as e:  # the runtime's own error types vary by provider
            log.debug("The model takes only %s inputs (%s)", self.input_hw, str(e)[:120])
            return False
        takes = output.ndim == 3 and self.spec.family.classes(
            output.shape[1:], anchor_count(hw)
        ) == len(self.labels)
        if not takes:
            log.debug(
                "The model gives %s on a %s canvas: square canvas only", list(output.shape), hw
            )
        return takes

    def canvas_for(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """The model input an image of this size is letterboxed onto."""
        if not self.fit and not self.is_faces:
            return self.input_hw
        hw = self._canvases.get(image_hw)
        if hw is None:
            if self.is_faces:
                hw = face_canvas(image_hw, self.face_side)
            else:
                hw = fitted(self.input_hw, image_hw)
            self._canvases[image_hw] = hw
        return hw

    def use_face_side(self, side: int | None) -> None:
        """A face model's canvas from now on (:func:`face_canvas`)."""
        if side != self.face_side:
            self.face_side = side
            self._canvases.clear()

    def add_faces(self, faces: Detector) -> None:
        """Run the face model ``faces`` beside this one on every image: its boxes join this
        one's as the class ``face``, after this model's labels."""
        self.faces = faces
        self.face_id = len(self.labels)
        self.labels = (*self.labels, FACE_LABEL)
        if self.classes is not None:  # --classes filters this model's own classes
            self.classes = self.classes | {self.face_id}

    def _with_faces(
        self, image: npt.NDArray[np.uint8], found: tuple[Detections, StageTimes]
    ) -> tuple[Detections, StageTimes]:
        faces = self.faces
        if faces is None:
            return found
        detections, times = found
        boxes, face_times = faces.detect(image)
        if len(boxes):
            boxes = replace(
                boxes, class_ids=np.full(len(boxes), self.face_id, np.int32), labels=self.labels
            )
        joined = Detections.merge([replace(detections, labels=self.labels), boxes])
        if "landmarks" in boxes.data:  # objects have none: NaN
            marks = np.full((len(joined), 5, 2), np.nan, np.float32)
            marks[len(detections) :] = boxes.data["landmarks"]
            joined = replace(joined, data={**joined.data, "landmarks": marks})
        total = StageTimes(
            times.preprocess + face_times.preprocess,
            times.inference + face_times.inference,
            times.postprocess + face_times.postprocess,
        )
        return joined, total

    @property
    def provider(self) -> str:
        """The provider running the model, or the one starting while the CPU stands in."""
        return self._starting or self.info.provider

    def preprocess(self, image: npt.NDArray[np.uint8]) -> tuple[npt.NDArray[np.generic], Letterbox]:
        p = self.spec.family.preprocessing
        hw = self.canvas_for(image.shape[:2])
        if self.packed:
            canvas, box = place(image, hw, p.centered)
            return canvas[None], box
        return letterbox(image, hw, p.centered, p.rgb, p.scale)

    def infer(self, blob: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        stand_in = self._stand_in
        if stand_in is not None:
            return self._run(blob, stand_in)
        if self.service is not None and blob.shape[0] == 1:
            return self.service.infer(blob)
        return self._run(blob)

    def probe(self, n: int = 1, noise: bool = False) -> npt.NDArray[np.generic]:
        """``n`` blank model inputs of this detector's canvas, as :meth:`infer` takes them;
        with ``noise`` the first one is a fixed noise image, whose outputs say something
        when compared (:meth:`batch_limit`, the check against the CPU)."""
        if self.packed:
            probe: npt.NDArray[np.generic] = np.zeros((n, *self.input_hw, 3), dtype=np.uint8)
        else:
            probe = np.zeros((n, 3, *self.input_hw), dtype=np.float32)
        if noise:
            pixels = np.random.default_rng(0).integers(0, 256, probe[0].shape, dtype=np.uint8)
            probe[0] = pixels if self.packed else pixels * self.spec.family.preprocessing.scale
        return probe

    def serve(self, max_batch: int, wait_s: float | None = None) -> InferenceService:
        """Start the process's inference service (:mod:`annotate.detector.service`): from
        now on every thread's :meth:`detect` goes through it. :meth:`close` stops it.

        On an accelerator every call runs at one batch size, ``max_batch``, a smaller
        batch padded up to it: on CUDA each change of input shape costs seconds (cuDNN
        plans the model again; docs/performance.md, "GPU"). It starts at one frame per call
        while a background thread checks that the model takes the batch
        (:meth:`batch_limit`) and prepares it; a CPU stand-in (:meth:`start_accelerator`)
        covers that time where there is one.
        """
        self._stop_service()
        if self._ready.is_set() and self.info.provider in BATCHING and self._bound is None:
            self._bound = self.bound_run()
        service = InferenceService(self._serve_run, 1, WAIT_S if wait_s is None else wait_s, [1])
        self.service = service
        if max_batch > 1:
            threading.Thread(
                target=self._widen, args=(service, max_batch), name="warm-up", daemon=True
            ).start()
        if self.faces is not None:
            self.faces.serve(max_batch, wait_s)
        return service

    def bound_run(self, batch: int | None = None) -> BoundRun:
        """What the service calls on an accelerator: :meth:`infer`'s output, IO-bound."""
        return BoundRun(self.session, self._fetch, batch)

    def _serve_run(self, blob: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """The service's call: IO-bound on an accelerator, else the session's own run (also
        where the CPU has taken over since the binding was made: :meth:`check_against_cpu`)."""
        bound = self._bound
        return (
            bound(blob) if bound is not None and bound.session is self.session else self._run(blob)
        )

    def _widen(self, service: InferenceService, batch: int) -> None:
        self._ready.wait()  # the accelerator's shape is what the warm-up prepares
        started = time.perf_counter()
        if self._limit is not None and self._limit[0] == batch:
            _, limit, why = self._limit  # checked while the CPU stood in
        else:
            limit, why = self.batch_limit(batch)
        if limit < batch:
            log.info("Batches of %d ruled out: %s; one frame per inference", batch, why)
            return
        if self.info.provider in BATCHING:
            bound = self._bound
            if bound is None or bound.batch != batch:
                bound = self.bound_run(batch)
                bound(self.probe(batch))  # planned here, before any frame waits for it
                self._bound = bound
        service.widen(batch, [batch])
        log.debug(
            "Inference service: batches of up to %d after %.2f s of warm-up",
            batch,
            time.perf_counter() - started,
        )

    def _run(
        self, blob: npt.NDArray[np.generic], session: onnxruntime.InferenceSession | None = None
    ) -> npt.NDArray[np.float32]:
        """The output :meth:`postprocess` reads (the scored one where the graph has it), from
        ``session`` (the CPU standing in, taken before it could be swapped) or the current one."""
        if self._starting is not None:
            self.stand_in_frames += blob.shape[0]
        run = (session or self.session).run
        output: npt.NDArray[np.float32] = run(self._fetch, {self.input_name: blob})[0]
        return output

    def _run_plain(self, blob: npt.NDArray[np.generic]) -> npt.NDArray[np.float32]:
        """The model's own first output."""
        output: npt.NDArray[np.float32] = self.session.run(None, {self.input_name: blob})[0]
        return output

    def close(self) -> None:
        """Stop the inference service, if one runs, and wait for an accelerator that is
        still starting (a process must not exit in the middle of CUDA's set-up)."""
        self._stop_service()
        if self._starter is not None:
            self._starter.join()
        if self.faces is not None:
            self.faces.close()

    def _stop_service(self) -> None:
        if self.service is not None:
            self.service.close()
            self.service = None

    def postprocess(self, output: npt.NDArray[np.float32], box: Letterbox) -> Detections:
        family = self.spec.family
        decode = family.decode_scored if self.scored else family.decode_output
        found = decode(output, box, box.canvas_hw, self.conf, self.iou, self.labels, self.classes)
        return found.filter(min_area=self.min_area, max_det=self.max_det)

    def batch_limit(self, wanted: int) -> tuple[int, str]:
        """How many images one ``run`` may take (at most ``wanted``), and why if fewer.

        A dynamic first input axis is not enough: exported graphs often reshape with a
        hard-coded batch of 1 and then mix the images up. So two different images, A and B,
        run for real in two batches of ``wanted``, A B B … and B A A …, and each image must
        get the same outputs in either place: within 2 % on average, the rounding of TF32
        convolutions on a GPU, where mixed images differ wholly. Both calls have the one
        shape the service runs, which this prepares: on CUDA a shape met between them
        would be planned for seconds, and the service's again after it.
        """
        if wanted <= 1:
            return 1, ""
        dim = self.session.get_inputs()[0].shape[0]
        if isinstance(dim, int):
            return 1, f"the model's batch size is fixed at {dim}"
        first = self.probe(wanted, noise=True)
        a, b = first[0].copy(), first[0][::-1] if self.packed else first[0][:, ::-1]
        first[1:] = b
        second = np.empty_like(first)
        second[0], second[1:] = b, a
        try:
            one, other = self._run_plain(first), self._run_plain(second)
        except Exception as e:  # the runtime's own error types vary by provider
            said = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
            return 1, f"the model fails on a batch of {wanted} ({said})"
        if one.shape[0] != wanted:
            folded = one.ndim > 1 and one.shape[0] == 1 and one.shape[1] % wanted == 0
            expected = (  # YOLOX's export folds the batch into the anchor axis
                str([wanted, one.shape[1] // wanted, *one.shape[2:]])
                if folded
                else f"{wanted} images' outputs"
            )
            return 1, f"a batch of {wanted} gives output {list(one.shape)}, not {expected}"
        for x, y in ((one[0], other[1]), (one[1], other[0])):
            error = float(np.mean(np.abs(x - y)))
            if error > 0.02 * float(np.mean(np.abs(x))) + 1e-6:
                return 1, f"a batch of {wanted} gives an image other outputs in another place"
        return wanted, ""

    def detect_batch(
        self, images: Sequence[npt.NDArray[np.uint8]]
    ) -> list[tuple[Detections, StageTimes]]:
        """:meth:`detect` for several images in one ``run`` (see :meth:`batch_limit`); each
        image is charged an equal share of the inference time."""
        if len(images) == 1 or len({image.shape[:2] for image in images}) > 1:
            return [self.detect(image) for image in images]
        t0 = time.perf_counter()
        prepared = [self.preprocess(image) for image in images]
        blob = np.concatenate([b for b, _ in prepared])
        t1 = time.perf_counter()
        output = self.infer(blob)
        t2 = time.perf_counter()
        results = []
        n = len(images)
        for i, (_, box) in enumerate(prepared):
            t = time.perf_counter()
            detections = self.postprocess(output[i : i + 1], box)
            times = StageTimes((t1 - t0) / n, (t2 - t1) / n, time.perf_counter() - t)
            results.append(self._with_faces(images[i], (detections, times)))
        return results

    def detect(self, image: npt.NDArray[np.uint8]) -> tuple[Detections, StageTimes]:
        """Detections and the time each stage took (safe to call from a worker thread)."""
        t0 = time.perf_counter()
        blob, box = self.preprocess(image)
        t1 = time.perf_counter()
        output = self.infer(blob)
        t2 = time.perf_counter()
        detections = self.postprocess(output, box)
        t3 = time.perf_counter()
        return self._with_faces(image, (detections, StageTimes(t1 - t0, t2 - t1, t3 - t2)))

    def __call__(self, image: npt.NDArray[np.uint8]) -> Detections:
        return self.detect(image)[0]
