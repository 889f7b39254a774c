"""Re-ID networks: a torchvision ResNet backbone whose last FC is replaced by a classifier over the
training identities (the thesis's plain cross-entropy model).

``ReIDNet(arch, num_classes)``:

* training mode: ``forward(x [B, 3, H, W]) -> logits [B, num_classes]``;
* eval mode: ``forward(x) -> features [B, D]`` (the global-average-pooled backbone output, ``D`` = 2048
  for ResNet50, 512 for ResNet18; after the BN-neck when ``bnneck=True``), used for ranking.

ImageNet weights come only from a local file (``pretrained=PATH``, torchvision's ``resnet50-0676ba61.pth``
/ ``resnet18-f37072fd.pth`` / ``resnet50-11ad3fa6.pth`` state-dict format), read with
``torch.load(weights_only=True)``; nothing is downloaded. Without a file the backbone starts from
random weights and the log says so.
"""

from __future__ import annotations

from typing import Any

import torch
import torchvision
from torch import nn

from reid_gan.utils.logging import get_logger
from reid_gan.utils.weights import WeightsError, load_state_dict, resolve_weights_path

log = get_logger(__name__)

__all__ = ["ReIDNet", "build_backbone", "load_imagenet_weights", "ARCHS"]

ARCHS = {"resnet18": 512, "resnet34": 512, "resnet50": 2048, "resnet101": 2048}


def build_backbone(arch: str, last_stride: int = 2) -> tuple[nn.Module, int]:
    """A torchvision ResNet (random weights) without its FC layer, and its feature size."""
    if arch not in ARCHS:
        raise ValueError(f"reid.net.arch: unknown backbone {arch!r} (one of {', '.join(ARCHS)})")
    net = getattr(torchvision.models, arch)(weights=None)
    if last_stride not in (1, 2):
        raise ValueError(f"reid.net.last_stride must be 1 or 2, got {last_stride}")
    if last_stride == 1:  # a common re-ID tweak: keep a 2x larger final feature map
        block = net.layer4[0]
        (block.conv2 if hasattr(block, "conv3") else block.conv1).stride = (1, 1)
        if block.downsample is not None:
            block.downsample[0].stride = (1, 1)
    net.fc = nn.Identity()
    return net, ARCHS[arch]


def load_imagenet_weights(backbone: nn.Module, path: Any, key: str = "reid.pretrained") -> dict[str, list[str]]:
    """Load a torchvision ImageNet state dict (its ``fc.*`` classifier is skipped) into ``backbone``.

    Returns ``{"missing": [...], "unexpected": [...]}`` (also logged). Wrong shapes (e.g. ResNet18
    weights for a ResNet50) or a file sharing no key with the backbone raise :class:`WeightsError`
    naming the file.
    """
    p = resolve_weights_path(path, key)
    assert p is not None
    sd = load_state_dict(p, key)
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    skipped = sorted(k for k in sd if k.startswith("fc."))
    sd = {k: v for k, v in sd.items() if not k.startswith("fc.")}
    own = backbone.state_dict()
    common = [k for k in sd if k in own]
    if not common:
        raise WeightsError(f"{key}={p}: no parameter name matches a torchvision ResNet "
                           f"(first keys in the file: {list(sd)[:5]})")
    bad = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
           for k in common if tuple(sd[k].shape) != tuple(own[k].shape)]
    if bad:
        raise WeightsError(f"{key}={p}: shapes do not match this backbone (wrong architecture?): "
                           + "; ".join(bad[:3]) + (f" (and {len(bad) - 3} more)" if len(bad) > 3 else ""))
    res = backbone.load_state_dict(sd, strict=False)
    missing, unexpected = list(res.missing_keys), list(res.unexpected_keys)
    log.info("Loaded ImageNet weights from %s: %d tensors; classifier keys skipped: %s; missing: %s; "
             "unexpected: %s", p, len(common), skipped or "none", missing or "none", unexpected or "none")
    if missing:
        log.warning("%s=%s leaves %d backbone tensors at their random init: %s", key, p, len(missing), missing[:8])
    return {"missing": missing, "unexpected": unexpected, "skipped": skipped}


class ReIDNet(nn.Module):
    """Backbone + (optional BN-neck) + linear classifier over ``num_classes`` training identities.

    Args:
        arch: torchvision ResNet name (``resnet50``: the thesis; ``resnet18``: quick runs).
        num_classes: training identities (real + synthetic classes with ``aug.label=new_class``).
        pretrained: local ImageNet state-dict file or ``None`` (random init, logged).
        bnneck: BatchNorm1d between the pooled feature and the classifier (Luo et al. 2019); features
            for ranking are taken after it. Default off: the thesis's plain model.
        dropout: dropout before the classifier (training only).
        last_stride: stride of the last ResNet stage (2: torchvision; 1: the re-ID tweak).
        log_init: log that the backbone starts from random weights (off when a checkpoint follows).
    """

    def __init__(self, arch: str = "resnet50", num_classes: int = 751, pretrained: str | None = None,
                 bnneck: bool = False, dropout: float = 0.0, last_stride: int = 2, log_init: bool = True) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.arch = arch
        self.num_classes = int(num_classes)
        self.backbone, self.feature_dim = build_backbone(arch, last_stride)
        self.weights_report: dict[str, list[str]] | None = None
        if pretrained not in (None, "", "null"):
            self.weights_report = load_imagenet_weights(self.backbone, pretrained)
        elif log_init:
            log.info("reid.pretrained not given: the %s backbone starts from random weights (training from "
                     "scratch, no ImageNet initialisation)", arch)
        self.bnneck = nn.BatchNorm1d(self.feature_dim) if bnneck else None
        if self.bnneck is not None:
            self.bnneck.bias.requires_grad_(False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.classifier = nn.Linear(self.feature_dim, self.num_classes, bias=not bnneck)
        nn.init.normal_(self.classifier.weight, std=0.001)
        if self.classifier.bias is not None:
            nn.init.zeros_(self.classifier.bias)
        self.config = dict(arch=arch, num_classes=self.num_classes, bnneck=bool(bnneck), dropout=float(dropout),
                           last_stride=int(last_stride))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, 3, H, W]`` → ranking features ``[B, D]``."""
        assert x.dim() == 4 and x.shape[1] == 3, f"expected [B, 3, H, W], got {tuple(x.shape)}"
        f = self.backbone(x)
        return self.bnneck(f) if self.bnneck is not None else f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)
        if not self.training:
            return f
        return self.classifier(self.dropout(f))

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        head = list(self.classifier.parameters())
        if self.bnneck is not None:
            head += list(self.bnneck.parameters())
        return head
