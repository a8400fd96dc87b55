"""sources → detector → annotators → sinks, with one ExitStack that closes everything."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from annotate import defaults
from annotate.analytics.geometry import parse_shapes
from annotate.annotators import Annotator, BlurAnnotator, CountAnnotator, default_annotators
from annotate.detector import Detector, class_ids
from annotate.detector.canvas import size_text
from annotate.detector.families import FACE_LABEL, FACES
from annotate.detector.session import NVIDIA
from annotate.errors import Interrupted, OutputPathError, StopRequested, UsageError
from annotate.pipeline.options import RunOptions, is_face
from annotate.pipeline.plan import ThreadPlan, cpu_cores, plan_threads, spinning_for
from annotate.pipeline.runner import (
    ConcurrentRun,
    DetectEvery,
    Emitter,
    StopFlag,
    run_sequential,
)
from annotate.pipeline.stages import (
    CountStage,
    DropStage,
    HideStage,
    ScoreStage,
    Stage,
    TrackStage,
)
from annotate.pipeline.summary import ProgressListener, RunSummary
from annotate.signals import raise_received, signals_deferred
from annotate.sinks import Sink
from annotate.sinks.background import BackgroundSink
from annotate.sources import Source, is_image, open_source
from annotate.stats import LiveStats
from annotate.types import SourceInfo

if TYPE_CHECKING:
    from annotate.analytics.counting import Counter
    from annotate.models import KnownModel
    from annotate.sinks import SharedDisplay
    from annotate.tracking import Tracker

log = logging.getLogger("annotate")


def make_sinks(
    options: RunOptions,
    source: Source,
    stack: ExitStack,
    live: LiveStats | None = None,
    labels: tuple[str, ...] = (),
    shared: Sequence[SharedDisplay] = (),
    background: bool = False,
) -> list[Sink]:
    """Open each output, registering it on ``stack`` at once so a later failure closes it.

    Displays (window, web preview) come first in the list, so a live frame is on screen
    before it is encoded. ``background``: the video is encoded on a thread of its own
    (:mod:`annotate.sinks.background`).
    """
    sinks: list[Sink] = []
    displays: list[Sink] = []
    if options.output is not None:
        out = options.output
        if source.info.still:
            from annotate.sinks.images import ImageSink

            single = source.info.frames == 1 and is_image(out) and not out.is_dir()
            if not single and out.suffix and not out.is_dir():
                raise OutputPathError(
                    f"cannot write {out}: an image source writes images; give -o a directory "
                    "(or an image file name for a single image)"
                )
            sinks.append(stack.enter_context(ImageSink(out, single_file=single)))
        else:
            from annotate.sinks.video import VideoSink

            audio_from = source.path if not source.info.live else None
            video = stack.enter_context(
                VideoSink(out, source.info, options.encode, audio_from=audio_from)
            )
            sinks.append(stack.enter_context(BackgroundSink(video)) if background else video)
    if options.json_path is not None:
        from annotate.sinks.jsonl import JsonLinesSink

        sinks.append(
            stack.enter_context(JsonLinesSink(options.json_path, options.name, options.landmarks))
        )
    if options.mot is not None:
        from annotate.sinks.mot import MotSink

        sinks.append(stack.enter_context(MotSink(options.mot)))
    if options.exports:
        from annotate.sinks.exports import open_export

        fps = float(source.info.fps or 0)
        every = options.export_every or (1 if source.info.still else max(1, round(fps)))
        for spec in options.export_specs:
            export = open_export(spec, labels, fps, every, options.export_frames)
            sinks.append(stack.enter_context(export))
    for display in shared:  # one source of several, in the run's shared window and page
        displays.append(display.add_source(options.name or source.name, live or LiveStats()))
    if options.show and not shared:
        from annotate.sinks.window import WindowSink

        displays.append(stack.enter_context(WindowSink(f"annotate - {source.name}", live)))
    if options.serve is not None and not shared:
        from annotate.sinks.web import WebPreview

        host, port = options.serve
        preview = WebPreview(
            host, port, live or LiveStats(), f"annotate - {source.name}", options.serve_hosts
        )
        displays.append(stack.enter_context(preview))
    return displays + sinks


def hide_exported_frames(sinks: Sequence[Sink], annotators: Sequence[Annotator]) -> None:
    """Exports that write frames (COCO's, YOLO's) hide what ``--blur`` hides in them."""
    blur = next((a for a in annotators if isinstance(a, BlurAnnotator)), None)
    if blur is None:
        return
    from annotate.sinks.exports import ExportSink

    for sink in sinks:
        if isinstance(sink, ExportSink):
            sink.hide = blur


def decoder_for(options: RunOptions) -> str:
    """``--hwdec``: auto decodes in software. NVDEC beside a model on the same GPU measured
    half the service's rate of FFmpeg's frame threads (docs/performance.md, "GPU"), and no
    run was found where it helps; ``--hwdec cuda`` still asks for it."""
    return "none" if options.hwdec == "auto" else options.hwdec


def expected_frames(info: SourceInfo, options: RunOptions) -> int | None:
    """How many frames the run will take, for a progress bar; ``None`` if unknowable."""
    if info.live:
        return options.max_frames
    total = info.frames
    if total is not None and (options.start or options.end is not None):
        fps = float(info.fps)
        last = total if options.end is None else min(total, round(options.end * fps))
        total = max(0, last - round((options.start or 0) * fps))
    if options.max_frames is not None:
        total = options.max_frames if total is None else min(total, options.max_frames)
    return total


def run(
    options: RunOptions,
    annotators: Sequence[Annotator] | None = None,
    progress: ProgressListener | None = None,
    download: Callable[[KnownModel], Path] | None = None,
    detector: Detector | None = None,
    stop: StopFlag | None = None,
    source: Source | None = None,
    shared: Sequence[SharedDisplay] = (),
) -> RunSummary:
    """Build the pipeline from ``options`` and run it to the end of the source.

    Options are validated before the model is looked up (or fetched with ``download``).
    A ``detector`` given here is used as it is (its thresholds and filters included) instead
    of loading ``options.model``. Ctrl-C, SIGTERM (as :class:`Interrupted`), a closed window
    or ``stop`` being set (from another thread or process) end the run early; every output
    is finalised either way and the summary says why. A ``source`` given here (opened, not
    yet entered) is read instead of opening ``options.source``. ``shared``: the window and
    web page of a multi-source run, which this source joins instead of opening its own.
    """
    options.validate()
    if detector is None:
        options = options.resolved(download)
    started, cpu_started = time.perf_counter(), time.process_time()
    named = (options.output, options.json_path, options.mot)
    exported = [str(spec.path) for spec in options.export_specs]
    summary = RunSummary(outputs=[str(p) for p in named if p] + exported)
    sinks: list[Sink] = []
    with ExitStack() as stack:
        cores = options.cores or cpu_cores()
        plan = plan_threads(options, cores)
        if source is None:
            hwdec = decoder_for(options)
            source = open_source(
                options.source, options.start, options.end, options.reconnect, plan.decode, hwdec
            )
        source = stack.enter_context(source)
        if plan.workers and (source.info.live or source.info.still):
            # The sequential plan, but the decoder's threads are fixed once it is open.
            sequential = plan_threads(replace(options, sequential=True), cores)
            plan = replace(sequential, decode=plan.decode)
        if plan.opencv is not None:
            import cv2

            stack.callback(cv2.setNumThreads, cv2.getNumThreads())
            cv2.setNumThreads(plan.opencv)
        tracker = make_tracker(options)
        # A signal recorded during the imports (signals.RECEIVED), before and after the
        # model loads; a source of a multi-source run, on its own thread, hears of it from
        # its first frame.
        on_main = threading.current_thread() is threading.main_thread()
        if on_main:
            raise_received()
        if detector is None:
            detector = load_detector(options, plan, tracker, source.info.live)
            stack.callback(detector.close)  # an accelerator still starting is waited for
        if on_main:
            raise_received()
        summary.provider = detector.provider
        use_canvas(detector, options.canvas, source.info)
        use_face_canvas(detector, options, source.info)
        if plan.service_batch and plan.workers:
            batch = plan.service_batch  # checked by the service's warm-up, beside the run
            if detector.service is None:  # else shared with other sources (many.py)
                detector.serve(batch)
                stack.callback(detector.close)
            summary.mode = plan.describe()
        else:
            batch = batch_size(options, plan, detector)
            summary.mode = plan.describe() + (f", batches of up to {batch}" if batch > 1 else "")
        log.debug("Runner: %s", summary.mode)
        live = LiveStats(source.name, detector.provider)
        stack.callback(live.finish)
        counter = make_counter(options)
        # Before any output exists: an unknown --blur class stops here.
        stages = make_stages(options, detector, tracker, counter)
        if annotators is None:
            annotators = run_annotators(options, detector)
        encode = replace(options.encode, threads=plan.encode, frame_threads=plan.frame_encode)
        if options.output is not None and not source.info.still:
            from annotate.sinks.video import container_for, pick_codec

            fmt = container_for(options.output)
            encode = pick_codec(encode, nvidia=detector.provider in NVIDIA, fmt=fmt)
        sinks = make_sinks(
            replace(options, encode=encode), source, stack, live, detector.labels, shared,
            background=plan.encode_apart,  # only concurrent plans have it
        )  # fmt: skip
        hide_exported_frames(sinks, annotators)
        if progress is not None:
            progress.start(expected_frames(source.info, options))
            stack.callback(progress.stop)
        emitter = Emitter(
            annotators=annotators,
            sinks=sinks,
            summary=summary,
            source=source,
            fps_every=options.fps_every,
            max_frames=options.max_frames,
            progress=progress,
            started=started,
            live=live,
            stages=stages,
            stop=stop,
            label=options.name or "",
        )
        every = detection_cadence(options, source.info)
        try:
            with signals_deferred():
                if plan.workers:
                    workers, every_nth = plan.workers, every or 1
                    each = 1 if detector.service is not None else batch  # the service batches
                    runner = ConcurrentRun(
                        source, detector, emitter, workers, batch=each, every=every_nth
                    )
                    runner.run()
                else:
                    interval = 1 / float(source.info.fps) if source.info.fps else 0.0
                    run_sequential(source, detector, emitter, DetectEvery(every, interval))
        except StopRequested as e:
            summary.stopped = str(e)
        except KeyboardInterrupt:
            summary.stopped = "SIGINT"
        except Interrupted as e:
            summary.stopped = e.name
        finally:
            summary.provider = live.provider = detector.provider  # the CPU's, if it failed
            # Photos are never tracked (each stands alone): no count of tracks for them.
            summary.tracks = tracker.confirmed if tracker and not source.info.still else None
            summary.counts = counter.as_json() if counter else None
            if detector.service is not None:
                stats = detector.service.stats
                summary.service = {
                    "batches": stats.batches,
                    "mean_batch": round(stats.mean_batch, 2),
                    "largest": stats.largest,
                    "busy_s": round(stats.busy_s, 3),
                }
    summary.wall_s = time.perf_counter() - started
    if threading.current_thread() is threading.main_thread() and summary.wall_s > 0:
        # The process's CPU time counts every thread's: a run that is one of several sources,
        # each on a thread of its own, would count the others' too, so it says nothing.
        used = time.process_time() - cpu_started
        log.debug(
            "CPU: %.1f of this machine's %d cores busy on average (%.2f CPU s in %.2f s)",
            used / summary.wall_s,
            cpu_cores(),
            used,
            summary.wall_s,
        )
    for sink in sinks:  # the encoder's own thread: its time, less the tail's wait for it
        if isinstance(sink, BackgroundSink):
            summary.stage_s["write"] += max(0.0, sink.busy_s - sink.blocked_s)
            log.debug(
                "Encoder thread busy %.0f%% of the run (%.2f ms a frame); the drawing "
                "(%.2f ms a frame) waited %.2f s for it",
                100 * sink.busy_s / summary.wall_s if summary.wall_s else 0.0,
                1000 * sink.busy_s / max(1, summary.frames),
                1000 * summary.stage_s["draw"] / max(1, summary.frames),
                sink.blocked_s,
            )
    if summary.service:
        service = summary.service
        log.debug(
            "Inference service: %d batches of %.1f frames on average (largest %d); the "
            "device's calls took %.0f%% of the run",
            service["batches"],
            service["mean_batch"],
            service["largest"],
            100 * service["busy_s"] / summary.wall_s,
        )
    return summary


def detection_cadence(options: RunOptions, info: SourceInfo) -> int | None:
    """Every how many frames to detect (``None``: auto, paced to a live source), saying
    where ``--detect-every`` cannot mean what it says."""
    every = options.detect_every
    if every != 1 and info.still:
        log.warning(
            "--detect-every %s: every image is detected (one photo's objects cannot be "
            "predicted from another's)",
            "auto" if every is None else every,
        )
        every = 1
    if every is None and not info.live:
        log.info(
            "--detect-every auto paces detection to a live source's frame rate; "
            "a file is read as fast as it goes, so every frame is detected"
        )
        every = 1
    if options.blur is not None and every != 1:
        log.warning(
            "--blur with --detect-every %s (--accept-blur-gaps): whatever appears between "
            "two detections shows unhidden until the next one",
            "auto" if every is None else every,
        )
    return every


def load_detector(
    options: RunOptions, plan: ThreadPlan, tracker: Tracker | None, live: bool = False
) -> Detector:
    """The resolved model on the resolved provider, with the session tuned to the plan; on
    a GPU, a CPU stand-in while it starts (for a file, where the model is light) unless
    told otherwise."""
    assert options.resolution is not None  # resolved()
    spinning = options.session.spinning
    if spinning is None:
        spinning = spinning_for(plan)
    log.debug("ONNX Runtime's threads %s", "spin during runs" if spinning else "sleep")
    cpu_start = options.session.cpu_start
    settings = replace(
        options.session,
        threads=plan.intra_op,
        spinning=spinning,
        # A file's run leaves it unset: the CPU stands in for a light model (Detector.load).
        cpu_start=True if live and cpu_start is None else cpu_start,
    )
    batch = plan.service_batch if plan.workers else 1
    faces = None
    if options.wants_faces:
        assert isinstance(options.face_model, Path)  # resolved()
        # Low faces keep face tracks alive too (the tracker's second round).
        low = min(options.face_conf, tracker.settings.low) if tracker else options.face_conf
        faces = Detector.load(
            options.face_model,
            options.resolution,
            low,
            defaults.FACE_IOU,
            settings,
            family=FACES.name,
            batch=batch,
            face_side=options.face_side(still=False),
            announce=options.faces_only,
            stand_in_if_light=True,
        )
        if options.faces_only:
            log.info("Face model only (%s): nothing asks for objects", options.face_model.name)
            return faces
        log.info("Face model: %s, beside the object model", options.face_model.name)
    assert isinstance(options.model, Path)  # resolved()
    # The tracker's second round keeps tracks alive on boxes below --conf (ByteTrack).
    conf = min(options.conf, tracker.settings.low) if tracker else options.conf
    detector = Detector.load(
        options.model,
        options.resolution,
        conf,
        options.iou,
        settings,
        family=options.family,
        labels_file=options.labels,
        classes=options.classes,
        min_area=options.min_area,
        max_det=options.max_det,
        free_size=options.canvas != "square",
        batch=batch,
        stand_in_if_light=True,
    )
    if faces is not None:
        detector.add_faces(faces)
    return detector


def face_model(detector: Detector) -> Detector | None:
    """The face model of this run's detector: itself (faces only), or the one beside it."""
    return detector if detector.is_faces else detector.faces


