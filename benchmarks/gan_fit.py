"""Can the quickstart's StyleGAN3 draw a person at all, given time? A fit without a GAN.

The generator of a preset (``experiment=quickstart`` by default: StyleGAN3-T 64x32, 4 layers, 64 channels)
is fitted *directly* to a few real training images: every image gets its own W+ code and the synthesis
network's weights and the codes are trained together by L1 (a GLO fit, Bojanowski et al. 2018), for a
fixed number of Adam steps. No discriminator, no sampling: this is the easiest task a generator can be
given, so a network that cannot draw legs here will not draw them in a GAN of the same length either.
Baseline, in the same process: a plain convolutional decoder of a similar parameter count (nearest 2x
upsampling, two 3x3 convolutions per scale, leaky ReLU) fitted the same way to the same images.

Prints L1 (images in [-1, 1]) after the steps for both, seconds per step, and the ratios; ``--out`` writes a
PNG grid (real | StyleGAN3 fit | decoder fit) to look at.

    python benchmarks/gan_fit.py [--steps 300] [--images 32] [--lr 0.002] [--decoder-lr LR] [--data ROOT] [--out fit.png] [overrides ...]

``--data``: a dataset root in Market layout (default: the quickstart dataset, rendered into a temporary
folder). The overrides are train_gan's (for instance ``gan.G.num_layers=8`` or ``gan.G.first_cutoff=2``, the
shape before 17f4540; ``+key=value`` for a key the preset does not set).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import reid_gan.config  # noqa: F401

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose(config_name="train_gan", overrides=[f"paths.root_dir={tempfile.mkdtemp()}",
                                                           "paths.output_dir=/tmp", *overrides])


def _images(root: str, n: int, h: int, w: int) -> torch.Tensor:
    """``n`` training images spread over the set (every k-th file), resized to the generator's h x w."""
    from PIL import Image

    files = sorted((Path(root) / "bounding_box_train").glob("*.jpg"))
    if len(files) < n:
        raise SystemExit(f"--data {root}: {len(files)} training images, --images asks for {n}")
    pick = [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]
    arr = [np.array(Image.open(f).convert("RGB").resize((w, h), Image.BILINEAR)) for f in pick]
    return torch.from_numpy(np.stack(arr)).permute(0, 3, 1, 2).float() / 127.5 - 1


class ConvDecoder(nn.Module):
    """code [N, dim] -> image [N, 3, h, w]: a linear layer to (h/16) x (w/16), four 2x upsampling stages."""

    def __init__(self, dim: int, h: int, w: int, ch: tuple[int, ...] = (40, 40, 32, 24)):
        super().__init__()
        self.c0, self.h0, self.w0 = ch[0], h // 16, w // 16
        self.fc = nn.Linear(dim, ch[0] * self.h0 * self.w0)
        layers, cin = [], ch[0]
        for c in ch:
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(cin, c, 3, padding=1), nn.LeakyReLU(0.2),
                       nn.Conv2d(c, c, 3, padding=1), nn.LeakyReLU(0.2)]
            cin = c
        self.net = nn.Sequential(*layers, nn.Conv2d(cin, 3, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(-1, self.c0, self.h0, self.w0))


def fit(render, params: list[torch.Tensor], x: torch.Tensor, steps: int, lr: float) -> tuple[float, float, torch.Tensor]:
    """Adam on L1 for ``steps``; returns (final L1, seconds per step, last output)."""
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))
    t0 = time.perf_counter()
    for _ in range(steps):
        y = render()
        loss = (y - x).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sec = (time.perf_counter() - t0) / steps
    with torch.no_grad():
        y = render()
    return float((y - x).abs().mean()), sec, y


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--lr", type=float, default=0.002)
    ap.add_argument("--decoder-lr", type=float, default=None, help="the baseline decoder's lr (default: --lr)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=None)
    ap.add_argument("--out", default=None, help="PNG grid: real | StyleGAN3 fit | decoder fit (16 each)")
    ap.add_argument("overrides", nargs="*", help="train_gan overrides (default experiment=quickstart)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = _compose(["experiment=quickstart", *args.overrides])
    h, w = (int(v) for v in cfg.gan.resolution)
    tmp = None
    if args.data is None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from gan_hog_pass import render_quickstart

        tmp, args.data = render_quickstart("gan_fit_")
    try:
        x = _images(args.data, args.images, h, w)
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)

    from reid_gan.gan.training import build_networks

    torch.manual_seed(0)
    G, _ = build_networks(cfg)
    syn = G.synthesis
    ws = (torch.randn(len(x), syn.num_ws, syn.w_dim) * 0.5).requires_grad_(True)
    n_g = sum(p.numel() for p in syn.parameters())
    l1_g, sec_g, y_g = fit(lambda: syn(ws), [ws, *syn.parameters()], x, args.steps, args.lr)

    torch.manual_seed(0)
    dec = ConvDecoder(syn.w_dim, h, w)
    z = (torch.randn(len(x), syn.w_dim) * 0.5).requires_grad_(True)
    n_d = sum(p.numel() for p in dec.parameters())
    lr_d = args.lr if args.decoder_lr is None else args.decoder_lr
    l1_d, sec_d, y_d = fit(lambda: dec(z), [z, *dec.parameters()], x, args.steps, lr_d)

    print(f"\nGLO fit of {args.images} real {h}x{w} training images, {args.steps} Adam steps at lr {args.lr}:")
    print(f"  StyleGAN3 synthesis ({cfg.gan.name}, {n_g:,} parameters): L1 {l1_g:.4f}, {sec_g:.3f} s/step")
    print(f"  baseline conv decoder ({n_d:,} parameters, lr {lr_d}): L1 {l1_d:.4f}, {sec_d:.3f} s/step")
    print(f"figure: L1 {l1_g:.4f} = {l1_g / l1_d:.2f}x the conv decoder's after the same steps; "
          f"{sec_g / sec_d:.2f}x its time per step")
    if args.out:
        import torchvision.utils as vu

        k = min(16, len(x))
        grid = torch.cat([x[:k], y_g[:k], y_d[:k]]).clamp(-1, 1) * 0.5 + 0.5
        grid = torch.nn.functional.interpolate(grid, scale_factor=2, mode="nearest")
        vu.save_image(grid, args.out, nrow=k)
        print(f"grid (real | StyleGAN3 | decoder): {args.out}")


if __name__ == "__main__":
    main()
