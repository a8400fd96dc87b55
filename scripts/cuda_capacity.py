#!/usr/bin/env python3
"""How many frames a second one CUDA session takes, by how it is called: the ceiling under
``annotate run`` with many cameras (docs/performance.md, "Many cameras in one process").

    python -m scripts.cuda_capacity --model models/yolox_nano.onnx [--seconds 3]

The model is YOLOX-Nano as annotate prepares it for CUDA (batch axis free, ``uint8`` canvas
in, scored output), on annotate's CUDA provider options. Each way runs for ``--seconds``:

- ``threads T``: T threads, each calling ``session.run`` with one canvas at a time (what
  several cameras do without a batching service);
- ``bound batch B``: one thread, IO binding, B canvases a call (the service's calls);
- ``graph batch B``: the same with the batch axis fixed at B and ``enable_cuda_graph``: one
  CUDA graph replay a call (ONNX Runtime refuses it where a node is not on the GPU; the
  error is kept).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

SIDE = 416


def prepared(model: Path) -> bytes:
    from annotate.detector import packing, scoring
    from annotate.detector.graph import Edits
    from annotate.detector.session import edit

    made = edit(model, Edits(batch=True, packed=packing("yolox"), scored=scoring("yolox")), "yolox")
    assert made is not None and made.data is not None
    return made.data


def fixed(data: bytes, batch: int) -> bytes:
    """The graph with its batch axis ``batch`` again, for a CUDA graph's fixed shapes."""
    import onnx

    proto = onnx.load_from_string(data)
    for value in [*proto.graph.input, *proto.graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].Clear()
            dims[0].dim_value = batch
    del proto.graph.value_info[:]
    return bytes(proto.SerializeToString())


def session(data: bytes, graph: bool = False) -> Any:
    import onnxruntime as ort

    from annotate.providers import SessionSettings

    options = SessionSettings().provider_options("CUDAExecutionProvider")
    if graph:
        options["enable_cuda_graph"] = "1"
    so = ort.SessionOptions()
    so.log_severity_level = 3
    return ort.InferenceSession(data, so, providers=[("CUDAExecutionProvider", options)])


def threads(sess: Any, count: int, seconds: float) -> dict[str, Any]:
    name = sess.get_inputs()[0].name
    done = [0] * count
    stop = threading.Event()

    def loop(i: int) -> None:
        canvas = np.random.randint(0, 255, (1, SIDE, SIDE, 3), np.uint8)
        while not stop.is_set():
            sess.run(["scored"], {name: canvas})
            done[i] += 1

    sess.run(["scored"], {name: np.zeros((1, SIDE, SIDE, 3), np.uint8)})  # batch 1's plan
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    return {"frames_per_s": round(sum(done) / elapsed, 1)}


def bound(sess: Any, batch: int, seconds: float) -> dict[str, Any]:
    from annotate.detector.session import BoundRun

    run = BoundRun(sess, ["scored"], batch)
    blob = np.random.randint(0, 255, (batch, SIDE, SIDE, 3), np.uint8)
    run(blob)
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        run(blob)
        calls += 1
    elapsed = time.perf_counter() - started
    return {"call_ms": round(1000 * elapsed / calls, 3),
            "frames_per_s": round(calls * batch / elapsed, 1)}  # fmt: skip


def graphed(data: bytes, batch: int, seconds: float) -> dict[str, Any]:
    import onnxruntime as ort

    try:
        sess = session(fixed(data, batch), graph=True)
        name = sess.get_inputs()[0].name
        host = np.random.randint(0, 255, (batch, SIDE, SIDE, 3), np.uint8)
        device_in = ort.OrtValue.ortvalue_from_numpy(host, "cuda", 0)
        probe = sess.run(["scored"], {name: host})[0]
        device_out = ort.OrtValue.ortvalue_from_shape_and_type(
            list(probe.shape), np.float32, "cuda", 0
        )
        binding = sess.io_binding()
        binding.bind_ortvalue_input(name, device_in)
        binding.bind_ortvalue_output("scored", device_out)
        sess.run_with_iobinding(binding)  # captures the graph
        sess.run_with_iobinding(binding)
        same = np.allclose(device_out.numpy(), probe, atol=1e-3)
        calls, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            device_in.update_inplace(host)
            sess.run_with_iobinding(binding)
            device_out.numpy()
            calls += 1
        elapsed = time.perf_counter() - started
    except Exception as e:  # ONNX Runtime's reason is the result
        return {"error": f"{type(e).__name__}: {str(e)[:300]}"}
    return {"call_ms": round(1000 * elapsed / calls, 3), "same_output": bool(same),
            "frames_per_s": round(calls * batch / elapsed, 1)}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--seconds", type=float, default=3)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    data = prepared(Path(args.model))
    sess = session(data)
    results: dict[str, Any] = {}

    def keep(name: str, value: dict[str, Any]) -> None:
        results[name] = value
        print(name, json.dumps(value), flush=True)

    for count in (1, 4, 8, 16, 32):
        keep(f"threads {count}", threads(sess, count, args.seconds))
    for batch in (1, 8, 16, 32):
        keep(f"bound batch {batch}", bound(sess, batch, args.seconds))
    for batch in (1, 8, 16, 32):
        keep(f"graph batch {batch}", graphed(data, batch, args.seconds))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
