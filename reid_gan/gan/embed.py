"""The embedded pretrained StyleGAN3: pack a train_gan run into one small ``weights_only`` file, and read it.

The package ships ``reid_gan/gan/pretrained/stylegan3-t-64x32.pt`` (:data:`EMBEDDED_PATH`): the analogue of
the NVIDIA ``.pkl`` the thesis fine-tuned, pretrained by this project's own command
(``experiment=gan_pretrain``) on a separate render of the embedded dataset whose identities are disjoint
from every quickstart split. ``gan.resume=embedded`` fine-tunes it (G, G_ema **and** D).

Pack a run (its ``checkpoints/last.ckpt``) into that file::

    python -m reid_gan.gan.embed RUN_DIR --commit HASH [--out FILE] [--command "CMD"] [--hydra-dir DIR]

``RUN_DIR`` is the run's ``gan.out_dir`` (``<root>/artifacts/gan/<run_name>``) or its ``last.ckpt``. The
discriminator's constructor arguments and the command are read from the run's Hydra record
(``<root>/logs/train_gan/runs/*/.hydra``, the newest whose ``gan.run_name`` matches, or ``--hydra-dir``);
runs made after this module landed also keep D's arguments in the checkpoint.

File layout (a plain dict, ``torch.load(weights_only=True)``; format :data:`BUNDLE_FORMAT`):

====================  ===================================================================================
``G``, ``G_ema``, ``D``  ``{'class_name', 'init_kwargs', 'state_dict'}`` each
``kimg``, ``cur_nimg``  how far the pretraining got; ``ada_p``: its last ADA probability
``metrics``           the run's metric history (``metrics.jsonl`` rows up to ``kimg``)
``provenance``        ``command``, ``overrides``, ``commit``, ``source`` (the checkpoint), ``packed_at``,
                      ``packed_with`` (this command), ``torch`` version
``data``              ``name``, ``render`` (renderer parameters), ``train_pids`` (identities trained on),
                      ``num_train_images``
``gan``               the run's resolved ``gan`` config (training hyper-parameters)
``resume``            the rest of the run's ``last.ckpt`` (optimiser states, loop counters, ADA buffers):
                      with the three networks it rebuilds that checkpoint bit for bit (:func:`unpack`)
``kimg_total``        the images the weights have seen over all the runs in ``provenance['history']``
====================  ===================================================================================

A pretraining longer than one sitting continues **exactly** from the shipped file on another machine::

    python -m reid_gan.gan.embed unpack embedded ROOT/artifacts/gan/stylegan3-t-pretrain   # writes last.ckpt
    REID_GAN_ROOT=ROOT nice python -m reid_gan.train_gan experiment=gan_pretrain gan.resume=auto

and the next :func:`pack` of that run records the file it continued as ``provenance['history']`` (one
entry per earlier run: ``mode`` ``continued`` or ``transferred`` (weights only, optimisers and counters
reset, e.g. a run started with ``gan.resume=FILE``), its commit, command, kimg and sha256).
"""

from __future__ import annotations

import argparse
import datetime
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from reid_gan.utils.logging import get_logger
from reid_gan.utils.weights import read_torch_file

log = get_logger(__name__)

__all__ = ["BUNDLE_FORMAT", "EMBEDDED_PATH", "MAX_BYTES", "LINEAGE", "pack", "unpack", "record_transfer", "read_bundle", "is_bundle",
           "bundle_network", "resolve_resume", "resume_stamp", "main"]

BUNDLE_FORMAT = "reid_gan.gan.pretrained/1"
EMBEDDED_PATH = Path(__file__).resolve().parent / "pretrained" / "stylegan3-t-64x32.pt"
MAX_BYTES = 10 * 1024 * 1024
PROVENANCE_KEYS = ("command", "overrides", "commit", "source", "packed_at", "packed_with", "torch")
LINEAGE = "lineage.json"  # written by unpack() into the run folder: the file the run continues
_NETS = ("G", "G_ema", "D")


def resolve_resume(value: str) -> Path:
    """``embedded`` → :data:`EMBEDDED_PATH`; anything else is a path."""
    if value == "embedded":
        if not EMBEDDED_PATH.is_file():
            raise FileNotFoundError(f"gan.resume=embedded: the package's pretrained file {EMBEDDED_PATH} is missing "
                                    "(pack one with `python -m reid_gan.gan.embed RUN_DIR --commit HASH`)")
        return EMBEDDED_PATH
    return Path(value)


def resume_stamp(value: Any) -> list[str]:
    """For an artifact key: the content hash of the file ``gan.resume`` names (``embedded`` included), so that
    a repacked file gives a new key; ``[]`` for null / ``auto`` or a missing file (train_gan then says so)."""
    from reid_gan.utils.io import file_sha256

    if value in (None, "", "auto"):
        return []
    p = EMBEDDED_PATH if value == "embedded" else Path(str(value))
    return [f"gan.resume:{file_sha256(p)[:16]}"] if p.is_file() else []


