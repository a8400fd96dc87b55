"""Test doubles and synthetic inputs that the tests and the studies (``scripts/``) share, as
``numpy.testing`` does for numpy: a stand-in camera fed from a file, tiny ONNX graphs, scenes
with known paths, and the baselines annotate is measured against. Nothing in the pipeline
imports this package.
"""

from __future__ import annotations

import os
from pathlib import Path


def shared_dir() -> Path:
    """The real model and media: ``../shared`` beside a checkout of this repository, or
    ``ANNOTATE_TEST_SHARED``. Tests and studies that read it say so (``shared``)."""
    default = Path(__file__).resolve().parents[2].parent / "shared"
    return Path(os.environ.get("ANNOTATE_TEST_SHARED", default))


SHARED = shared_dir()
MODEL = SHARED / "models" / "yolox_nano.onnx"
IMAGES = SHARED / "data" / "images"
VIDEOS = SHARED / "data" / "videos"
