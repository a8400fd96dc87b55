"""``annotate bench``: compare execution providers, inference alone and end to end."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from annotate import defaults
from annotate.cli import options as o
from annotate.cli.app import app
from annotate.cli.console import download, setup_logging, stderr_console
from annotate.config import Config

if TYPE_CHECKING:
    from annotate.bench import BenchReport


@app.command()
def bench(
    providers: Annotated[
        str, typer.Option(help="Comma-separated providers to compare, or 'all'.")
    ] = "all",
    model: o.declared_option("model") = None,  # type: ignore[valid-type]
    source: Annotated[
        str | None,
        typer.Option(
            "--source",
            "-s",
            show_default=False,
            help="Image or video to time on [default: a bundled photo]; a video also "
            "runs the whole pipeline.",
        ),
    ] = None,
    iterations: Annotated[int, typer.Option(help="Timed inference runs per provider.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed runs first.")] = 5,
    frames: Annotated[int, typer.Option(help="Frames for the end-to-end run.")] = 100,
    batches: Annotated[
        str | None,
        typer.Option(
            help="Batch sizes to time inference at, e.g. 1,8,32 [default: 1,8,32 on a GPU, "
            "none on CPU].",
            show_default=False,
        ),
    ] = None,
    threads: o.declared_option("session.threads") = None,  # type: ignore[valid-type]
    graph_opt: Annotated[
        str, typer.Option(help="Graph optimisation: disable, basic, extended, all.")
    ] = "all",
    coreml_format: Annotated[
        str, typer.Option(help="CoreML model format: MLProgram or NeuralNetwork.")
    ] = "MLProgram",
    coreml_units: Annotated[
        str, typer.Option(help="CoreML compute units: ALL, CPUAndNeuralEngine, CPUAndGPU, CPUOnly.")
    ] = "ALL",
    coreml_cache: Annotated[
        Path | None,
        typer.Option(
            help="Where CoreML keeps compiled models [default: user cache].", show_default=False
        ),
    ] = None,
    openvino_device: Annotated[
        str | None,
        typer.Option(
            help="OpenVINO device: CPU, GPU, NPU or AUTO:… [default: OpenVINO's].",
            show_default=False,
        ),
    ] = None,
    openvino_precision: Annotated[
        str | None,
        typer.Option(
            help="OpenVINO precision: FP32, FP16 or ACCURACY [default: the device's].",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    verbose: o.Verbose = False,
) -> None:
    """Compare execution providers: inference alone and (with a video) end to end."""
    import json

    from annotate.bench import BenchConfig, run_bench
    from annotate.detector import SessionSettings
    from annotate.models import find_model

    setup_logging(quiet=not verbose, verbose=verbose)
    model_setting = Config.load().get("model", model, "--model", defaults.MODEL)
    precision = openvino_precision.upper() if openvino_precision else None
    settings = SessionSettings(
        threads, graph_opt, coreml_format, coreml_units, coreml_cache, openvino_device, precision
    )
    config = BenchConfig(
        model=Path(),
        providers=[p for p in providers.split(",") if p.strip()],
        iterations=iterations,
        warmup=warmup,
        source=source,
        frames=frames,
        session=settings,
        batches=_sizes(batches) if batches is not None else None,
    )
    config.check()  # before the model is looked up (or downloaded)
    config = replace(
        config, model=find_model(model_setting.value, model_setting.origin, download=download)
    )
    progress = None if json_out else (lambda text: stderr_console().print(text))
    report = run_bench(config, on_progress=progress)
    if json_out:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print_bench(report)


def _sizes(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"takes whole numbers separated by commas, got {text!r}", param_hint="--batches"
        ) from None


def print_bench(report: BenchReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    m = report.machine
    console.print(f"{m['cpu']} ({m['cores']} cores), {m['system']}, onnxruntime {m['onnxruntime']}")
    console.print(
        f"Model {report.model}; input {report.input['image']} "
        f"{report.input['size'][0]}x{report.input['size'][1]}; "
        f"{report.warmup} warm-up + {report.iterations} timed runs"
    )
    console.print("Settings: " + ", ".join(f"{k}={v}" for k, v in report.settings.items()))
    for r in report.results:
        if r.status != "ran":
            console.print(f"[yellow]{r.provider}: skipped[/] — {r.reason}")
            continue
        table = Table(title=f"{r.provider}", title_justify="left")
        table.add_column("stage")
        columns = ("mean", "median", "p90", "min", "max")
        for col in columns:
            table.add_column(f"{col} ms", justify="right")
        rows = [(name, getattr(r, name)) for name in ("preprocess", "inference", "postprocess")]
        as_run = ""
        if r.pipeline_inference:
            rows.append(("inference as run", r.pipeline_inference))
            as_run = f" · as run: {r.pipeline_settings}"
        for name, st in rows:
            table.add_row(name, *(f"{getattr(st, c):.2f}" for c in columns))
        table.caption = (
            f"inference {r.fps:.1f} FPS with ONNX Runtime's defaults{as_run} · "
            f"session start-up {r.startup_s:.2f} s · speed-up {r.speedup:.2f}× vs "
            f"{report.baseline}"
        )
        console.print(table)
        if r.batches:
            calls = ", ".join(
                f"{b.size}: {b.call.median:.2f} ms ({b.images_per_s:.0f} frames/s)"
                for b in r.batches
            )
            console.print(f"  batches, median per call: {calls}")
        elif r.batch_note:
            console.print(f"  batches: not timed ({r.batch_note})")
        runs = (("end to end", r.end_to_end), ("sequential", r.sequential), ("service", r.service))
        for label, e in runs:
            if e is None:
                continue
            cpu = ", ".join(f"{k} {v:.1f}" for k, v in e.cpu_ms.items())
            console.print(
                f"  {label}: [bold]{e.fps:.1f} FPS; {e.loop_fps:.1f} FPS after the first "
                f"frame[/] over {e.frames} frames, as annotate run reports them (the first "
                f"frame took {e.first_frame_s:.2f} s); {e.mode}"
            )
            console.print(f"    CPU time per frame, ms (stages overlap when concurrent): {cpu}")
            if e.service:
                busy = ""
                if e.gpu_util is not None:
                    busy = f", GPU utilisation {e.gpu_util:.0f} %"
                console.print(
                    f"    inference service: {e.service['mean_batch']:.1f} frames per batch "
                    f"on average (largest {e.service['largest']:.0f}){busy}"
                )
    console.print(f"[bold]{report.recommendation}[/]")
