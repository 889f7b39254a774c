"""Fault 7: hostile or wrong files. A ``.pt``/``.pth``/``.ckpt``/``.pkl`` that runs code when unpickled is
refused by every loader and nothing runs (a marker file stays absent); weights of the wrong shape are
named (expected vs found); manifest and latents paths that are absolute, climb out with ``..`` or follow a
symbolic link out of the set are refused. (NVIDIA-pickle internals: tests/test_nvlabs_pkl.py.)"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from reid_gan.config import validate_config
from tests.helpers import compose_stage, make_generated_set

pytestmark = pytest.mark.usefixtures("one_thread")


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appears iff code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _hostile_torch_file(path: Path, marker: Path, wrap: str = "state_dict") -> Path:
    obj = {"state_dict": {"w": torch.zeros(1), "evil": _Payload(marker)}} if wrap == "state_dict" else \
        {"pids": torch.zeros(1, dtype=torch.long), "ws": _Payload(marker)}
    torch.save(obj, path)
    return path


def _hostile_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"G_ema": _Payload(marker)}))
    return path


def _check_refused(fn, marker: Path, name: str) -> None:
    with pytest.raises(Exception) as ei:  # noqa: PT011 - every loader has its own error type; all name the file
        fn()
    assert not marker.exists(), "code in the file was executed"
    assert name in str(ei.value), f"the error does not name the file: {ei.value}"


# ------------------------------------------------------------------------------- library loaders
def _loaders(tmp: Path):
    from reid_gan.reid.checkpoint import load_reid_net
    from reid_gan.gan.checkpoint import load_generator
    from reid_gan.data.generated import load_latents_file
    from reid_gan.metrics.fid import load_inception
    from reid_gan.reid.models import ReIDNet
    from reid_gan.utils.weights import load_state_dict

    return {
        "weights.load_state_dict (.pth)": lambda p: load_state_dict(p, "reid.pretrained"),
        "reid.pretrained (.pth)": lambda p: ReIDNet("resnet18", num_classes=3, pretrained=str(p)),
        "generator snapshot (.pt)": load_generator,
        "train_gan checkpoint as generator (.ckpt)": load_generator,
        "evaluate ckpt_path (.ckpt)": load_reid_net,
        "metrics.inception (.pth)": load_inception,
        "generate.latents (.pt)": lambda p: load_latents_file(p, 4, 8),
    }


SUFFIX = {"weights.load_state_dict (.pth)": ".pth", "reid.pretrained (.pth)": ".pth",
          "generator snapshot (.pt)": ".pt", "train_gan checkpoint as generator (.ckpt)": ".ckpt",
          "evaluate ckpt_path (.ckpt)": ".ckpt", "metrics.inception (.pth)": ".pth", "generate.latents (.pt)": ".pt"}


@pytest.mark.parametrize("loader", sorted(SUFFIX))
def test_every_loader_refuses_a_code_running_torch_file(loader, tmp_path):
    marker = tmp_path / "PWNED"
    f = _hostile_torch_file(tmp_path / f"evil{SUFFIX[loader]}", marker,
                            "latents" if "latents" in loader else "state_dict")
    _check_refused(lambda: _loaders(tmp_path)[loader](f), marker, f.name)


def test_identity_filter_refuses_a_code_running_checkpoint(tmp_path):
    from reid_gan.filters.identity import ReIDFeatureExtractor

    marker = tmp_path / "PWNED"
    f = _hostile_torch_file(tmp_path / "evil.ckpt", marker)
    _check_refused(lambda: ReIDFeatureExtractor(checkpoint=str(f)), marker, f.name)


def test_generator_pickle_refused(tmp_path):
    from reid_gan.gan.checkpoint import load_generator

    marker = tmp_path / "PWNED"
    f = _hostile_pickle(tmp_path / "evil.pkl", marker)
    _check_refused(lambda: load_generator(f), marker, f.name)


def test_generated_set_latents_file_refused(tmp_path):
    from reid_gan.data.generated import load_person_latents

    marker = tmp_path / "PWNED"
    (tmp_path / "set" / "latents").mkdir(parents=True)
    _hostile_torch_file(tmp_path / "set" / "latents" / "10000.pt", marker)
    _check_refused(lambda: load_person_latents(tmp_path / "set", {"pid": 10000, "latent": "latents/10000.pt"}),
                   marker, "10000.pt")


# ---------------------------------------------------------------------------------------- stages
@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".pkl"])
def test_train_gan_resume_refuses_hostile_file(suffix, smoke_data, tmp_path):
    from reid_gan.train_gan import train_gan

    marker = tmp_path / "PWNED"
    f = tmp_path / f"evil{suffix}"
    (_hostile_pickle if suffix == ".pkl" else _hostile_torch_file)(f, marker)
    cfg = compose_stage("train_gan", tmp_path, ["data.name=folder", f"data.root={smoke_data}", f"gan.resume={f}",
                                                "logger=csv", "callbacks=none"])
    validate_config(cfg)
    _check_refused(lambda: train_gan(cfg), marker, f.name)


def test_train_ckpt_path_refuses_hostile_checkpoint(smoke_data, tmp_path):
    from reid_gan.train import train

    marker = tmp_path / "PWNED"
    f = _hostile_torch_file(tmp_path / "evil.ckpt", marker)
    cfg = compose_stage("train", tmp_path, ["data.name=folder", f"data.root={smoke_data}", f"ckpt_path={f}",
                                            "logger=csv", "callbacks=none", "reid.ranked_queries=0"])
    validate_config(cfg)
    with pytest.raises(Exception):  # noqa: PT011,B017 - Lightning's own error wrapping the refusal
        train(cfg)
    assert not marker.exists()


# ------------------------------------------------------------------------------ wrong shape/format
def test_wrong_shape_reid_weights_name_expected_and_found(tmp_path):
    from reid_gan.reid.models import ReIDNet

    sd = ReIDNet("resnet18", num_classes=3, pretrained=None).backbone.state_dict()
    sd["conv1.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(sd, tmp_path / "r18.pth")
    with pytest.raises(Exception, match=r"conv1\.weight.*\(8, 3, 3, 3\).*\(64, 3, 7, 7\)"):
        ReIDNet("resnet18", num_classes=3, pretrained=str(tmp_path / "r18.pth"))


def test_wrong_shape_evaluate_checkpoint_names_expected_and_found(tmp_path):
    from reid_gan.reid.checkpoint import load_reid_net
    from reid_gan.reid.models import ReIDNet

    net = ReIDNet("resnet18", num_classes=3, pretrained=None)
    sd = {f"net.{k}": v for k, v in net.state_dict().items()}
    sd["net.classifier.weight"] = torch.zeros(5, sd["net.classifier.weight"].shape[1])
    torch.save({"state_dict": sd, "reid_net": dict(net.config)}, tmp_path / "m.ckpt")
    with pytest.raises(ValueError, match=r"m\.ckpt.*classifier\.weight: file \(5, 512\) vs model \(3, 512\)"):
        load_reid_net(tmp_path / "m.ckpt")


def test_wrong_format_files_are_named(tmp_path):
    from reid_gan.gan.checkpoint import load_generator
    from reid_gan.metrics.fid import load_inception
    from reid_gan.utils.weights import load_state_dict

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"this is not a torch file")
    for fn in (load_generator, load_inception, lambda p: load_state_dict(p, "reid.pretrained")):
        with pytest.raises(Exception, match="junk.pt"):
            fn(junk)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(Exception, match=r"list\.pt.*expected a (dict|state dict)"):
        load_state_dict(tmp_path / "list.pt", "reid.pretrained")


def test_wrong_shape_generator_snapshot_names_the_keys(tmp_path):
    from reid_gan.gan.checkpoint import load_generator, save_snapshot
    from reid_gan.gan.networks import Generator

    kw = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=[32, 16], img_channels=3, channel_base=256, channel_max=32,
              num_layers=4, num_critical=1, mapping_kwargs={"num_layers": 2})
    p = save_snapshot(Generator(**kw), {**kw, "w_dim": 16}, tmp_path / "network-snapshot-000000.000.pt",
                      "reid_gan.gan.networks.Generator")
    with pytest.raises(ValueError, match=r"network-snapshot.*do not fit"):
        load_generator(p)


# ------------------------------------------------------------------------- paths leaving the set
def _set_with_manifest(smoke_data: Path, out: Path) -> Path:
    from reid_gan.data import FolderDataset

    ds = FolderDataset(smoke_data)
    return make_generated_set(out, [(s.path, pid, s.camid) for s, pid in zip(ds.train, ds.train_orig_pids)],
                              n_persons=2, per_person=2)


def _rewrite_first_line(gen: Path, **changes) -> None:
    lines = [json.loads(x) for x in (gen / "manifest.jsonl").read_text().splitlines()]
    lines[0].update(changes)
    (gen / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def _escapes(tmp_path: Path, gen: Path) -> dict[str, str]:
    secret = tmp_path / "outside" / "10000_c7s1_000000_00.jpg"
    secret.parent.mkdir()
    secret.write_bytes((gen / "bounding_box_train" / "10000_c7s1_000000_00.jpg").read_bytes())
    link = gen / "bounding_box_train" / "10000_c7s1_000009_00.jpg"
    os.symlink(secret, link)
    linked_dir = gen / "elsewhere"
    os.symlink(secret.parent, linked_dir)
    return {"absolute": str(secret), "dotdot": "../outside/10000_c7s1_000000_00.jpg",
            "symlink_file": "bounding_box_train/10000_c7s1_000009_00.jpg",
            "symlink_dir": "elsewhere/10000_c7s1_000000_00.jpg"}


ESCAPES = ["absolute", "dotdot", "symlink_file", "symlink_dir"]


@pytest.mark.parametrize("how", ESCAPES)
def test_filter_refuses_manifest_paths_leaving_the_set(how, smoke_data, tmp_path):
    from reid_gan.filters.chain import load_image_set

    gen = _set_with_manifest(smoke_data, tmp_path / "gen")
    _rewrite_first_line(gen, file=_escapes(tmp_path, gen)[how])
    with pytest.raises(ValueError, match=r"manifest\.jsonl line 1.*(absolute|climbs out|symbolic link)"):
        load_image_set(gen)


@pytest.mark.parametrize("how", ESCAPES)
def test_generated_set_dataset_refuses_manifest_paths_leaving_the_set(how, smoke_data, tmp_path):
    from reid_gan.data import DatasetError, FolderDataset

    gen = _set_with_manifest(smoke_data, tmp_path / "gen")
    _rewrite_first_line(gen, file=_escapes(tmp_path, gen)[how])
    with pytest.raises(DatasetError, match=r"(absolute|climbs out|symbolic link)"):
        FolderDataset(gen)


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_latents_path_in_manifest_leaving_the_set_is_refused(how, tmp_path):
    from reid_gan.data.generated import load_person_latents

    s = tmp_path / "set"
    (s / "latents").mkdir(parents=True)
    outside = tmp_path / "outside.pt"
    torch.save({"format": "reid_gan.generate.latents/1"}, outside)
    os.symlink(outside, s / "latents" / "10000.pt")
    rel = {"absolute": str(outside), "dotdot": "../outside.pt", "symlink": "latents/10000.pt"}[how]
    with pytest.raises(ValueError, match=r"(absolute|climbs out|symbolic link)"):
        load_person_latents(s, {"pid": 10000, "latent": rel})
