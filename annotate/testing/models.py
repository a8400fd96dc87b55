"""Tiny ONNX graphs with a fixed output of each detector layout, built with the ``onnx``
package, to check decoding exactly. The output ignores the picture: ``out = 0 * mean(in) + K``."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def constant_model(
    path: Path,
    output: np.ndarray,
    input_shape: list[int | str],
    metadata: dict[str, str] | None = None,
    input_name: str = "images",
) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", [input_name], ["mean"], keepdims=0),
        helper.make_node("Mul", ["mean", "zero"], ["nothing"]),
        helper.make_node("Add", ["nothing", "answer"], ["output"]),
    ]
    graph = helper.make_graph(
        nodes,
        "constant",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, list(output.shape))],
        [
            numpy_helper.from_array(np.array(0, np.float32), "zero"),
            numpy_helper.from_array(output.astype(np.float32), "answer"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def batchable_yolox(source: Path, path: Path, fix_reshapes: bool = True) -> Path:
    """The real YOLOX-Nano with a dynamic batch axis. The export reshapes its head outputs to a
    hard-coded ``[1, 85, -1]``; ``0`` copies the batch from the input instead. Without that fix
    the model only *declares* a dynamic batch and mixes a batch's images into one output."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    shapes = {n.input[1] for n in model.graph.node if n.op_type == "Reshape"}
    for init in model.graph.initializer:
        if fix_reshapes and init.name in shapes:
            value = numpy_helper.to_array(init).copy()
            value[0] = 0
            init.CopyFrom(numpy_helper.from_array(value, init.name))
    for tensor in (model.graph.input[0], model.graph.output[0]):
        tensor.type.tensor_type.shape.dim[0].dim_param = "batch"
    del model.graph.value_info[:]
    onnx.save(model, str(path))
    return path


def brightness_yolox(path: Path, size: int = 64, classes: int = 1) -> Path:
    """A fully convolutional YOLOX-layout graph that takes any multiple of 32: every anchor
    point's objectness is the brightness (0-1) of its cell, every class score 1, every box
    one stride wide with its centre on the grid point. White blocks are found where they are,
    on a square or a fitted canvas alike."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    channels = 5 + classes
    weight = np.zeros((channels, 3, 1, 1), np.float32)
    weight[4, :, 0, 0] = 1 / (3 * 255)  # objectness: the mean of the three channels
    bias = np.zeros(channels, np.float32)
    bias[5:] = 1.0
    nodes = [
        helper.make_node("AveragePool", ["images"], ["cells"], kernel_shape=[8, 8], strides=[8, 8]),
        helper.make_node("Conv", ["cells", "weight", "bias"], ["p8"]),
        helper.make_node("MaxPool", ["p8"], ["p16"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("MaxPool", ["p16"], ["p32"], kernel_shape=[2, 2], strides=[2, 2]),
        *(helper.make_node("Reshape", [f"p{s}", "rows"], [f"r{s}"]) for s in (8, 16, 32)),
        helper.make_node("Concat", ["r8", "r16", "r32"], ["joined"], axis=2),
        helper.make_node("Transpose", ["joined"], ["output"], perm=[0, 2, 1]),
    ]
    anchors = sum((size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(
        nodes,
        "brightness",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, anchors, channels])],
        [
            numpy_helper.from_array(weight, "weight"),
            numpy_helper.from_array(bias, "bias"),
            numpy_helper.from_array(np.array([1, channels, -1], np.int64), "rows"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path
