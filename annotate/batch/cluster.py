"""Jobs as Ray tasks, one per video, on a local Ray or a cluster (``pip install
"annotate-video[ray]"``).

Workers read inputs and write outputs by path, so every node must see the same paths
(shared storage); only the records come back. The model travels once per node through the
object store into the node's cache; each worker process keeps its loaded model for every
task it runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from annotate import defaults
from annotate.batch.events import GRACE_S, STOPPED, Event, Finished, from_update, started
from annotate.batch.inputs import Job
from annotate.batch.job import Batch, job_key, run_job, worker_logging
from annotate.batch.manifest import Record
from annotate.errors import AnnotateError, UsageError
from annotate.models.store import sha256_of
from annotate.pipeline.plan import cpu_cores

if TYPE_CHECKING:
    from annotate.pipeline.options import RunOptions

log = logging.getLogger("annotate")

POLL_S = 0.5  # each progress drain is a round trip to the queue actor
#: Providers that need a GPU of the node (``num_gpus=1`` per task).
GPU_PROVIDERS = ("CUDAExecutionProvider", "TensorrtExecutionProvider", "ROCMExecutionProvider",
                 "MIGraphXExecutionProvider")  # fmt: skip
#: Seconds to wait for a cluster's address to answer before giving up, and then for it to
#: answer as Ray does (gRPC over HTTP/2).
CONNECT_TIMEOUT_S = 10
HANDSHAKE_TIMEOUT_S = 5
#: A lost node's tasks are run again this many times (outputs are renamed only when
#: complete, so a rerun starts clean).
MAX_RETRIES = 3


class ClusterError(AnnotateError):
    """Ray could not be started or reached."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'annotate-video[ray]'") from None
    return ray


class RayCluster:
    """A connection to Ray: started here for ``local``, joined otherwise."""

    def __init__(self, ray: Any, owned: bool, address: str) -> None:
        self.ray, self.owned, self.address = ray, owned, address

    @classmethod
    def connect(cls, address: str) -> RayCluster:
        ray = _ray()
        if ray.is_initialized():  # a library caller's own Ray session
            return cls(ray, False, address)
        local = address == "local"
        if not local:
            _check_reachable(address)
        try:
            # Ray runs its workers at niceness 15, below its own processes; on a small machine
            # that cost a quarter of the speed (docs/batch.md, "On a Ray cluster").
            config = {"_system_config": {"worker_niceness": 0}} if local else {}
            with warnings.catch_warnings():  # Ray's client warns, then raises: one line is ours
                warnings.simplefilter("ignore", UserWarning)
                ray.init(
                    address=None if local else address,
                    num_cpus=cpu_cores() if local else None,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    configure_logging=True,
                    **config,
                )
        except Exception as e:  # ConnectionError, grpc errors, RuntimeError: all say the same
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            where = "a local Ray" if local else f"the Ray cluster at {address}"
            raise ClusterError(f"cannot start or reach {where}: {why}") from None
        return cls(ray, True, address)

    def describe(self) -> str:
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        where = "local" if self.address == "local" else self.address
        return f"{where}: {len(nodes)} node{'s' * (len(nodes) != 1)}, {cpus} CPUs"

    def cores_per_job(self, jobs: int | None) -> int:
        """``--jobs N`` shares the smallest node's CPUs among N tasks; else the local plan's
        cores per job."""
        if jobs is None:
            return defaults.BATCH_CORES_PER_JOB
        sizes = [n["Resources"].get("CPU", 1) for n in self.ray.nodes() if n.get("Alive")]
        return max(1, int(min(sizes or [1])) // jobs)

    def pool(self, batch: Batch, cores: int) -> RayPool:
        return RayPool(self.ray, batch, cores)

    def close(self) -> None:
        if self.owned:
            self.ray.shutdown()


def check_address(address: str) -> tuple[str, int] | None:
    """``--ray``'s value → the host and port to reach (``None`` for ``local`` and ``auto``);
    anything else is a usage error, before any work."""
    if address in ("local", "auto"):
        return None
    match = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)/?", address)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise UsageError(f"--ray takes local, auto, ray://HOST:PORT or HOST:PORT; got {address!r}")
    return match.group(1), int(match.group(2))


