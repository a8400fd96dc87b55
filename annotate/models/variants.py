"""Smaller/faster variants of a model: INT8 (static QDQ quantization calibrated on real
frames, for CPUs) and FP16 (for CoreML and GPUs). Both need the ``onnx`` package
(``pip install "annotate-video[quantize]"``).

Whether a variant is worth it depends on the machine: measure with ``annotate bench`` and
``scripts/variants.py`` (speed, and how far its boxes move from the float model's).
"""

from __future__ import annotations

import contextlib
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from annotate.errors import UsageError

log = logging.getLogger("annotate")


def _need_onnx() -> None:
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise UsageError(
            "quantizing needs the onnx package: pip install 'annotate-video[quantize]'"
        ) from None


def calibration_blobs(model: Path, sources: list[str], frames: int) -> Iterator[np.ndarray]:
    """Pre-processed inputs from real media, spread evenly over each video."""
    from annotate.detector import Detector
    from annotate.providers import CPU, Resolution
    from annotate.sources import open_source

    detector = Detector.load(model, Resolution((CPU,), "calibration"))
    per_source = max(1, frames // max(1, len(sources)))
    for spec in sources:
        with open_source(spec) as source:
            total = source.info.frames or per_source
            step = max(1, total // per_source)
            taken = 0
            for frame in source:
                if frame.index % step == 0:
                    yield detector.preprocess(frame.image)[0]
                    taken += 1
                    if taken >= per_source:
                        break


def quantize_int8(model: Path, target: Path, sources: list[str], frames: int = 64) -> Path:
    """Static INT8 quantization (QDQ, per-channel weights) calibrated on ``sources``."""
    _need_onnx()
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    blobs = calibration_blobs(model, sources, frames)

    class Reader(CalibrationDataReader):  # type: ignore[misc]  # onnxruntime has no stubs
        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(blobs, None)
            return None if blob is None else {input_name: blob}

    from onnxruntime.quantization.shape_inference import quant_pre_process

    log.info("Calibrating INT8 on %d frames from %s", frames, ", ".join(sources))
    import onnx
    from onnx import version_converter

    prepared = target.with_suffix(".prep.onnx")
    try:
        # Per-channel QDQ needs opset 13 (YOLOX's export is opset 11); then shape inference
        # and graph optimisation, as ONNX Runtime's quantization guide advises.
        graph = onnx.load(str(model))
        opset = next((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), 13)
        if opset < 13:
            graph = version_converter.convert_version(graph, 13)
        onnx.save(graph, str(prepared))
        quant_pre_process(str(prepared), str(prepared), skip_symbolic_shape=True)
        # The quantizer prints its progress to stdout, which is for results here.
        with contextlib.redirect_stdout(io.StringIO()) as chatter:
            quantize_static(
                str(prepared),
                str(target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                weight_type=QuantType.QInt8,
                activation_type=QuantType.QUInt8,
                # Min/max calibration lets YOLOX's rare huge activations set the
                # scales: on the shared photos it found 1 of 4 objects; clipping at
                # the 99.999th percentile finds all four.
                calibrate_method=CalibrationMethod.Percentile,
            )
        log.debug(chatter.getvalue())
    finally:
        prepared.unlink(missing_ok=True)
    return target


def convert_fp16(model: Path, target: Path) -> Path:
    """FP16 weights and compute; inputs and outputs stay float32 so nothing else changes."""
    _need_onnx()
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(model)), keep_io_types=True)
    onnx.save(converted, str(target))
    return target