def is_bundle(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.get("format") == BUNDLE_FORMAT


def read_bundle(path: str | Path) -> dict:
    """The bundle dict (``weights_only``), checked: all three networks and the provenance fields present."""
    p = Path(path)
    obj = read_torch_file(p, what="a pretrained GAN file", error=ValueError, missing=FileNotFoundError)
    if not is_bundle(obj):
        raise ValueError(f"{p}: not a packed pretrained GAN (format {obj.get('format') if isinstance(obj, dict) else None!r}, "
                         f"expected {BUNDLE_FORMAT!r})")
    for net in ("G", "G_ema", "D"):
        rec = obj.get(net)
        if not (isinstance(rec, dict) and {"class_name", "init_kwargs", "state_dict"} <= set(rec)):
            raise ValueError(f"{p}: network {net!r} is missing or incomplete")
    missing = [k for k in PROVENANCE_KEYS if k not in obj.get("provenance", {})]
    if missing:
        raise ValueError(f"{p}: provenance fields missing: {missing}")
    return obj


def bundle_network(obj: dict, name: str, what: str = "pretrained file") -> torch.nn.Module:
    """Network ``name`` (``G``, ``G_ema`` or ``D``) of a bundle, built and strictly loaded (train mode)."""
    from reid_gan.gan.checkpoint import build_module

    rec = obj[name]
    return build_module(rec["class_name"], rec["init_kwargs"], rec["state_dict"], f"{what}'s {name}")


# ----------------------------------------------------------------------------------------------- packing
def _hydra_record(run_dir: Path, run_name: str, hydra_dir: Path | None) -> tuple[dict | None, list[str] | None]:
    """(resolved-able config dict, overrides) of the run's newest Hydra record, if found."""
    from omegaconf import OmegaConf

    if hydra_dir is None:
        # <root>/artifacts/gan/<run_name> → <root>/logs/train_gan/runs/*/.hydra
        root = run_dir.parent.parent.parent
        cands = sorted((root / "logs" / "train_gan").glob("*/*/.hydra/config.yaml"))
        cands = [c for c in cands if OmegaConf.load(c).get("gan", {}).get("run_name") == run_name]
        if not cands:
            return None, None
        hydra_dir = cands[-1].parent
    cfg = OmegaConf.load(hydra_dir / "config.yaml")
    ov = hydra_dir / "overrides.yaml"
    overrides = [str(o) for o in OmegaConf.load(ov)] if ov.is_file() else None
    log.info("Hydra record of the run: %s", hydra_dir)
    return cfg, overrides


def _train_pids(cfg) -> tuple[dict | None, list[int] | None, int | None]:
    """(render parameters, training identities, training images) of a synthetic render, from its plan."""
    from omegaconf import OmegaConf

    data = cfg.get("data") if cfg is not None else None
    if data is None or data.get("name") != "synthetic" or data.get("render") is None:
        return None, None, None
    from reid_gan.data.synthetic import RenderParams, plan_dataset

    render = OmegaConf.to_container(data.render, resolve=True)
    specs, _ = plan_dataset(RenderParams.from_config(render))
    train = [s for s in specs if s.split == "bounding_box_train"]
    return render, sorted({int(s.pid) for s in train}), len(train)


def _parent_record(path: Path, mode: str, b: dict | None = None) -> dict:
    """One ``provenance['history']`` entry for the packed file at ``path`` (its bundle ``b`` when already
    read) that a run continued or transferred from (plus that file's own history, flattened in front)."""
    from reid_gan.utils.io import file_sha256

    b = read_bundle(path) if b is None else b
    prov = b["provenance"]
    rec = {"mode": mode, "sha256": file_sha256(path), "commit": prov.get("commit"), "command": prov.get("command"),
           "kimg": float(b["kimg"]), "kimg_total": float(b.get("kimg_total", b["kimg"])),
           "packed_at": prov.get("packed_at")}
    return {"history": list(prov.get("history") or []) + [rec], "kimg": rec["kimg"], "kimg_total": rec["kimg_total"]}


def record_transfer(run_dir: str | Path, path: str | Path) -> None:
    """At the start of a run that transfers a packed file's weights (``gan.resume=FILE``, counters from 0):
    record that file as the run's :data:`LINEAGE` (a snapshot or ``.pkl`` is no packed file: nothing)."""
    from reid_gan.utils.io import atomic_write_json

    path = Path(path)
    if path.suffix != ".pt":
        return
    obj = read_torch_file(path, what="a pretrained GAN file", error=ValueError)
    if not is_bundle(obj):
        return
    parent = _parent_record(path, "transferred", obj)
    parent["kimg"] = 0.0  # this run's counter starts at 0: everything the parent saw comes before it
    atomic_write_json(Path(run_dir) / LINEAGE, parent)


def _lineage(run_dir: Path) -> tuple[list[dict], float]:
    """(history, kimg the weights had seen when this run's counter was 0) of the run at ``run_dir``, from its
    :data:`LINEAGE` record: left by :func:`unpack` (an exact continuation: the counter goes on from the
    parent's) or by :func:`record_transfer` (weights transferred, counter from 0); none → a run from scratch."""
    import json

    lin = run_dir / LINEAGE
    if not lin.is_file():
        return [], 0.0
    rec = json.loads(lin.read_text())
    return list(rec["history"]), float(rec["kimg_total"]) - float(rec["kimg"])


def pack(src: str | Path, out: str | Path = EMBEDDED_PATH, commit: str | None = None, command: str | None = None,
         hydra_dir: str | Path | None = None) -> Path:
    """Pack the run at ``src`` (run folder or ``last.ckpt``) into a bundle at ``out`` (≤ :data:`MAX_BYTES`)."""
    from omegaconf import OmegaConf

    from reid_gan.gan.checkpoint import _plain
    from reid_gan.utils.io import atomic_torch_save, read_jsonl

    if not commit:
        raise ValueError("embed: --commit is required (the commit the pretraining ran from)")
    src = Path(src)
    ckpt_path = src / "checkpoints" / "last.ckpt" if src.is_dir() else src
    run_dir = ckpt_path.parent.parent
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"embed: no checkpoint at {ckpt_path}")
    ckpt = read_torch_file(ckpt_path, what="a train_gan checkpoint", error=ValueError)
    meta = ckpt.get("gan") if isinstance(ckpt, dict) else None
    if not isinstance(meta, dict) or "G_init_kwargs" not in meta:
        raise ValueError(f"embed: {ckpt_path} is not a train_gan checkpoint (no 'gan' record)")
    run_name = run_dir.name
    cfg, overrides = _hydra_record(run_dir, run_name, Path(hydra_dir) if hydra_dir else None)

    D_kwargs, D_class = meta.get("D_init_kwargs"), meta.get("D_class")
    if D_kwargs is None:
        if cfg is None:
            raise ValueError(f"embed: {ckpt_path} does not record D's constructor arguments and no Hydra record of "
                             f"run {run_name!r} was found; give --hydra-dir RUN/.hydra")
        node = OmegaConf.to_container(cfg.gan.D, resolve=True)
        D_class = node.pop("_target_")
        D_kwargs = node
    if command is None:
        if overrides is None:
            raise ValueError("embed: no --command given and no Hydra overrides.yaml found to rebuild it")
        command = "python -m reid_gan.train_gan " + " ".join(shlex.quote(o) for o in overrides)

    sd = ckpt["state_dict"]

    def part(prefix: str) -> dict:
        state = {k[len(prefix):]: v.clone() for k, v in sd.items() if k.startswith(prefix)}
        if not state:
            raise ValueError(f"embed: {ckpt_path} holds no {prefix}* weights")
        return state

    G_rec = {"class_name": meta.get("G_class", "reid_gan.gan.networks.Generator"),
             "init_kwargs": _plain(meta["G_init_kwargs"])}
    kimg = meta["cur_nimg"] / 1000
    hist = [r for r in read_jsonl(run_dir / "metrics.jsonl") if float(r.get("kimg", 0)) <= kimg + 1e-9] \
        if (run_dir / "metrics.jsonl").is_file() else []
    render, pids, n_train = _train_pids(cfg)
    history, kimg_before = _lineage(run_dir)
    prefixes = tuple(f"{n}." for n in _NETS)
    resume = {k: v for k, v in ckpt.items() if k != "state_dict"}
    resume["state_dict_rest"] = {k: v for k, v in sd.items() if not k.startswith(prefixes)}
    resume["state_dict_keys"] = list(sd)  # the checkpoint's key orders, for an identical rebuild
    resume["ckpt_keys"] = list(ckpt)
    obj = {
        "format": BUNDLE_FORMAT,
        "G": {**G_rec, "state_dict": part("G.")},
        "G_ema": {**G_rec, "state_dict": part("G_ema.")},
        "D": {"class_name": D_class, "init_kwargs": _plain(D_kwargs), "state_dict": part("D.")},
        "kimg": float(kimg), "cur_nimg": int(meta["cur_nimg"]), "kimg_total": float(kimg_before + kimg),
        "ada_p": float(sd["augment_pipe.p"]) if "augment_pipe.p" in sd else None,
        "metrics": _plain(hist),
        "provenance": {"command": command, "overrides": overrides, "commit": str(commit),
                       "source": str(ckpt_path.resolve()),
                       "packed_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                       "packed_with": "python -m reid_gan.gan.embed " + " ".join(shlex.quote(a) for a in sys.argv[1:])
                       if Path(sys.argv[0]).name in ("embed.py", "__main__.py") else "reid_gan.gan.embed.pack",
                       "torch": str(torch.__version__), "history": history},
        "data": {"name": cfg.data.get("name") if cfg is not None else None, "render": render,
                 "train_pids": pids, "num_train_images": n_train},
        "gan": _plain(OmegaConf.to_container(cfg.gan, resolve=False)) if cfg is not None else None,
        "resume": resume,
    }
    out = Path(out)
    atomic_torch_save(obj, out)
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        raise ValueError(f"embed: the packed file would be {size / 2**20:.1f} MB, over the {MAX_BYTES / 2**20:.0f} MB limit")
    read_bundle(out)  # round trip
    log.info("Packed %s (%.3f kimg; %.3f kimg in all over %d earlier run(s)) into %s (%.2f MB)", ckpt_path, kimg,
             kimg_before + kimg, len(history), out, size / 2**20)
    return out


