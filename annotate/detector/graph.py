"""Edits to a detector's ONNX graph before ONNX Runtime loads it, in memory (the file on disk
is never changed).

- **Free sizes**: the input's height and width left free, for canvases fitted to the frame
  (:mod:`annotate.detector.canvas`).
- **Free batch**: the batch axis left free, so one call runs many frames. Exports traced at
  batch 1 reshape their head outputs to a hard-coded ``[1, C, -1]`` (YOLOX's does), which
  folds a batch into the anchor axis and mixes its images; ``0`` in a Reshape's shape copies
  the input's batch instead. Whether the result gives each image its own output is checked
  by running it (:meth:`annotate.detector.Detector.batch_limit`), never assumed.
- **Packed input**: the model takes the letterboxed canvas as it is, ``uint8`` ``[N, H, W,
  3]`` in OpenCV's BGR order, and casts, reorders channels, transposes and scales inside the
  graph, on the accelerator: a quarter of the bytes to copy, and no float work on the CPU.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("annotate")

#: Name of the packed (uint8 NHWC) input of an edited graph.
PACKED_INPUT = "canvas_u8"


#: Given the model's input and output shapes as exported (ints, or names for free axes), how
#: a packed input is to be prepared: (RGB?, scale), or ``None`` to leave the input as it is.
Packing = Callable[[list[int | str], list[int | str]], "tuple[bool, float] | None"]


@dataclass(frozen=True)
class Edits:
    """Which edits to make; all off is the model as it is."""

    sizes: bool = False
    batch: bool = False
    packed: Packing | None = None

    def __bool__(self) -> bool:
        return self.sizes or self.batch or self.packed is not None


def _load(model: Path) -> Any | None:
    try:
        import onnx
    except ImportError:  # a dependency, but a broken install should still run unedited
        log.debug("onnx is not importable: the model runs as it is")
        return None
    try:
        proto = onnx.load(str(model), load_external_data=False)
    except Exception as e:  # not a model: loading it the usual way reports that
        log.debug("cannot read %s with onnx (%s): the model runs as it is", model, e)
        return None
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        return None  # weights in files beside it, which bytes cannot point to
    return proto


def _input(proto: Any) -> Any | None:
    initializers = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        return None
    return inputs[0]


def free_sizes(proto: Any, stride: int) -> bool:
    """Height and width free (and every output axis but the batch); ``False`` where the sides
    are already free or not whole strides."""
    image = _input(proto)
    if image is None:
        return False
    dims = image.type.tensor_type.shape.dim
    if not all(d.HasField("dim_value") for d in dims[2:]):
        return False
    size = [dims[2].dim_value, dims[3].dim_value]
    if any(v % stride or v > 4096 for v in size):  # sizes read_spec accepts
        return False
    dims[2].dim_param, dims[3].dim_param = "height", "width"  # clears dim_value (a oneof)
    # The model's own size, where a model with free axes says it (as Ultralytics' exports do).
    for entry in proto.metadata_props:
        if entry.key == "imgsz":
            entry.value = str(size)
            break
    else:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "imgsz", str(size)
    for output in proto.graph.output:
        for i, dim in enumerate(output.type.tensor_type.shape.dim):
            if i:  # the batch axis stays as it is
                dim.dim_param = f"{output.name}_{i}"
    return True


def free_batch(proto: Any) -> bool:
    """The batch axis free, and Reshapes to a constant ``[1, …]`` copying the batch instead;
    ``False`` where the batch is already free or the model was not made for one image."""
    from onnx import numpy_helper

    image = _input(proto)
    if image is None:
        return False
    first = image.type.tensor_type.shape.dim[0]
    if not first.HasField("dim_value") or first.dim_value != 1:
        return False
    graph = proto.graph
    shapes = {n.input[1] for n in graph.node if n.op_type == "Reshape" and len(n.input) > 1}
    constants = {
        n.output[0]: n for n in graph.node if n.op_type == "Constant" and n.output[0] in shapes
    }
    for tensor in graph.initializer:
        if tensor.name in shapes:
            _copy_batch(tensor, numpy_helper)
    for node in constants.values():
        for attribute in node.attribute:
            if attribute.name == "value":
                _copy_batch(attribute.t, numpy_helper)
    first.dim_param = "batch"
    for output in graph.output:
        dims = output.type.tensor_type.shape.dim
        if dims:
            dims[0].dim_param = "batch"
    return True


def _copy_batch(tensor: Any, numpy_helper: Any) -> None:
    value = numpy_helper.to_array(tensor)
    if value.ndim == 1 and len(value) > 1 and value[0] == 1:
        value = value.copy()
        value[0] = 0  # Reshape: 0 copies the input's axis (allowzero is off by default)
        tensor.CopyFrom(numpy_helper.from_array(value, tensor.name))


def packed_input(proto: Any, rgb: bool, scale: float) -> bool:
    """The model takes ``uint8`` ``[N, H, W, 3]`` BGR and prepares it itself."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    image = _input(proto)
    if image is None or image.type.tensor_type.elem_type != TensorProto.FLOAT:
        return False
    dims = image.type.tensor_type.shape.dim
    if dims[1].HasField("dim_value") and dims[1].dim_value != 3:
        return False
    shape = [d.dim_param or d.dim_value for d in (dims[0], dims[2], dims[3])]
    packed = helper.make_tensor_value_info(
        PACKED_INPUT, TensorProto.UINT8, [shape[0], shape[1], shape[2], 3]
    )
    nodes = [helper.make_node("Cast", [PACKED_INPUT], ["canvas_f32"], to=TensorProto.FLOAT)]
    last = "canvas_f32"
    if rgb:
        proto.graph.initializer.append(
            numpy_helper.from_array(np.array([2, 1, 0], np.int64), "canvas_bgr_to_rgb")
        )
        nodes.append(
            helper.make_node("Gather", [last, "canvas_bgr_to_rgb"], ["canvas_rgb"], axis=3)
        )
        last = "canvas_rgb"
    scaled = scale != 1.0
    nodes.append(
        helper.make_node(
            "Transpose", [last], ["canvas_nchw" if scaled else image.name], perm=[0, 3, 1, 2]
        )
    )
    if scaled:
        proto.graph.initializer.append(
            numpy_helper.from_array(np.array(scale, np.float32), "canvas_scale")
        )
        nodes.append(helper.make_node("Mul", ["canvas_nchw", "canvas_scale"], [image.name]))
    graph = proto.graph
    old = list(graph.node)
    del graph.node[:]
    graph.node.extend([*nodes, *old])
    kept = [i for i in graph.input if i.name != image.name]
    del graph.input[:]
    graph.input.extend([packed, *kept])
    return True


def _dims(value: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _packing(proto: Any, choose: Packing) -> tuple[bool, float] | None:
    image = _input(proto)
    if image is None or not proto.graph.output:
        return None
    return choose(_dims(image), _dims(proto.graph.output[0]))


def edited_model(model: Path, edits: Edits, stride: int = 32) -> bytes | None:
    """The model with ``edits`` made, as bytes for ONNX Runtime; ``None`` where none of them
    could be made (then the model runs as it is). An edit that does not apply is skipped: a
    model whose batch is already free keeps it."""
    if not edits:
        return None
    proto = _load(model)
    if proto is None:
        return None
    done = []
    packing = _packing(proto, edits.packed) if edits.packed is not None else None
    if edits.sizes and free_sizes(proto, stride):
        done.append("free sizes")
    if edits.batch and free_batch(proto):
        done.append("free batch")
    if packing is not None and packed_input(proto, *packing):
        done.append("uint8 NHWC input")
    if not done:
        return None
    # Shapes inferred for the original would contradict the edited ones.
    del proto.graph.value_info[:]
    log.debug("Model graph edited in memory: %s", ", ".join(done))
    data: bytes = proto.SerializeToString()
    return data
