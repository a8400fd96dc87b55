"""``annotate batch``: many inputs, one model load per worker, a manifest, resume."""

from __future__ import annotations

import logging
import signal
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from annotate import defaults
from annotate.cli import console
from annotate.cli import options as o
from annotate.cli.app import app
from annotate.config import Config

if TYPE_CHECKING:
    from rich.progress import Progress

    from annotate.batch import BatchSummary, Job, Record

log = logging.getLogger("annotate")


@app.command()
@o.with_settings("batch")
def batch(
    ctx: typer.Context,
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="INPUT...",
            help="Video files, directories (searched recursively; the images directly in a "
            "folder are one image set), globs ('clips/**/*.mp4', quoted) or @list.txt.",
            show_default=False,
        ),
    ],
    outdir: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output directory: OUTDIR/<relative path>/<name>.mp4 per video (an image "
            "set's images under their own names), and manifest.jsonl.",
            show_default=False,
        ),
    ],
    json_lines: Annotated[
        bool, typer.Option("--json", help="Also write <name>.jsonl (images.jsonl for a set).")
    ] = False,
    video: Annotated[
        bool, typer.Option("--video/--no-video", help="Write the annotated video (or images).")
    ] = True,
    exports: Annotated[
        list[str] | None,
        typer.Option(
            "--export",
            metavar="FORMAT",
            help="Also write annotations a labelling tool imports beside each video: cvat "
            "(<name>.cvat.xml), labelstudio (<name>.labelstudio.json and its config), coco "
            "(<name>.coco.json), yolo (a <name>.yolo dataset folder); repeatable.",
            show_default=False,
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            help=f"Worker processes here [default: one per {defaults.BATCH_CORES_PER_JOB} cores, "
            f"at most one per {defaults.BATCH_INPUTS_PER_JOB} inputs]; with --ray, tasks at once "
            "per node.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(help="Skip inputs the manifest has as done with the same input and settings."),
    ] = False,
    ray: Annotated[
        str | None,
        typer.Option(
            metavar="[ADDRESS]",
            help="Run on Ray: alone, a local Ray; 'auto' or ray://HOST:10001, a cluster "
            "(pip install 'annotate-video[ray]').",
            show_default=False,
        ),
    ] = None,
    duration: o.Duration = None,
    quiet: o.Quiet = False,
    verbose: o.Verbose = False,
    **settings: Any,
) -> None:
    """Annotate many videos (and image folders) into OUTDIR, recording each in a manifest."""
    from annotate.batch import BatchOptions, run_batch

    console.setup_logging(quiet, verbose)
    run = o.run_options("", ctx.params, Config.load())
    # --export is the batch's own option (a format, not FORMAT=PATH): seen as on here.
    o.check_needed(ctx, replace(run, exports=[f"{fmt}=" for fmt in exports or ()]))
    options = BatchOptions(
        inputs=list(inputs),
        outdir=outdir,
        run=run,
        jobs=jobs,
        resume=resume,
        video=video,
        json=json_lines,
        ray=ray,
        exports=tuple(dict.fromkeys(f.strip().lower() for f in exports or ())),
    )
    display = BatchDisplay(quiet)
    try:
        summary = run_batch(options, listener=display, download=console.download)
    finally:
        display.close()
    report(summary, outdir, quiet)


class BatchDisplay:
    """Videos done/total, frames, FPS and ETA on a terminal; a line per finished input."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Progress | None = None
        self.done = self.total = 0
        self.started = time.perf_counter()

    def begin(self, jobs: list[Job], skipped: int, plan: str) -> None:
        self.total = len(jobs)
        self.started = time.perf_counter()
        if skipped:
            log.info(
                "Resuming: %d input%s done before, %d to do",
                skipped,
                "s" * (skipped != 1),
                len(jobs),
            )
        if not jobs:
            return
        log.info("Batch of %d input%s: %s", len(jobs), "s" * (len(jobs) != 1), plan)
        if self.quiet or not console.stderr_console().is_terminal:
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        bar = self.bar = Progress(
            TextColumn("videos {task.fields[done]}/{task.fields[count]}"),
            BarColumn(),
            TextColumn("{task.fields[frames]} frames, {task.fields[fps]} FPS, ETA"),
            TimeRemainingColumn(),
            console=console.stderr_console(),
            transient=True,
        )
        self.task = bar.add_task("batch", total=1.0, done=0, count=self.total, frames=0, fps="-")
        bar.start()

    def progress(self, frames: int, fraction: float) -> None:
        if self.bar is not None:
            fps = frames / max(time.perf_counter() - self.started, 1e-9)
            self.bar.update(
                self.task, completed=fraction, done=self.done, frames=frames, fps=f"{fps:.1f}"
            )

    def finished(self, job: Job, record: Record) -> None:
        self.done += 1
        where = f"[{self.done}/{self.total}] {console.printable(job.name)}"
        if record.status == "done":
            log.info(
                "%s: %d frame%s in %.1f s (%.1f FPS)",
                where,
                record.frames,
                "s" * (record.frames != 1),
                record.seconds,
                record.fps,
            )
            for warning in record.warnings:
                log.warning("%s: %s", job.name, warning)
        else:
            log.warning("%s %s: %s", where, record.status, record.error)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def report(summary: BatchSummary, outdir: Path, quiet: bool) -> None:
    """The summary table; a stop by a signal, or any failed input, becomes the exit code."""
    if summary.records and not quiet:
        from rich.table import Table

        from annotate.batch.manifest import STATUSES

        table = Table(title="Batch", title_justify="left")
        for column in ("status", "inputs", "frames", "seconds"):
            table.add_column(column, justify="left" if column == "status" else "right")
        for status in STATUSES:
            rows = [r for r in summary.records if r.status == status]
            if rows:
                table.add_row(
                    status,
                    str(len(rows)),
                    str(sum(r.frames for r in rows)),
                    f"{sum(r.seconds for r in rows):.1f}",
                )
        if summary.resumed:
            table.add_row("done before (--resume)", str(summary.resumed), "", "")
        console.stderr_console().print(table)
    if summary.records:
        fps = summary.frames / summary.wall_s if summary.wall_s else 0.0
        log.info(
            "%d frames in %.1f s (%.1f FPS over the batch); manifest %s",
            summary.frames,
            summary.wall_s,
            fps,
            outdir / "manifest.jsonl",
        )
    elif summary.resumed:
        log.info(
            "Nothing to do: all %d inputs are done (%s)", summary.resumed, outdir / "manifest.jsonl"
        )
    if summary.stopped:
        log.warning("stopped by %s; the manifest says what finished", summary.stopped)
        raise typer.Exit(128 + getattr(signal, summary.stopped))
    failed = summary.count("failed")
    if failed:
        log.warning("%d input%s failed (see above and the manifest)", failed, "s" * (failed != 1))
        raise typer.Exit(1)
