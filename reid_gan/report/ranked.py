"""Ranked-list figure: each row is a query followed by its top-k gallery images on the Market-1501
protocol (same-pid same-camera and junk entries removed, as in the metric); a green frame marks a
correct match, red a wrong one, blue the query. The caption under each gallery image is its distance."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch

from reid_gan.report.grids import save_grid

__all__ = ["ranked_lists", "save_ranked_figure"]

GREEN, RED, BLUE = (0, 170, 0), (0, 0, 220), (220, 120, 0)


def ranked_lists(dist: torch.Tensor, q_pids: Sequence[int], g_pids: Sequence[int], q_camids: Sequence[int],
                 g_camids: Sequence[int], queries: Sequence[int], topk: int = 10) -> list[list[int]]:
    """Gallery indices of the top-``topk`` valid entries for each query index in ``queries``."""
    g_pids_t, g_cams_t = torch.as_tensor(g_pids), torch.as_tensor(g_camids)
    out = []
    for q in queries:
        order = torch.sort(dist[q], stable=True).indices
        ignore = ((g_pids_t == int(q_pids[q])) & (g_cams_t == int(q_camids[q]))) | (g_pids_t == -1)
        order = order[~ignore[order]]
        out.append(order[:topk].tolist())
    return out


def _read(path: str) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"cannot read image {path}")
    return img


def save_ranked_figure(path: str | Path, dist: torch.Tensor, q_paths: Sequence[str], q_pids: Sequence[int],
                       q_camids: Sequence[int], g_paths: Sequence[str], g_pids: Sequence[int],
                       g_camids: Sequence[int], num_queries: int = 6, topk: int = 10) -> Path:
    """Write the figure for ``num_queries`` queries spread evenly over the query list (those that
    have a valid match). Returns the PNG path."""
    g_pids_t, g_cams_t = torch.as_tensor(g_pids), torch.as_tensor(g_camids)
    valid = [q for q in range(len(q_pids))
             if bool(((g_pids_t == int(q_pids[q])) & (g_cams_t != int(q_camids[q]))).any())]
    if not valid:
        raise ValueError("no query has a match from another camera: nothing to draw")
    pick = [valid[i] for i in np.linspace(0, len(valid) - 1, min(num_queries, len(valid))).round().astype(int)]
    lists = ranked_lists(dist, q_pids, g_pids, q_camids, g_camids, pick, topk)
    images, borders, captions, labels = [], [], [], []
    ref = _read(q_paths[pick[0]])
    h, w = ref.shape[:2]
    blank = np.full((h, w, 3), 255, np.uint8)
    for q, lst in zip(pick, lists):
        images.append(_read(q_paths[q]))
        borders.append(BLUE)
        captions.append(f"q {q_pids[q]}")
        for g in lst:
            images.append(_read(g_paths[g]))
            borders.append(GREEN if int(g_pids[g]) == int(q_pids[q]) else RED)
            captions.append(f"{float(dist[q, g]):.3f}")
        for _ in range(topk - len(lst)):
            images.append(blank)
            borders.append(None)
            captions.append("")
        labels.append(f"#{q}")
    scale = 2 if h <= 80 else 1
    return save_grid(path, images, nrow=topk + 1, border_colors=borders, border_width=2 * scale,
                     captions=captions, row_labels=labels, scale=scale)
