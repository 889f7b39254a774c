"""Artifact keys, completion markers and the pipeline's skip/redo logic (with counting fake stages)."""

import threading
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from reid_gan.study import runner as pl
from reid_gan.utils.artifacts import artifact_lock, config_key, is_complete, mark_complete, read_complete
from tests.helpers import compose_stage


def test_keys_do_not_depend_on_the_root_folder(tmp_path):
    """The same study under two root folders gets the same artifact keys (no absolute path is hashed)."""
    from reid_gan.utils.artifacts import config_key

    keys = []
    for root in ("a", "b"):
        cfg = compose_stage("pipeline", tmp_path / root, ["experiment=quickstart"], smoke=False)
        cfg.paths.output_dir = "/artifact"  # as the pipeline's probe sets it
        keys.append([config_key(cfg, f) for f in (["gan", "metrics", "seed"], ["generate"], ["filter"],
                                                   ["reid", "aug", "data", "seed"])])
    assert keys[0] == keys[1]


def test_config_key_tracks_fields_and_upstream_but_not_wiring():
    a = OmegaConf.create({"gan": {"kimg": 1, "out": "/x"}, "seed": 0})
    b = OmegaConf.create({"gan": {"kimg": 1, "out": "/elsewhere"}, "seed": 0})
    c = OmegaConf.create({"gan": {"kimg": 2, "out": "/x"}, "seed": 0})
    assert config_key(a, ["gan"]) == config_key(b, ["gan"])  # where it goes does not matter
    assert config_key(a, ["gan"]) != config_key(c, ["gan"])
    assert config_key(a, ["gan"], ["u1"]) != config_key(a, ["gan"], ["u2"])
    assert config_key(a, ["gan", "missing.key"]) == config_key(a, ["gan", "missing.key"])


def test_marker_is_written_last(tmp_path, monkeypatch):
    """The marker appears only after the stage's outputs exist, never while it runs, never after a failure,
    and a write of the marker itself that fails midway leaves no (partial) marker."""
    seen = {}

    def stage(cfg):
        out = seen["out"] = Path(cfg.paths.output_dir)
        (out / "part1.txt").write_text("a")
        seen["complete_while_running"] = is_complete(out)
        if seen.get("fail"):
            raise RuntimeError("killed midway")
        (out / "part2.txt").write_text("b")
        return {"m": 1.0}, {}

    real_mark = pl.mark_complete

    def spy_mark(folder, info):
        seen["outputs_at_marker"] = sorted(p.name for p in Path(folder).iterdir() if not p.name.startswith("."))
        real_mark(folder, info)

    monkeypatch.setattr(pl, "stage_function", lambda name: stage)
    monkeypatch.setattr(pl, "mark_complete", spy_mark)
    cfg = compose_stage("make_dataset", tmp_path)
    p = pl.Pipeline(cfg)
    sr = pl.StageRun("make_dataset", "make_dataset", ["data"])
    seen["fail"] = True
    with pytest.raises(RuntimeError, match="killed midway"):
        p.run(sr)
    out = seen["out"]
    assert (out / "part1.txt").exists() and not is_complete(out) and "outputs_at_marker" not in seen
    seen["fail"] = False
    _, out2, info = p.run(sr)
    assert out2 == out and is_complete(out)
    assert seen["complete_while_running"] is False
    assert seen["outputs_at_marker"] == ["part1.txt", "part2.txt"]
    assert read_complete(out)["metrics"] == {"m": 1.0}

    # the marker write itself dies halfway through (a value it cannot serialise, after the first keys):
    # no marker, and no partial file under the marker's name
    d = tmp_path / "art"
    d.mkdir()
    with pytest.raises(TypeError):
        mark_complete(d, {"a": 1, "b": list(range(1000)), "z": object()})
    assert not is_complete(d) and list(d.iterdir()) == []


def test_lock_excludes_a_second_builder(tmp_path):
    """While one builder holds an artifact's lock, a second acquisition waits (here: times out)."""
    from filelock import Timeout

    held, release, errors = threading.Event(), threading.Event(), []

    def holder():
        with artifact_lock(tmp_path / "a"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=holder)
    t.start()
    try:
        assert held.wait(30)
        with pytest.raises(Timeout):
            with artifact_lock(tmp_path / "a", timeout=0.2):
                errors.append("acquired a held lock")
        with artifact_lock(tmp_path / "b", timeout=0.2):  # another artifact is not blocked
            pass
    finally:
        release.set()
        t.join()
    assert not errors
    with artifact_lock(tmp_path / "a", timeout=5):  # released: free again
        pass


def test_lock_serialises_builders(tmp_path):
    """Builders that sleep inside the locked section never overlap."""
    import time

    order = []

    def worker(i):
        with artifact_lock(tmp_path / "a"):
            order.append(("in", i))
            time.sleep(0.05)
            order.append(("out", i))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    assert len(order) == 8
    # never two "in" in a row: one builder at a time
    assert all(order[k][0] == "in" and order[k + 1] == ("out", order[k][1]) for k in range(0, 8, 2)), order


def test_pipeline_skips_complete_and_redoes_deleted(tmp_path, monkeypatch):
    calls = []

    def fake(cfg):
        calls.append(cfg.paths.output_dir)
        return {"m": 1.0}, {}

    monkeypatch.setattr(pl, "stage_function", lambda stage: fake)
    cfg = compose_stage("make_dataset", tmp_path)
    p = pl.Pipeline(cfg)
    sr = pl.StageRun("make_dataset", "make_dataset", ["data"])
    k1, out1, _ = p.run(sr)
    k2, out2, _ = p.run(sr)
    assert (k1, out1) == (k2, out2) and len(calls) == 1   # second run skipped
    (out1 / "_COMPLETE.json").unlink()
    p.run(sr)
    assert len(calls) == 2                                   # deleted marker → redone
    k3, _, _ = p.run(pl.StageRun("make_dataset", "make_dataset", ["data"], upstream=["other"]))
    assert k3 != k1 and len(calls) == 3                     # changed upstream → new key, redone
