"""The docs' result tables, made from the studies' saved results (``scripts/results/``), never
retyped: each table sits between ``<!-- results:STUDY:begin -->`` and
``<!-- results:STUDY:end -->`` in a docs file.

    python -m scripts.tables           # rewrite every marked table from its results
    python -m scripts.tables --check   # exit 1 if any table differs from its results
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from typing import Any

from scripts.harness import RESULTS, ROOT, table


def _throughput(data: dict[str, Any]) -> str:
    m = data["machine"]
    rows = [
        (r["input"], r["run"], f"{r['fps']:.1f}", f"{r['vs_hand']:.2f}×",
         f"{r['vs_hand_median']:.2f}×", f"{100 * r['of_roofline']:.0f} %")
        for r in data["results"]
    ]  # fmt: skip
    head = f"`python -m scripts.throughput`, {m['date']}, {m['cores']} cores, Python {m['python']}:"
    headers = ("input", "run", "FPS", "× hand-written", "median of rounds", "of roofline")
    return head + "\n\n" + table(headers, rows)


def _gpu(data: dict[str, Any]) -> str:
    m = data["machine"]

    def values(v: list[float | None] | None) -> str:
        return " / ".join("–" if x is None else f"{x:g}" for x in v) if v else "–"

    rows = [
        (r["model"], r["run"], values(r["loop_fps"]), values(r["first_frame_s"]), r["note"])
        for r in data["results"]["runs"]
    ]
    head = (
        f"`python -m scripts.gpu`, {m['date']}, {m['gpu'].split(',')[0]}, {m['cores']} cores, "
        f"Python {m['python']}, {m['onnxruntime']}, PyAV {m['pyav']}; {m['input']}; x264 "
        "ultrafast wherever video is written. "
        f"{m.get('rounds', 'Two rounds each, in the order run, unless noted')}:"
    )
    headers = ("model", "run", "FPS after the first frame", "first frame, s", "note")
    batch_rows = [
        (name, *(f"{t['ms']} ms ({t['images_per_s']}/s)" for t in sizes.values()))
        for name, sizes in data["results"]["batches"].items()
    ]
    when = data["results"].get("batches_date", m["date"])
    batches = table((f"`annotate bench` inference ({when})", "batch 1", "batch 8", "batch 32"),
                    batch_rows)  # fmt: skip
    return head + "\n\n" + table(headers, rows) + "\n\n" + batches


def _mot_eval(data: dict[str, Any]) -> str:
    m = data["machine"]
    rows = [
        (r["sequence"], r["tracker"], f"{r['idf1']:.3f}", r["idsw"], f"{r['mota']:.3f}", r["fp"],
         r["fn"], r["boxes"])
        for r in data["results"]["rows"]
    ]  # fmt: skip
    head = f"`python -m scripts.mot_eval`, {m['date']}, YOLOX-Nano, IoU 0.5 (motmetrics):"
    headers = ("sequence", "tracker", "IDF1", "ID switches", "MOTA", "FP", "FN", "true boxes")
    return head + "\n\n" + table(headers, rows)


def _memory(data: dict[str, Any]) -> str:
    m, results = data["machine"], data["results"]
    rows = [
        (r["run"], f"{r['median_mb']:.0f} MB", f"{r['max_mb']:.0f} MB", f"{r['min_mb']:.0f} MB")
        for r in results["rows"]
    ]
    runs = results["rows"][0]["runs"]
    head = (
        f"`python -m scripts.memory`, {m['date']}, {m['cores']} cores, Python {m['python']}: "
        f"peak RSS of `annotate run` on {results['frames']} frames of 1080p H.264, writing "
        f"1080p H.264 and JSON Lines; {runs} runs of each, taking turns:"
    )
    return head + "\n\n" + table(("run", "median", "maximum", "minimum"), rows)


def _provider(results: dict[str, Any]) -> str:
    provider = results.get("provider", "CPUExecutionProvider")
    gpu = f" on {results['gpu']}" if results.get("gpu") else ""
    return "" if provider == "CPUExecutionProvider" else f", {provider}{gpu}"


def _streams(data: dict[str, Any]) -> str:
    m, results = data["machine"], data["results"]
    rows = []
    for side, found in results["sides"].items():
        for k, cams in found["runs"].items():
            share = [100 * c.get("drawn_share", 0) for c in cams]
            age = [c.get("age_p95_ms", 0) for c in cams]
            if len(cams) <= 4:
                shares = ", ".join(f"{v:.0f} %" for v in share)
                ages = ", ".join(f"{v:g}" for v in age)
            else:  # the range over the cameras
                shares = f"{min(share):.0f}–{max(share):.0f} %"
                ages = f"{min(age):g}–{max(age):g}"
            kept = "yes" if all(c.get("kept") for c in cams) else "no"
            rows.append((side, k, shares, ages, kept))
    head = (
        f"`python -m scripts.streams`, {m['date']}, {m['cores']} cores, Python {m['python']}"
        f"{_provider(results)}: {results['height']}p cameras at 30 FPS, "
        f"{results['seconds']:g} s each run; K = "
        + ", ".join(f"{side}: **{found['k']}**" for side, found in results["sides"].items())
        + ":"
    )
    headers = ("side", "cameras", "frames drawn, each", "age p95 ms, each", "all kept")
    return head + "\n\n" + table(headers, rows)


def _faces(data: dict[str, Any]) -> str:
    m, results = data["machine"], data["results"]
    photos = results["photos"]
    rows = [
        (r["tool"], r["canvas"], f"{r['ap50']:.3f}", f"{r['recall']:.3f}",
         *(f"{v:.3f}" for v in r["recall_by_height"].values()), f"{r['ms']:.0f}")
        for r in photos["rows"]
    ]  # fmt: skip
    head = (
        f"`python -m scripts.faces`, {m['date']}, {m['cores']} cores, Python {m['python']}: "
        f"{photos['photos']} WIDER FACE photos ({photos['faces']} faces), threshold 0.2; "
        "canvas = the longer side at most this (full: the photo's own size):"
    )
    headers = ("tool", "canvas", "AP50", "recall", "recall 10-20 px", "20-40 px", "40+ px",
               "ms / photo")  # fmt: skip
    out = head + "\n\n" + table(headers, rows)
    runs = [k for k in results["video"][0] if k not in ("input", "ratio")]
    video = [
        (r["input"], *(f"{r[k]:.1f}" for k in runs), f"{r['ratio']:.2f}×") for r in results["video"]
    ]
    out += (
        "\n\nVideo, end to end (start-up included), FPS, best of the rounds; each tool writes "
        "an H.264 file with every face hidden:\n\n"
        + table(("input", *runs, "annotate ÷ deface"), video)
    )
    flicker = [
        (r["input"], r["frames"],
         *(f"{r[k]['frames']} ({100 * r[k]['rate']:.1f} %)" for k in ("deface", "annotate")))
        for r in results["flicker"]
    ]  # fmt: skip
    out += (
        "\n\nFlicker: frames where a face hidden in the frames before and after shows "
        "(scripts/faces.py, `flicker_rate`):\n\n"
        + table(("input", "frames", "deface", "annotate --blur faces"), flicker)
    )
    return out


#: How each study's results become a table.
RENDER: dict[str, Callable[[dict[str, Any]], str]] = {
    "throughput": _throughput,
    "gpu": _gpu,
    "mot_eval": _mot_eval,
    "memory": _memory,
    "streams": _streams,
    "streams-16": _streams,
    "streams-gpu": _streams,
    "streams-gpu-processes": _streams,
    "streams-gpu-switch": _streams,
    "faces": _faces,
}


def sections() -> dict[str, str]:
    """Each study with saved results: its table, as the docs should hold it."""
    out = {}
    for study, render in RENDER.items():
        path = RESULTS / f"{study}.json"
        if path.is_file():
            out[study] = render(json.loads(path.read_text()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only say whether they match")
    args = parser.parse_args()
    stale = []
    for doc in sorted((ROOT / "docs").glob("*.md")):
        text = doc.read_text()
        new = text
        for study, body in sections().items():
            begin, end = f"<!-- results:{study}:begin -->", f"<!-- results:{study}:end -->"
            pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
            new = pattern.sub(lambda _m, b=body, s=begin, e=end: f"{s}\n{b}\n{e}", new)
        if new != text:
            stale.append(doc.name)
            if not args.check:
                doc.write_text(new)
    if stale:
        print(("stale: " if args.check else "rewrote: ") + ", ".join(stale))
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
