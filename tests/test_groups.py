"""Stream groups on Ray (``annotate run … --ray``): groups of sources as long-lived actors,
the same records as one process gives, and an actor that dies restarted with its sources'
outputs continued in a part of their own."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from annotate.pipeline import RunOptions
from annotate.pipeline.groups import ACTOR_PREFIX, run_groups, split
from annotate.pipeline.many import SourceSpec, run_many
from tests.helpers import make_clip

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_sources_are_split_into_even_groups_each_named_once():
    specs = [SourceSpec(f"cam{i % 2}.mp4") for i in range(5)]
    groups = split(specs, 2)
    assert [len(g) for g in groups] == [2, 2, 1]
    names = [s.name for g in groups for s in g]
    assert sorted(names) == ["cam0", "cam0-2", "cam0-3", "cam1", "cam1-2"]


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_groups_give_what_one_process_gives(tmp_path, tiny_model, local_ray):
    clips = [make_clip(tmp_path / f"c{i}.mp4", 20 + 5 * i) for i in range(4)]
    specs = [SourceSpec(str(c)) for c in clips]
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    run_many(RunOptions("", tiny_model, json_path=f"{here}/", track=True), specs)
    results = run_groups(
        RunOptions("", tiny_model, json_path=f"{there}/", track=True), specs, "local", size=2
    )
    assert [r.name for r in results] == ["c0", "c1", "c2", "c3"]
    assert all(r.error is None and r.parts == 1 for r in results)
    for name in ("c0", "c1", "c2", "c3"):
        assert _records(there / f"{name}.jsonl") == _records(here / f"{name}.jsonl")


def test_a_group_that_dies_is_restarted_and_its_outputs_go_on_in_a_new_part(
    tmp_path, tiny_model, local_ray
):
    long = make_clip(tmp_path / "long.mp4", 3000)
    short = make_clip(tmp_path / "short.mp4", 10)
    out = tmp_path / "out"
    out.mkdir()
    specs = [SourceSpec(str(long), "long"), SourceSpec(str(short), "short")]
    found: list = []
    worker = threading.Thread(
        target=lambda: found.extend(
            run_groups(RunOptions("", tiny_model, json_path=f"{out}/"), specs, "local", size=1)
        )
    )
    worker.start()
    first = out / "long.jsonl"
    deadline = time.monotonic() + 60
    while not (first.exists() and first.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.exists(), "the long source wrote nothing"
    # split() puts the first source in group 0: its actor's process dies mid-run.
    ray.kill(ray.get_actor(f"{ACTOR_PREFIX}0"), no_restart=False)
    worker.join(timeout=180)
    assert not worker.is_alive()
    by_name = {r.name: r for r in found}
    assert by_name["long"].parts == 2 and by_name["short"].parts == 1
    assert by_name["long"].error is None, by_name["long"].error
    before = _records(first)  # what the first part wrote stays, whole lines
    after = _records(out / "long.part2.jsonl")
    assert 0 < len(before) < 3000 and len(after) == 3000
    assert all(r["source"] == "long" for r in before + after)
    assert len(_records(out / "short.jsonl")) == 10
    assert not (out / "short.part2.jsonl").exists()


def test_the_cli_runs_sources_in_groups_on_ray(cli, tmp_path, tiny_model, local_ray):
    clips = [make_clip(tmp_path / f"c{i}.mp4", 8) for i in range(3)]
    out = tmp_path / "out"
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    missing = cli("run", *clips, "-m", tiny_model, "--json", f"{blocker}/out/", "--ray")
    assert missing.code == 2 and "cannot create the folder" in missing.err  # before any node
    assert "groups on Ray" not in missing.err
    out.mkdir()
    result = cli("run", *clips, "-m", tiny_model, "--json", f"{out}/", "--ray", "--group", "2")
    assert result.code == 0, result.err
    assert "3 sources in 2 groups on Ray" in result.err
    assert sorted(p.name for p in out.iterdir()) == ["c0.jsonl", "c1.jsonl", "c2.jsonl"]
    refused = cli("run", *clips, "-m", tiny_model, "--json", f"{out}/", "--ray", "--serve", "8799")
    assert refused.code == 2 and "--show and --serve are for one machine" in refused.err