def face_id(detector: Detector) -> int | None:
    """The class id of faces in this detector's boxes, if it finds them."""
    if detector.is_faces:
        return 0
    return detector.face_id if detector.faces is not None else None


def use_face_canvas(detector: Detector, options: RunOptions, info: SourceInfo) -> None:
    """The face model's canvas for this source (``--face-size``; ``auto``: images at their
    own size, video capped), said once."""
    faces = face_model(detector)
    if faces is None:
        return
    side = options.face_side(info.still)
    faces.use_face_side(side)
    if info.width and info.height:
        hw = faces.canvas_for((info.height, info.width))
        faces.input_hw = hw  # the shape an accelerator's warm-up prepares
        log.debug("Face model canvas: %s for %dx%d frames", size_text(hw), info.width, info.height)


def use_canvas(detector: Detector, canvas: str, info: SourceInfo) -> None:
    """Fit the canvas to the frames (``--canvas``; ``auto``: unless they are still images,
    which keep the model's own square recipe) where the detector can."""
    wanted = canvas == "fit" or (canvas == "auto" and not info.still)
    detector.fit = wanted and detector.can_fit
    square = size_text(detector.input_hw)
    if canvas == "fit" and not detector.can_fit:
        log.info(
            "--canvas fit: this model (or provider) takes only its %s input; the frames "
            "are letterboxed onto that",
            square,
        )
    elif detector.fit and info.width and info.height:
        fitted = size_text(detector.canvas_for((info.height, info.width)))
        log.debug(
            "Canvas: %s for %dx%d frames (the model's own: %s)",
            fitted,
            info.width,
            info.height,
            square,
        )
    else:
        log.debug("Canvas: %s", square)


