"""What every study shares: where the model and footage are, the inputs they make, the loop a
user writes by hand (the baseline), one timed ``annotate run``, alternating rounds with ratios
to a baseline, and results saved as JSON beside a Markdown table.

Studies are modules of this package, run from the repository root as
``python -m scripts.STUDY``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

from annotate.testing import IMAGES, MODEL, SHARED, VIDEOS

ROOT = Path(__file__).resolve().parents[1]
FOOTAGE = VIDEOS / "one-by-one-person-detection.mp4"
#: Where ``save`` writes each study's results (``STUDY.json``).
RESULTS = ROOT / "scripts" / "results"

K = TypeVar("K")
T = TypeVar("T")

__all__ = ["FOOTAGE", "IMAGES", "MODEL", "RESULTS", "ROOT", "SHARED", "VIDEOS"]


@dataclass(frozen=True)
class Compared:
    """One way of doing a thing against the baseline: its best value, best against the
    baseline's best, and the median of the rounds' ratios to the baseline run just before it
    (the noise of a shared machine hits both alike)."""

    best: float
    best_ratio: float
    median_ratio: float


def alternate(runs: Mapping[K, Callable[[], T]], rounds: int) -> dict[K, list[T]]:
    """Each run's result per round, the runs taking turns in every round (so a noisy
    neighbour hurts them alike)."""
    seen: dict[K, list[T]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, call in runs.items():
            seen[name].append(call())
    return seen


def against(
    seen: Mapping[str, Sequence[float]], baseline: str, higher: bool = True
) -> dict[str, Compared]:
    """Every run compared with ``baseline``. ``higher``: more is better (FPS, images/s);
    otherwise less is (seconds), and each ratio is still "how many times better"."""
    base = seen[baseline]
    best = max if higher else min

    def ratio(value: float, reference: float) -> float:
        return value / reference if higher else reference / value

    return {
        name: Compared(
            best(values),
            ratio(best(values), best(base)),
            statistics.median(ratio(v, b) for v, b in zip(values, base, strict=True)),
        )
        for name, values in seen.items()
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "date": date.today().isoformat(),
        "cores": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def save(study: str, results: Any) -> Path:
    """``scripts/results/STUDY.json``: the results with the machine and date, for the docs'
    tables to be made from (not retyped)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{study}.json"
    path.write_text(json.dumps({"machine": machine(), "results": results}, indent=2) + "\n")
    return path


def agreement(reference: Path, other: Path, min_iou: float = 0.5) -> dict[str, Any]:
    """How far ``other``'s boxes (``--json`` records) agree with ``reference``'s, frame by
    frame where both have the frame: the share of each side's boxes that a box of the same
    class on the other side overlaps by ``min_iou``. A GPU run is checked against a CPU run
    this way, so that a number measured on wrong boxes shows it (docs/performance.md, "GPU",
    "Correction")."""
    import numpy as np

    from annotate.tracking.tracker import iou_matrix

    def frames(path: Path) -> dict[int, list[tuple[int, list[float]]]]:
        out = {}
        with path.open() as lines:
            for line in lines:
                record = json.loads(line)
                out[record["frame"]] = [(d["class_id"], d["box"]) for d in record["detections"]]
        return out

    def matched(a: list[tuple[int, list[float]]], b: list[tuple[int, list[float]]]) -> int:
        if not a or not b:
            return 0
        iou = iou_matrix(np.array([box for _, box in a]), np.array([box for _, box in b]))
        same = np.array([c for c, _ in a])[:, None] == np.array([c for c, _ in b])[None, :]
        return int(np.sum(np.any((iou >= min_iou) & same, axis=1)))

    ref, got = frames(reference), frames(other)
    common = sorted(set(ref) & set(got))
    ref_n = sum(len(ref[f]) for f in common)
    got_n = sum(len(got[f]) for f in common)
    return {
        "frames": len(common),
        "boxes_cpu": ref_n,
        "boxes": got_n,
        "cpu_boxes_found": round(sum(matched(ref[f], got[f]) for f in common) / max(1, ref_n), 3),
        "boxes_cpu_has": round(sum(matched(got[f], ref[f]) for f in common) / max(1, got_n), 3),
    }


