"""Which detector a model is: family, input size, classes and their names.

Read from the model itself, never executed: the input shape (or Ultralytics' ``imgsz``
metadata when the axes are dynamic), the output layout of one real inference, and class names
from Ultralytics' ``names`` metadata (parsed with ``ast.literal_eval``, which only accepts
literals). ``--family`` and ``--labels`` override.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotate.detector.labels import COCO_LABELS
from annotate.detector.postprocess import anchor_count
from annotate.errors import ModelError, UsageError

FAMILIES = ("yolox", "yolov5", "yolov8")
DEFAULT_SIZE = 640


@dataclass(frozen=True)
class Preprocessing:
    centered: bool
    rgb: bool
    scale: float


PREPROCESSING = {
    "yolox": Preprocessing(centered=False, rgb=False, scale=1.0),
    "yolov5": Preprocessing(centered=True, rgb=True, scale=1 / 255),
    "yolov8": Preprocessing(centered=True, rgb=True, scale=1 / 255),
}

LAYOUTS = "YOLOX [1, N, 5+C], YOLOv5 [1, 3N, 5+C] or YOLOv8/11 [1, 4+C, N]"


@dataclass(frozen=True)
class ModelSpec:
    input_name: str
    input_hw: tuple[int, int]
    family: str
    labels: tuple[str, ...]

    @property
    def preprocessing(self) -> Preprocessing:
        return PREPROCESSING[self.family]


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
    labels = tuple(line.strip() for line in lines if line.strip())
    if not labels:
        raise UsageError(f"labels file {path} has no names (one per line)")
    return labels


def input_size(shape: list[Any], meta: dict[str, str]) -> tuple[int, int]:
    if all(isinstance(d, int) and d > 0 for d in shape[2:]):
        return int(shape[2]), int(shape[3])
    imgsz = _literal(meta.get("imgsz"))
    if isinstance(imgsz, list | tuple) and len(imgsz) == 2:
        return int(imgsz[0]), int(imgsz[1])
    if isinstance(imgsz, int):
        return imgsz, imgsz
    return DEFAULT_SIZE, DEFAULT_SIZE


def classify(
    out: tuple[int, ...], input_hw: tuple[int, int], family: str | None
) -> tuple[str, int]:
    """(family, number of classes) from the output shape of one image."""
    if len(out) != 3 or out[0] != 1:
        raise ModelError(f"output shape {list(out)} is not a detector layout ({LAYOUTS})")
    _, a, b = out
    anchors = anchor_count(input_hw)
    guesses = []
    if b > 5 and a == anchors:
        guesses.append(("yolox", b - 5))
    if b > 5 and a == 3 * anchors:
        guesses.append(("yolov5", b - 5))
    if a > 4 and b == anchors:
        guesses.append(("yolov8", a - 4))
    if family is not None:
        if family == "yolov8":
            return family, a - 4
        if b <= 5:
            raise ModelError(f"output shape {list(out)} cannot be {family} ({LAYOUTS})")
        return family, b - 5
    if not guesses:
        raise ModelError(
            f"output shape {list(out)} is not a detector layout annotate knows for a "
            f"{input_hw[1]}x{input_hw[0]} input ({LAYOUTS}); try --family"
        )
    return guesses[0]


def inspect(
    session: Any, name: str, family: str | None = None, labels_file: Path | None = None
) -> ModelSpec:
    """Work out the model's family, input size and labels; refuse what is not a detector."""
    if family is not None and family not in FAMILIES:
        raise UsageError(f"--family must be one of {', '.join(FAMILIES)}, auto; got '{family}'")
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or not outputs:
        raise ModelError(f"{name} is not a detector: it has {len(inputs)} inputs, expected 1")
    shape = list(inputs[0].shape)
    if len(shape) != 4 or shape[1] not in (3, "3"):
        raise ModelError(f"{name} is not a detector: input shape {shape}, expected [1, 3, H, W]")
    meta = _metadata(session)
    input_hw = input_size(shape, meta)
    probe = np.zeros((1, 3, *input_hw), dtype=np.float32)
    try:
        out = session.run(None, {inputs[0].name: probe})[0]
    except Exception as e:
        raise ModelError(f"{name} does not run on a 1x3x{input_hw[0]}x{input_hw[1]} image: "
                         f"{str(e).splitlines()[0][:200]}") from None  # fmt: skip
    try:
        family, classes = classify(tuple(out.shape), input_hw, family)
    except ModelError as e:
        raise ModelError(f"{name}: {e}") from None
    if labels_file is not None:
        labels = read_labels(labels_file)
        if len(labels) != classes:
            raise UsageError(f"labels file {labels_file} has {len(labels)} names but {name} "
                             f"has {classes} classes")  # fmt: skip
    else:
        labels = metadata_names(meta) or (COCO_LABELS if classes == len(COCO_LABELS) else ())
        if len(labels) != classes:
            labels = tuple(str(i) for i in range(classes))
    return ModelSpec(inputs[0].name, input_hw, family, tuple(labels))