def make_counter(options: RunOptions) -> Counter | None:
    if not options.lines and not options.zones:
        return None
    from annotate.analytics.counting import Counter
    from annotate.annotators import shown_names

    lines, zones = parse_shapes(options.lines, "line"), parse_shapes(options.zones, "zone")
    shown = shown_names([s.name for s in lines], [s.name for s in zones])
    for shape in (*lines, *zones):
        if shown[shape.name] != shape.name:
            log.warning(
                "%r: the video's font has only ASCII letters, so the frame labels it %r (the "
                "JSON and the counts keep its name)",
                shape.name,
                shown[shape.name],
            )
    return Counter(lines, zones, options.anchor, options.line_frames)


def make_stages(
    options: RunOptions, detector: Detector, tracker: Tracker | None, counter: Counter | None
) -> list[Stage]:
    """This source's per-frame stages, in order: tracker, counter, the keeper of boxes to
    hide (which reads the tracker's lost tracks)."""
    stages: list[Stage] = []
    shared = options.name is not None  # one source of several, one detector for all
    if shared and tracker is None and detector.conf < options.conf:  # lowered for a tracker
        stages.append(ScoreStage(options.conf))
    faces = face_id(detector)
    if faces is not None and not options.wants_faces:  # another source's faces (many.py)
        stages.append(DropStage(faces))
    if tracker is not None:
        if faces is not None and options.wants_faces:
            # Every face at --face-conf is kept and hidden, and starts a track (which keeps
            # it hidden through a missed frame), whatever --conf is for objects.
            tracker.settings = replace(tracker.settings, class_high=((faces, options.face_conf),))
        stages.append(TrackStage(tracker))
    if counter is not None:
        stages.append(CountStage(counter))
    if options.blur is not None:
        stages.append(HideStage(blur_ids(options, detector.labels, detector.classes), tracker))
    return stages


