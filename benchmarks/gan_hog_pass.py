"""How many generated people pass the HOG person filter (score >= 0.6), against the real training images.

    python benchmarks/gan_hog_pass.py GENERATOR [--data ROOT] [--n 256] [--psi 1.0] [--seed 0]

GENERATOR: a network-snapshot-*.pt, a train_gan run folder, a train_gan .ckpt or an NVIDIA .pkl
(``reid_gan.gan.load_generator``). The baseline in the same process is the same detector on real
``bounding_box_train`` images resized to the generator's resolution (and on the mean real image), so the
generated figure can be read against what the detector does on the data itself.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generator")
    ap.add_argument("--data", default=None, help="dataset root (Market layout) for the real baseline")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--psi", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.6)
    args = ap.parse_args()

    from reid_gan.filters.hog import HOGDetector
    from reid_gan.gan import load_generator
    from reid_gan.gan.images import load_images, to_uint8

    G = load_generator(args.generator)
    z = torch.randn(args.n, G.z_dim, generator=torch.Generator().manual_seed(args.seed))
    with torch.no_grad():
        imgs = torch.cat([G(z[i:i + 32], torch.zeros(len(z[i:i + 32]), G.c_dim), truncation_psi=args.psi,
                            noise_mode="const") for i in range(0, args.n, 32)])
    u8 = to_uint8(imgs)
    h, w = u8.shape[-2:]
    bgr = [np.ascontiguousarray(x.permute(1, 2, 0).numpy()[:, :, ::-1]) for x in u8]
    det = HOGDetector()
    s = np.asarray(det.score(bgr))
    print(f"generated ({args.n} images {h}x{w}, psi {args.psi}): HOG pass rate {np.mean(s >= args.threshold):.3f}, "
          f"mean score {s.mean():.3f}")
    if args.data:
        paths = sorted(str(p) for p in (Path(args.data) / "bounding_box_train").glob("*.jpg"))[: args.n]
        reals = load_images(paths, h, w)
        rb = [np.ascontiguousarray(x.permute(1, 2, 0).numpy()[:, :, ::-1]) for x in reals]
        rs = np.asarray(det.score(rb))
        mean_img = np.mean(np.stack(rb), 0).astype(np.uint8)
        print(f"real ({len(rb)} images resized to {h}x{w}): HOG pass rate {np.mean(rs >= args.threshold):.3f}, "
              f"mean score {rs.mean():.3f}; the mean real image scores {det.score([mean_img])[0]:.3f}")


if __name__ == "__main__":
    main()
