"""``python -m reid_gan.train_gan``: StyleGAN3 on the leakage-guarded ``bounding_box_train`` of ``data``.

Writes under ``gan.out_dir`` (``${paths.artifacts}/gan/${gan.run_name}``; stable across runs so that
``gan.resume=auto`` finds it):

* ``checkpoints/last.ckpt`` — Lightning checkpoint, rewritten at every tick (resume after a kill);
* ``network-snapshot-<kimg>.pt`` — G_ema snapshots every ``gan.snap`` ticks and at the end
  (``{'init_kwargs', 'state_dict', ...}``, read with ``reid_gan.gan.load_generator``);
* ``metrics.jsonl`` / ``metrics.csv`` — the metric history (``metric/swd``, or ``metric/fid`` + ``metric/kid``);
* ``grids/fakes-<kimg>.png`` (fixed seeds) and ``grids/reals.png``.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage
from reid_gan.utils.weights import load_strict

log = get_logger(__name__)

__all__ = ["train_gan", "build_networks", "build_module", "GANTickCallback", "main"]


class _ImageSet(torch.utils.data.Dataset):
    """uint8 images held in memory → float [-1, 1], randomly x-flipped when ``mirror`` (NVIDIA's --mirror);
    with ``labels`` [N, c_dim] each item is ``(image, label)``."""

    def __init__(self, images: torch.Tensor, mirror: bool, labels: torch.Tensor | None = None):
        self.images, self.mirror, self.labels = images, mirror, labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int):
        x = self.images[i].float() / 127.5 - 1
        if self.mirror and torch.rand(()) < 0.5:
            x = x.flip(-1)
        return x if self.labels is None else (x, self.labels[i])


def identity_labels(pids: list[int]) -> tuple[torch.Tensor, list[int]]:
    """One-hot identity labels [N, n_ids] (columns in sorted pid order) and that order (label → pid)."""
    order = sorted(set(int(p) for p in pids))
    col = {p: i for i, p in enumerate(order)}
    labels = torch.zeros(len(pids), len(order))
    labels[torch.arange(len(pids)), torch.tensor([col[int(p)] for p in pids])] = 1
    return labels, order


def _set_c_dim(cfg: DictConfig, n_ids: int) -> None:
    """``gan.conditional=true``: G and D get ``c_dim`` = the number of training identities."""
    from omegaconf import open_dict

    for net in ("G", "D"):
        given = int(cfg.gan[net].get("c_dim", 0) or 0)
        if given not in (0, n_ids):
            raise ValueError(f"gan.{net}.c_dim: {given}, but gan.conditional=true labels the {n_ids} training "
                             "identities (one-hot); leave c_dim at 0 and it is set to match")
        with open_dict(cfg):
            cfg.gan[net].c_dim = n_ids


def _container(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else copy.deepcopy(node)


def build_networks(cfg: DictConfig) -> tuple[torch.nn.Module, torch.nn.Module, dict, str]:
    """G and D from ``gan.G`` / ``gan.D`` (``hydra.utils.instantiate``); returns G's plain init kwargs and class."""
    g = cfg.gan
    G_node = _container(g.G)
    if "magnitude_ema_beta" in G_node and G_node["magnitude_ema_beta"] is None:
        G_node["magnitude_ema_beta"] = 0.5 ** (g.batch_size / (20 * 1e3))
    G_class = G_node.pop("_target_")
    G = hydra.utils.instantiate({"_target_": G_class, **G_node}, _convert_="all")
    D = hydra.utils.instantiate(_container(g.D), _convert_="all")
    return G, D, G_node, G_class


def build_module(cfg: DictConfig, G: torch.nn.Module, D: torch.nn.Module, G_kwargs: dict, G_class: str,
                 label_pool: torch.Tensor | None = None):
    from reid_gan.gan.module import StyleGAN3Module

    g = cfg.gan
    D_kwargs = _container(g.D)
    D_class = D_kwargs.pop("_target_")
    augment_pipe = None
    if g.aug != "noaug":
        augment_pipe = hydra.utils.instantiate(g.augment, p=float(g.augment_p))
    blur_fade = g.loss.blur_fade_kimg
    if blur_fade is None:
        blur_fade = g.batch_size * 200 / 32 if g.loss.blur_init_sigma > 0 else 0.0
    ema_kimg = g.ema_kimg if g.ema_kimg is not None else g.batch_size * 10 / 32
    return StyleGAN3Module(
        G, D, hydra.utils.instantiate(g.G_opt), hydra.utils.instantiate(g.D_opt), batch_size=g.batch_size,
        r1_gamma=g.loss.r1_gamma, r1_interval=g.loss.r1_interval, style_mixing_prob=g.loss.style_mixing_prob,
        blur_init_sigma=g.loss.blur_init_sigma, blur_fade_kimg=blur_fade, ema_kimg=ema_kimg,
        ema_rampup=g.ema_rampup, augment_pipe=augment_pipe,
        ada_target=g.ada_target if g.aug == "ada" else None, ada_interval=g.ada_interval, ada_kimg=g.ada_kimg,
        kimg=g.kimg, tick_kimg=g.tick_kimg, snap=g.snap, G_init_kwargs=G_kwargs, G_class=G_class,
        z_dim=G_kwargs.get("z_dim"), c_dim=int(G_kwargs.get("c_dim", 0) or 0), D_init_kwargs=D_kwargs,
        D_class=D_class, label_pool=label_pool)


def _check_geometry(src: torch.nn.Module, cfg: DictConfig, what: str) -> None:
    want_res = [int(v) for v in cfg.gan.resolution]
    res = getattr(src, "img_resolution", None)
    if res is not None:
        got = [int(res), int(res)] if isinstance(res, (int, float)) else [int(v) for v in res]
        if got != want_res:
            raise ValueError(f"gan.resume: {what} is {got[0]}x{got[1]} but gan.resolution is "
                             f"{want_res[0]}x{want_res[1]} (height x width); set gan.resolution to match")
    ch = getattr(src, "img_channels", None)
    want_ch = int(cfg.gan.G.img_channels)
    if ch is not None and int(ch) != want_ch:
        raise ValueError(f"gan.resume: {what} has {ch} image channels but gan.G.img_channels is {want_ch}")


def _check_kwargs(module, obj: dict, path: Path) -> None:
    """The config's G/D constructor arguments against a pretrained file's: name every differing key."""
    diffs = []
    for net, own in (("G", module.G_init_kwargs), ("D", module.D_init_kwargs)):
        theirs = obj[net]["init_kwargs"]
        for k in sorted(set(own or {}) | set(theirs)):
            if k == "magnitude_ema_beta":  # follows the batch size; not part of the weights' shape
                continue
            a, b = (own or {}).get(k), theirs.get(k)
            if isinstance(a, tuple):
                a = list(a)
            if a != b:
                diffs.append(f"gan.{net}.{k}: config {a!r}, {path.name} {b!r}")
    if diffs:
        raise ValueError(f"gan.resume: {path} was trained with other network settings than the config; set them to "
                         "match (or choose a matching preset): " + "; ".join(diffs))


def transfer_weights(module, path: Path, cfg: DictConfig) -> None:
    """Start from a snapshot ``.pt`` (G and G_ema), a packed pretrained file (G, G_ema, D; e.g.
    ``gan.resume=embedded``) or an NVIDIA ``.pkl`` (G, D, G_ema); counters start at 0."""
    from reid_gan.gan.embed import bundle_network, is_bundle

    obj = None
    if path.suffix == ".pt":
        obj = torch.load(path, map_location="cpu", weights_only=True)
    if path.suffix == ".pkl":
        from reid_gan.gan.nvlabs import load_pkl

        nets = load_pkl(path)
        log.info("Transfer learning from NVIDIA pickle %s (holds %s)", path, sorted(nets))
    elif is_bundle(obj):
        _check_kwargs(module, obj, path)
        nets = {k: bundle_network(obj, k, str(path)) for k in ("G", "G_ema", "D")}
        prov = obj.get("provenance", {})
        log.info("Transfer learning from the pretrained file %s (G, G_ema and D; pretrained %.1f kimg at commit %s "
                 "by `%s`)", path, obj.get("kimg", float("nan")), str(prov.get("commit"))[:12], prov.get("command"))
    else:
        from reid_gan.gan.checkpoint import load_generator

        G = load_generator(path)
        nets = {"G": G, "G_ema": G}
        log.info("Transfer learning from generator snapshot %s (D starts from scratch)", path)
    if "G" not in nets and "G_ema" in nets:
        nets["G"] = nets["G_ema"]
    if "G_ema" not in nets and "G" in nets:
        nets["G_ema"] = nets["G"]
    for name in ("G", "G_ema", "D"):
        if name in nets:
            _check_geometry(nets[name], cfg, f"{path.name}'s {name}")
            load_strict(getattr(module, name), nets[name].state_dict(), f"gan.resume: {path.name}'s {name}")
        else:
            log.warning("%s holds no %s: it starts from scratch", path, name)


class GANTickCallback:
    """Acts on the module's tick events: progress line, ``last.ckpt``, snapshots, metric, sample grids."""

    def __new__(cls, *args, **kwargs):  # build as a real Lightning Callback lazily (import cost)
        import pytorch_lightning as pl

        class _CB(pl.Callback):
            def __init__(self, out_dir: Path, metric, fake_z: torch.Tensor, grid_z: torch.Tensor, grid_cols: int,
                         metric_batch: int, fake_c: torch.Tensor | None = None, grid_c: torch.Tensor | None = None):
                self.out_dir, self.metric = Path(out_dir), metric
                self.fake_z, self.grid_z, self.grid_cols, self.metric_batch = fake_z, grid_z, grid_cols, metric_batch
                self.fake_c, self.grid_c = fake_c, grid_c  # fixed labels (conditional runs), else None
                self.tick_time = time.time()
                self.history: list[dict] = []

            def _generate(self, pl_module, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
                out = []
                for i in range(0, z.shape[0], self.metric_batch):
                    ci = None if c is None else c[i:i + self.metric_batch].to(pl_module.device)
                    out.append(pl_module.generate(z[i:i + self.metric_batch].to(pl_module.device), c=ci).cpu())
                return torch.cat(out)

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                ev = pl_module.tick_event
                if ev is None:
                    return
                from reid_gan.gan.checkpoint import save_snapshot, snapshot_name
                from reid_gan.gan.images import save_grid, to_uint8
                from reid_gan.utils.io import append_jsonl, atomic_path, atomic_write_text, read_jsonl

                now = time.time()
                s = pl_module.last_stats
                log.info("tick %d  kimg %.3f  sec/tick %.1f  loss_G %.3f  loss_D %.3f  ada_p %.3f",
                         ev["tick"], ev["cur_nimg"] / 1000, now - self.tick_time, s.get("train/loss_G", math.nan),
                         s.get("train/loss_D", math.nan), s.get("train/ada_p", 0.0))
                self.tick_time = now
                if ev["snapshot"]:
                    kimg = ev["cur_nimg"] / 1000
                    snap = save_snapshot(pl_module.G_ema, pl_module.G_init_kwargs,
                                         self.out_dir / snapshot_name(ev["cur_nimg"]), pl_module.G_class,
                                         ev["cur_nimg"])
                    t0 = time.time()
                    fakes = self._generate(pl_module, self.fake_z, self.fake_c)
                    values = self.metric(fakes)
                    rec = {"tick": ev["tick"], "kimg": kimg, "cur_nimg": ev["cur_nimg"], "snapshot": snap.name,
                           "metric_seconds": round(time.time() - t0, 3),
                           **{f"metric/{k}": float(v) for k, v in values.items()}}
                    append_jsonl(self.out_dir / "metrics.jsonl", [rec])
                    rows = read_jsonl(self.out_dir / "metrics.jsonl")
                    keys = sorted({k for r in rows for k in r})
                    csv = ",".join(keys) + "\n" + "".join(",".join(str(r.get(k, "")) for k in keys) + "\n" for r in rows)
                    atomic_write_text(self.out_dir / "metrics.csv", csv)
                    grid = to_uint8(self._generate(pl_module, self.grid_z, self.grid_c))
                    save_grid(grid, self.out_dir / "grids" / f"fakes-{kimg:010.3f}.png", self.grid_cols)
                    main = {k: v for k, v in rec.items() if k.startswith("metric/")}
                    log.info("snapshot %s  %s", snap.name, "  ".join(f"{k} {v:.4f}" for k, v in main.items()))
                    for lg in trainer.loggers:
                        lg.log_metrics({**main, "train/kimg": kimg}, step=pl_module.iteration)
                    self.history.append(rec)
                ckpt = self.out_dir / "checkpoints" / "last.ckpt"
                with atomic_path(ckpt) as tmp:
                    trainer.save_checkpoint(str(tmp), weights_only=False)  # full state: resumable
                if ev["done"]:
                    trainer.should_stop = True

        return _CB(*args, **kwargs)


def _build_metric(cfg: DictConfig, reals_uint8: torch.Tensor):
    m = cfg.metrics
    n_real = reals_uint8.shape[0] if m.num_real is None else min(int(m.num_real), reals_uint8.shape[0])
    # A fixed random subset (files are sorted by identity: the first n would cover only a few people).
    pick = torch.randperm(reals_uint8.shape[0], generator=torch.Generator().manual_seed(int(m.seed)))[:n_real]
    reals = reals_uint8[pick.sort().values]
    if m.inception:
        from reid_gan.metrics.fid import FIDKIDMetric

        log.info("Metric: FID and KID with Inception weights from %s (%d real, %d generated images)",
                 m.inception, n_real, m.num_images)
        return FIDKIDMetric(m.inception, reals, batch_size=m.batch_size, kid_subsets=m.kid_subsets,
                            kid_subset_size=m.kid_subset_size, seed=m.seed)
    from reid_gan.metrics.swd import SWDMetric

    log.info("Metric: no Inception weights given (metrics.inception=null): reporting the sliced Wasserstein "
             "distance on Laplacian-pyramid patches as metric/swd (x1e3, lower is better), not FID "
             "(%d real, %d generated images)", n_real, m.num_images)
    return SWDMetric(reals.float() / 127.5 - 1, min_res=m.swd.min_res, per_image=m.swd.per_image,
                     num_dirs=m.swd.num_dirs, num_repeats=m.swd.num_repeats, seed=m.seed)


class _MetricOnUint8:
    """Adapts generated [-1, 1] images to what each metric expects (uint8 for FID/KID)."""

    def __init__(self, metric):
        self.metric = metric

    def __call__(self, fakes: torch.Tensor) -> dict[str, float]:
        from reid_gan.gan.images import to_uint8

        if getattr(self.metric, "wants_uint8", False):
            return self.metric(to_uint8(fakes))
        return self.metric(fakes.clamp(-1, 1))


def train_gan(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    import pytorch_lightning as pl

    from reid_gan.gan.images import load_images, save_grid
    from reid_gan.utils.instantiate import instantiate_callbacks, instantiate_loggers
    from reid_gan.utils.io import read_jsonl

    g = cfg.gan
    pl.seed_everything(int(cfg.seed), workers=True)
    out_dir = Path(g.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = (int(v) for v in g.resolution)

    # Where to start from.
    last = out_dir / "checkpoints" / "last.ckpt"
    ckpt_path = None
    transfer = None
    if g.resume == "auto":
        if last.exists():
            ckpt_path = last
            log.info("gan.resume=auto: continuing from %s", last)
        else:
            log.info("gan.resume=auto: no checkpoint at %s, starting from scratch", last)
    elif g.resume:
        from reid_gan.gan.embed import resolve_resume

        rp = resolve_resume(str(g.resume))
        if not rp.exists():
            raise FileNotFoundError(f"gan.resume: file not found: {rp}")
        if rp.suffix == ".ckpt":
            ckpt_path = rp
        elif rp.suffix in (".pkl", ".pt"):
            transfer = rp
        else:
            raise ValueError(f"gan.resume: {rp} is neither a .ckpt, a snapshot .pt nor an NVIDIA .pkl")
    if ckpt_path is not None:
        meta = torch.load(ckpt_path, map_location="cpu", weights_only=True).get("gan", {})
        if meta.get("cur_nimg", 0) >= g.kimg * 1000:
            log.info("%s already reached %.3f kimg (gan.kimg=%s): nothing to train", ckpt_path,
                     meta["cur_nimg"] / 1000, g.kimg)
            hist = read_jsonl(out_dir / "metrics.jsonl")
            metrics = {k: v for k, v in (hist[-1] if hist else {}).items() if k.startswith("metric/")}
            metrics["train/kimg"] = meta["cur_nimg"] / 1000
            return metrics, {"out_dir": out_dir, "history": hist}

    # Data: bounding_box_train only (through the leakage guard), in memory at the GAN resolution.
    from reid_gan.data.leakage import generation_images_from_config

    samples = generation_images_from_config(cfg.data)
    if g.max_images is not None and g.max_images > 0:
        samples = samples[: g.max_images]
    images = load_images([str(s.path) for s in samples], height, width)
    log.info("GAN training set: %d images at %dx%d from %s", images.shape[0], height, width, cfg.data.root)
    save_grid(images[: g.grid.rows * g.grid.cols], out_dir / "grids" / "reals.png", g.grid.cols)
    labels = c_pids = None
    if g.conditional:
        labels, c_pids = identity_labels([int(s.pid) for s in samples])
        _set_c_dim(cfg, len(c_pids))
        log.info("Conditional GAN (gan.conditional=true): c_dim = %d one-hot identity labels", len(c_pids))
    ds = _ImageSet(images, bool(g.mirror), labels)
    if len(ds) >= g.batch_size:
        sampler = torch.utils.data.RandomSampler(ds)
    else:
        sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=g.batch_size)
    loader = torch.utils.data.DataLoader(ds, batch_size=g.batch_size, sampler=sampler, drop_last=True,
                                         num_workers=int(cfg.data.num_workers),
                                         persistent_workers=int(cfg.data.num_workers) > 0)

    # Networks and the system.
    G, D, G_kwargs, G_class = build_networks(cfg)
    module = build_module(cfg, G, D, G_kwargs, G_class, label_pool=labels)
    module.c_pids = c_pids
    if transfer is not None:
        transfer_weights(module, transfer, cfg)
    n_g = sum(p.numel() for p in G.parameters())
    n_d = sum(p.numel() for p in D.parameters())
    log.info("G: %s (%.2f M parameters), D: %s (%.2f M parameters)", G_class, n_g / 1e6, g.D._target_, n_d / 1e6)

    # Metric + fixed latents (the same every snapshot).
    metric = _MetricOnUint8(_build_metric(cfg, images))
    gen = torch.Generator().manual_seed(int(cfg.metrics.seed))
    fake_z = torch.randn(int(cfg.metrics.num_images), module.z_dim, generator=gen)
    grid_z = torch.randn(g.grid.rows * g.grid.cols, module.z_dim,
                         generator=torch.Generator().manual_seed(int(g.grid.seed)))
    fake_c = grid_c = None
    if labels is not None:  # fixed labels drawn from the data, the same every snapshot
        fake_c = module._c(fake_z.shape[0], torch.Generator().manual_seed(int(cfg.metrics.seed)))
        grid_c = module._c(grid_z.shape[0], torch.Generator().manual_seed(int(g.grid.seed)))
    tick_cb = GANTickCallback(out_dir, metric, fake_z, grid_z, int(g.grid.cols), int(cfg.metrics.batch_size),
                              fake_c, grid_c)

    loggers = instantiate_loggers(cfg.get("logger"))
    callbacks = instantiate_callbacks(cfg.get("callbacks")) + [tick_cb]
    trainer = hydra.utils.instantiate(cfg.trainer, max_epochs=-1, max_steps=-1, enable_checkpointing=False,
                                      logger=loggers or False, callbacks=callbacks, _convert_="all")
    t0 = time.time()
    # weights_only: a checkpoint is read as tensors and plain values only, never unpickled code.
    trainer.fit(module, train_dataloaders=loader, ckpt_path=str(ckpt_path) if ckpt_path else None,
                weights_only=True)
    seconds = time.time() - t0

    hist = read_jsonl(out_dir / "metrics.jsonl")
    metrics: dict[str, Any] = {k: v for k, v in (hist[-1] if hist else {}).items() if k.startswith("metric/")}
    metrics["train/kimg"] = module.cur_nimg / 1000
    metrics["train/seconds"] = seconds
    log.info("Finished at %.3f kimg in %.1f s; output in %s", module.cur_nimg / 1000, seconds, out_dir)
    return metrics, {"module": module, "trainer": trainer, "out_dir": out_dir, "history": hist}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_gan")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, train_gan)


if __name__ == "__main__":
    main()
