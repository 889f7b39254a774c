"""Training throughput of the GAN quickstart preset on CPU: images/s through one StyleGAN3 iteration.

One iteration = G step (non-saturating loss through ADA) + D step (fakes + reals) + lazy R1 every 16
iterations (timed on its own and amortised: / 16) + G_ema update + ADA bookkeeping — ``StyleGAN3Module.training_step`` without
Lightning's loop around it and without data loading. Baseline, in the same process: the same networks
with ADA and R1 off (a plain non-saturating GAN step), so the ratio is what StyleGAN3's regularisers cost.

    python benchmarks/gan_train.py [--iters 32] [--threads 2] [overrides ...]
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


def _module(cfg, ada: bool, r1: bool):
    from omegaconf import open_dict

    from reid_gan.train_gan import build_module, build_networks

    with open_dict(cfg):
        cfg.gan.aug = "fixed" if ada else "noaug"
        cfg.gan.augment_p = 0.3  # a typical mid-training ADA probability
        cfg.gan.loss.r1_gamma = cfg.gan.loss.r1_gamma if r1 else 0.0
    torch.manual_seed(0)
    G, D, kw, cls = build_networks(cfg)
    m = build_module(cfg, G, D, kw, cls)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=8, help="timed iterations per measurement")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides (default: experiment=quickstart)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
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
