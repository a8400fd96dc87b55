"""Damaged variants of the shared videos through the real CLI, each in its own process with a
time limit: no hang, no traceback; exit 0 with the readable frames or 1 with one line; whatever
is written decodes. ``ANNOTATE_FUZZ_CASES=200`` for the full run (default: a short one)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import MODEL, ROOT, VIDEOS

CASES = int(os.environ.get("ANNOTATE_FUZZ_CASES", "16"))
SOURCES = ["bottle-detection.mp4", "car-detection.mp4", "asl_walk.mkv",
           "one-by-one-person-detection.mp4"]  # fmt: skip


def damage(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    out = bytearray(data)
    kind = rng.choice(["truncate", "flip header", "flip payload", "zero range"])
    if kind == "truncate":
        out = out[: rng.randint(0, len(out))]
    elif kind == "flip header":
        for _ in range(rng.randint(1, 20)):
            i = rng.randrange(min(4096, len(out)))
            out[i] ^= rng.randint(1, 255)
    elif kind == "flip payload":
        for _ in range(rng.randint(1, 300)):
            i = rng.randrange(len(out))
            out[i] ^= rng.randint(1, 255)
    else:
        start = rng.randrange(len(out))
        size = min(rng.randint(1, 100_000), len(out) - start)
        out[start : start + size] = bytes(size)
    return kind, bytes(out)


def _decodes(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.mark.slow
@pytest.mark.parametrize("case", range(CASES))
@pytest.mark.shared
def test_damaged_video(tmp_path, case):
    rng = random.Random(case)
    name = SOURCES[case % len(SOURCES)]
    kind, data = damage((VIDEOS / name).read_bytes(), rng)
    damaged = tmp_path / f"damaged{Path(name).suffix}"
    damaged.write_bytes(data)
    out, dets = tmp_path / "out.mp4", tmp_path / "d.jsonl"
    try:
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "annotate",
                "run",
                str(damaged),
                "-o",
                str(out),
                "--json",
                str(dets),
                "--model",
                str(MODEL),
                "--max-frames",
                "80",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"case {case} ({kind} {name}) hung")
    what = f"case {case} ({kind} {name}): exit {r.returncode}, stderr {r.stderr!r}"
    assert r.returncode in (0, 1), what
    assert "Traceback" not in r.stderr, what
    if r.returncode == 1:
        assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("Error: "), what
    if out.exists() and out.stat().st_size:
        frames = _decodes(out)
        assert frames == len(dets.read_text().splitlines()), what
