"""Market-1501 rank metrics as a torchmetrics ``Metric`` (Lightning validation, DDP-safe).

``update(features, pids, camids, is_query, index=None)`` stores a batch of query and/or gallery
features; ``compute()`` builds the query x gallery distance matrix (cosine distance by default, the
thesis's ranking distance; ``euclidean`` optional) and returns Rank@k, mAP and mINP from
:func:`reid_gan.metrics.rank.evaluate_rank`.

Under DDP every state is a list that torchmetrics gathers from all processes before ``compute``, so
each process evaluates the whole query/gallery set. Distributed samplers pad the last batch with
repeated samples and interleave the order; pass each sample's dataset ``index`` and the metric drops
repeats and restores the dataset order, which makes the result identical to a single-process
evaluation of the same features (ties included).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchmetrics import Metric
from torchmetrics.utilities import dim_zero_cat

from reid_gan.metrics.rank import compute_distance_matrix, evaluate_rank

__all__ = ["RankMetrics"]


class RankMetrics(Metric):
    """Rank@k / mAP / mINP of query-vs-gallery retrieval on the Market-1501 protocol.

    Args:
        distance: ``"cosine"`` (default) or ``"euclidean"``.
        ranks: the CMC ranks reported as ``rank{k}``.
        max_rank: CMC length passed to :func:`evaluate_rank`.
    """

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, distance: str = "cosine", ranks: Sequence[int] = (1, 5, 10), max_rank: int = 50,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if distance not in ("cosine", "euclidean"):
            raise ValueError(f"distance must be 'cosine' or 'euclidean', got {distance!r}")
        self.distance = distance
        self.ranks = tuple(int(r) for r in ranks)
        self.max_rank = max(int(max_rank), max(self.ranks))
        self.last_eval: dict[str, Any] | None = None
        for name in ("features", "pids", "camids", "is_query", "index"):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, features: torch.Tensor, pids: torch.Tensor, camids: torch.Tensor, is_query: torch.Tensor,
               index: torch.Tensor | None = None) -> None:
        """Add a batch: ``features [B, D]``, ``pids [B]``, ``camids [B]``, ``is_query [B]`` (bool), and
        optionally ``index [B]``: a unique id per sample (its dataset index) used to drop repeats."""
        features = features.detach()
        if features.dim() != 2:
            raise ValueError(f"features must be [B, D], got shape {tuple(features.shape)}")
        b = features.shape[0]
        pids, camids = torch.as_tensor(pids).reshape(-1), torch.as_tensor(camids).reshape(-1)
        is_query = torch.as_tensor(is_query).reshape(-1).bool()
        for name, t in (("pids", pids), ("camids", camids), ("is_query", is_query)):
            if t.numel() != b:
                raise ValueError(f"{name} has {t.numel()} entries for {b} features")
        if index is None:
            if len(self.index):
                raise ValueError("index was given for earlier batches but not for this one")
        else:
            index = torch.as_tensor(index).reshape(-1).long()
            if index.numel() != b:
                raise ValueError(f"index has {index.numel()} entries for {b} features")
            if len(self.features) and not len(self.index):
                raise ValueError("index given now but not for earlier batches")
            self.index.append(index.to(features.device))
        self.features.append(features.float())
        self.pids.append(pids.long().to(features.device))
        self.camids.append(camids.long().to(features.device))
        self.is_query.append(is_query.to(features.device))

    def _gathered(self) -> tuple[torch.Tensor, ...]:
        f = self.features
        if (isinstance(f, list) and not f) or (isinstance(f, torch.Tensor) and f.numel() == 0):
            raise ValueError("RankMetrics.compute() called before any update()")
        feats = dim_zero_cat(self.features)
        pids, camids, is_query = dim_zero_cat(self.pids), dim_zero_cat(self.camids), dim_zero_cat(self.is_query)
        index = self.index
        if (isinstance(index, list) and len(index)) or (isinstance(index, torch.Tensor) and index.numel()):
            index = dim_zero_cat(index)
            uniq, inverse = torch.unique(index, sorted=True, return_inverse=True)
            # first occurrence of each index, in index order (repeats from padding are exact copies)
            pos = torch.arange(index.numel(), device=index.device)
            first = torch.full((uniq.numel(),), index.numel(), dtype=torch.long, device=index.device)
            first.scatter_reduce_(0, inverse, pos, reduce="amin")
            feats, pids, camids, is_query = feats[first], pids[first], camids[first], is_query[first]
        return feats, pids, camids, is_query.bool()

    def compute(self) -> dict[str, torch.Tensor]:
        feats, pids, camids, is_query = self._gathered()
        nq, ng = int(is_query.sum()), int((~is_query).sum())
        if nq == 0 or ng == 0:
            raise ValueError(f"need query and gallery samples to evaluate (got {nq} query, {ng} gallery)")
        dist = compute_distance_matrix(feats[is_query], feats[~is_query], self.distance)
        res = evaluate_rank(dist, pids[is_query], pids[~is_query], camids[is_query], camids[~is_query],
                            max_rank=self.max_rank)
        # kept for figures (ranked lists): distances in dataset order when indices were given
        self.last_eval = {"dist": dist.detach().cpu(), "AP": res["AP"]}
        cmc = res["cmc"]
        out = {f"rank{k}": torch.tensor(float(cmc[min(k, len(cmc)) - 1]), dtype=torch.float64) for k in self.ranks}
        out["mAP"] = torch.tensor(res["mAP"], dtype=torch.float64)
        out["mINP"] = torch.tensor(res["mINP"], dtype=torch.float64)
        out["num_valid_q"] = torch.tensor(float(res["num_valid_q"]))
        return out
