"""Streams past one machine: the sources of a run split into groups, each group a long-lived
Ray actor running :func:`annotate.pipeline.many.run_many` on its node (``annotate run
--sources cams.toml --ray [ADDRESS]``).

- A group is ``--group N`` sources (8 by default; one process kept 14 cameras on 16 cores,
  docs/performance.md, "Many cameras in one process"). Its actor asks for N CPUs, or one GPU
  with a GPU provider, so Ray places one group per GPU or per N cores.
- The models travel once through Ray's object store, as ``annotate batch --ray`` ships them;
  sources and outputs are addresses the nodes reach (cameras on the network, shared storage).
- An actor that dies (its process killed, its node lost) is restarted by Ray
  (``max_restarts``) and its sources start again. The outputs already written stay as they
  are; the new ones are ``NAME.part2.jsonl`` (``.part3`` …) beside them, and the summary
  says which sources restarted: a gap in the output, noted, never overwritten.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotate.errors import UsageError
from annotate.pipeline.many import SourceResult, SourceSpec, unique_names

if TYPE_CHECKING:
    from annotate.batch.cluster import Shipped
    from annotate.models import KnownModel
    from annotate.pipeline.options import RunOptions
    from annotate.pipeline.summary import ProgressListener

log = logging.getLogger("annotate")

#: Sources per group unless ``--group`` says.
GROUP = 8
#: Times Ray restarts a group's actor (and runs its sources again).
MAX_RESTARTS = 3
#: Seconds a stopped group gets to finalise its outputs.
GRACE_S = 20.0
#: Prefix of the groups' actor names (``annotate-group-0`` …), for operators and tests.
ACTOR_PREFIX = "annotate-group-"


def split(specs: Sequence[SourceSpec], size: int) -> list[list[SourceSpec]]:
    """The sources, each named once for the whole run (so no two groups write one file), in
    groups of at most ``size``, as even as the count allows."""
    if size < 1:
        raise UsageError(f"--group must be at least 1, got {size}")
    named = [SourceSpec(s.url, n, s.settings) for s, n in zip(specs, unique_names(specs))]
    count = -(-len(named) // size)
    return [named[i::count] for i in range(count)] if named else []


class Ledger:
    """How many times each group has started (an actor of the driver's, which outlives the
    groups' restarts): a restarted group's outputs are its next part."""

    def __init__(self) -> None:
        self.starts: dict[int, int] = {}

    def start(self, group: int) -> int:
        self.starts[group] = self.starts.get(group, 0) + 1
        return self.starts[group]

    def counts(self) -> dict[int, int]:
        return dict(self.starts)


class StreamGroup:
    """One group's actor: its sources through one model until they end or are stopped."""

    def __init__(self) -> None:
        from annotate.batch.job import worker_logging

        worker_logging()
        self.stop = threading.Event()

    def run(
        self,
        base: RunOptions,
        specs: list[SourceSpec],
        group: int,
        ledger: Any,
        models: list[Shipped],
    ) -> list[SourceResult]:
        import ray

        from annotate.batch.cluster import with_node_models
        from annotate.pipeline.many import run_many

        part = ray.get(ledger.start.remote(group))
        options = replace(with_node_models(base, models), resolution=None)  # this node's
        return run_many(options, specs, stop=self.stop, part=part)

    def halt(self) -> None:
        self.stop.set()


def run_groups(
    base: RunOptions,
    specs: Sequence[SourceSpec],
    address: str,
    size: int = GROUP,
    download: Callable[[KnownModel], Path] | None = None,
    stop: threading.Event | None = None,
) -> list[SourceResult]:
    """Every source, in groups on Ray's nodes; one result per source, in the order given.
    Ctrl-C (or ``stop``) stops every group, which finalises its outputs."""
    from annotate.batch.cluster import GPU_PROVIDERS, RayCluster, ship_models
    from annotate.pipeline.many import make_folders, source_options

    groups = split(specs, size)
    if not groups:
        raise UsageError("no sources given")
    # Every source's options and outputs checked here, before any node starts (the outputs
    # are usually on storage the nodes share).
    replace(base, output=None, json_path=None, mot=None, exports=[]).validate()
    make_folders(base)
    for group in groups:
        for spec in group:
            source_options(base, spec, spec.name or spec.url, 1).validate()
    resolved = base.resolved(download)  # the models, found or fetched here, once
    assert resolved.resolution is not None
    gpu = resolved.resolution.preferred in GPU_PROVIDERS
    cluster = RayCluster.connect(address)
    ray = cluster.ray
    try:
        log.info(
            "%d sources in %d group%s on Ray (%s)",
            len(specs),
            len(groups),
            "" if len(groups) == 1 else "s",
            cluster.describe(),
        )
        models = ship_models(ray, resolved)
        ledger = ray.remote(Ledger).options(num_cpus=0).remote()
        actors, refs = [], []
        template = replace(resolved, resolution=None)
        for i, group in enumerate(groups):
            resources = {"num_gpus": 1, "num_cpus": 1} if gpu else {"num_cpus": len(group)}
            actor = (
                ray.remote(StreamGroup)
                .options(
                    name=f"{ACTOR_PREFIX}{i}",
                    max_restarts=MAX_RESTARTS,
                    max_task_retries=MAX_RESTARTS,
                    max_concurrency=2,  # halt() while run() runs
                    **resources,
                )
                .remote()
            )
            actors.append(actor)
            refs.append(actor.run.remote(template, group, i, ledger, models))
        found = _wait(ray, refs, actors, stop)
        starts = ray.get(ledger.counts.remote())
    finally:
        cluster.close()
    by_name: dict[str, SourceResult] = {}
    for i, (group, results) in enumerate(zip(groups, found)):
        for j, spec in enumerate(group):
            name = spec.name or spec.url
            if results is None:
                result = SourceResult(name, spec.url, error="its group failed (see above)")
            else:
                result = results[j]
            result.parts = starts.get(i, 1)
            if result.parts > 1:
                log.warning(
                    "%s: its group restarted %d time%s; the output goes on in its part %d "
                    "(NAME.part%d), the frames between were lost",
                    name,
                    result.parts - 1,
                    "" if result.parts == 2 else "s",
                    result.parts,
                    result.parts,
                )
            by_name[name] = result
    named = unique_names(specs)
    return [by_name[n] for n in named]


def _wait(
    ray: Any, refs: list[Any], actors: list[Any], stop: threading.Event | None
) -> list[list[SourceResult] | None]:
    """Each group's results; Ctrl-C or ``stop`` halts every group first."""
    pending = list(refs)
    try:
        while pending:
            if stop is not None and stop.is_set():
                raise KeyboardInterrupt
            _done, pending = ray.wait(pending, num_returns=len(pending), timeout=0.5)
    except KeyboardInterrupt:
        for actor in actors:
            actor.halt.remote()
        ray.wait(refs, num_returns=len(refs), timeout=GRACE_S)
    out: list[list[SourceResult] | None] = []
    for ref in refs:
        try:
            out.append(ray.get(ref, timeout=0))
        except Exception as e:  # the group's own failure, after Ray's restarts
            log.debug("a group failed", exc_info=True)
            out.append(None)
            cause = getattr(e, "cause", None) or e  # Ray wraps the task's own error
            text = str(cause).strip().splitlines()
            log.error("a group of sources failed: %s", text[-1][:200] if text else type(e).__name__)
    return out


def run_processes(
    base: RunOptions,
    specs: Sequence[SourceSpec],
    processes: int,
    download: Callable[[KnownModel], Path] | None = None,
    setup: Callable[[], None] | None = None,
    stop: Any = None,
    progress: Callable[[str], ProgressListener] | None = None,
) -> list[SourceResult]:
    """Every source, split evenly over ``processes`` local processes, each running
    :func:`annotate.pipeline.many.run_many` with a model of its own (``annotate run SRC…
    --processes N``). One process's Python work binds a GPU box long before the GPU does
    (docs/performance.md, "Many cameras"); processes multiply it, as Ray groups do across
    machines. ``setup`` runs first in each process (the CLI's logging). Ctrl-C, SIGTERM or
    ``stop`` stop every process, which finalises its outputs. ``progress`` gets each
    source's progress here, in this process, as :func:`run_many`'s does."""
    import multiprocessing
    import queue as queues

    from annotate.errors import Interrupted
    from annotate.pipeline.many import make_folders, mark_stopped, source_options
    from annotate.pipeline.plan import cpu_cores

    if processes < 1:
        raise UsageError(f"--processes must be at least 1, got {processes}")
    groups = split(specs, -(-len(specs) // processes)) if specs else []
    if not groups:
        raise UsageError("no sources given")
    make_folders(base)
    for group in groups:  # every source's options and outputs, before any process starts
        for spec in group:
            source_options(base, spec, spec.name or spec.url, 1).validate()
    template = replace(base.resolved(download), resolution=None)  # fetched once, here
    if template.cores is None:  # each process its share of the cores, not all of them
        template = replace(template, cores=max(1, cpu_cores() // len(groups)))
    context = multiprocessing.get_context("spawn")  # no copy of this process's threads
    halt = stop if stop is not None else context.Event()
    results: Any = context.Queue()
    reports: Any = context.Queue() if progress is not None else None
    workers = [
        context.Process(
            target=_process_group,
            args=(template, group, halt, results, i, setup, reports),
            name=f"annotate group {i}",
            daemon=True,
        )
        for i, group in enumerate(groups)
    ]
    log.info("%d sources in %d processes", len(specs), len(workers))
    found: dict[int, list[SourceResult]] = {}
    signalled: str | None = None
    lines: dict[str, ProgressListener] = {}
    for worker in workers:
        worker.start()
    while len(found) < len(workers):
        try:
            _relay(reports, progress, lines)
            try:
                i, got = results.get(timeout=0.2)
                found[i] = got
            except queues.Empty:
                if not any(w.is_alive() for w in workers) and results.empty():
                    break
        except (KeyboardInterrupt, Interrupted) as e:
            signalled = signalled or getattr(e, "name", "SIGINT")
            halt.set()
    for worker in workers:
        worker.join(timeout=GRACE_S)
    _relay(reports, progress, lines)
    out: list[SourceResult] = []
    for i, group in enumerate(groups):
        if i in found:
            out.extend(found[i])
            continue
        code = workers[i].exitcode
        for spec in group:
            name = spec.name or spec.url
            out.append(SourceResult(name, spec.url, error=f"its process ended (exit code {code})"))
    by_name = {r.name: r for r in out}
    return mark_stopped([by_name[n] for n in unique_names(specs)], signalled)


class _Reported:
    """A source's progress in a worker process, sent to the parent a few times a second."""

    EVERY_S = 0.25

    def __init__(self, reports: Any, name: str) -> None:
        self.reports, self.name = reports, name
        self.sent = 0.0
        self.frames = 0

    def start(self, total: int | None) -> None:
        self.reports.put((self.name, "start", total))

    def update(self, frames: int) -> None:
        self.frames = frames
        now = time.monotonic()
        if now - self.sent >= self.EVERY_S:
            self.sent = now
            self.reports.put((self.name, "update", frames))

    def stop(self) -> None:
        self.reports.put((self.name, "stop", self.frames))  # the last count, always sent


def _relay(
    reports: Any,
    progress: Callable[[str], ProgressListener] | None,
    lines: dict[str, ProgressListener],
) -> None:
    """Every progress report the workers have sent, to this process's listeners."""
    import queue as queues

    if reports is None or progress is None:
        return
    while True:
        try:
            item = reports.get_nowait()
        except queues.Empty:
            return
        if isinstance(item, logging.LogRecord):  # a worker's log line, printed here
            logging.getLogger(item.name).handle(item)
            continue
        name, what, value = item
        if what == "start":
            lines[name] = progress(name)
            lines[name].start(value)
        elif name in lines:
            lines[name].update(value)
            if what == "stop":
                lines[name].stop()


def _process_group(
    options: RunOptions,
    specs: list[SourceSpec],
    stop: Any,
    results: Any,
    index: int,
    setup: Callable[[], None] | None,
    reports: Any = None,
) -> None:
    """One process of :func:`run_processes`: a SIGTERM or SIGINT sent to it (a terminal's
    Ctrl-C reaches every process) stops its sources like the shared ``stop``."""
    import functools
    import signal

    from annotate.pipeline.many import run_many
    from annotate.signals import install

    if setup is not None:
        setup()
    if reports is not None:
        # The parent draws live progress lines: its own console prints these processes'
        # log lines too, above the lines, instead of each process writing over them.
        import logging.handlers

        log.handlers[:] = [logging.handlers.QueueHandler(reports)]
    own = threading.Event()  # run_many sets its flag when its sources end: not everyone's

    def follow() -> None:
        while not own.is_set():
            if stop.wait(0.2):
                own.set()

    threading.Thread(target=follow, name="follow the run's stop", daemon=True).start()
    install({signal.SIGINT: lambda *_: own.set(), signal.SIGTERM: lambda *_: own.set()})
    report = None if reports is None else functools.partial(_Reported, reports)
    results.put((index, run_many(options, specs, stop=own, progress=report)))
