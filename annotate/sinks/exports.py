"""Annotations that labelling tools import (``--export FORMAT=PATH``), to correct by hand:

- ``cvat``: CVAT for video 1.1 XML. One ``<track>`` per confirmed track, a keyframe on every
  box (CVAT's importer keeps only keyframes) and an ``outside`` box one frame after the
  track's last box and after every gap, as CVAT's own exporter writes. A box without a
  confirmed track (a run without ``--track``, or a track not yet confirmed) is a track of
  its own, one box long.
- ``labelstudio``: a Label Studio tasks JSON whose ``predictions`` hold one
  ``videorectangle`` per track (frames from 1, positions in percent of the frame,
  ``enabled: false`` closing each continuous run), and beside it the labelling config it
  expects (``<Video>``, ``<VideoRectangle>``, ``<Labels>`` with the model's classes).
- ``coco``: COCO detection JSON, an image per frame (``frame_000123.jpg``), the model's
  labels as categories, boxes as ``bbox`` xywh with ``score`` and ``track_id``;
  ``--export-frames`` also writes the frames as those JPEGs (``PATH``'s stem + ``_images``).
- ``yolo``: an Ultralytics dataset folder: ``images/``, ``labels/`` (``class cx cy w h``,
  normalised) and ``data.yaml``, from every ``--export-every``-th frame.

Frames are numbered from the first frame the run read: with ``--start 10`` frame 0 is the
frame at 10 s, and ``-o`` of the same run holds exactly these frames. Each export is written
whole when the run ends, however it ends (the YOLO folder's frames as they come), to a
temporary name renamed into place, so a file there is always complete.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from annotate.errors import UsageError
from annotate.sinks import SinkBase
from annotate.types import Detections, Frame

FORMATS = ("cvat", "labelstudio", "coco", "yolo")
#: JPEG quality of exported frames: what labelling is done on, so near the source.
JPEG_QUALITY = 95


@dataclass(frozen=True)
class ExportSpec:
    format: str
    path: Path

    @property
    def flag(self) -> str:
        return f"--export {self.format}"


def parse_export(text: str) -> ExportSpec:
    """``FORMAT=PATH`` as the user typed it."""
    name, sep, path = text.partition("=")
    fmt = name.strip().lower()
    if not sep or fmt not in FORMATS or not path.strip():
        raise UsageError(
            f"--export takes FORMAT=PATH with FORMAT one of {', '.join(FORMATS)} "
            f"(e.g. cvat=tracks.xml); got {text!r}"
        )
    return ExportSpec(fmt, Path(path.strip()))


def frame_name(index: int) -> str:
    return f"frame_{index:06d}"


@dataclass
class Box:
    frame: int
    xyxy: tuple[float, float, float, float]
    class_id: int
    score: float
    track: int | None  # a confirmed track's id, else None


@dataclass
class Collected:
    """Every box of the run, by the exported sequence's frame numbers."""

    boxes: list[Box] = field(default_factory=list)
    frames: int = 0
    width: int = 0
    height: int = 0
    source: str = ""

    def add(self, frame: Frame, detections: Detections) -> int:
        index = self.frames
        self.frames += 1
        self.width, self.height, self.source = frame.width, frame.height, frame.source
        tracks = detections.track_id.tolist() if detections.track_id is not None else None
        rows = zip(detections.xyxy.tolist(), detections.scores.tolist(), detections.class_ids)
        for i, (box, score, class_id) in enumerate(rows):
            track = tracks[i] if tracks is not None and tracks[i] > 0 else None
            xyxy = (round(box[0], 2), round(box[1], 2), round(box[2], 2), round(box[3], 2))
            self.boxes.append(Box(index, xyxy, int(class_id), round(score, 4), track))
        return index

    def tracks(self) -> list[list[Box]]:
        """Confirmed tracks by id, then every other box as a track of its own."""
        by_id: dict[int, list[Box]] = defaultdict(list)
        alone: list[list[Box]] = []
        for box in self.boxes:
            if box.track is None:
                alone.append([box])
            else:
                by_id[box.track].append(box)
        return [by_id[i] for i in sorted(by_id)] + alone


def runs(track: list[Box]) -> list[list[Box]]:
    """A track's boxes split where frames are missing."""
    out: list[list[Box]] = []
    for box in track:
        if out and box.frame == out[-1][-1].frame + 1:
            out[-1].append(box)
        else:
            out.append([box])
    return out


