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
- **Face maps**: a CenterFace-layout face model's four maps (heatmap, scale, offset,
  landmarks) joined into one output ``[N, 15, H/4, W/4]``, with the batch and sizes its export
  fixed as a placeholder freed: one array to fetch (and to bind on an accelerator), read by
  :class:`annotate.detector.families.CenterFace`.
- **Dense depthwise**: each depthwise convolution (one group per channel) made the dense
  convolution it equals, its weights placed on the diagonal of a channel×channel kernel. On
  CUDA, cuDNN compiles its depthwise kernels at every process start (NVRTC, seconds), while
  it has dense ones ready; the dense ones cost more arithmetic, which a GPU has to spare at
  the batch sizes a run uses (docs/performance.md, "GPU").
- **Scored output**: a second output ``[N, anchors, 6]`` (box, best class score, its class)
  beside the model's own, reduced over the classes inside the graph: what leaves the
  accelerator is 6 numbers an anchor rather than 85 for COCO, and the CPU skips the scan of
  every class score (:meth:`annotate.detector.families.Family.decode_scored`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("annotate")

#: Name of the packed (uint8 NHWC) input of an edited graph.
PACKED_INPUT = "canvas_u8"
#: Name of the joined output of a CenterFace-layout model (:func:`face_maps`).
FACE_MAPS = "face_maps"
#: Channels of CenterFace's outputs, in the order they are joined.
FACE_CHANNELS = (1, 2, 2, 10)
#: Name of the scored output of an edited graph: box (4), score, class id, per anchor.
SCORED_OUTPUT = "scored"


#: Given the model's input and output shapes as exported (ints, or names for free axes), how
#: a packed input is to be prepared: (RGB?, scale), or ``None`` to leave the input as it is.
Packing = Callable[[list[int | str], list[int | str]], "tuple[bool, float] | None"]
#: The same for a scored output: (objectness?, classes on axis 1 rather than 2?), or ``None``.
Scoring = Callable[[list[int | str], list[int | str]], "tuple[bool, bool] | None"]


class Made(NamedTuple):
    """An edit's result, and what the edit saw of the model on the way."""

    data: bytes | None  # the edited model; ``None``: none of the edits applied
    done: list[str]  # the names of the edits made


@dataclass(frozen=True)
class Edits:
    """Which edits to make; all off is the model as it is."""

    sizes: bool = False
    batch: bool = False
    packed: Packing | None = None
    scored: Scoring | None = None
    faces: bool = False
    dense: bool = False

    def __bool__(self) -> bool:
        return (
            self.sizes
            or self.batch
            or self.faces
            or self.dense
            or self.packed is not None
            or self.scored is not None
        )


def _load(model: Path) -> Any | None:
    from annotate.signals import signals_held

    try:
        with signals_held():  # a signal during the import would come out as ImportError
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


def face_maps(proto: Any) -> bool:
    """CenterFace's four outputs joined into :data:`FACE_MAPS` (``False`` where the model
    does not have them), its batch, height and width freed (the upstream export declares
    ``[10, 3, 32, 32]``, a placeholder for a fully convolutional network), and its weights
    no longer listed among its inputs."""
    from onnx import TensorProto, helper

    image = _input(proto)
    graph = proto.graph
    outputs = list(graph.output)
    if image is None or len(outputs) != len(FACE_CHANNELS):
        return False
    for output, channels in zip(outputs, FACE_CHANNELS):
        dims = output.type.tensor_type.shape.dim
        if len(dims) != 4 or dims[1].dim_value != channels:
            return False
    dims = image.type.tensor_type.shape.dim
    dims[0].dim_param, dims[2].dim_param, dims[3].dim_param = "batch", "height", "width"
    graph.node.append(helper.make_node("Concat", [o.name for o in outputs], [FACE_MAPS], axis=1))
    joined = helper.make_tensor_value_info(
        FACE_MAPS, TensorProto.FLOAT, ["batch", sum(FACE_CHANNELS), "rows", "columns"]
    )
    del graph.output[:]
    graph.output.append(joined)
    # Its weights are listed as inputs too (an old exporter's habit): ONNX Runtime then may
    # not fold them as constants, and warns for each.
    weights = {i.name for i in graph.initializer}
    kept = [i for i in graph.input if i.name not in weights]
    del graph.input[:]
    graph.input.extend(kept)
    used = {name for node in graph.node for name in node.input}
    unused = [i for i in graph.initializer if i.name not in used]  # batch norms' counters
    for tensor in unused:
        graph.initializer.remove(tensor)
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


def dense_depthwise(proto: Any) -> bool:
    """Every depthwise ``Conv`` (as many groups as channels, one weight per channel, weights
    an initializer no other node reads) made dense with the same outputs; ``False`` where the
    model has none."""
    import numpy as np
    from onnx import numpy_helper

    graph = proto.graph
    weights = {t.name: t for t in graph.initializer}
    readers = Counter(name for node in graph.node for name in node.input)
    changed = False
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.domain not in ("", "ai.onnx"):
            continue
        group = next((a for a in node.attribute if a.name == "group"), None)
        tensor = weights.get(node.input[1])
        if group is None or group.i <= 1 or tensor is None or readers[tensor.name] != 1:
            continue
        kernel = numpy_helper.to_array(tensor)
        if kernel.ndim != 4 or kernel.shape[1] != 1 or kernel.shape[0] != group.i:
            continue
        channels = kernel.shape[0]
        dense = np.zeros((channels, channels, *kernel.shape[2:]), kernel.dtype)
        dense[np.arange(channels), np.arange(channels)] = kernel[:, 0]
        tensor.CopyFrom(numpy_helper.from_array(dense, tensor.name))
        group.i = 1
        changed = True
    return changed


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


def scored_output(proto: Any, objectness: bool, transposed: bool) -> bool:
    """Add :data:`SCORED_OUTPUT`: each anchor's box terms, its best class score (times the
    objectness, for families that have one) and that class, as the CPU would compute them
    from the first output (:meth:`annotate.detector.families.Family.scores`)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    if not graph.output or any(o.name == SCORED_OUTPUT for o in graph.output):
        return False
    first = graph.output[0]
    dims = first.type.tensor_type.shape.dim
    if len(dims) != 3:
        return False
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < 10:  # Slice takes its bounds as inputs from 10 on
        return False

    def constant(name: str, values: list[int]) -> str:
        graph.initializer.append(numpy_helper.from_array(np.array(values, np.int64), name))
        return name

    rows = first.name
    nodes = []
    if transposed:
        nodes.append(helper.make_node("Transpose", [rows], ["scored_rows"], perm=[0, 2, 1]))
        rows = "scored_rows"
    axis = constant("scored_axis", [2])
    first_class = 5 if objectness else 4
    spans = {"box": (0, 4), "classes": (first_class, 2**62), "objectness": (4, 5)}
    for name, (start, end) in spans.items():
        if name == "objectness" and not objectness:
            continue
        bounds = [constant(f"scored_{name}_start", [start]), constant(f"scored_{name}_end", [end])]
        nodes.append(helper.make_node("Slice", [rows, *bounds, axis], [f"scored_{name}"]))
    if opset >= 18:  # axes became an input
        reduce = helper.make_node(
            "ReduceMax", ["scored_classes", axis], ["scored_best"], keepdims=1
        )
    else:
        reduce = helper.make_node(
            "ReduceMax", ["scored_classes"], ["scored_best"], axes=[2], keepdims=1
        )
    nodes += [
        reduce,
        helper.make_node("ArgMax", ["scored_classes"], ["scored_argmax"], axis=2, keepdims=1),
        helper.make_node("Cast", ["scored_argmax"], ["scored_class"], to=TensorProto.FLOAT),
    ]
    score = "scored_best"
    if objectness:
        nodes.append(
            helper.make_node("Mul", ["scored_objectness", "scored_best"], ["scored_score"])
        )
        score = "scored_score"
    nodes.append(
        helper.make_node("Concat", ["scored_box", score, "scored_class"], [SCORED_OUTPUT], axis=2)
    )
    graph.node.extend(nodes)
    batch = dims[0].dim_param or dims[0].dim_value
    anchors = dims[2] if transposed else dims[1]
    count = anchors.dim_param or anchors.dim_value
    graph.output.append(
        helper.make_tensor_value_info(SCORED_OUTPUT, TensorProto.FLOAT, [batch, count, 6])
    )
    return True


def _dims(value: Any) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def _choice(proto: Any, choose: Packing | Scoring) -> tuple[bool, float] | tuple[bool, bool] | None:
    image = _input(proto)
    if image is None or not proto.graph.output:
        return None
    return choose(_dims(image), _dims(proto.graph.output[0]))


def edited_model(model: Path, edits: Edits, stride: int = 32) -> bytes | None:
    """The model with ``edits`` made, as bytes for ONNX Runtime; ``None`` where none of them
    could be made (then the model runs as it is). An edit that does not apply is skipped: a
    model whose batch is already free keeps it."""
    made = edit_model(model, edits, stride)
    return None if made is None else made.data


def edit_model(model: Path, edits: Edits, stride: int = 32) -> Made | None:
    """:func:`edited_model` with the names of the edits made; ``None`` where the model could
    not be looked at (no ``onnx`` package, not a model, weights in files beside it)."""
    if not edits:
        return Made(None, [])
    proto = _load(model)
    if proto is None:
        return None
    done = []
    # Read before any edit: the choices look at the shapes as exported.
    packing = _choice(proto, edits.packed) if edits.packed is not None else None
    scoring = _choice(proto, edits.scored) if edits.scored is not None else None
    if edits.faces and face_maps(proto):
        done.append("face maps joined, sizes and batch free")
    if edits.sizes and free_sizes(proto, stride):
        done.append("free sizes")
    if edits.batch and free_batch(proto):
        done.append("free batch")
    if edits.dense and dense_depthwise(proto):
        done.append("dense depthwise convolutions")
    if packing is not None and packed_input(proto, *packing):
        done.append("uint8 NHWC input")
    if scoring is not None and scored_output(proto, bool(scoring[0]), bool(scoring[1])):
        done.append("scored output")
    if not done:
        return Made(None, [])
    # Shapes inferred for the original would contradict the edited ones.
    del proto.graph.value_info[:]
    return Made(proto.SerializeToString(), done)


def recipe(edits: Edits, family: str | None, stride: int = 32) -> str:
    """What decides an edit's result besides the model and this code: the edits asked for
    and the family the choices were made for (the key of :mod:`annotate.detector.edit_cache`)."""
    return (
        f"sizes={edits.sizes} batch={edits.batch} faces={edits.faces} "
        f"packed={edits.packed is not None} scored={edits.scored is not None} "
        f"dense={edits.dense} family={family} stride={stride}"
    )
