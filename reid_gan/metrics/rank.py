"""Market-1501 ranking metrics: CMC, mAP (torchreid's ``eval_market1501``) and mINP (fast-reid).

Protocol (Zheng et al. 2015, as torchreid and fast-reid implement it), for each query:

* gallery entries with the query's pid **and** the query's camera are ignored (neither match nor
  non-match): a match must be the same person seen by *another* camera;
* gallery entries with pid ``-1`` (junk) are ignored (torchreid's and fast-reid's loaders drop them);
* pid ``0`` (distractors) are ordinary non-matches;
* a query without any valid match is skipped (``num_valid_q`` counts the others).

With the remaining gallery sorted by distance (ascending), the positives sit at 0-based ranks
``r_0 < r_1 < ... < r_{k-1}``:

* ``cmc[j]``  = fraction of valid queries whose first match is within the top ``j + 1`` (``r_0 <= j``);
* ``AP``      = mean over the matches of the precision at that match, ``(i + 1) / (r_i + 1)``
  (torchreid's ``tmp_cmc.sum() / num_rel``);
* ``INP``     = ``k / (r_{k-1} + 1)`` (fast-reid's ``cmc[max_pos_idx] / (max_pos_idx + 1)``);
* ``mAP``, ``mINP`` = means over valid queries.

How it is computed (why it is fast): nothing is sorted. A positive's rank is ``i`` (positives before
it) plus the number of valid non-matches with a smaller distance. Per query, the ``k`` positive
distances are sorted (``k`` is tiny) and every non-match is placed among them with a binary search
(``torch.searchsorted``): O(n log k) per query instead of a full O(n log n) argsort, vectorised over a
chunk of queries so memory stays bounded (``chunk_elems`` distance entries at a time).

Ties: a gallery entry whose distance equals a match's distance exactly is ordered by gallery index
(as a stable sort would). Queries with such a tie are detected and recomputed with a stable sort.
torchreid's ``np.argsort`` (quicksort) orders tied entries in an implementation-defined way, so on tied
distances the two can differ; without ties (the normal case with float features) the numbers are
identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["evaluate_rank", "evaluate_rank_reference", "NoValidQueryError", "compute_distance_matrix"]


class NoValidQueryError(ValueError):
    """No query has a valid match in the gallery (see the message for why)."""


def _as_tensor(x: Any, name: str, dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        t = torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
    if dtype is not None:
        t = t.to(dtype)
    return t


def _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids):
    d = _as_tensor(distmat, "distmat")
    if d.dim() != 2:
        raise ValueError(f"distmat must be 2-D (num_query x num_gallery), got shape {tuple(d.shape)}")
    if not d.is_floating_point():
        d = d.to(torch.float64)
    nq, ng = d.shape
    qp = _as_tensor(q_pids, "q_pids", torch.int64).reshape(-1).to(d.device)
    gp = _as_tensor(g_pids, "g_pids", torch.int64).reshape(-1).to(d.device)
    qc = _as_tensor(q_camids, "q_camids", torch.int64).reshape(-1).to(d.device)
    gc = _as_tensor(g_camids, "g_camids", torch.int64).reshape(-1).to(d.device)
    for name, t, n in (("q_pids", qp, nq), ("q_camids", qc, nq), ("g_pids", gp, ng), ("g_camids", gc, ng)):
        if t.numel() != n:
            raise ValueError(f"{name} has {t.numel()} entries but distmat has shape {tuple(d.shape)}")
    if nq == 0 or ng == 0:
        raise ValueError(f"distmat is empty (shape {tuple(d.shape)}): need at least one query and one gallery item")
    return d, qp, gp, qc, gc


def _no_valid_message(qp, gp, qc, gc) -> str:
    gvalid = gp != -1
    n_q = qp.numel()
    in_gallery = 0
    same_cam_only = 0
    for pid, cam in zip(qp.tolist(), qc.tolist()):
        sel = (gp == pid) & gvalid
        if bool(sel.any()):
            in_gallery += 1
            if bool((gc[sel] == cam).all()):
                same_cam_only += 1
    return (
        f"no query has a valid match in the gallery ({n_q} queries, {int(gvalid.sum())} gallery entries "
        f"without junk). On the Market-1501 protocol a gallery image matches a query only if it shows the "
        f"same person (pid) from a DIFFERENT camera: gallery images of the query's person taken by the "
        f"query's own camera are ignored, and junk (pid -1) is ignored. Here {in_gallery} of the "
        f"{n_q} query pids appear in the gallery, and {same_cam_only} of those only under the query's own "
        f"camera. Data from a single camera (or with every camid equal) cannot be evaluated this way: "
        f"check that the file names carry the real camera ids (PPPP_cCsS_...) and that each query person "
        f"has gallery images from another camera."
    )


class _PidIndex:
    """Gallery columns grouped by pid (CSR), so a query's same-pid columns are found without a
    ``[num_query, num_gallery]`` comparison."""

    def __init__(self, gp: torch.Tensor):
        order = torch.sort(gp, stable=True).indices
        self.cols = order
        self.uniq, counts = torch.unique_consecutive(gp[order], return_counts=True)
        self.starts = torch.cumsum(counts, 0) - counts
        self.counts = counts

    def same_pid_pairs(self, qp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(rows, cols)``: every (query row, gallery column) with equal pids, rows ascending."""
        pos = torch.searchsorted(self.uniq, qp).clamp_(max=max(self.uniq.numel() - 1, 0))
        found = self.uniq[pos] == qp if self.uniq.numel() else torch.zeros_like(qp, dtype=torch.bool)
        cnt = torch.where(found, self.counts[pos], 0)
        rows = torch.repeat_interleave(torch.arange(qp.numel(), device=qp.device), cnt)
        total = int(cnt.sum())
        first = torch.repeat_interleave(torch.where(found, self.starts[pos], 0), cnt)
        offs = torch.arange(total, device=qp.device) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
        return rows, self.cols[first + offs]