def _replace(path: Path, write: Any) -> None:
    """Write through a temporary name in the same folder, then rename into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ExportSink(SinkBase):
    """Collects the run's boxes; subclasses write their format on :meth:`close`."""

    pixels = False  # boxes and frames as they are, never the drawing

    def __init__(self, path: Path, labels: tuple[str, ...], fps: float) -> None:
        self.path, self.labels, self.fps = path, labels, fps or 30.0
        self.collected = Collected()
        self._closed = False
        #: With ``--blur``, the blur (an annotator): frames written are hidden as the video
        #: is, never the original (but no box is drawn on them).
        self.hide: Any = None

    def picture(self, frame: Frame, detections: Detections) -> npt.NDArray[np.uint8]:
        """The frame as it may leave the process: hidden where ``--blur`` hides."""
        if self.hide is None:
            return frame.image
        hidden: npt.NDArray[np.uint8] = self.hide.annotate(frame.image.copy(), detections)
        return hidden

    def label(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    def write(self, frame: Frame, annotated: npt.NDArray[np.uint8], detections: Detections) -> None:
        index = self.collected.add(frame, detections)
        self.frame_done(frame, index, detections)

    def frame_done(self, frame: Frame, index: int, detections: Detections) -> None:
        """After a frame's boxes are collected: formats that write frames do so here."""

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.finish()

    def finish(self) -> None:
        raise NotImplementedError


class CvatExport(ExportSink):
    def finish(self) -> None:
        import xml.etree.ElementTree as ET

        c = self.collected
        root = ET.Element("annotations")
        ET.SubElement(root, "version").text = "1.1"
        task = ET.SubElement(ET.SubElement(root, "meta"), "task")
        for key, value in (
            ("name", Path(c.source).name or "annotate"),
            ("size", c.frames),
            ("mode", "interpolation"),
            ("overlap", 0),
            ("start_frame", 0),
            ("stop_frame", max(0, c.frames - 1)),
        ):
            ET.SubElement(task, key).text = str(value)
        labels = ET.SubElement(task, "labels")
        for name in self.labels:
            label = ET.SubElement(labels, "label")
            ET.SubElement(label, "name").text = name
            ET.SubElement(label, "attributes")
        size = ET.SubElement(task, "original_size")
        ET.SubElement(size, "width").text = str(c.width)
        ET.SubElement(size, "height").text = str(c.height)
        for number, track in enumerate(c.tracks()):
            element = ET.SubElement(
                root,
                "track",
                id=str(number),
                label=self.label(track[0].class_id),
                source="auto",
            )
            for run in runs(track):
                for box in run:
                    self._box(element, box.frame, box.xyxy, outside=False)
                after = run[-1].frame + 1
                if after < c.frames:  # CVAT's own exporter ends a run so, and after gaps
                    self._box(element, after, run[-1].xyxy, outside=True)
        ET.indent(root)
        tree = ET.ElementTree(root)
        _replace(self.path, lambda tmp: tree.write(tmp, encoding="utf-8", xml_declaration=True))

    @staticmethod
    def _box(track: Any, frame: int, xyxy: tuple[float, ...], outside: bool) -> None:
        import xml.etree.ElementTree as ET

        x1, y1, x2, y2 = xyxy
        ET.SubElement(
            track,
            "box",
            frame=str(frame),
            outside=str(int(outside)),
            occluded="0",
            keyframe="1",  # CVAT's importer keeps keyframes only
            xtl=f"{x1:.2f}",
            ytl=f"{y1:.2f}",
            xbr=f"{x2:.2f}",
            ybr=f"{y2:.2f}",
            z_order="0",
        )


class LabelStudioExport(ExportSink):
    #: The names the labelling config gives its tags; the results refer to them.
    VIDEO, BOX, LABELS = "video", "box", "videoLabels"

    @property
    def config_path(self) -> Path:
        return self.path.with_name(f"{self.path.stem}.config.xml")

    def finish(self) -> None:
        c = self.collected
        width, height = max(1, c.width), max(1, c.height)
        results = []
        for number, track in enumerate(c.tracks()):
            sequence = []
            for run in runs(track):
                for i, box in enumerate(run):
                    x1, y1, x2, y2 = box.xyxy
                    sequence.append(
                        {
                            "frame": box.frame + 1,
                            "enabled": i < len(run) - 1,  # false: the object leaves after it
                            "rotation": 0,
                            "x": 100 * x1 / width,
                            "y": 100 * y1 / height,
                            "width": 100 * (x2 - x1) / width,
                            "height": 100 * (y2 - y1) / height,
                            "time": box.frame / self.fps,
                        }
                    )
            results.append(
                {
                    "id": f"track{number}",
                    "type": "videorectangle",
                    "from_name": self.BOX,
                    "to_name": self.VIDEO,
                    "origin": "prediction",
                    "meta": {"track_id": track[0].track},
                    "value": {
                        "framesCount": c.frames,
                        "duration": c.frames / self.fps,
                        "sequence": sequence,
                        "labels": [self.label(track[0].class_id)],
                    },
                }
            )
        scores = [b.score for b in c.boxes]
        task = {
            "data": {self.VIDEO: c.source},
            "predictions": [
                {
                    "model_version": "annotate",
                    "score": round(float(np.mean(scores)), 4) if scores else 0.0,
                    "result": results,
                }
            ],
        }
        text = json.dumps([task], ensure_ascii=False, indent=1)
        _replace(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        config = self.config()
        _replace(self.config_path, lambda tmp: tmp.write_text(config, encoding="utf-8"))

    def config(self) -> str:
        from xml.sax.saxutils import quoteattr

        labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in self.labels)
        return (
            "<View>\n"
            f'  <Labels name="{self.LABELS}" toName="{self.VIDEO}" allowEmpty="true">\n'
            f"{labels}\n"
            "  </Labels>\n"
            f'  <Video name="{self.VIDEO}" value="${self.VIDEO}" framerate="{self.fps:g}"/>\n'
            f'  <VideoRectangle name="{self.BOX}" toName="{self.VIDEO}"/>\n'
            "</View>\n"
        )


class CocoExport(ExportSink):
    def __init__(
        self, path: Path, labels: tuple[str, ...], fps: float, frames: bool = False
    ) -> None:
        super().__init__(path, labels, fps)
        self.images_dir = path.with_name(f"{path.stem}_images") if frames else None
        if self.images_dir is not None:
            self.images_dir.mkdir(parents=True, exist_ok=True)

    def frame_done(self, frame: Frame, index: int, detections: Detections) -> None:
        if self.images_dir is not None:
            save_jpeg(self.images_dir / f"{frame_name(index)}.jpg", self.picture(frame, detections))

    def finish(self) -> None:
        c = self.collected
        images = [
            {"id": i + 1, "file_name": f"{frame_name(i)}.jpg", "width": c.width,
             "height": c.height, "frame": i}
            for i in range(c.frames)
        ]  # fmt: skip
        annotations = []
        for number, box in enumerate(c.boxes, start=1):
            x1, y1, x2, y2 = box.xyxy
            w, h = round(x2 - x1, 2), round(y2 - y1, 2)
            annotations.append(
                {
                    "id": number,
                    "image_id": box.frame + 1,
                    "category_id": box.class_id + 1,
                    "bbox": [x1, y1, w, h],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                    "score": box.score,
                    "track_id": box.track,
                }
            )
        data = {
            "info": {"description": f"annotate: {c.source}", "version": "1.0"},
            "licenses": [],
            "images": images,
            "categories": [
                {"id": i + 1, "name": name, "supercategory": ""}
                for i, name in enumerate(self.labels)
            ],
            "annotations": annotations,
        }
        text = json.dumps(data, ensure_ascii=False)
        _replace(self.path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


class YoloExport(ExportSink):
    """An Ultralytics dataset folder, from every ``every``-th frame; the frames as JPEGs."""

    def __init__(self, path: Path, labels: tuple[str, ...], fps: float, every: int) -> None:
        super().__init__(path, labels, fps)
        self.every = max(1, every)
        self.kept = 0
        for sub in ("images", "labels"):
            (path / sub).mkdir(parents=True, exist_ok=True)

    def frame_done(self, frame: Frame, index: int, detections: Detections) -> None:
        if index % self.every:
            return
        name = frame_name(index)
        width, height = max(1, frame.width), max(1, frame.height)
        lines = []
        for (x1, y1, x2, y2), class_id in zip(detections.xyxy.tolist(), detections.class_ids):
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            w, h = (x2 - x1) / width, (y2 - y1) / height
            lines.append(f"{int(class_id)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}\n")
        save_jpeg(self.path / "images" / f"{name}.jpg", self.picture(frame, detections))
        label = self.path / "labels" / f"{name}.txt"
        _replace(label, lambda tmp: tmp.write_text("".join(lines), encoding="utf-8"))
        self.kept += 1

    def finish(self) -> None:
        names = "\n".join(f"  {i}: {json.dumps(name)}" for i, name in enumerate(self.labels))
        text = (
            f"# annotate: every {self.every} frame(s) of {self.collected.source}, "
            f"{self.kept} images\n"
            "# no path: Ultralytics takes this file's folder as the dataset's root\n"
            "train: images\nval: images\n"
            f"names:\n{names}\n"
        )
        _replace(self.path / "data.yaml", lambda tmp: tmp.write_text(text, encoding="utf-8"))


def save_jpeg(path: Path, image: npt.NDArray[np.uint8]) -> None:
    import cv2

    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f"cannot encode {path.name} as JPEG")
    _replace(path, lambda tmp: tmp.write_bytes(data.tobytes()))


def open_export(
    spec: ExportSpec, labels: tuple[str, ...], fps: float, every: int, frames: bool
) -> ExportSink:
    if spec.format == "cvat":
        return CvatExport(spec.path, labels, fps)
    if spec.format == "labelstudio":
        return LabelStudioExport(spec.path, labels, fps)
    if spec.format == "coco":
        return CocoExport(spec.path, labels, fps, frames)
    return YoloExport(spec.path, labels, fps, every)
