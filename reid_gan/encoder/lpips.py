"""Perceptual distances for the encoder: LPIPS (Zhang et al. 2018) when a real trunk is given, a named
feature distance otherwise.

**LPIPS** (:class:`LPIPS`, our own short implementation of v0.1): the ImageNet trunk is a torchvision
AlexNet / VGG16 / SqueezeNet1.1 state dict from a local file (``encoder.lpips.trunk=PATH``, read with
``weights_only=True``), and the calibrated 1x1 linear heads are the ones the installed torchmetrics wheel
ships in ``torchmetrics/functional/image/lpips_models/<net>.pth`` (identical files to the reference
``lpips`` package's ``weights/v0.1``). Distance = Σ_layers mean_xy( w_l · (f̂₀ − f̂₁)² ), with f̂ the
channel-unit-normalised trunk activations of the inputs after LPIPS's scaling layer. Inputs are in [-1, 1].

**Without a trunk file** the calibrated heads are never used (they were fitted to ImageNet features, not
to a random network's): :class:`FeatureDistance` is the uncalibrated LPIPS distance (every head weight 1)
on the features of

* ``alex_random`` — an AlexNet ``features`` trunk with weights drawn from a fixed seed (random-weight
  perceptual losses train generators well: Liu et al. CVPR 2021, Amir & Weiss CVPR 2021), or
* ``reid`` — the study's own re-ID network (its ResNet stages), from a re-ID checkpoint.

Metric names say which ran (``lpips_alex`` / ``featdist_alex_random`` / ``featdist_reid``) and
:func:`build_perceptual` logs one line naming it. Small images: inputs are upsampled (bilinear, aspect
kept) so that the short side is at least ``min_size`` (AlexNet's pooling needs ~32 px; pSp resizes to 256²).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["LPIPS", "FeatureDistance", "build_perceptual", "build_trunk", "heads_file", "TRUNK_LAYERS",
           "infer_trunk"]

# Where each trunk's features are tapped (indices into torchvision's ``features``; after these ReLUs /
# Fire modules), and the channels there (= the heads' inputs).
TRUNK_LAYERS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "alex": ((1, 4, 7, 9, 11), (64, 192, 384, 256, 256)),
    "vgg": ((3, 8, 15, 22, 29), (64, 128, 256, 512, 512)),
    "squeeze": ((1, 4, 7, 9, 10, 11, 12), (64, 128, 256, 384, 384, 512, 512)),
}
_TV_BUILDERS = {"alex": "alexnet", "vgg": "vgg16", "squeeze": "squeezenet1_1"}
# LPIPS v0.1 scaling layer (inputs in [-1, 1] → roughly ImageNet-normalised)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def build_trunk(net: str) -> nn.Sequential:
    """torchvision's ``features`` of ``net`` (alex | vgg | squeeze), randomly initialised (no download)."""
    import torchvision

    if net not in _TV_BUILDERS:
        raise ValueError(f"encoder.lpips.net: must be alex, vgg or squeeze (got {net!r})")
    return getattr(torchvision.models, _TV_BUILDERS[net])(weights=None).features


def infer_trunk(state: dict[str, Any]) -> str:
    """Which torchvision network a state dict is (by its ``features.*`` layout)."""
    keys = {k for k in state if k.startswith("features.")}
    if "features.3.squeeze.weight" in keys:
        return "squeeze"
    if "features.28.weight" in keys:
        return "vgg"
    if "features.10.weight" in keys:
        return "alex"
    raise ValueError("not a torchvision AlexNet / VGG16 / SqueezeNet1.1 state dict (no features.* layout found)")


