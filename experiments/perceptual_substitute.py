"""Which perceptual distance stands in for LPIPS when no ImageNet trunk file is given? A small measurement.

For real training images of the embedded dataset it scores each candidate distance on two questions a
reconstruction loss must answer:

* **monotone in degradation** — Spearman correlation between the distance (image, degraded image) and the
  degradation strength, over blur, noise and a colour shift at 4 strengths each (1.0 = always ordered);
* **identity-aware** — ROC AUC of "different person" against "same person" from the distance between two
  real images (0.5 = blind to identity).

Candidates: ``featdist_alex_random`` (seeded random AlexNet), ``featdist_reid`` (the re-ID network's stages,
when ``--reid-ckpt`` is given), and ``l2`` as the floor. Usage::

    python experiments/perceptual_substitute.py --data data/synthetic-market [--reid-ckpt PATH] [--n 64]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(distance of a different-person pair > distance of a same-person pair)."""
    pos, neg = np.asarray(pos), np.asarray(neg)
    return float(((neg[:, None] > pos[None, :]).mean() + 0.5 * (neg[:, None] == pos[None, :]).mean()))


def _degrade(x: torch.Tensor, kind: str, s: float) -> torch.Tensor:
    if kind == "blur":
        k = int(2 * round(3 * s) + 1)
        g = torch.exp(-torch.arange(-(k // 2), k // 2 + 1).float() ** 2 / (2 * s * s))
        g = (g / g.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
        y = F.conv2d(F.pad(x, (k // 2, k // 2, 0, 0), mode="replicate"), g, groups=3)
        return F.conv2d(F.pad(y, (0, 0, k // 2, k // 2), mode="replicate"), g.transpose(2, 3), groups=3)
    if kind == "noise":
        return (x + s * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    if kind == "colour":
        return (x + s * torch.tensor([1.0, -0.5, -0.5]).view(1, 3, 1, 1)).clamp(-1, 1)
    raise ValueError(kind)


STRENGTHS = {"blur": [0.5, 1.0, 1.5, 2.5], "noise": [0.05, 0.1, 0.2, 0.4], "colour": [0.05, 0.1, 0.2, 0.4]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True, help="a dataset root in Market-1501 layout")
    ap.add_argument("--reid-ckpt", default=None)
    ap.add_argument("--reid-size", default="64,32")
    ap.add_argument("--size", default="64,32", help="image size compared (the generator's)")
    ap.add_argument("--n", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from reid_gan.data.leakage import training_images_for_generation
    from reid_gan.encoder.data import load_rgb
    from reid_gan.encoder.lpips import FeatureDistance, ReIDStages, random_alexnet

    size = tuple(int(v) for v in args.size.split(","))
    samples = training_images_for_generation(Path(args.data))
    rng = np.random.default_rng(0)
    pick = sorted(rng.choice(len(samples), size=min(args.n, len(samples)), replace=False).tolist())
    samples = [samples[i] for i in pick]
    x = torch.from_numpy(np.stack([load_rgb(s.path, size) for s in samples])).permute(0, 3, 1, 2).float() / 127.5 - 1
    pids = np.array([int(s.pid) for s in samples])

    cands = {"l2": lambda a, b: (a - b).pow(2).flatten(1).mean(1),
             "featdist_alex_random": FeatureDistance(random_alexnet(0), "featdist_alex_random", min_size=64)}
    if args.reid_ckpt:
        from reid_gan.encoder.losses import load_reid_net

        rs = tuple(int(v) for v in args.reid_size.split(","))
        stages = ReIDStages(load_reid_net(args.reid_ckpt))
        fd = FeatureDistance(stages, "featdist_reid")
        cands["featdist_reid"] = lambda a, b: fd(F.interpolate(a, size=rs, mode="bilinear", align_corners=False),
                                                 F.interpolate(b, size=rs, mode="bilinear", align_corners=False))
    out = {}
    with torch.no_grad():
        for name, d in cands.items():
            mono = []
            for kind, ss in STRENGTHS.items():
                vals = np.stack([d(x, _degrade(x, kind, s)).numpy() for s in ss], 1)  # [N, strengths]
                mono.append(np.mean([_spearman(v, np.arange(len(ss))) for v in vals]))
            ia, ib = np.triu_indices(len(samples), 1)
            dist = np.concatenate([d(x[ia[i:i + 256]], x[ib[i:i + 256]]).numpy() for i in range(0, len(ia), 256)])
            same = pids[ia] == pids[ib]
            out[name] = {"monotone_spearman": round(float(np.mean(mono)), 4),
                         "identity_auc": round(_auc(dist[same], dist[~same]), 4) if same.any() else None,
                         "same_pairs": int(same.sum())}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