def cpu_reference(clip: Path, model: Path, target: Path, frames: int, *extra: str) -> Path:
    """``annotate run`` on the CPU, the model's own square canvas (as a GPU runs it), the first
    ``frames`` of ``clip`` as ``--json`` records in ``target``: what a GPU run's boxes are
    checked against (:func:`agreement`)."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "annotate", "run", str(clip), "--model", str(model),
                    "--provider", "cpu", "--canvas", "square", "--json", str(target),
                    "--max-frames", str(frames), *extra],
                   capture_output=True, check=True)  # fmt: skip
    return target


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def scaled(source: Path, target: Path, height: int, frames: int, width: int | None = None) -> Path:
    """``source``'s first ``frames`` frames at ``height`` lines, its shape kept; with
    ``width``, scaled to that width and cut to ``height`` about its middle (a 16:9 clip of
    4:3 footage, as a 720p or 1080p camera films it)."""
    import av
    import cv2

    with av.open(str(source)) as src, av.open(str(target), "w") as dst:
        stream = src.streams.video[0]
        tall = height
        if width is None:
            width = round(stream.width * height / stream.height / 2) * 2
        else:
            tall = round(stream.height * width / stream.width)
        top = (tall - height) // 2
        out = dst.add_stream("libx264", rate=stream.average_rate)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        out.options = {"preset": "veryfast", "crf": "20"}
        out.codec_context.time_base = Fraction(1, 1000)
        for i, frame in enumerate(src.decode(stream)):
            if i == frames:
                break
            image = cv2.resize(
                frame.to_ndarray(format="bgr24"), (width, tall), interpolation=cv2.INTER_CUBIC
            )
            new = av.VideoFrame.from_ndarray(image[top : top + height], format="bgr24")
            new.pts, new.time_base = round(1000 * frame.time), Fraction(1, 1000)
            for packet in out.encode(new):
                dst.mux(packet)
        for packet in out.encode(None):
            dst.mux(packet)
    return target


def hand_written(
    source: Path,
    out: Path | None,
    frames: int,
    camera: Any = None,
    ages: list[float] | None = None,
    provider: str = "CPUExecutionProvider",
    model: Path = MODEL,
    size: int = 416,
    session: Any = None,
) -> float:
    """The loop a user writes by hand; its FPS after the first frame.

    ``out`` ``None``: nothing is recorded (a live view). ``camera``: read from this capture
    device instead of the file (``scripts/live.py``); ``ages`` then gets each frame's age
    when drawn, from the moment the camera had it (``camera.due``). ``provider``, ``model``
    and its square input ``size``: a YOLOX export on another provider (``scripts/gpu.py``).
    ``session``: one shared with other threads' loops (``scripts/streams.py``).
    """
    import time

    import av
    import cv2
    import numpy as np
    import onnxruntime as ort

    providers = (
        [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
    )
    session = session or ort.InferenceSession(str(model), providers=providers)
    name = session.get_inputs()[0].name
    grids, strides = [], []
    for stride in (8, 16, 32):
        n = size // stride
        ys, xs = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        grids.append(np.stack((xs, ys), -1).reshape(-1, 2))
        strides.append(np.full((n * n, 1), stride))
    grid, stride = np.concatenate(grids), np.concatenate(strides)
    cap = camera or cv2.VideoCapture(str(source))
    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if out is not None:
        container = av.open(str(out), "w")
        video = container.add_stream("libx264", rate=round(cap.get(cv2.CAP_PROP_FPS) or 30))
        video.width, video.height, video.pix_fmt = w, h, "yuv420p"
        video.options = {"preset": "ultrafast"}
    count, start = 0, 0.0
    while count < frames:
        ok, image = cap.read()
        if not ok:
            break
        if count == 1:
            start = time.perf_counter()
        r = min(size / h, size / w)
        canvas = np.full((size, size, 3), 114, np.uint8)
        canvas[: int(h * r), : int(w * r)] = cv2.resize(image, (int(w * r), int(h * r)))
        blob = canvas.transpose(2, 0, 1)[None].astype(np.float32)
        pred = session.run(None, {name: blob})[0][0]
        scores = pred[:, 4:5] * pred[:, 5:]
        ids, conf = scores.argmax(1), scores.max(1)
        keep = conf > 0.3
        centre = (pred[keep, :2] + grid[keep]) * stride[keep]
        wh = np.exp(pred[keep, 2:4]) * stride[keep]
        xywh = np.concatenate((centre - wh / 2, wh), 1) / r
        for i in cv2.dnn.NMSBoxesBatched(
            xywh.tolist(), conf[keep].tolist(), ids[keep].tolist(), 0.3, 0.45
        ):
            x, y, bw, bh = (int(v) for v in xywh[i])
            cv2.rectangle(image, (x, y), (x + bw, y + bh), (0, 255, 0), 2)
            cv2.putText(
                image,
                f"{ids[keep][i]} {conf[keep][i]:.2f}",
                (x, y - 4),
                cv2.FONT_HERSHEY_SIMPLEX,
                0.6,
                (0, 255, 0),
                2,
            )
        if ages is not None:  # the benchmark's, not the user's
            ages.append(time.monotonic() - cap.due)
        if out is not None:
            for packet in video.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                container.mux(packet)
        count += 1
    if out is not None:
        for packet in video.encode(None):
            container.mux(packet)
        container.close()
    return (count - 1) / (time.perf_counter() - start)


def measure(source: Path, tmp: Path, frames: int, **kw: object) -> tuple[float, dict[str, float]]:
    """(FPS over the loop, mean ms per frame per stage) for one ``annotate run``."""
    from annotate.detector import SessionSettings
    from annotate.pipeline import RunOptions, run
    from annotate.providers import CPU, Resolution
    from annotate.sinks.video import EncodeOptions

    threads = kw.pop("threads", None)
    encode_threads = kw.pop("encode_threads", 0)
    output = kw.pop("output", tmp / "out.mp4")  # None: no video output
    session = kw.pop("session", SessionSettings(threads=threads))  # type: ignore[arg-type]
    preset = kw.pop("preset", "ultrafast")
    options = RunOptions(
        source=str(source),
        model=MODEL,
        resolution=Resolution((CPU,), "bench"),
        output=output,
        max_frames=frames,
        fps_every=10**9,
        session=session,
        encode=EncodeOptions(threads=encode_threads, preset=preset),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    summary = run(options)
    loop_s = summary.wall_s - (summary.first_frame_s or 0)
    fps = (summary.frames - 1) / loop_s
    stage = {k: 1000 * v / summary.frames for k, v in summary.stage_s.items()}
    return fps, stage


def both_modes(
    source: Path, tmp: Path, frames: int, **kw: object
) -> tuple[Callable[[], float], Callable[[], float]]:
    """The sequential loop's and the concurrent runner's FPS on ``source`` with ``kw``
    (:func:`measure`'s options), each as a call for the rounds."""
    return (
        lambda: measure(source, tmp, frames, sequential=True, **kw)[0],
        lambda: measure(source, tmp, frames, **kw)[0],
    )