def heads_file(net: str) -> Path:
    """The calibrated linear heads that the installed torchmetrics wheel ships (no download)."""
    import torchmetrics

    p = Path(torchmetrics.__file__).parent / "functional" / "image" / "lpips_models" / f"{net}.pth"
    if not p.is_file():
        raise FileNotFoundError(f"{p}: the LPIPS heads are not in the installed torchmetrics wheel")
    return p


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def _upsample_min(x: torch.Tensor, min_size: int) -> torch.Tensor:
    h, w = x.shape[-2:]
    if min(h, w) >= min_size:
        return x
    f = min_size / min(h, w)
    return F.interpolate(x, size=(int(math.ceil(h * f)), int(math.ceil(w * f))), mode="bilinear", align_corners=False)


class _Taps(nn.Module):
    """A ``features`` trunk returning the activations at ``taps``."""

    def __init__(self, features: nn.Sequential, taps: Sequence[int]):
        super().__init__()
        self.features = features[: max(taps) + 1]
        self.taps = tuple(taps)
        for m in self.features.modules():  # LPIPS runs the trunk out of place
            if isinstance(m, nn.ReLU):
                m.inplace = False

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class LPIPS(nn.Module):
    """LPIPS v0.1 with a torchvision trunk from ``trunk`` (file) and torchmetrics' calibrated heads.

    Args:
        trunk: local torchvision ``alexnet-*.pth`` / ``vgg16-*.pth`` / ``squeezenet1_1-*.pth``.
        net: alex | vgg | squeeze; ``None`` = inferred from the file.
        min_size: upsample inputs whose short side is smaller than this (0: never).

    ``forward(x, y)``: ``[N, 3, H, W]`` in [-1, 1] each → ``[N]`` distances (0 for identical inputs).
    """

    def __init__(self, trunk: str | Path, net: str | None = None, min_size: int = 0,
                 key: str = "encoder.lpips.trunk"):
        super().__init__()
        from reid_gan.utils.weights import WeightsError, load_state_dict, read_torch_file, resolve_weights_path

        path = resolve_weights_path(trunk, key)
        if path is None:
            raise WeightsError(f"{key}: not set (LPIPS needs an ImageNet trunk file)")
        state = load_state_dict(path, key)
        try:
            found = infer_trunk(state)
        except ValueError as e:
            raise WeightsError(f"{key}={path}: {e}") from None
        if net is not None and net != found:
            raise WeightsError(f"{key}={path}: the file is a {found} trunk but encoder.lpips.net={net}")
        self.net, self.min_size, self.path = found, int(min_size), path
        features = build_trunk(found)
        fstate = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        try:
            features.load_state_dict(fstate, strict=True)
        except RuntimeError as e:
            raise WeightsError(f"{key}={path}: does not fit torchvision's {_TV_BUILDERS[found]} ({e})") from None
        taps, chans = TRUNK_LAYERS[found]
        self.trunk = _Taps(features, taps)
        heads = read_torch_file(heads_file(found), what="LPIPS heads")
        ws = []
        for i, c in enumerate(chans):
            w = heads.get(f"lin{i}.model.1.weight")
            if w is None or tuple(w.shape) != (1, c, 1, 1):
                raise WeightsError(f"{heads_file(found)}: head lin{i} missing or not [1, {c}, 1, 1]")
            ws.append(w.float())
        for i, w in enumerate(ws):
            self.register_buffer(f"head{i}", w)
        self.n_layers = len(ws)
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1))
        self.requires_grad_(False).eval()
        self.name = f"lpips_{found}"

    def train(self, mode: bool = True):  # always eval (no dropout, fixed trunk)
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"LPIPS: inputs differ in shape {tuple(x.shape)} vs {tuple(y.shape)}")
        if self.min_size:
            x, y = _upsample_min(x, self.min_size), _upsample_min(y, self.min_size)
        fx = self.trunk((x - self.shift) / self.scale)
        fy = self.trunk((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for i, (a, b) in enumerate(zip(fx, fy)):
            d = (_unit(a) - _unit(b)).pow(2)
            total = total + (d * getattr(self, f"head{i}")).sum(1).mean(dim=(1, 2))
        return total


class FeatureDistance(nn.Module):
    """Squared distance of channel-unit-normalised features, summed over channels, averaged over positions,
    summed over layers: the LPIPS paper's uncalibrated "baseline" distance (all heads 1), so its scale is
    LPIPS's. Not LPIPS (no calibrated heads, no ImageNet trunk): its name says which features it uses.

    Args:
        extractor: ``x [N, 3, H, W] (normalised input) -> list of feature maps``.
        name: metric name, e.g. ``featdist_alex_random``.
        mean, std: input normalisation applied to ``(x + 1) / 2``.
    """

    def __init__(self, extractor: nn.Module, name: str, mean: Sequence[float] = (0.485, 0.456, 0.406),
                 std: Sequence[float] = (0.229, 0.224, 0.225), min_size: int = 0):
        super().__init__()
        self.extractor = extractor.eval().requires_grad_(False)
        self.name, self.min_size = name, int(min_size)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))

    def train(self, mode: bool = True):
        return super().train(False)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.shape != y.shape:
            raise ValueError(f"{self.name}: inputs differ in shape {tuple(x.shape)} vs {tuple(y.shape)}")
        if self.min_size:
            x, y = _upsample_min(x, self.min_size), _upsample_min(y, self.min_size)
        fx = self.extractor(((x + 1) / 2 - self.mean) / self.std)
        fy = self.extractor(((y + 1) / 2 - self.mean) / self.std)
        ds = [(_unit(a) - _unit(b)).pow(2).sum(1).mean(dim=(1, 2)) for a, b in zip(fx, fy)]
        return torch.stack(ds, 0).sum(0)


