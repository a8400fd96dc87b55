"""One job, run where a worker is (a local process or a Ray task): outputs under temporary
names, renamed when complete; any failure becomes the job's record, never the batch's end."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from annotate.batch.events import NOT_STARTED
from annotate.batch.inputs import IMAGES_JSON, PARTIAL, Job
from annotate.batch.manifest import Record, identity
from annotate.errors import AnnotateError

if TYPE_CHECKING:
    from annotate.detector import Detector
    from annotate.pipeline import RunOptions
    from annotate.pipeline.runner import StopFlag

log = logging.getLogger("annotate")

#: Seconds between a job's progress reports to the driver.
REPORT_EVERY_S = 0.5

#: ``(job index, frames so far, frames expected or None)``
Report = Callable[[int, int, "int | None"], None]


@dataclass(frozen=True)
class Batch:
    """What every job of a batch shares; sent once to each worker."""

    options: RunOptions  # model and provider resolved; cores = this job's share
    outdir: Path
    video: bool
    json: bool
    settings_id: str
    model_sha256: str  # names the model in each Ray node's cache
    exports: tuple[str, ...] = ()  # --export formats, each written beside the video

    def outputs(self, job: Job) -> list[Path]:
        return job.outputs(self.outdir, self.video, self.json, self.exports)


class _Reporter:
    """The pipeline's progress listener, forwarding at most every ``REPORT_EVERY_S``."""

    def __init__(self, index: int, report: Report) -> None:
        self.index, self.report = index, report
        self.total: int | None = None
        self.last = 0.0

    def start(self, total: int | None) -> None:
        self.total = total
        self.report(self.index, 0, total)

    def update(self, frames: int) -> None:
        now = time.monotonic()
        if now - self.last >= REPORT_EVERY_S:
            self.last = now
            self.report(self.index, frames, self.total)

    def stop(self) -> None:
        pass


class _Warnings(logging.Handler):
    """The run's warnings, kept for the job's record instead of a worker's stderr."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage().splitlines()[0] if record.getMessage() else "")


_detectors: dict[str, Detector] = {}


def detector_for(options: RunOptions) -> Detector:
    """The worker's detector, loaded once and kept for every job with the same settings."""
    from annotate.pipeline.build import load_detector, make_tracker
    from annotate.pipeline.plan import plan_threads

    plan = plan_threads(options, options.cores or 1)
    key = detector_key(options, plan.intra_op)
    if key not in _detectors:
        _detectors.clear()
        _detectors[key] = load_detector(options, plan, make_tracker(options))
    return _detectors[key]


def detector_key(options: RunOptions, intra_op: int | None) -> str:
    """What a loaded detector depends on: the model, provider and session, and every setting
    declared with ``detector`` (:mod:`annotate.settings`)."""
    from annotate.settings import declared, value_at

    chosen = [value_at(options, d.path) for d in declared(type(options)) if d.setting.detector]
    return repr((options.model, options.resolution, options.session, intra_op, *chosen))


def partial_name(final: Path) -> Path:
    return final.with_name(f"{PARTIAL}{final.name}")


def images_dir(job: Job, outdir: Path) -> Path | None:
    """Where an image set's annotated images are written until the set is complete."""
    return outdir / job.relative / f"{PARTIAL}images" if job.image_set else None


def remove_partials(job: Job, batch: Batch) -> None:
    """What an unfinished run of ``job`` left (a crash, a stop, a killed worker)."""
    for final in batch.outputs(job):
        partial = partial_name(final)
        if partial.is_dir() and not partial.is_symlink():  # a YOLO dataset folder
            shutil.rmtree(partial, ignore_errors=True)
        else:
            partial.unlink(missing_ok=True)
    image_dir = images_dir(job, batch.outdir)
    if image_dir is not None:
        shutil.rmtree(image_dir, ignore_errors=True)


