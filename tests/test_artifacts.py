"""Artifact keys, completion markers and the pipeline's skip/redo logic (with counting fake stages)."""

import threading

from omegaconf import OmegaConf

from reid_gan import pipeline as pl
from reid_gan.utils.artifacts import artifact_lock, config_key, is_complete, mark_complete
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


def test_marker_is_written_last(tmp_path):
    d = tmp_path / "art"
    d.mkdir()
    assert not is_complete(d)
    mark_complete(d, {"x": 1})
    assert is_complete(d)


def test_lock_serialises_builders(tmp_path):
    order = []

    def worker(i):
        with artifact_lock(tmp_path / "a"):
            order.append(("in", i))
            order.append(("out", i))

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    [t.start() for t in ts]
    [t.join() for t in ts]
    # never two "in" in a row: one builder at a time
    assert all(order[k][0] == "in" and order[k + 1] == ("out", order[k][1]) for k in range(0, 8, 2))


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
