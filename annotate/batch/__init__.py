"""``annotate batch``: many videos and image folders, on worker processes here or as Ray
tasks on a cluster, with a manifest that records each input and lets a batch resume.

``run_batch(BatchOptions(["clips/"], Path("out"), RunOptions(source="")))`` is the whole
library call behind the command.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Protocol

from annotate.batch.events import NOT_STARTED, STOPPED, Event, Finished, Progress, Started
from annotate.batch.inputs import EXPORTS, Job, check_outputs, find_jobs
from annotate.batch.job import Batch, job_key, remove_partials
from annotate.batch.manifest import (
    Manifest,
    Record,
    check_manifest_path,
    is_done,
    settings,
    settings_id,
)
from annotate.errors import OutputPathError, UsageError, check_at_least
from annotate.models.store import sha256_of
from annotate.pipeline.options import RunOptions
from annotate.pipeline.plan import cpu_cores, plan_jobs
from annotate.signals import HELD_SIGNALS

if TYPE_CHECKING:
    from annotate.models import KnownModel

__all__ = ["BatchListener", "BatchOptions", "BatchSummary", "Job", "Record", "run_batch"]

log = logging.getLogger("annotate")


@dataclass
class BatchOptions:
    inputs: list[str]
    outdir: Path
    run: RunOptions  # every setting of a run; its source and outputs are set per job
    jobs: int | None = None  # worker processes (Ray: tasks at once per node); None: planned
    resume: bool = False
    video: bool = True  # annotated video (images for an image set)
    json: bool = False  # JSON Lines beside each
    #: ``None``: worker processes here; ``"local"``: a Ray started here; ``"auto"`` or an
    #: address (``ray://host:10001``, ``host:6379``): join that cluster.
    ray: str | None = None
    #: ``--export`` formats (:mod:`annotate.sinks.exports`), each beside each video.
    exports: tuple[str, ...] = ()


class BatchListener(Protocol):
    """How far a batch has got; the CLI draws it, the library only reports."""

    def begin(self, jobs: list[Job], skipped: int, plan: str) -> None: ...
    def progress(self, frames: int, fraction: float) -> None: ...
    def finished(self, job: Job, record: Record) -> None: ...


@dataclass
class BatchSummary:
    records: list[Record] = field(default_factory=list)  # this run's, in finishing order
    resumed: int = 0  # inputs skipped because a finished record says they are done
    stopped: str | None = None  # "SIGINT"/"SIGTERM" when the batch was stopped
    wall_s: float = 0.0
    plan: str = ""

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    @property
    def frames(self) -> int:
        return sum(r.frames for r in self.records)


def run_batch(
    options: BatchOptions,
    listener: BatchListener | None = None,
    download: Callable[[KnownModel], Path] | None = None,
) -> BatchSummary:
    """Run every input; each finished job is appended to ``OUTDIR/manifest.jsonl``.

    Every check (options, inputs, output names, the Ray extra and cluster) comes before any
    work. Ctrl-C or SIGTERM asks the jobs in flight to stop; they finish within a few
    seconds and nothing is left under a final name; a second Ctrl-C stops at once.
    """
    started = time.perf_counter()
    outdir = options.outdir
    if options.jobs is not None:
        check_at_least("--jobs", options.jobs, 1)
    if outdir.exists() and not outdir.is_dir():
        raise OutputPathError(f"-o {outdir} is a file; give a directory for the outputs")
    if not options.video and not options.json and not options.exports:
        raise UsageError("nothing to write: --no-video needs --json or --export")
    for fmt in options.exports:
        if fmt not in EXPORTS:
            raise UsageError(
                f"batch --export takes a FORMAT (each written beside each video): one of "
                f"{', '.join(EXPORTS)}; got {fmt!r}"
            )
    template = replace(options.run, source="", output=None, json_path=None, show=False, serve=None)
    template.validate()
    if options.video:
        from annotate.sinks.video import check_encoding

        check_encoding(outdir / "check.mp4", template.encode)
    if options.ray is not None:
        from annotate.batch.cluster import check_address

        check_address(options.ray)
    jobs = find_jobs(options.inputs, outdir)
    check_outputs(jobs, outdir, options.video, options.json, options.exports)
    check_manifest_path(outdir, jobs)
    cluster = None
    if options.ray is not None:
        from annotate.batch.cluster import RayCluster

        cluster = RayCluster.connect(options.ray)
    try:
        return _run(options, template, jobs, cluster, listener, download, started)
    finally:
        if cluster is not None:
            cluster.close()


def _run(
    options: BatchOptions,
    template: RunOptions,
    jobs: list[Job],
    cluster: RayCluster | None,
    listener: BatchListener | None,
    download: Callable[[KnownModel], Path] | None,
    started: float,
) -> BatchSummary:
    resolved = template.resolved(download)
    _check_classes(resolved)
    # The face model alone (--blur faces --no-boxes) never looks the object model up.
    model_sha256 = sha256_of(resolved.model) if isinstance(resolved.model, Path) else ""
    chosen = settings(resolved, model_sha256, options.video, options.json)
    if isinstance(resolved.face_model, Path) and resolved.wants_faces:
        chosen["face_model"] = resolved.face_model.name
        chosen["face_model_sha256"] = sha256_of(resolved.face_model)
    if options.exports:  # (absent otherwise: earlier manifests' settings stay the same)
        chosen["exports"] = sorted(options.exports)
    wanted = settings_id(chosen)
    outdir = options.outdir
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"cannot create {outdir}: {e.strerror}") from None
    manifest = Manifest(outdir)
    todo = jobs
    if options.resume:
        latest = manifest.latest()
        outputs = {
            job.index: job.outputs(outdir, options.video, options.json, options.exports)
            for job in jobs
        }
        todo = [
            job
            for job in jobs
            if not is_done(latest.get(job_key(job)), job, outputs[job.index], wanted)
        ]
    if cluster is not None:
        per_job = cluster.cores_per_job(options.jobs)
        plan = f"Ray ({cluster.describe()}), {per_job} core{'s' * (per_job > 1)} per video"
    else:
        n, per_job = plan_jobs(resolved.cores or cpu_cores(), options.jobs, len(todo))
        plan = f"{n} worker process{'es' * (n > 1)} × {per_job} core{'s' * (per_job > 1)}"
    summary = BatchSummary(resumed=len(jobs) - len(todo), plan=plan)
    if listener is not None:
        listener.begin(todo, summary.resumed, plan)
    if not todo:
        summary.wall_s = time.perf_counter() - started
        return summary
    batch = Batch(
        replace(resolved, cores=per_job),
        outdir,
        options.video,
        options.json,
        wanted,
        model_sha256,
        tuple(options.exports),
    )
    if cluster is not None:
        backend: Backend = cluster.pool(batch, per_job)
    else:
        from annotate.batch.local import LocalPool

        backend = LocalPool(batch, n)
    sizes = {job.index: sum(p.stat().st_size for p in job.inputs) for job in todo}
    # Largest first, so the longest videos are not the last ones running (a file's size
    # stands in for its length).
    todo = sorted(todo, key=lambda job: -sizes[job.index])
    by_key = {job_key(job): job for job in todo}
    total_bytes = sum(sizes.values()) or 1
    finished_bytes = 0.0
    running: dict[int, tuple[int, int | None]] = {}  # index → (frames, expected)
    recorded: set[int] = set()
    frames_done = 0
    with _stop_on_signals(backend, summary):
        for event in backend.run(todo):
            if isinstance(event, Started):
                running[event.job] = (0, None)
            elif isinstance(event, Progress):
                running[event.job] = (event.frames, event.total)
            elif isinstance(event, Finished):
                record = event.record
                job = by_key.get(record.input)
                if job is None or job.index in recorded:
                    continue
                recorded.add(job.index)
                running.pop(job.index, None)
                finished_bytes += sizes[job.index]
                frames_done += record.frames
                manifest.append(record.to_json(chosen))
                summary.records.append(record)
                if listener is not None:
                    listener.finished(job, record)
            if listener is not None:
                partial = sum(sizes[i] * min(1.0, f / t) for i, (f, t) in running.items() if t)
                frames = frames_done + sum(f for f, _ in running.values())
                listener.progress(frames, (finished_bytes + partial) / total_bytes)
    for job in todo:  # the batch was stopped before these finished
        if job.index in recorded:
            continue
        if job.index in running:  # its worker was killed after the grace period
            remove_partials(job, batch)
            record = Record(job_key(job), "failed", settings_id=wanted, error=STOPPED)
        else:
            record = Record(job_key(job), "skipped", settings_id=wanted, error=NOT_STARTED)
        manifest.append(record.to_json(chosen))
        summary.records.append(record)
    summary.wall_s = time.perf_counter() - started
    return summary


def _check_classes(options: RunOptions) -> None:
    """``--classes``, ``--blur`` and ``--labels`` against the model's classes before any
    work, as ``run`` checks them: a misspelt class is one usage error, not every input
    failing. A one-thread CPU session reads the classes; a model that does not load is left
    to the jobs, which say so per input."""
    if not (options.classes or options.blur or options.labels) or options.faces_only:
        return
    import onnxruntime as ort

    from annotate.detector import class_ids
    from annotate.detector.families import read_spec
    from annotate.detector.session import ort_errors
    from annotate.pipeline.build import blur_ids
    from annotate.providers import CPU

    assert isinstance(options.model, Path)
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = 1
    try:
        session = ort.InferenceSession(str(options.model), settings, providers=[CPU])
    except ort_errors():
        return
    spec = read_spec(session, str(options.model), options.family, options.labels)
    detected = class_ids(spec.labels, options.classes, "--classes") if options.classes else None
    if options.blur is not None:
        blur_ids(options, spec.labels, detected)


class Backend(Protocol):
    def run(self, jobs: list[Job]) -> Iterator[Event]: ...
    def stop(self) -> None: ...


@contextmanager
def _stop_on_signals(backend: Backend, summary: BatchSummary) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM asks the jobs to stop (they get a few seconds to finish
    their outputs and clean up); a second one stops at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if summary.stopped is not None:
            raise KeyboardInterrupt
        summary.stopped = signal.Signals(signum).name
        log.warning(
            "stopping: the videos in progress are abandoned (press Ctrl-C again to stop at once)"
        )
        backend.stop()

    previous = {n: signal.signal(n, handler) for n in HELD_SIGNALS}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


if TYPE_CHECKING:
    from annotate.batch.cluster import RayCluster