def run_job(job: Job, batch: Batch, stop: StopFlag | None, report: Report | None) -> Record:
    """Run one job to its record: ``done`` with its outputs in place, or ``failed`` with a
    one-line reason and nothing under a final name."""
    from annotate.pipeline import run

    started = time.perf_counter()
    record = Record(input=job_key(job), status="failed", settings_id=batch.settings_id)
    finals = batch.outputs(job)
    image_dir = images_dir(job, batch.outdir)
    warnings = _Warnings()
    log.addHandler(warnings)
    try:
        record.identity = identity(job)
        remove_partials(job, batch)
        (batch.outdir / job.relative).parent.mkdir(parents=True, exist_ok=True)
        options = _job_options(job, batch, finals, image_dir)
        source = None
        if job.image_set:
            from annotate.sources.images import ImageSource

            (batch.outdir / job.relative).mkdir(parents=True, exist_ok=True)
            source = ImageSource(job.images, str(job.source))
        if stop is not None and stop.is_set():
            record.status, record.error = "skipped", NOT_STARTED
            return record
        progress = _Reporter(job.index, report) if report else None
        summary = run(
            options, progress=progress, detector=detector_for(options), stop=stop, source=source
        )
        record.provider = summary.provider
        if summary.stopped:
            why = "the batch was stopped" if stop is not None and stop.is_set() else summary.stopped
            record.error = f"{why} after {summary.frames} frames; nothing written"
        elif summary.frames == 0:
            record.error = "no frames could be read"
        else:
            _put_in_place(job, batch, image_dir, finals)
            record.status, record.frames = "done", summary.frames
            record.outputs = [str(p) for p in finals]
    except AnnotateError as e:
        record.error = str(e)
    except Exception as e:  # one bad input must not end the batch: say what it was
        first = str(e).splitlines()[0] if str(e) else ""
        record.error = f"{type(e).__name__}: {first}" if first else type(e).__name__
    finally:
        log.removeHandler(warnings)
        if record.status != "done":
            remove_partials(job, batch)
    record.seconds = round(time.perf_counter() - started, 3)
    record.fps = round(record.frames / record.seconds, 2) if record.seconds else 0.0
    record.warnings = warnings.lines
    return record


def job_key(job: Job) -> str:
    """The manifest's name for an input: its absolute path (an image set's folder)."""
    return os.path.abspath(job.source)


def _job_options(job: Job, batch: Batch, finals: list[Path], image_dir: Path | None) -> RunOptions:
    """The job's run, writing the partial names of ``finals`` (:meth:`Job.outputs`: the video
    or images first, the JSON Lines last); an image set's images go to ``image_dir``."""
    output = None
    if batch.video:
        output = image_dir if job.image_set else partial_name(finals[0])
    json_path = str(partial_name(finals[-1])) if batch.json else None
    exports = [
        f"{fmt}={partial_name(path)}" for fmt, path in job.export_paths(batch.outdir, batch.exports)
    ]
    return replace(
        batch.options, source=str(job.source), output=output, json_path=json_path, exports=exports
    )


def _put_in_place(job: Job, batch: Batch, image_dir: Path | None, finals: list[Path]) -> None:
    """Rename each complete output to its final name (a rename within a folder: atomic)."""
    images = {p.name for p in job.images} if batch.video else set()
    for final in finals:
        if (
            image_dir is not None
            and final.parent == batch.outdir / job.relative
            and (final.name in images and final.name != IMAGES_JSON)
        ):
            os.replace(image_dir / final.name, final)
        else:
            if final.is_dir() and not final.is_symlink():  # an earlier run's dataset folder
                shutil.rmtree(final)
            os.replace(partial_name(final), final)
    if image_dir is not None:
        shutil.rmtree(image_dir, ignore_errors=True)


def worker_logging() -> None:
    """In a worker, the run's messages are the record's business, not the terminal's."""
    log.handlers[:] = []
    log.setLevel(logging.WARNING)
    log.propagate = False
