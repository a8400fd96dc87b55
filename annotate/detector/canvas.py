"""The canvas a frame is letterboxed onto: the model's square, or fitted to the frame.

A 16:9 frame fills 234 of YOLOX-Nano's 416 rows; the other 182 are grey padding that costs
as much to run as the picture. Fitting the canvas to the frame (each side rounded up to the
largest stride, as Ultralytics' ``rect`` letterbox does) runs 416×256 instead: the same
detections within a few hundredths of a score (docs/models.md). It needs a model whose
graph takes other input sizes: fully convolutional, with its output reshaped by ``-1`` (YOLOX
exports are); a model that fails on another size is kept on its square.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

log = logging.getLogger("annotate")

#: ``auto``: fitted for video, cameras and streams, square for still images (the model's
#: own recipe, whose published scores they reproduce exactly).
CANVASES = ("auto", "fit", "square")
STRIDE = 32  # the coarsest grid of YOLOX and Ultralytics detectors


def fitted(model_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[int, int]:
    """The smallest canvas, in whole strides, that holds the image letterboxed for
    ``model_hw`` (never larger than it)."""
    (in_h, in_w), (h, w) = model_hw, image_hw
    ratio = min(in_h / h, in_w / w)
    new_h, new_w = max(1, int(h * ratio)), max(1, int(w * ratio))
    return (
        min(in_h, math.ceil(new_h / STRIDE) * STRIDE),
        min(in_w, math.ceil(new_w / STRIDE) * STRIDE),
    )


def size_text(hw: tuple[int, int]) -> str:
    """``(height, width)`` as people write a frame size: ``416x256``."""
    return f"{hw[1]}x{hw[0]}"


def free_size_model(model: Path) -> bytes | None:
    """The model with its input's height and width (and its outputs' sizes) left free, as
    bytes for ONNX Runtime; ``None`` where there is nothing to free or it cannot be done (an
    unreadable file, weights in other files, sides already free or not whole strides)."""
    try:
        import onnx
    except ImportError:  # a dependency, but a broken install should still run square
        log.debug("onnx is not importable: the square canvas only")
        return None
    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as e:  # not a model: loading it the usual way reports that
        log.debug("cannot read %s with onnx (%s): the square canvas only", model, e)
        return None
    graph = proto.graph
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.initializer):
        return None  # weights in files beside it, which bytes cannot point to
    initializers = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        return None
    dims = inputs[0].type.tensor_type.shape.dim
    if len(dims) != 4 or not all(d.HasField("dim_value") for d in dims[2:]):
        return None
    size = [dims[2].dim_value, dims[3].dim_value]
    if any(v % STRIDE or v > 4096 for v in size):  # sizes read_spec accepts
        return None
    dims[2].dim_param, dims[3].dim_param = "height", "width"  # clears dim_value (a oneof)
    # The model's own size, where a model with free axes says it (as Ultralytics' exports do).
    for entry in proto.metadata_props:
        if entry.key == "imgsz":
            entry.value = str(size)
            break
    else:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "imgsz", str(size)
    for output in graph.output:
        for i, dim in enumerate(output.type.tensor_type.shape.dim):
            if i:  # the batch axis stays as it is
                dim.dim_param = f"{output.name}_{i}"
    # Shapes inferred for the square would contradict the free ones.
    del graph.value_info[:]
    freed: bytes = proto.SerializeToString()
    return freed