def _sort_by_row_then_value(rows: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """Permutation ordering entries by (row, value); equal values keep their input order."""
    order = torch.sort(vals, stable=True).indices
    return order[torch.sort(rows[order], stable=True).indices]


def _numpy_row_ranks(d_row: np.ndarray, g_pids: np.ndarray, g_camids: np.ndarray, q_pid: int, q_camid: int,
                     kind: str) -> np.ndarray:
    """0-based ranks of the matches exactly as torchreid computes them for one query (junk dropped)."""
    order = np.argsort(d_row, kind=kind)
    gp, gc = g_pids[order], g_camids[order]
    keep = ~((gp == q_pid) & (gc == q_camid))
    return np.flatnonzero(gp[keep] == q_pid)


def _chunk_stats_sort(nb, k, prow, pval, nrow, nval, ng):
    """AP, INP, first-match rank and tied rows of a chunk (any float dtype): matches and the
    non-matches that may precede them sorted by (row, distance); the position in the row is the rank."""
    dev = pval.device
    rows_all = torch.cat([prow, nrow])
    vals_all = torch.cat([pval, nval])
    tag_all = torch.cat([torch.ones_like(prow, dtype=torch.bool), torch.zeros_like(nrow, dtype=torch.bool)])
    order = _sort_by_row_then_value(rows_all, vals_all)
    rows_s, vals_s, tag_s = rows_all[order], vals_all[order], tag_all[order]
    cnt = torch.bincount(rows_s, minlength=nb)
    start = torch.cumsum(cnt, 0) - cnt
    rank = torch.arange(rows_s.numel(), device=dev) - start[rows_s]  # 0-based, among valid entries
    before = torch.cumsum(k, 0) - k  # matches in earlier rows
    mrow = rows_s[tag_s]
    hit = torch.cumsum(tag_s.to(torch.int64), 0)[tag_s] - before[mrow]  # i + 1 for match i of its row
    ap_c, inp_c, first_rank = _ap_inp_first(nb, k, mrow, rank[tag_s], hit, ng)
    # exact ties between a match and a non-match end up adjacent in the same row
    adj = (rows_s[1:] == rows_s[:-1]) & (vals_s[1:] == vals_s[:-1]) & (tag_s[1:] != tag_s[:-1])
    return ap_c, inp_c, first_rank, torch.unique(rows_s[1:][adj]).tolist()


def _ordered_keys(rows: torch.Tensor, vals: torch.Tensor) -> torch.Tensor:
    """int64 keys ordered as (row, float32 value): row in the high 32 bits, the value's bits mapped to an
    order-preserving unsigned 32-bit integer in the low ones (exact; -0.0 first made +0.0)."""
    b = (vals + 0.0).view(torch.int32).to(torch.int64)
    b = torch.where(b < 0, b ^ 0x7FFFFFFF, b) + (1 << 31)
    return (rows << 32) | b


def _chunk_stats_keys(nb, k, prow, pval, nrow, nval, ng):
    """As :func:`_chunk_stats_sort` for float32 distances without sorting the non-matches: the matches'
    (row, value) keys are sorted (few) and each non-match is placed among them by binary search."""
    pkey = _ordered_keys(prow, pval)
    pkey, porder = torch.sort(pkey)
    prow = prow[porder]
    nkey = _ordered_keys(nrow, nval)
    idx = torch.searchsorted(pkey, nkey, right=True)  # matches with key <= the non-match's key
    tie = (idx > 0) & (pkey[(idx - 1).clamp(min=0)] == nkey)
    tie_rows = torch.unique(nrow[tie]).tolist()
    idx = idx[~tie]
    K = pkey.numel()
    # a non-match precedes match j (same row) iff idx <= j; rows are contiguous in key order, and
    # every non-match of a row lies between the row's first and last match (distance <= the last)
    counts = torch.bincount(idx, minlength=K + 1)[:K]
    cum = torch.cumsum(counts, 0)
    before = torch.cumsum(k, 0) - k  # matches in earlier rows
    first_of_row = before[prow]
    base = torch.where(first_of_row > 0, cum[(first_of_row - 1).clamp(min=0)], 0)
    # non-matches of this row before match j: their idx lies in [first_of_row, j]; those with idx <
    # first_of_row belong to earlier rows only if their value exceeded that row's last match (impossible)
    neg_before = cum - base
    hit = torch.arange(K, device=pkey.device) - first_of_row + 1
    rank = neg_before + hit - 1
    ap_c, inp_c, first_rank = _ap_inp_first(nb, k, prow, rank, hit, ng)
    return ap_c, inp_c, first_rank, tie_rows


def _ap_inp_first(nb, k, mrow, mrank, hit, ng):
    """Per-row AP, INP and first-match rank from each match's row, 0-based rank and 1-based index."""
    dev = mrank.device
    kk = k.to(torch.float64)
    prank = mrank.to(torch.float64)
    ap_c = torch.zeros(nb, dtype=torch.float64, device=dev).index_add_(0, mrow, hit.to(torch.float64) / (prank + 1.0))
    ap_c = ap_c / kk.clamp(min=1)
    last_rank = torch.zeros(nb, dtype=torch.float64, device=dev).scatter_reduce_(0, mrow, prank, "amax")
    inp_c = kk / (last_rank + 1.0)
    first_rank = torch.full((nb,), ng, dtype=torch.int64, device=dev).scatter_reduce_(0, mrow, mrank, "amin")
    return ap_c, inp_c, first_rank


def evaluate_rank(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                  max_rank: int = 50, chunk_elems: int = 1 << 22, ties: str = "numpy",
                  num_threads: int | None = 1) -> dict[str, Any]:
    """CMC, mAP and mINP on the Market-1501 protocol (see the module docstring).

    Args:
        distmat: ``[num_query, num_gallery]`` distances (numpy array or tensor, any float dtype; the
            dtype is kept: no arithmetic is done on distances, only comparisons).
        q_pids, g_pids: person ids (``[num_query]``, ``[num_gallery]``); gallery pid -1 = junk (ignored),
            0 = distractor (a non-match).
        q_camids, g_camids: camera ids, same shapes.
        max_rank: length of the CMC curve (clamped to the number of non-junk gallery entries, as
            torchreid clamps it to the gallery size).
        chunk_elems: distance entries processed at once (bounds the working memory).
        ties: how a query whose match has exactly the same distance as a non-match is ranked:
            ``"numpy"`` (default) recomputes it with ``np.argsort`` on its full row, as torchreid does,
            so even the implementation-defined order of tied entries is torchreid's; ``"stable"`` orders
            tied entries by gallery index.
        num_threads: torch CPU threads while evaluating (restored afterwards); ``None`` keeps the
            current setting. Default 1: the work is memory-bound, and on a shared 2-core machine two
            OpenMP threads contending with other processes made it 3-15x slower than one.

    Returns:
        dict with ``cmc`` (float32 numpy array of length ``max_rank``), ``mAP``, ``mINP`` (floats),
        ``num_valid_q`` (int), ``AP`` and ``INP`` (float64 numpy arrays over all queries, NaN for
        skipped queries), ``first_match_rank`` (int64, -1 for skipped queries), ``num_tie_queries``.

    Raises:
        NoValidQueryError: no query has a valid match (the message explains the same-camera rule).
    """
    if ties not in ("numpy", "stable"):
        raise ValueError(f"ties must be 'numpy' or 'stable', got {ties!r}")
    prev_threads = torch.get_num_threads()
    if num_threads is not None and num_threads != prev_threads:
        torch.set_num_threads(num_threads)
    try:
        return _evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, chunk_elems, ties)
    finally:
        if torch.get_num_threads() != prev_threads:
            torch.set_num_threads(prev_threads)


