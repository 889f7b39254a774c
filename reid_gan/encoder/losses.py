"""The encoder's loss terms (pSp / ReStyle for non-face domains) and their weighted sum.

* ``l2`` — mean squared error between the input (at the generator's resolution) and the reconstruction.
* perceptual — :mod:`reid_gan.encoder.lpips` (LPIPS when a trunk file is given, else a named feature
  distance).
* similarity — ``1 - cos(f(x), f(y))`` averaged over the batch, with ``f`` either

  - **MoCo v2** (``moco``): a torchvision ResNet50 with the query encoder of a local
    ``moco_v2_800ep_pretrain.pth.tar`` (keys ``module.encoder_q.*``; the MLP head ``fc.*`` dropped),
    2048-d pooled features. pSp squashes the image to 224x224; we keep the aspect ratio and resize so the
    short side is ``short_side`` (224 by default: a 2:1 crop becomes 448x224), the network pools globally;
  - **re-ID** (``reid``): the study's re-ID network from a re-ID checkpoint (its ranking features), the
    input resized to the re-ID model's input size — the identity feature that fits bodies;

  or absent (``none``: the term is 0 and the log says so).
* ``w_norm`` — pSp's ``Σ_i ‖w_i − w_avg‖₂ / N``: the Frobenius norm of each latent's offset from the
  average latent, averaged over the batch.

Defaults as stylegan3-editing / ReStyle use outside faces: L2 1.0, perceptual 0.8, similarity 0.5,
w-norm 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reid_gan.encoder.networks import resize
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["load_moco_resnet50", "MocoSimilarity", "ReIDSimilarity", "w_norm", "EncoderLoss", "IMAGENET_MEAN",
           "IMAGENET_STD", "load_reid_net"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MOCO_PREFIX = "module.encoder_q."


def load_moco_resnet50(path: str | Path, key: str = "encoder.moco.weights") -> nn.Module:
    """A torchvision ResNet50 (``fc`` = identity) with the MoCo v2 query encoder of ``path``.

    The file is read with ``weights_only=True``; its ``state_dict`` must hold ``module.encoder_q.*``
    (MoCo's layout); ``module.encoder_q.fc.*`` (the projection MLP) is dropped, and every other ResNet50
    weight must be present.
    """
    import torchvision

    from reid_gan.utils.weights import WeightsError, load_state_dict, resolve_weights_path

    p = resolve_weights_path(path, key)
    if p is None:
        raise WeightsError(f"{key}: not set")
    state = load_state_dict(p, key)
    q = {k[len(MOCO_PREFIX):]: v for k, v in state.items() if k.startswith(MOCO_PREFIX)}
    if not q:
        raise WeightsError(f"{key}={p}: no '{MOCO_PREFIX}*' entries: not a MoCo checkpoint")
    q = {k: v for k, v in q.items() if not k.startswith("fc.")}
    net = torchvision.models.resnet50(weights=None)
    net.fc = nn.Identity()
    missing, unexpected = net.load_state_dict(q, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{key}={p}: the query encoder does not fit torchvision's ResNet50 (missing "
                           f"{missing[:4]}, unexpected {unexpected[:4]})")
    return net.eval().requires_grad_(False)


class _Normalised(nn.Module):
    """[-1, 1] images → ImageNet-normalised, resized, through ``net`` → L2-normalised features."""

    def __init__(self, net: nn.Module, size: Sequence[int] | None = None, short_side: int | None = None):
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.short_side = short_side
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        return super().train(False)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if self.size is not None:
            x = resize(x, self.size)
        elif self.short_side:
            h, w = x.shape[-2:]
            f = self.short_side / min(h, w)
            x = resize(x, (round(h * f), round(w * f)))
        out = self.net(((x + 1) / 2 - self.mean) / self.std)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return F.normalize(out.flatten(1), dim=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[N]``: 1 − cosine similarity of the features (0 for identical images)."""
        return 1.0 - (self.features(x) * self.features(y)).sum(1)


class MocoSimilarity(_Normalised):
    name = "sim_moco"

    def __init__(self, path: str | Path, short_side: int = 224):
        super().__init__(load_moco_resnet50(path), short_side=short_side)
        log.info("Similarity loss: MoCo v2 ResNet50 from %s (aspect kept, short side %d px) as loss/sim_moco",
                 path, short_side)


def load_reid_net(path: str | Path, key: str = "encoder.reid_ckpt") -> nn.Module:
    """The re-ID network of a re-ID stage checkpoint (eval mode returns its ranking features)."""
    from reid_gan.filters.identity import ReIDFeatureExtractor

    return ReIDFeatureExtractor(str(path), key=key.rsplit(".", 1)[0] if "." in key else key).model


class ReIDSimilarity(_Normalised):
    name = "sim_reid"

    def __init__(self, net: nn.Module, size: Sequence[int], path: str | Path | None = None):
        super().__init__(net, size=size)
        self.path = path
        log.info("Similarity loss: cosine similarity of the re-ID network's embeddings (%s, input %dx%d) as "
                 "loss/sim_reid", path or "given network", *self.size)


def w_norm(latent: torch.Tensor, latent_avg: torch.Tensor) -> torch.Tensor:
    """``[N]``: ‖latent − latent_avg‖ over all styles and channels (pSp's WNormLoss before its batch mean)."""
    return (latent - latent_avg).flatten(1).norm(p=2, dim=1)


class EncoderLoss(nn.Module):
    """Weighted sum of the terms; returns ``(total [], {name: value []})`` (per-batch means).

    Args:
        perceptual: an LPIPS / FeatureDistance module (``.name`` is its metric name) or ``None``.
        similarity: a MocoSimilarity / ReIDSimilarity module or ``None`` (term 0, logged once).
        l2, lpips, sim, w_norm: the weights (a weight of 0 skips computing the term).
    """

    def __init__(self, perceptual: nn.Module | None, similarity: nn.Module | None, l2: float = 1.0,
                 lpips: float = 0.8, sim: float = 0.5, w_norm_weight: float = 0.0):
        super().__init__()
        self.perceptual, self.similarity = perceptual, similarity
        self.w = {"l2": float(l2), "perceptual": float(lpips), "sim": float(sim), "w_norm": float(w_norm_weight)}
        if similarity is None and self.w["sim"] > 0:
            log.info("Similarity loss: none available (no MoCo file, no re-ID checkpoint): the term is 0")

    @property
    def perceptual_name(self) -> str | None:
        return None if self.perceptual is None else self.perceptual.name

    @property
    def similarity_name(self) -> str | None:
        return None if self.similarity is None else self.similarity.name

    def terms(self, x: torch.Tensor, y: torch.Tensor, latent: torch.Tensor, latent_avg: torch.Tensor,
              all_terms: bool = False) -> dict[str, torch.Tensor]:
        """Per-image values ``[N]`` of each available term (weight-0 terms only when ``all_terms``)."""
        out = {"l2": (x - y).pow(2).flatten(1).mean(1)}
        if self.perceptual is not None and (all_terms or self.w["perceptual"] > 0):
            out[self.perceptual.name] = self.perceptual(y, x)
        if self.similarity is not None and (all_terms or self.w["sim"] > 0):
            out[self.similarity.name] = self.similarity(y, x)
        if all_terms or self.w["w_norm"] > 0:
            out["w_norm"] = w_norm(latent, latent_avg)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor, latent: torch.Tensor, latent_avg: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        t = {k: v.mean() for k, v in self.terms(x, y, latent, latent_avg).items()}
        total = self.w["l2"] * t["l2"]
        if self.perceptual is not None and self.perceptual.name in t:
            total = total + self.w["perceptual"] * t[self.perceptual.name]
        if self.similarity is not None and self.similarity.name in t:
            total = total + self.w["sim"] * t[self.similarity.name]
        if "w_norm" in t:
            total = total + self.w["w_norm"] * t["w_norm"]
        return total, t