def _check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Refuse an address nothing answers at, or where something other than Ray answers:
    Ray itself retries either for ever."""
    where = check_address(address)
    if where is None:
        return
    host, port = where
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError as e:
        why = e.strerror or str(e) or type(e).__name__
        raise ClusterError(f"cannot reach the Ray cluster at {address}: {why}") from None
    # Ray's head (GCS) and its client server both speak gRPC: a channel becomes ready only
    # once the HTTP/2 handshake is done, which a web server or another service never does.
    try:
        import grpc  # with Ray's client extra, which annotate's ray extra names
    except ImportError:  # pragma: no cover - a Ray installed without it
        return
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    with grpc.insecure_channel(target) as channel:
        try:
            grpc.channel_ready_future(channel).result(timeout=HANDSHAKE_TIMEOUT_S)
        except grpc.FutureTimeoutError:
            raise ClusterError(
                f"{address} answers, but not as Ray does (no gRPC handshake in "
                f"{HANDSHAKE_TIMEOUT_S} s); give the address of a Ray head (HOST:6379) or its "
                "client server (ray://HOST:10001)"
            ) from None


class RayPool:
    def __init__(self, ray: Any, batch: Batch, cores: int) -> None:
        self.ray, self.batch, self.cores = ray, batch, cores
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    def run(self, jobs: list[Job]) -> Iterator[Event]:
        ray = self.ray
        from ray.util.queue import Empty, Queue

        options = self.batch.options
        assert options.resolution is not None
        models = ship_models(ray, options)
        gpus = 1 if options.resolution.preferred in GPU_PROVIDERS else 0
        task = ray.remote(_ray_job).options(
            num_cpus=self.cores, num_gpus=gpus, max_retries=MAX_RETRIES
        )
        updates = Queue()
        cpus = ray.cluster_resources().get("CPU", 1)
        limit = 2 * max(1, int(cpus // self.cores))  # queued ready behind each running one
        # The batch without the driver's model path (the node's cache replaces it).
        batch = replace(self.batch, options=replace(options, resolution=None))
        todo = list(jobs)
        running: dict[Any, Job] = {}
        try:
            while (todo or running) and not self.stopping:
                while todo and len(running) < limit:
                    job = todo.pop(0)
                    ref = task.remote(job, batch, models, updates)
                    running[ref] = job
                done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                yield from _drain(updates, Empty)
                for ref in done:
                    job = running.pop(ref)
                    yield Finished(self._result(ref, job))
            if self.stopping and running:
                for ref in running:
                    ray.cancel(ref)  # a KeyboardInterrupt in the task: it cleans up
                deadline = time.monotonic() + GRACE_S
                while running and time.monotonic() < deadline:
                    done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
                    for ref in done:
                        job = running.pop(ref)
                        yield Finished(self._result(ref, job))
                for job in running.values():
                    yield Finished(self._failed(job, STOPPED))
        finally:
            yield from _drain(updates, Empty)
            ray.kill(updates.actor)

    def _result(self, ref: Any, job: Job) -> Record:
        try:
            record: Record = self.ray.get(ref)
            return record
        except self.ray.exceptions.TaskCancelledError:
            return self._failed(job, STOPPED)
        except self.ray.exceptions.RayError as e:  # a lost node after its retries, a crash
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            return self._failed(job, f"Ray: {why}")

    def _failed(self, job: Job, error: str) -> Record:
        return Record(
            input=job_key(job), status="failed", settings_id=self.batch.settings_id, error=error
        )


def _drain(updates: Any, empty: type[Exception]) -> Iterator[Event]:
    while True:
        try:
            update = updates.get_nowait()
        except empty:
            return
        yield from_update(*update)


def _ray_job(job: Job, batch: Batch, models: list[Shipped], updates: Any) -> Record:
    """The task: the models from the node's cache (each fetched from the object store the
    first time on this node), the provider resolved for this node, then the same job as
    locally. ``models``: (option, object ref, sha256, file name) each."""
    worker_logging()
    options = with_node_models(batch.options, models).resolved()
    updates.put_nowait(started(job.index))

    def report(index: int, frames: int, total: int | None) -> None:
        with contextlib.suppress(Exception):  # a lost progress line never costs the job
            updates.put_nowait((index, frames, total))

    return run_job(job, replace(batch, options=options), None, report)


#: A model shipped to the nodes: (its option, object ref, sha256, file name).
Shipped = tuple[str, Any, str, str]


def ship_models(ray: Any, options: RunOptions) -> list[Shipped]:
    """The run's models (the object model, and the face model where it runs), each put in
    Ray's object store once; each node pulls it once (:func:`with_node_models`)."""
    return [
        (field, ray.put(path.read_bytes()), sha256_of(path), path.name)
        for field, path in (("model", options.model), ("face_model", options.face_model))
        if isinstance(path, Path) and (field == "model" or options.wants_faces)
    ]


def with_node_models(options: RunOptions, models: list[Shipped]) -> RunOptions:
    """``options`` with the shipped models' paths in this node's cache."""
    paths = {field: _node_model(ref, sha, name) for field, ref, sha, name in models}
    model = paths.get("model", options.model)
    faces = paths.get("face_model", options.face_model)
    return replace(options, model=model, face_model=faces)


def _node_model(ref: Any, sha: str, name: str) -> Path:
    path = Path(tempfile.gettempdir()) / "annotate-models" / sha / name
    if path.is_file():
        return path
    import ray

    data = ray.get(ref)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{name}.{os.getpid()}")
    partial.write_bytes(data)
    os.replace(partial, path)
    return path
