#!/usr/bin/env python3
"""Does batching pay on this machine? Images per second of YOLOX-Nano in batches of 1, 2, 4
and 8, each batch size timed in turn for a few rounds, same session settings as a run.

    python -m scripts.batching [--seconds 2] [--rounds 3] [--threads 1]

YOLOX-Nano as shipped is fixed at batch 1, so this uses a copy with a dynamic batch axis
(``annotate.testing.models.batchable_yolox``), which gives the same outputs image for image.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from annotate.testing.models import batchable_yolox
from scripts.harness import MODEL, ROOT, against, alternate, save


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    args = parser.parse_args()
    import cv2
    import numpy as np

    from annotate.detector import Detector, SessionSettings
    from annotate.providers import resolve_here

    image = cv2.imread(str(ROOT.parent / "shared" / "data" / "images" / "astronaut.png"))
    with tempfile.TemporaryDirectory() as tmp:
        model = batchable_yolox(MODEL, Path(tmp) / "yolox_nano_batch.onnx")
        detector = Detector.load(
            model, resolve_here(None, "default"), settings=SessionSettings(threads=args.threads)
        )
    blob = detector.preprocess(image)[0]

    def rate(size: int) -> float:
        """Images per second at this batch size, for ``args.seconds``."""
        batch = np.repeat(blob, size, axis=0)
        detector.infer(batch)
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            detector.infer(batch)
            n += size
        return n / (time.perf_counter() - start)

    runs = {f"batch {size}": lambda size=size: rate(size) for size in (1, 2, 4, 8)}
    compared = against(alternate(runs, args.rounds), "batch 1")
    print(f"{detector.provider}, {args.threads} intra-op thread(s), best of {args.rounds} rounds")
    for name, c in compared.items():
        print(f"  {name}: {c.best:.1f} images/s ({c.best_ratio:.2f}× batch 1)")
    save("batching", {name: c.best for name, c in compared.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
