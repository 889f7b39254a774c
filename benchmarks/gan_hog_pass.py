"""Are a generator's images people? HOG pass rate, distance to the real images beside blurred real images,
diversity and a nearest-neighbour (copy) check, all measured in one process against the real training set.

    python benchmarks/gan_hog_pass.py [GENERATOR ...] [--data ROOT] [--n 256] [--psi-generate 0.7]
                                      [--seed 0] [--inception PATH] [--json OUT.json]

With no arguments (as ``make bench`` runs it) it measures the embedded pretrained generator against the
quickstart's dataset, which it renders into a temporary folder with ``python -m reid_gan.make_dataset
experiment=quickstart`` (the embedded file was pretrained on a *separate* render, so this is the data the
quickstart fine-tunes it on).

GENERATOR: a ``network-snapshot-*.pt``, a train_gan run folder (newest snapshot), a train_gan ``.ckpt``,
the embedded pretrained file (or the word ``embedded``) or an NVIDIA ``.pkl`` (``reid_gan.gan.load_generator``).
ROOT: the dataset (Market layout) the generator was trained on; its ``bounding_box_train`` is read through
the leakage guard and brought to the generator's resolution as train_gan does.

Rows of the table (``n`` images each; the real images are shuffled with ``--seed`` and split into two
disjoint halves, ``ref`` and ``cmp``):

* ``generated psi=1.0`` and ``generated psi=<generate.psi>`` (the ψ the generate stage uses; read from the
  composed ``generate`` config of ``experiment=quickstart`` unless ``--psi-generate`` is given);
* ``real`` — the ``cmp`` half as it is: the floor of every distance;
* ``real blurred sigma=2`` — the ``cmp`` half blurred with a Gaussian of σ = 2 px at that resolution:
  a generator should be no farther from ``ref`` than this.

Columns: HOG pass rate (calibrated score ≥ 0.6) and mean score; SWD to ``ref`` (×1e3, lower is better;
with ``--inception``, also FID to ``ref`` with torch-fidelity's Inception); per-pixel diversity (mean over
pixels of the standard deviation across the set, [0, 255] units) and its ratio to the real one; the
nearest-neighbour distance of each image to the whole training set and its mirror images (RMS, [0, 255]
units; for the real rows, to the nearest image of *another* identity): the median, the minimum and the
share of images closer than the real 5th percentile (``copies?``: near-copies of a training image).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _generate_psi() -> float:
    """``generate.psi`` of the composed quickstart config (what the generate stage uses)."""
    import tempfile

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    import reid_gan.config  # noqa: F401

    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose(config_name="generate", overrides=[f"paths.root_dir={tempfile.mkdtemp()}",
                                                         "experiment=quickstart"])
    return float(cfg.generate.psi)


def real_sets(data_root: str | Path, h: int, w: int, n: int, seed: int = 0):
    """(all training images, their pids, ref half, cmp half) as uint8 at ``h``×``w``."""
    from reid_gan.data.leakage import training_images_for_generation
    from reid_gan.gan.images import load_images

    samples = training_images_for_generation(Path(data_root))
    imgs = load_images([str(s.path) for s in samples], h, w)
    pids = [int(s.pid) for s in samples]
    perm = torch.randperm(len(imgs), generator=torch.Generator().manual_seed(seed))
    k = min(n, len(imgs) // 2)
    ref, cmp_ = perm[:k], perm[k:2 * k]
    return imgs, pids, imgs[ref], imgs[cmp_], [pids[i] for i in cmp_.tolist()]


def measure(generator: str, data_root: str | Path, n: int = 256, psi_generate: float = 0.7, seed: int = 0,
            inception: str | None = None, threshold: float = 0.6) -> dict:
    """All figures of one generator against ``data_root``'s training images (a dict of rows)."""
    from reid_gan.filters.hog import HOGDetector
    from reid_gan.gan import load_generator
    from reid_gan.gan import quality as Q

    G = load_generator(generator)
    probe = Q.generate_uint8(G, 1)
    h, w = probe.shape[-2:]
    train, train_pids, ref, cmp_, cmp_pids = real_sets(data_root, h, w, n, seed)
    det = HOGDetector()
    fid = None
    if inception:
        from reid_gan.metrics.fid import FIDKIDMetric

        fid = FIDKIDMetric(inception, ref, kid_subset_size=min(len(ref), 1000), kid_subsets=20)

    real_nn = Q.nearest_neighbours(cmp_, train, cmp_pids, train_pids)
    p5, p50 = float(np.percentile(real_nn, 5)), float(np.median(real_nn))
    real_div = Q.pixel_diversity(cmp_)
    sets = {f"generated psi={1.0:g}": Q.generate_uint8(G, len(ref), 1.0, seed + 1),
            f"generated psi={psi_generate:g}": Q.generate_uint8(G, len(ref), psi_generate, seed + 1),
            "real": cmp_, "real blurred sigma=2": Q.blurred(cmp_, 2.0)}
    rows = {}
    for name, imgs in sets.items():
        s = Q.hog_scores(imgs, det)
        row = {"n": int(len(imgs)), "hog_pass": float(np.mean(s >= threshold)), "hog_mean_score": float(s.mean()),
               "swd": Q.swd_to(ref, imgs, seed=seed)["swd"], "diversity": Q.pixel_diversity(imgs)}
        row["diversity_ratio"] = row["diversity"] / real_div
        if name == "real":
            nn = real_nn
        elif name.startswith("real"):  # the blurred copies: to other identities (their sources are in train)
            nn = Q.nearest_neighbours(imgs, train, cmp_pids, train_pids)
        else:
            nn = Q.nearest_neighbours(imgs, train)
        row.update(nn_median=float(np.median(nn)), nn_min=float(nn.min()),
                   nn_below_real_p5=float(np.mean(nn < p5)), nn_below_real_median=float(np.mean(nn < p50)))
        if fid is not None:
            row.update({f"{k}": v for k, v in fid(imgs).items()})
        rows[name] = row
    mean_img = train.double().mean(0, keepdim=True).round().to(torch.uint8)
    return {"generator": str(generator), "data": str(data_root), "resolution": [int(h), int(w)], "seed": seed,
            "psi_generate": psi_generate, "threshold": threshold, "train_images": int(len(train)),
            "real_nn_other_identity_p5": p5, "real_nn_other_identity_median": p50,
            "mean_real_image_hog_score": float(Q.hog_scores(mean_img, det)[0]), "rows": rows}


