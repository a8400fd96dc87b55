#!/usr/bin/env python3
"""Where a fresh CUDA session's first call goes, with ONNX Runtime alone: each variant in a
process of its own (as a user's run is), YOLOX-Nano with its batch axis freed.

    python -m scripts.cuda_start --model models/yolox_nano.onnx [--rounds 2]
    py-spy record --native -f raw -o first.txt -- python -m scripts.cuda_start --one default …

Variants: the default options, cuDNN's fused conv-bias engines (``fuse_conv_bias=1``, and
``0``), graph optimisation basic or off, exhaustive search, each depthwise convolution made
dense, and the fused engines with cuDNN's default algorithms (no heuristics asked) or no
extra workspace. Without the fused engines: cuDNN's default algorithms, no extra workspace,
and NHWC kernels. For each: seconds to the session and to the end of its first batch-1
call, the first batch-8 call in ms (a new shape), steady calls at batch 1 and 8 (median of
30), and ``vs_cpu``: how far the last call's first output lies from the CPU provider's on
the same input (mean absolute difference over mean magnitude).
Numbers: docs/performance.md, "GPU" (``startup_first_call_2026_12_03c`` in
``scripts/results/gpu.json``). Times only: the ``fuse_conv_bias=1`` variants' outputs were
later found wrong (docs/performance.md, "GPU", "Correction"), so they are not a choice.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: name → (provider options, graph optimisation level or None, dense depthwise?)
VARIANTS: dict[str, tuple[dict[str, str], str | None, bool]] = {
    "default": ({}, None, False),
    "fuse_conv_bias=1": ({"fuse_conv_bias": "1"}, None, False),
    "fuse_conv_bias=0": ({"fuse_conv_bias": "0"}, None, False),
    "graph opt basic": ({}, "basic", False),
    "graph opt disabled": ({}, "disable", False),
    "exhaustive": ({"cudnn_conv_algo_search": "EXHAUSTIVE"}, None, False),
    "dense depthwise graph": ({}, None, True),
    "fuse, search DEFAULT": ({"fuse_conv_bias": "1", "cudnn_conv_algo_search": "DEFAULT"},
                             None, False),
    "fuse, max workspace 0": ({"fuse_conv_bias": "1", "cudnn_conv_use_max_workspace": "0"},
                              None, False),
    "fuse, DEFAULT, workspace 0": ({"fuse_conv_bias": "1", "cudnn_conv_algo_search": "DEFAULT",
                                    "cudnn_conv_use_max_workspace": "0"}, None, False),
    "search DEFAULT": ({"cudnn_conv_algo_search": "DEFAULT"}, None, False),
    "max workspace 0": ({"cudnn_conv_use_max_workspace": "0"}, None, False),
    "prefer NHWC": ({"prefer_nhwc": "1"}, None, False),
    "prefer NHWC, search DEFAULT": ({"prefer_nhwc": "1", "cudnn_conv_algo_search": "DEFAULT"},
                                    None, False),
}  # fmt: skip


def prepare(model: Path, work: Path) -> tuple[Path, Path]:
    """The model with its batch free, and the same with dense depthwise convolutions
    (:func:`annotate.detector.graph.dense_depthwise`)."""
    from annotate.detector.graph import Edits, edited_model

    paths = []
    for name, dense in (("batch", False), ("dense", True)):
        data = edited_model(model, Edits(batch=True, dense=dense))
        assert data is not None
        path = work / f"{name}.onnx"
        path.write_bytes(data)
        paths.append(path)
    return paths[0], paths[1]


def one(model: str, variant: str) -> dict[str, Any]:
    """This process: the variant's session, its first calls and its steady calls."""
    started = time.perf_counter()
    import numpy as np
    import onnxruntime as ort

    ort.preload_dlls()
    options, level, _dense = VARIANTS[variant]
    session_options = ort.SessionOptions()
    if level is not None:
        levels = ort.GraphOptimizationLevel
        session_options.graph_optimization_level = {
            "basic": levels.ORT_ENABLE_BASIC, "disable": levels.ORT_DISABLE_ALL}[level]  # fmt: skip
    cuda = {"cudnn_conv_algo_search": "HEURISTIC", **options}
    session = ort.InferenceSession(model, session_options,
                                   providers=[("CUDAExecutionProvider", cuda)])  # fmt: skip
    out: dict[str, Any] = {"session_s": round(time.perf_counter() - started, 3)}
    name = session.get_inputs()[0].name
    for batch in (1, 8):
        blob = np.random.rand(batch, 3, 416, 416).astype(np.float32)
        t = time.perf_counter()
        session.run(None, {name: blob})
        if batch == 1:
            out["first_call_s"] = round(time.perf_counter() - t, 3)
        else:
            out["first_b8_ms"] = round(1000 * (time.perf_counter() - t), 1)
        times = []
        for _ in range(30):
            t = time.perf_counter()
            session.run(None, {name: blob})
            times.append(time.perf_counter() - t)
        out[f"steady_b{batch}_ms"] = round(1000 * sorted(times)[15], 2)
    # After the timed calls: a session whose outputs drift with every call is caught too.
    cpu = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    gpu_out = session.run(None, {name: blob})[0]
    cpu_out = cpu.run(None, {name: blob})[0]
    scale = float(np.abs(cpu_out).mean()) or 1.0
    out["vs_cpu"] = float(f"{float(np.abs(gpu_out - cpu_out).mean()) / scale:.3g}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="YOLOX-Nano (.onnx)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", default="", help="names split by ';' (default: all)")
    parser.add_argument("--one", default="", help=argparse.SUPPRESS)
    parser.add_argument("--prepared", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.prepared, args.one)))
        return 0
    chosen = [v.strip() for v in args.variants.split(";") if v.strip()] or list(VARIANTS)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in chosen}
    with tempfile.TemporaryDirectory() as tmp:
        free, dense = prepare(Path(args.model), Path(tmp))
        for _ in range(args.rounds):
            for name in chosen:
                model = dense if VARIANTS[name][2] else free
                done = subprocess.run(
                    [sys.executable, "-m", "scripts.cuda_start", "--one", name,
                     "--prepared", str(model), "--model", args.model],
                    capture_output=True, text=True,
                )  # fmt: skip
                lines = done.stdout.strip().splitlines()
                value = json.loads(lines[-1]) if lines else {"error": done.stderr[-300:]}
                results[name].append(value)
                print(name, value, flush=True)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