def unpack(src: str | Path, run_dir: str | Path) -> Path:
    """Rebuild the ``checkpoints/last.ckpt`` a packed file was made from inside ``run_dir`` (a train_gan
    ``gan.out_dir``), with its ``metrics.jsonl`` and a :data:`LINEAGE` record, so that ``gan.resume=auto``
    continues that run exactly. Refuses a folder that already holds a checkpoint (nothing is overwritten)."""
    from reid_gan.utils.io import atomic_torch_save, atomic_write_json, atomic_write_text, jsonl_text

    path = resolve_resume(str(src))
    b = read_bundle(path)
    if not isinstance(b.get("resume"), dict):
        raise ValueError(f"unpack: {path} holds no training state (packed before the 'resume' section existed); "
                         f"fine-tune it with gan.resume={src} instead")
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    if ckpt.exists():
        raise FileExistsError(f"unpack: {ckpt} exists; continue it with gan.resume=auto, or unpack into an empty folder")
    res = dict(b["resume"])
    rest, order, top = res.pop("state_dict_rest"), res.pop("state_dict_keys"), res.pop("ckpt_keys")
    flat = dict(rest)
    for n in _NETS:
        flat.update({f"{n}.{k}": v for k, v in b[n]["state_dict"].items()})
    if set(flat) != set(order):
        raise ValueError(f"unpack: {path}: its networks and training state do not make up one checkpoint "
                         f"({len(set(order) ^ set(flat))} keys differ)")
    res["state_dict"] = {k: flat[k] for k in order}
    out = {k: res[k] for k in top}
    atomic_torch_save(out, ckpt)
    if b.get("metrics") and not (run_dir / "metrics.jsonl").exists():
        atomic_write_text(run_dir / "metrics.jsonl", jsonl_text(b["metrics"]))
    atomic_write_json(run_dir / LINEAGE, _parent_record(path, "continued", b))
    log.info("Unpacked %s (%.3f kimg) into %s: continue with gan.resume=auto and the command it was made by: %s",
             path, b["kimg"], ckpt, b["provenance"]["command"])
    return ckpt


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["unpack"]:
        up = argparse.ArgumentParser(prog="python -m reid_gan.gan.embed unpack",
                                     description="Rebuild a packed file's training checkpoint in a run folder, to "
                                                 "continue that pretraining with gan.resume=auto.")
        up.add_argument("file", help="the packed file, or 'embedded' (the package's own)")
        up.add_argument("run_dir", help="the run's gan.out_dir, e.g. ROOT/artifacts/gan/stylegan3-t-pretrain")
        a = up.parse_args(argv[1:])
        print(unpack(a.file, a.run_dir))
        return
    ap = argparse.ArgumentParser(description="Pack a train_gan run into the embedded pretrained-GAN file.")
    ap.add_argument("src", help="the run folder (gan.out_dir) or its checkpoints/last.ckpt")
    ap.add_argument("--out", default=str(EMBEDDED_PATH), help=f"output file (default: {EMBEDDED_PATH})")
    ap.add_argument("--commit", required=True, help="the commit the run was started from")
    ap.add_argument("--command", default=None, help="the command that ran it (default: rebuilt from Hydra's overrides)")
    ap.add_argument("--hydra-dir", default=None, help="the run's .hydra folder (default: found under <root>/logs)")
    args = ap.parse_args(argv)
    p = pack(args.src, args.out, args.commit, args.command, args.hydra_dir)
    obj = read_bundle(p)
    print(f"{p}: {p.stat().st_size / 2**20:.2f} MB, {obj['kimg']:.3f} kimg, commit {obj['provenance']['commit']}, "
          f"{len(obj['metrics'])} metric rows, command: {obj['provenance']['command']}")


if __name__ == "__main__":
    main()