def _evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank, chunk_elems, ties):
    d, qp, gp, qc, gc = _check_inputs(distmat, q_pids, g_pids, q_camids, g_camids)
    nq, ng = d.shape
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")
    dev = d.device
    gjunk = gp == -1
    n_junk = int(gjunk.sum())
    max_rank = min(int(max_rank), max(ng - n_junk, 1))
    index = _PidIndex(gp)

    ap = torch.full((nq,), float("nan"), dtype=torch.float64)
    inp = torch.full((nq,), float("nan"), dtype=torch.float64)
    first = torch.full((nq,), -1, dtype=torch.int64)
    tie_queries: list[int] = []
    B = max(1, min(nq, chunk_elems // ng))
    for q0 in range(0, nq, B):
        q1 = min(nq, q0 + B)
        nb = q1 - q0
        D = d[q0:q1]
        if not bool(torch.isfinite(D.sum())) and not bool(torch.isfinite(D).all()):
            bad = (~torch.isfinite(D)).nonzero()[0]
            raise ValueError(f"distmat has a non-finite value at query {q0 + int(bad[0])}, gallery {int(bad[1])}")
        qpc, qcc = qp[q0:q1], qc[q0:q1]
        # valid matches (same pid, another camera, not junk): found sparsely through the pid index
        rows, cols = index.same_pid_pairs(qpc)
        keep = (qcc[rows] != gc[cols]) & ~gjunk[cols]
        prow, pcol = rows[keep], cols[keep]
        if prow.numel() == 0:
            continue
        k = torch.bincount(prow, minlength=nb)
        pval = D[prow, pcol]
        # only entries no farther than the query's farthest match can come before one of its matches
        pmax = torch.full((nb,), float("-inf"), dtype=d.dtype, device=dev)
        pmax.scatter_reduce_(0, prow, pval, reduce="amax")
        nrow, ncol = (D <= pmax[:, None]).nonzero(as_tuple=True)
        neg = (gp[ncol] != qpc[nrow]) & ~gjunk[ncol]  # valid non-matches (distractors, pid 0, included)
        nrow, ncol = nrow[neg], ncol[neg]
        if d.dtype == torch.float32:
            ap_c, inp_c, first_rank, tie_rows = _chunk_stats_keys(nb, k, prow, pval, nrow, D[nrow, ncol], ng)
        else:
            ap_c, inp_c, first_rank, tie_rows = _chunk_stats_sort(nb, k, prow, pval, nrow, D[nrow, ncol], ng)
        valid = k > 0
        for r in tie_rows:
            q = q0 + r
            tie_queries.append(q)
            rk = _tied_row_ranks(d[q], gp, gc, gjunk, int(qp[q]), int(qc[q]), ties, n_junk)
            rk64 = rk.astype(np.float64)
            ap_c[r] = float(np.mean(np.arange(1, rk.size + 1) / (rk64 + 1.0)))
            inp_c[r] = rk.size / (rk64[-1] + 1.0)
            first_rank[r] = int(rk[0])
        ap[q0:q1] = torch.where(valid, ap_c, torch.nan).cpu()
        inp[q0:q1] = torch.where(valid, inp_c, torch.nan).cpu()
        first[q0:q1] = torch.where(valid, first_rank, -1).cpu()

    valid_q = first >= 0
    num_valid_q = int(valid_q.sum())
    if num_valid_q == 0:
        raise NoValidQueryError(_no_valid_message(qp.cpu(), gp.cpu(), qc.cpu(), gc.cpu()))
    hits = torch.bincount(first[valid_q].clamp(max=max_rank), minlength=max_rank + 1)[:max_rank]
    # float32 like torchreid: exact integer counts divided by num_valid_q, rounded once
    cmc = torch.cumsum(hits, 0).numpy().astype(np.float32) / np.float32(num_valid_q)
    return {
        "cmc": cmc.astype(np.float32),
        "mAP": float(ap[valid_q].mean()),
        "mINP": float(inp[valid_q].mean()),
        "num_valid_q": num_valid_q,
        "AP": ap.numpy(),
        "INP": inp.numpy(),
        "first_match_rank": first.numpy(),
        "num_tie_queries": len(tie_queries),
    }


def _tied_row_ranks(d_row: torch.Tensor, gp: torch.Tensor, gc: torch.Tensor, gjunk: torch.Tensor, q_pid: int,
                    q_camid: int, ties: str, n_junk: int) -> np.ndarray:
    """Ranks of one query's matches from a numpy argsort of its full row (junk columns dropped first,
    as torchreid's loader drops them)."""
    row = d_row.cpu().numpy()
    gpn, gcn = gp.cpu().numpy(), gc.cpu().numpy()
    if n_junk:
        keep = ~gjunk.cpu().numpy()
        row, gpn, gcn = row[keep], gpn[keep], gcn[keep]
    return _numpy_row_ranks(row, gpn, gcn, q_pid, q_camid, "quicksort" if ties == "numpy" else "stable")


def evaluate_rank_reference(distmat: Any, q_pids: Any, g_pids: Any, q_camids: Any, g_camids: Any,
                            max_rank: int = 50, kind: str = "stable") -> dict[str, Any]:
    """The straightforward per-query numpy loop (argsort per row, cumulative sums): slow, obvious.

    Same protocol and outputs (``cmc``, ``mAP``, ``mINP``, ``num_valid_q``) as :func:`evaluate_rank`.
    ``kind`` is numpy's argsort kind: ``"stable"`` orders ties by gallery index (what
    :func:`evaluate_rank` does), ``"quicksort"`` is torchreid's choice. Used by the tests and as the
    baseline of ``benchmarks/eval_rank.py``.
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    keep_g = g_pids != -1
    distmat, g_pids, g_camids = distmat[:, keep_g], g_pids[keep_g], g_camids[keep_g]
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    aps, inps = [], []
    for q in range(num_q):
        order = np.argsort(distmat[q], kind=kind)
        gp, gc = g_pids[order], g_camids[order]
        keep = ~((gp == q_pids[q]) & (gc == q_camids[q]))
        match = (gp[keep] == q_pids[q])
        if not match.any():
            continue
        ranks = np.flatnonzero(match)
        hits = np.arange(1, ranks.size + 1)
        aps.append(float(np.mean(hits / (ranks + 1.0))))
        inps.append(ranks.size / (ranks[-1] + 1.0))
        if ranks[0] < max_rank:
            cmc_sum[ranks[0]:] += 1
    if not aps:
        raise NoValidQueryError("no query has a valid match in the gallery")
    n = len(aps)
    return {"cmc": (cmc_sum / n).astype(np.float32), "mAP": float(np.mean(aps)), "mINP": float(np.mean(inps)),
            "num_valid_q": n}


def compute_distance_matrix(qf: torch.Tensor, gf: torch.Tensor, metric: str = "cosine") -> torch.Tensor:
    """``[num_query, num_gallery]`` distances between feature rows.

    ``cosine``: ``1 - cos(q, g)`` (features L2-normalised first; the thesis's ranking distance).
    ``euclidean``: squared euclidean distance ``|q|^2 + |g|^2 - 2 q.g`` (torchreid's ``euclidean``;
    the order is the same as the plain euclidean distance).
    """
    qf = qf.float()
    gf = gf.float()
    if metric == "cosine":
        qn = torch.nn.functional.normalize(qf, dim=1)
        gn = torch.nn.functional.normalize(gf, dim=1)
        return 1.0 - qn @ gn.t()
    if metric == "euclidean":
        d = qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1)[None, :] - 2.0 * (qf @ gf.t())
        return d.clamp_(min=0.0)
    raise ValueError(f"distance metric must be 'cosine' or 'euclidean', got {metric!r}")