def random_alexnet(seed: int = 0) -> nn.Module:
    """AlexNet ``features`` with torchvision's init drawn from ``seed`` (global RNG left as it was)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        features = build_trunk("alex")
    return _Taps(features, TRUNK_LAYERS["alex"][0])


class ReIDStages(nn.Module):
    """The feature maps after each ResNet stage of a re-ID network (``ReIDNet.backbone``)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        bb = getattr(net, "backbone", net)
        names = [n for n in ("conv1", "bn1", "relu", "maxpool") if hasattr(bb, n)]
        self.stem = nn.Sequential(*(getattr(bb, n) for n in names))
        self.stages = nn.ModuleList(getattr(bb, f"layer{i}") for i in range(1, 5) if hasattr(bb, f"layer{i}"))
        if not self.stages:
            raise ValueError("the re-ID network has no ResNet stages (layer1..layer4)")

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        out = []
        for s in self.stages:
            x = s(x)
            out.append(x)
        return out


def build_perceptual(trunk: str | None, substitute: str = "alex_random", seed: int = 0, min_size: int = 64,
                     reid_net: nn.Module | None = None, net: str | None = None) -> nn.Module:
    """LPIPS when ``trunk`` is a file; else the named substitute. Logs one line saying which."""
    if trunk:
        m = LPIPS(trunk, net=net, min_size=min_size)
        log.info("Perceptual loss: LPIPS v0.1 (%s trunk from %s, calibrated heads from the torchmetrics wheel) "
                 "as loss/%s", m.net, m.path, m.name)
        return m
    if substitute == "alex_random":
        m = FeatureDistance(random_alexnet(seed), "featdist_alex_random", min_size=min_size)
        log.info("Perceptual loss: no LPIPS trunk given (encoder.lpips.trunk=null): using a feature distance on a "
                 "randomly initialised AlexNet (seed %d) as loss/featdist_alex_random — NOT LPIPS", seed)
        return m
    if substitute == "reid":
        if reid_net is None:
            raise ValueError("encoder.lpips.substitute=reid needs a re-ID checkpoint (encoder.reid_ckpt)")
        m = FeatureDistance(ReIDStages(reid_net), "featdist_reid", min_size=0)
        log.info("Perceptual loss: no LPIPS trunk given (encoder.lpips.trunk=null): using a feature distance on "
                 "the re-ID network's stages as loss/featdist_reid — NOT LPIPS")
        return m
    raise ValueError(f"encoder.lpips.substitute: must be alex_random or reid (got {substitute!r})")
