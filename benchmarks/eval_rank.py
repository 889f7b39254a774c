"""Speed of the Market-1501 rank evaluation at Market scale (3,368 queries x 15,913 gallery).

Baseline (run in the same process on the same distances): a per-query numpy loop with the AP
vectorised — ``np.argsort`` per row (numpy's default kind, as torchreid), the same-pid-same-camera
filter, cumulative sums per query — i.e. torchreid's ``eval_market1501`` without its Python list
comprehension. Ours: ``reid_gan.metrics.rank.evaluate_rank``. The two must give identical numbers
(CMC, mAP, mINP); the script fails otherwise.

Synthetic features shaped like Market-1501's test split: 750 identities over 6 cameras, 3,368 queries,
13,120 gallery images of the test identities + 2,793 distractors (pid 0); identity centres plus
per-image noise, L2-normalised, cosine distance (the thesis's ranking distance).

    python benchmarks/eval_rank.py            # 128-d and 2,048-d features
    python benchmarks/eval_rank.py --dims 128 --repeats 3
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from reid_gan.metrics.rank import compute_distance_matrix, evaluate_rank


def market_like(dim: int, seed: int = 0, num_ids: int = 750, num_query: int = 3368, num_gallery_ids: int = 13120,
                num_distractors: int = 2793, noise: float | None = None):
    """Features of a Market-1501-shaped test split. ``noise`` (per-image noise relative to the identity
    spread) defaults to a level giving mAP ~0.75 (the thesis's baseline 0.743) for 128-d and 2,048-d."""
    if noise is None:
        noise = 1.4 * (dim / 128) ** 0.3
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=g)
    q_pids = torch.arange(num_query) % num_ids + 1
    g_pids = torch.cat([torch.arange(num_gallery_ids) % num_ids + 1, torch.zeros(num_distractors, dtype=torch.long)])
    q_cam = torch.randint(0, 6, (num_query,), generator=g)
    g_cam = torch.randint(0, 6, (g_pids.numel(),), generator=g)
    qf = centres[q_pids - 1] + noise * torch.randn(num_query, dim, generator=g)
    gc = torch.where(g_pids > 0, g_pids - 1, 0)
    gf = torch.where((g_pids > 0)[:, None], centres[gc], 0.0) + noise * torch.randn(g_pids.numel(), dim, generator=g)
    gf[g_pids == 0] += torch.randn(num_distractors, dim, generator=g)
    return qf, gf, q_pids, g_pids, q_cam, g_cam


def baseline_numpy_loop(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=50):
    """Per-query loop, argsort per row, AP vectorised with cumulative sums (torchreid's semantics)."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    all_cmc, all_ap, all_inp = [], [], []
    for q in range(num_q):
        order = np.argsort(distmat[q])
        keep = ~((g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q]))
        raw = (g_pids[order][keep] == q_pids[q]).astype(np.int32)
        if not raw.any():
            continue
        cum = raw.cumsum()
        pos = np.flatnonzero(raw)
        all_inp.append(cum[pos[-1]] / (pos[-1] + 1.0))
        all_ap.append(float((cum / np.arange(1.0, raw.size + 1) * raw).sum() / raw.sum()))
        c = np.minimum(cum, 1)
        all_cmc.append(c[:max_rank])
    cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / len(all_cmc)
    return {"cmc": cmc, "mAP": float(np.mean(all_ap)), "mINP": float(np.mean(all_inp)), "num_valid_q": len(all_ap)}


def _time(fn, repeats):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dims", type=int, nargs="+", default=[128, 2048])
    ap.add_argument("--repeats", type=int, default=3, help="best of N for ours (the baseline runs once)")
    ap.add_argument("--noise", type=float, default=None, help="feature noise (default: mAP ~0.75)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the distance matrix")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, numpy {np.__version__}, torch threads {torch.get_num_threads()}")
    ok = True
    for dim in args.dims:
        qf, gf, qp, gp, qc, gc = market_like(dim, noise=args.noise)
        t0 = time.perf_counter()
        dist = compute_distance_matrix(qf, gf, "cosine")
        t_dist = time.perf_counter() - t0
        dist_np = dist.numpy()
        args_np = (qp.numpy(), gp.numpy(), qc.numpy(), gc.numpy())
        t_base, ref = _time(lambda: baseline_numpy_loop(dist_np, *args_np), 1)
        t_ours, res = _time(lambda: evaluate_rank(dist, qp, gp, qc, gc), args.repeats)
        same = (np.array_equal(ref["cmc"], res["cmc"]) and abs(ref["mAP"] - res["mAP"]) < 1e-12
                and abs(ref["mINP"] - res["mINP"]) < 1e-12 and ref["num_valid_q"] == res["num_valid_q"])
        ok &= same
        print(f"\n{dist.shape[0]} x {dist.shape[1]}, {dim}-d features (distance matrix: {t_dist:.2f} s)")
        print(f"  Rank@1 {res['cmc'][0]:.4f}  mAP {res['mAP']:.4f}  mINP {res['mINP']:.4f}  "
              f"valid queries {res['num_valid_q']}  queries with a match/non-match tie {res['num_tie_queries']}")
        print(f"  |mAP diff| {abs(ref['mAP'] - res['mAP']):.2e}  |mINP diff| {abs(ref['mINP'] - res['mINP']):.2e}  "
              f"CMC identical: {np.array_equal(ref['cmc'], res['cmc'])}")
        print(f"  baseline numpy loop : {t_base:7.3f} s")
        print(f"  reid_gan evaluate   : {t_ours:7.3f} s   ratio {t_base / t_ours:5.1f}x")
        print(f"  incl. distance matrix: {t_base + t_dist:7.3f} s vs {t_ours + t_dist:7.3f} s   "
              f"ratio {(t_base + t_dist) / (t_ours + t_dist):5.1f}x")
    if not ok:
        raise SystemExit("the numbers differ from the baseline")


if __name__ == "__main__":
    main()