def run_annotators(options: RunOptions, detector: Detector) -> list[Annotator]:
    """Blur first (nothing drawn is hidden by it), then the boxes, then lines and zones on
    top, so their counts are never covered by a label."""
    annotators: list[Annotator] = []
    if options.blur is not None:
        ids = blur_ids(options, detector.labels, detector.classes)
        faces = face_id(detector)
        pads = {faces: defaults.FACE_PAD} if faces is not None else None
        annotators.append(BlurAnnotator(ids, options.blur_style, options.blur_shape, pads=pads))
    if options.boxes:
        annotators += default_annotators(options.trails)
    if options.lines or options.zones:
        lines, zones = parse_shapes(options.lines, "line"), parse_shapes(options.zones, "zone")
        annotators.append(CountAnnotator(lines, zones))
    return annotators


def blur_ids(
    options: RunOptions, labels: Sequence[str], detected: frozenset[int] | None
) -> frozenset[int]:
    """The classes ``--blur`` hides, each of which the detector must look for (``detected``:
    the ``--classes`` filter, ``None`` for all); a class it never finds is never hidden."""
    assert options.blur is not None
    objects = [name for name in options.blur if not is_face(name)]
    ids = class_ids(labels, objects, "--blur") if objects else frozenset()
    missing = sorted(ids - detected) if detected is not None else []
    if missing:
        names = ",".join(labels[i] for i in missing)
        wanted = ",".join([*(c.strip() for c in options.classes or ()), names])
        given = ",".join(options.classes or ())
        raise UsageError(
            f"--blur {names}: --classes {given} leaves it undetected, so it would never be "
            f"hidden; use --classes {wanted}"
        )
    if options.blur_faces and FACE_LABEL in labels:  # the face model's class, added last
        ids |= {len(labels) - 1 - labels[::-1].index(FACE_LABEL)}
    return ids


