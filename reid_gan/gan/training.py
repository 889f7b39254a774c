"""What the train_gan stage is built from: where a run starts (``gan.resume``), the in-memory image set and
its loader, identity labels, G/D and the Lightning system from ``gan.*``, weight transfer from a snapshot /
packed file / NVIDIA ``.pkl``, the snapshot metric (FID/KID with Inception weights, else SWD), the tick
callback with its fixed latents, the trainer, and the metrics a run reports."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig

from reid_gan.utils.config import to_plain
from reid_gan.utils.image import to_uint8
from reid_gan.utils.logging import get_logger
from reid_gan.utils.weights import load_strict, read_torch_file

log = get_logger(__name__)

__all__ = ["ImageSet", "identity_labels", "set_c_dim", "build_network", "build_networks", "build_module",
           "transfer_weights", "build_metric", "MetricOnUint8", "resume_source", "reached_kimg", "history_metrics",
           "training_set", "build_loader", "build_tick_callback", "build_trainer"]


class ImageSet(torch.utils.data.Dataset):
    """uint8 images held in memory → float [-1, 1], randomly x-flipped when ``mirror`` (NVIDIA's --mirror);
    with ``labels`` [N, c_dim] each item is ``(image, label)``."""

    def __init__(self, images: torch.Tensor, mirror: bool, labels: torch.Tensor | None = None):
        self.images, self.mirror, self.labels = images, mirror, labels

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, key):
        from reid_gan.utils.resumable import split_key

        i, flip = split_key(key, self.mirror)  # a StreamSampler item (index, flip), or a plain index
        x = self.images[i].float() / 127.5 - 1
        if flip:
            x = x.flip(-1)
        return x if self.labels is None else (x, self.labels[i])


def identity_labels(pids: list[int]) -> tuple[torch.Tensor, list[int]]:
    """One-hot identity labels [N, n_ids] (columns in sorted pid order) and that order (label → pid)."""
    order = sorted(set(int(p) for p in pids))
    col = {p: i for i, p in enumerate(order)}
    labels = torch.zeros(len(pids), len(order))
    labels[torch.arange(len(pids)), torch.tensor([col[int(p)] for p in pids])] = 1
    return labels, order


def set_c_dim(cfg: DictConfig, n_ids: int) -> None:
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
    return to_plain(node) if isinstance(node, (DictConfig, dict)) else copy.deepcopy(node)


def build_network(node: Any, **overrides: Any) -> torch.nn.Module:
    """A network from its ``_target_`` node (``hydra.utils.instantiate``), carrying ``class_name`` and the plain
    ``init_kwargs`` it was built with: what a snapshot records to rebuild it without the config."""
    kwargs = {**_container(node), **overrides}
    class_name = kwargs.pop("_target_")
    net = hydra.utils.instantiate({"_target_": class_name, **kwargs}, _convert_="all")
    net.class_name, net.init_kwargs = class_name, kwargs
    return net


def build_networks(cfg: DictConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """G and D from ``gan.G`` / ``gan.D``. G's ``magnitude_ema_beta: null`` follows the batch size as NVIDIA's
    train.py sets it (``0.5 ** (batch_size / 20000)``)."""
    g = cfg.gan
    extra = {}
    if "magnitude_ema_beta" in g.G and g.G.magnitude_ema_beta is None:
        extra["magnitude_ema_beta"] = 0.5 ** (g.batch_size / (20 * 1e3))
    return build_network(g.G, **extra), build_network(g.D)


def build_module(cfg: DictConfig, G: torch.nn.Module, D: torch.nn.Module, label_pool: torch.Tensor | None = None):
    """The training system from ``gan.module`` (``hydra.utils.instantiate``) with the networks, the schedule
    (``gan.batch_size``, ``kimg``, ``tick_kimg``, ``snap``) and the label pool; its derived defaults are
    resolved in :class:`reid_gan.gan.module.StyleGAN3Module`."""
    g = cfg.gan
    return hydra.utils.instantiate(g.module, G=G, D=D, batch_size=int(g.batch_size), kimg=float(g.kimg),
                                   tick_kimg=float(g.tick_kimg), snap=int(g.snap), label_pool=label_pool)


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
        obj = read_torch_file(path, "gan.resume", error=ValueError)  # weights-only: no code from elsewhere runs
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


def build_metric(cfg: DictConfig, reals_uint8: torch.Tensor):
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


class MetricOnUint8:
    """Adapts generated [-1, 1] images to what each metric expects (uint8 for FID/KID)."""

    def __init__(self, metric):
        self.metric = metric

    def __call__(self, fakes: torch.Tensor) -> dict[str, float]:
        if getattr(self.metric, "wants_uint8", False):
            return self.metric(to_uint8(fakes))
        return self.metric(fakes.clamp(-1, 1))


# ------------------------------------------------------------------------------------------- the run
def resume_source(g: DictConfig, out_dir: Path) -> tuple[Path | None, Path | None]:
    """``(Lightning checkpoint to continue, weights file to transfer)`` for ``gan.resume`` (at most one set):
    ``auto`` continues ``<out_dir>/checkpoints/last.ckpt`` when there is one; a ``.ckpt`` is continued, a
    snapshot ``.pt`` / packed file / NVIDIA ``.pkl`` transferred."""
    last = out_dir / "checkpoints" / "last.ckpt"
    if g.resume == "auto":
        if last.exists():
            log.info("gan.resume=auto: continuing from %s", last)
            return last, None
        log.info("gan.resume=auto: no checkpoint at %s, starting from scratch", last)
        return None, None
    if not g.resume:
        return None, None
    from reid_gan.gan.embed import resolve_resume

    rp = resolve_resume(str(g.resume))
    if not rp.exists():
        raise FileNotFoundError(f"gan.resume: file not found: {rp}")
    if rp.suffix == ".ckpt":
        return rp, None
    if rp.suffix in (".pkl", ".pt"):
        return None, rp
    raise ValueError(f"gan.resume: {rp} is neither a .ckpt, a snapshot .pt nor an NVIDIA .pkl")


def reached_kimg(ckpt_path: Path, g: DictConfig) -> float | None:
    """The kimg a train_gan checkpoint reached when that is already ``gan.kimg`` (nothing to train), else None."""
    # weights-only: a checkpoint from elsewhere cannot run code here
    meta = read_torch_file(ckpt_path, "gan.resume", what="a weights-only checkpoint", error=ValueError)
    if not isinstance(meta, dict) or not isinstance(meta.get("gan"), dict):
        raise ValueError(f"gan.resume: {ckpt_path} is not a train_gan checkpoint (no 'gan' record)")
    meta = meta["gan"]
    if meta.get("cur_nimg", 0) >= g.kimg * 1000:
        log.info("%s already reached %.3f kimg (gan.kimg=%s): nothing to train", ckpt_path,
                 meta["cur_nimg"] / 1000, g.kimg)
        return meta["cur_nimg"] / 1000
    return None


def history_metrics(out_dir: Path, kimg: float) -> tuple[dict[str, Any], list[dict]]:
    """The run's last ``metric/…`` values (``metrics.jsonl``) plus ``train/kimg``, and the whole history."""
    from reid_gan.utils.io import read_jsonl

    hist = read_jsonl(out_dir / "metrics.jsonl")
    metrics: dict[str, Any] = {k: v for k, v in (hist[-1] if hist else {}).items() if k.startswith("metric/")}
    metrics["train/kimg"] = kimg
    return metrics, hist


def training_set(cfg: DictConfig, out_dir: Path) -> tuple[torch.Tensor, torch.Tensor | None, list[int] | None]:
    """``bounding_box_train`` of ``data`` (through the leakage guard) in memory at the GAN resolution, as
    uint8 ``[N, 3, H, W]``; writes ``grids/reals.png``. With ``gan.conditional``: one-hot identity labels
    and their pid order (and G/D's ``c_dim`` set to match), else ``None, None``."""
    from reid_gan.data.leakage import generation_images_from_config
    from reid_gan.gan.images import load_images
    from reid_gan.report.grids import save_grid

    g = cfg.gan
    height, width = (int(v) for v in g.resolution)
    samples = generation_images_from_config(cfg.data)
    if g.max_images is not None and g.max_images > 0:
        samples = samples[: g.max_images]
    kept: list[int] = []
    images = load_images([str(s.path) for s in samples], height, width, on_bad_image=str(cfg.data.on_bad_image),
                         kept=kept)
    samples = [samples[i] for i in kept]  # without any skipped image (labels stay aligned with images)
    log.info("GAN training set: %d images at %dx%d from %s", images.shape[0], height, width, cfg.data.root)
    save_grid(out_dir / "grids" / "reals.png", images[: g.grid.rows * g.grid.cols], g.grid.cols, png_compression=None)
    labels = c_pids = None
    if g.conditional:
        labels, c_pids = identity_labels([int(s.pid) for s in samples])
        set_c_dim(cfg, len(c_pids))
        log.info("Conditional GAN (gan.conditional=true): c_dim = %d one-hot identity labels", len(c_pids))
    return images, labels, c_pids


def build_loader(cfg: DictConfig, images: torch.Tensor, labels: torch.Tensor | None,
                 position=lambda: 0) -> torch.utils.data.DataLoader:
    """Endless random batches of ``gan.batch_size`` (a seeded permutation per pass over the set, x-flips
    drawn with it): the batch after ``position()`` images is the same whether or not the run was resumed
    (:class:`reid_gan.utils.resumable.StreamSampler`; ``position`` reads the module's restored counter)."""
    from reid_gan.utils.resumable import StreamSampler

    g = cfg.gan
    ds = ImageSet(images, bool(g.mirror), labels)
    sampler = StreamSampler(len(ds), int(cfg.seed), bool(g.mirror), position)
    # its own generator: making the iterator (again, after a resume) draws a worker seed, not from the global one
    return torch.utils.data.DataLoader(ds, batch_size=g.batch_size, sampler=sampler, drop_last=True,
                                       generator=torch.Generator().manual_seed(int(cfg.seed)),
                                       num_workers=int(cfg.data.num_workers),
                                       persistent_workers=int(cfg.data.num_workers) > 0)


def build_tick_callback(cfg: DictConfig, module, images: torch.Tensor, out_dir: Path, conditional: bool):
    """The :class:`GANTickCallback` with the snapshot metric and fixed latents (and labels), the same every
    snapshot: ``metrics.num_images`` codes of ``metrics.seed`` and the grid's of ``gan.grid.seed``."""
    from reid_gan.gan.callbacks import GANTickCallback

    g = cfg.gan
    metric = MetricOnUint8(build_metric(cfg, images))
    gen = torch.Generator().manual_seed(int(cfg.metrics.seed))
    fake_z = torch.randn(int(cfg.metrics.num_images), module.z_dim, generator=gen)
    grid_z = torch.randn(g.grid.rows * g.grid.cols, module.z_dim,
                         generator=torch.Generator().manual_seed(int(g.grid.seed)))
    fake_c = grid_c = None
    if conditional:  # fixed labels drawn from the data, the same every snapshot
        fake_c = module._c(fake_z.shape[0], torch.Generator().manual_seed(int(cfg.metrics.seed)))
        grid_c = module._c(grid_z.shape[0], torch.Generator().manual_seed(int(g.grid.seed)))
    return GANTickCallback(out_dir, metric, fake_z, grid_z, int(g.grid.cols), int(cfg.metrics.batch_size),
                           fake_c, grid_c)


def build_trainer(cfg: DictConfig, out_dir: Path, tick_cb):
    """The Lightning trainer of a GAN run: unbounded epochs (the module stops at ``gan.kimg``), the configured
    loggers and callbacks, the NaN/inf guard before the tick callback (a bad step never reaches
    ``last.ckpt``), atomic checkpoint writes."""
    from reid_gan.utils.callbacks import AtomicCheckpointIO, FiniteLossGuard
    from reid_gan.utils.instantiate import instantiate_callbacks, instantiate_loggers

    loggers = instantiate_loggers(cfg.get("logger"))
    guard = FiniteLossGuard(last_checkpoint=out_dir / "checkpoints" / "last.ckpt")
    callbacks = instantiate_callbacks(cfg.get("callbacks")) + [guard, tick_cb]
    return hydra.utils.instantiate(cfg.trainer, max_epochs=-1, max_steps=-1, enable_checkpointing=False,
                                   logger=loggers or False, callbacks=callbacks, plugins=[AtomicCheckpointIO()],
                                   _convert_="all")