def print_table(res: dict) -> None:
    from tabulate import tabulate

    cols = ["hog_pass", "hog_mean_score", "swd", "diversity", "diversity_ratio", "nn_median", "nn_min",
            "nn_below_real_p5"]
    extra = [c for c in ("fid", "kid") if c in next(iter(res["rows"].values()))]
    table = [[name] + [r[c] for c in cols + extra] for name, r in res["rows"].items()]
    h, w = res["resolution"]
    print(f"\n{res['generator']} on {res['data']} ({res['train_images']} training images at {h}x{w}; "
          f"{next(iter(res['rows'].values()))['n']} images per row, seed {res['seed']})")
    print(tabulate(table, headers=["set", "HOG pass", "HOG mean", "SWD to ref", "diversity", "div / real",
                                   "NN median", "NN min", "copies? (<real p5)", *[c.upper() for c in extra]],
                   floatfmt=".3f"))
    print(f"real nearest other-identity distance: p5 {res['real_nn_other_identity_p5']:.1f}, median "
          f"{res['real_nn_other_identity_median']:.1f}; the mean real image scores "
          f"{res['mean_real_image_hog_score']:.3f} (HOG passes >= {res['threshold']})")


def render_quickstart(prefix: str) -> tuple[str, str]:
    """Render the quickstart dataset into a new temporary folder: ``(folder, dataset root)``."""
    import subprocess
    import tempfile

    tmp = tempfile.mkdtemp(prefix=prefix)
    print(f"rendering the quickstart dataset into {tmp} ...", flush=True)
    subprocess.run([sys.executable, "-m", "reid_gan.make_dataset", "experiment=quickstart",
                    f"paths.root_dir={tmp}", "logger=csv", "print_config=false"], check=True,
                   stdout=subprocess.DEVNULL, cwd=tmp)
    return tmp, str(Path(tmp) / "data" / "synthetic-market")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("generator", nargs="*", default=["embedded"],
                    help="default: the embedded pretrained file")
    ap.add_argument("--data", default=None, help="dataset root (Market layout) the generator was trained on; "
                    "default: the quickstart dataset, rendered into a temporary folder")
    ap.add_argument("--n", type=int, default=256, help="images per row (real halves are capped at half the set)")
    ap.add_argument("--psi-generate", type=float, default=None, help="default: generate.psi of experiment=quickstart")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.6)
    ap.add_argument("--inception", default=None, help="torch-fidelity Inception weights: adds FID/KID columns")
    ap.add_argument("--json", default=None, help="write all figures to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    psi = args.psi_generate if args.psi_generate is not None else _generate_psi()
    tmp = None
    if args.data is None:
        tmp, args.data = render_quickstart("gan_hog_pass_")
    results = []
    try:
        for g in args.generator:
            res = measure(g, args.data, args.n, psi, args.seed, args.inception, args.threshold)
            print_table(res)
            rows = res["rows"]
            gen, blur = rows[f"generated psi={1.0:g}"], rows["real blurred sigma=2"]
            print(f"figure: HOG pass at psi 1.0 {gen['hog_pass']:.1%} (real {rows['real']['hog_pass']:.1%}); "
                  f"SWD {gen['swd']:.1f} = {gen['swd'] / blur['swd']:.2f}x the blurred-real baseline "
                  f"({blur['swd']:.1f}, target <= 1.00x)")
            results.append(res)
    finally:
        if tmp is not None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        from reid_gan.utils.io import atomic_write_text

        atomic_write_text(args.json, json.dumps(results, indent=1))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