def make_tracker(options: RunOptions) -> Tracker | None:
    if not options.track:
        return None
    from annotate.tracking import Tracker, TrackerSettings

    # Boxes from --conf up match first; new tracks start from ByteTrack's det_thresh (or
    # --conf, if higher): see TrackerSettings.start.
    return Tracker(
        TrackerSettings(
            high=options.conf,
            low=min(options.conf, TrackerSettings.low),
            start=max(options.conf, TrackerSettings.start),
            buffer_s=options.track_buffer,
        )
    )


def batch_size(options: RunOptions, plan: ThreadPlan, detector: Detector) -> int:
    """The most frames per inference call, if this run and model can take them; otherwise
    say why and use 1.

    Batches are for GPUs (the plan's ``service_batch``): with one intra-op thread per worker
    they bring nothing on CPU (``scripts/batching.py``, docs/performance.md), so the CPU
    default is 1.
    """
    wanted = plan.service_batch or options.batch or 1
    if wanted == 1:
        return 1
    if not plan.workers:
        if options.batch is not None:
            log.info(
                "--batch %d ignored: batches are for video files in the concurrent runner; "
                "this run takes one frame at a time",
                options.batch,
            )
        return 1
    batch, why = detector.batch_limit(wanted)
    if batch < wanted:
        what = f"--batch {wanted} ignored" if options.batch else f"batches of {wanted} ruled out"
        log.info("%s: %s; one frame per inference", what, why)
    return batch
