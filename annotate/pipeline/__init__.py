"""The pipeline: options → thread plan → source, detector, annotators, sinks → a runner.

``run(RunOptions(source="video.mp4", output=Path("out.mp4")))`` is the whole library call
behind ``annotate run``. Names are loaded when first used (PEP 562), so reading the options'
declarations (the CLI's ``--help``) does not load the pipeline.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from annotate.pipeline.build import run
    from annotate.pipeline.options import RunOptions
    from annotate.pipeline.summary import ProgressListener, RunSummary

__all__ = ["ProgressListener", "RunOptions", "RunSummary", "run"]

_WHERE = {
    "run": "annotate.pipeline.build",
    "RunOptions": "annotate.pipeline.options",
    "ProgressListener": "annotate.pipeline.summary",
    "RunSummary": "annotate.pipeline.summary",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'annotate.pipeline' has no attribute {name!r}")
    return getattr(importlib.import_module(_WHERE[name]), name)
