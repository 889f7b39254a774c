"""Training throughput of the GAN quickstart preset on CPU: images/s through one StyleGAN3 iteration.

One iteration = G step (non-saturating loss through ADA) + D step (fakes + reals) + lazy R1 every 16
iterations (timed on its own and amortised: / 16) + G_ema update + ADA bookkeeping — ``StyleGAN3Module.training_step`` without
Lightning's loop around it and without data loading. Baseline, in the same process: the same networks
with ADA and R1 off (a plain non-saturating GAN step), so the ratio is what StyleGAN3's regularisers cost.

    python benchmarks/gan_train.py [--iters 32] [--threads 2] [overrides ...]
    python benchmarks/gan_train.py --profile [--iters 32] [--data-root data/synthetic-market] [overrides ...]

``--profile``: where the time of a training iteration goes, as shares — data loading (the train_gan data
set and loader on the configured dataset's ``bounding_box_train`` when it is rendered, else random
tensors, said so), G step, D step, lazy R1 (every 16th iteration, as in training), G_ema, the ADA ``p``
update, the rest of ``training_step`` — and, from a second run of the same iterations without ADA, the
share of the ADA augmentation itself (forward and backward, inside the G and D steps).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import reid_gan.config  # noqa: F401

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose(config_name="train_gan",
                       overrides=[f"paths.root_dir={tempfile.mkdtemp()}", "paths.output_dir=/tmp", *overrides])


def _module(cfg, ada: bool, r1: bool, controller: bool = False):
    from omegaconf import open_dict

    from reid_gan.gan.training import build_module, build_networks

    with open_dict(cfg):
        cfg.gan.module.aug = ("ada" if controller else "fixed") if ada else "noaug"
        cfg.gan.module.augment_p = 0.3  # a typical mid-training ADA probability
        cfg.gan.module.loss.r1_gamma = cfg.gan.module.loss.r1_gamma if r1 else 0.0
    torch.manual_seed(0)
    G, D = build_networks(cfg)
    m = build_module(cfg, G, D)
    opts = m.configure_optimizers()
    # Run training_step outside a Trainer: the three Lightning hooks it uses, made direct.
    m.optimizers = lambda: opts
    m.manual_backward = lambda loss: loss.backward()
    m.log = lambda *a, **k: None
    return m


def _seconds_per_iteration(m, batch: int, h: int, w: int, iters: int) -> float:
    """Mean seconds of one iteration, lazy R1 amortised exactly (its phase timed on its own, / r1_interval)."""
    real = torch.rand(batch, 3, h, w) * 2 - 1
    m.iteration = 1  # warm-up without R1
    m.training_step(real, 0)
    t0 = time.perf_counter()
    for _ in range(iters):
        m.iteration = 1  # not a multiple of r1_interval: G step + D step + EMA + ADA only
        m.training_step(real, 0)
    t_main = (time.perf_counter() - t0) / iters
    if m.r1_gamma <= 0:
        return t_main
    _, opt_d = m.optimizers()
    c = torch.zeros(batch, m.c_dim)
    t0 = time.perf_counter()
    for _ in range(max(1, iters // 2)):
        m.D.requires_grad_(True)
        loss, _ = m.loss.r1_loss(real, c, 0)
        opt_d.zero_grad(set_to_none=True)
        (loss * m.r1_interval).backward()
        opt_d.step()
    t_r1 = (time.perf_counter() - t0) / max(1, iters // 2)
    return t_main + t_r1 / m.r1_interval


def _loader(cfg):
    """train_gan's in-memory data set and loader (real images when the dataset is rendered)."""
    from reid_gan.gan.images import load_images
    from reid_gan.gan.training import ImageSet as _ImageSet

    g = cfg.gan
    h, w = (int(v) for v in g.resolution)
    root = Path(str(cfg.data.root))
    if (root / "bounding_box_train").is_dir():
        from reid_gan.data.leakage import generation_images_from_config

        images = load_images([str(s.path) for s in generation_images_from_config(cfg.data)], h, w)
        what = f"{images.shape[0]} real images from {root}"
    else:
        images = (torch.rand(256, 3, h, w) * 255).to(torch.uint8)
        what = f"random tensors ({root} is not rendered: `python -m reid_gan.make_dataset` renders it)"
    ds = _ImageSet(images, bool(g.mirror))
    return torch.utils.data.DataLoader(ds, batch_size=g.batch_size, sampler=torch.utils.data.RandomSampler(ds),
                                       drop_last=True, num_workers=int(cfg.data.num_workers)), what


