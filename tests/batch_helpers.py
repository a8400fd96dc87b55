"""Job functions for the batch tests' worker processes (importable by name, as spawned
workers need)."""

from __future__ import annotations

import os

from annotate.batch import local
from annotate.batch.inputs import Job
from annotate.batch.manifest import Record


def crash_on_poison(job: Job) -> Record:
    """Like the real job, but the worker process dies outright on a file named poison*:
    what a segfault in a decoder does."""
    if job.source.name.startswith("poison"):
        local.take(job)
        os._exit(139)
    return local._run(job)
