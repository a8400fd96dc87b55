"""The pipeline: options → thread plan → source, detector, annotators, sinks → a runner.

``run(RunOptions(source="video.mp4", output=Path("out.mp4")))`` is the whole library call
behind ``annotate run``.
"""

from annotate.pipeline.build import run
from annotate.pipeline.options import RunOptions
from annotate.pipeline.summary import ProgressListener, RunSummary

__all__ = ["ProgressListener", "RunOptions", "RunSummary", "run"]