def _profile_run(m, loader, iters: int) -> tuple[dict[str, float], float]:
    """Wall seconds per phase over ``iters`` iterations (after one warm-up), data loading included."""
    it = iter(loader)

    def batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:
            it = iter(loader)
            return next(it)

    m.training_step(batch(), 0)  # warm-up (iteration 0: includes R1)
    m.iteration = 1
    m.phase_seconds = {}
    data = step = 0.0
    for _ in range(iters):
        t0 = time.perf_counter()
        b = batch()
        t1 = time.perf_counter()
        m.training_step(b, 0)  # m.iteration advances: R1 runs on every 16th, as in training
        t2 = time.perf_counter()
        data, step = data + t1 - t0, step + t2 - t1
    phases = dict(m.phase_seconds)
    phases["rest of training_step"] = step - sum(phases.values())
    phases["data loading"] = data
    m.phase_seconds = None
    return phases, data + step


def profile(args) -> None:
    from tabulate import tabulate

    ov = ["experiment=quickstart", *([f"data.root={args.data_root}"] if args.data_root else []), *args.overrides]
    cfg = _compose(ov)
    loader, what = _loader(cfg)
    g = cfg.gan
    full = _module(_compose(ov), ada=True, r1=True, controller=True)  # ADA at p = 0.3, its controller on
    plain = _module(_compose(ov), ada=False, r1=True)
    phases, total = _profile_run(full, loader, args.iters)
    p_plain, _ = _profile_run(plain, loader, args.iters)
    aug = (phases["G"] + phases["D"]) - (p_plain["G"] + p_plain["D"])
    order = ["data loading", "G", "D", "R1", "EMA", "ADA p update", "rest of training_step"]
    names = {"G": "G step (mapping + synthesis + D on fakes, backward, Adam)",
             "D": "D step (fakes + reals, backward, Adam)", "R1": "lazy R1 (every 16th iteration)",
             "EMA": "G_ema update", "ADA p update": "ADA p controller"}
    rows = [[names.get(k, k), f"{100 * phases.get(k, 0.0) / total:.1f} %"] for k in order]
    rows.append(["  of which ADA augmentation (G + D steps with ADA p=0.3 minus without)", f"{100 * aug / total:.1f} %"])
    print(f"GAN iteration profile: {g.name} {int(g.resolution[0])}x{int(g.resolution[1])}, batch {g.batch_size}, "
          f"{args.threads} threads, {args.iters} iterations (R1 on every 16th), data: {what}")
    print(tabulate(rows, headers=["phase", "share of wall time"]))
    print("Shares, not absolute times: on a shared machine the seconds are not meaningful.")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=8, help="timed iterations per measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--profile", action="store_true", help="shares of the iteration's phases (see above)")
    ap.add_argument("--data-root", default=None, help="--profile: a rendered dataset to load real batches from")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides (default: experiment=quickstart)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile:
        return profile(args)
    cfg = _compose(["experiment=quickstart", *args.overrides])
    g = cfg.gan
    h, w = (int(v) for v in g.resolution)
    full = _module(cfg, ada=True, r1=True)
    base = _module(_compose(["experiment=quickstart", *args.overrides]), ada=False, r1=False)
    n_g = sum(p.numel() for p in full.G.parameters()) / 1e6
    n_d = sum(p.numel() for p in full.D.parameters()) / 1e6
    ips_full = g.batch_size / _seconds_per_iteration(full, g.batch_size, h, w, args.iters)
    ips_base = g.batch_size / _seconds_per_iteration(base, g.batch_size, h, w, args.iters)
    from tabulate import tabulate

    print(f"GAN quickstart preset: {g.name} {h}x{w}, batch {g.batch_size}, G {n_g:.2f} M / D {n_d:.2f} M params, "
          f"{args.threads} threads, {args.iters} timed iterations")
    print(tabulate([["StyleGAN3 iteration (G + D + lazy R1 /16 + EMA + ADA p=0.3)", f"{ips_full:.1f}"],
                    ["baseline: plain GAN step (no ADA, no R1)", f"{ips_base:.1f}"]],
                   headers=["step", "images/s"]))
    print(f"ratio full / baseline: {ips_full / ips_base:.2f}x  "
          f"(seconds per kimg: {1000 / ips_full:.0f} full, {1000 / ips_base:.0f} baseline)")


if __name__ == "__main__":
    main()
