"""ReStyle-pSp encoder networks for a frozen StyleGAN3 (no Lightning here; the system is :mod:`.module`).

Layout (ReStyle's ``ResNetBackboneEncoder`` as stylegan3-editing uses it for StyleGAN3, written anew):

* stem: ``conv1`` 7x7 stride 2 over ``input_nc = 6`` channels (the image ⊕ the current reconstruction),
  ``bn1``, a PReLU; no max-pool;
* body: the ResNet34 stages ``layer1 .. layer4`` (3, 4, 6, 3 basic blocks; ``base``·1/2/4/8 channels;
  strides 1, 2, 2, 2): total stride 16, torchvision's parameter names so that a local
  ``resnet34-*.pth`` loads into it (:func:`load_resnet34_weights`);
* heads: one :class:`MapToStyle` per style input of the generator (``n_styles = G.synthesis.num_ws``):
  stride-2 3x3 convolutions until both sides of the (possibly non-square) feature map are 1, then an
  equalised-lr linear layer to ``w_dim``.

:class:`ReStylePSP` wires the encoder to the generator: on the first pass the codes are added to
``G.mapping.w_avg`` and the encoder sees the average image, on later passes they are added to the
previous latent and the encoder sees the previous reconstruction. Images are native size: the input
crops (e.g. 2:1) at ``input_size`` and reconstructions at the generator's resolution, never padded or
squashed to a square.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["BasicBlock", "ResNet34Backbone", "MapToStyle", "ReStyleEncoder", "ReStylePSP",
           "load_resnet34_weights", "resize", "identity_input_transform", "RESNET34_BLOCKS"]

RESNET34_BLOCKS = (3, 4, 6, 3)


def _shape_ok(x: torch.Tensor, want: Sequence[int | None], what: str) -> None:
    if x.ndim != len(want) or any(w is not None and s != w for s, w in zip(x.shape, want)):
        raise ValueError(f"{what}: expected shape {list(want)} (None = any), got {list(x.shape)}")


class BasicBlock(nn.Module):
    """ResNet basic block: 3x3 conv → BN → ReLU → 3x3 conv → BN, plus the (projected) input; ReLU.

    Names follow torchvision (``conv1``, ``bn1``, ``conv2``, ``bn2``, ``downsample.0/1``).
    """

    def __init__(self, in_ch: int,  # input channels
                 out_ch: int,  # output channels
                 stride: int = 1):  # stride of the first conv (and of the projection)
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in, H, W] -> [N, out, ceil(H/s), ceil(W/s)]
        skip = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + skip)


class ResNet34Backbone(nn.Module):
    """Stem (``input_nc`` channels, PReLU, no max-pool) + ResNet34 ``layer1..layer4``: stride 16.

    ``base`` = 64 is ResNet34 (and what a torchvision file needs); smaller values make a narrower
    network of the same layout (CPU presets, scratch only).
    """

    def __init__(self, input_nc: int = 6,  # input channels (6: image ⊕ reconstruction)
                 base: int = 64):  # channels of the stem and layer1 (ResNet34: 64)
        super().__init__()
        self.input_nc, self.base = int(input_nc), int(base)
        self.conv1 = nn.Conv2d(input_nc, base, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(base)
        self.prelu = nn.PReLU(base)
        in_ch = base
        for i, n in enumerate(RESNET34_BLOCKS):
            out_ch = base * 2 ** i
            blocks = [BasicBlock(in_ch, out_ch, 1 if i == 0 else 2)] + [BasicBlock(out_ch, out_ch) for _ in range(n - 1)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
            in_ch = out_ch
        self.out_channels = in_ch

    @staticmethod
    def out_size(h: int, w: int) -> tuple[int, int]:
        """Feature-map size for an ``h x w`` input (each stride-2 step: ceil(n / 2))."""
        for _ in range(4):  # stem + layer2..4
            h, w = (h + 1) // 2, (w + 1) // 2
        return h, w

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, input_nc, H, W] -> [N, 8*base, H/16, W/16]
        _shape_ok(x, [None, self.input_nc, None, None], "ResNet34Backbone input")
        x = self.prelu(self.bn1(self.conv1(x)))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class MapToStyle(nn.Module):
    """One style head (pSp's map2style): stride-2 3x3 convs + LeakyReLU until the map is 1x1, then a
    linear layer (equalised learning rate) to one ``w_dim`` code. Non-square maps: as many convs as the
    longer side needs (``ceil(log2(max(h, w)))``, at least one); the shorter side stays at 1."""

    def __init__(self, in_ch: int,  # backbone channels
                 mid_ch: int,  # channels of the head's convs (pSp: 512)
                 w_dim: int,  # output code size
                 feat_hw: tuple[int, int]):  # the backbone's feature-map size for the configured input
        super().__init__()
        from reid_gan.gan.networks import FullyConnectedLayer

        n = max(1, math.ceil(math.log2(max(feat_hw)))) if max(feat_hw) > 1 else 1
        layers: list[nn.Module] = []
        ch = in_ch
        for _ in range(n):
            layers += [nn.Conv2d(ch, mid_ch, 3, 2, 1), nn.LeakyReLU(0.01)]
            ch = mid_ch
        self.convs = nn.Sequential(*layers)
        self.linear = FullyConnectedLayer(mid_ch, w_dim)
        self.mid_ch = mid_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in, h, w] -> [N, w_dim]
        x = self.convs(x)
        if x.shape[-2:] != (1, 1):  # an input of another size than configured: pool the rest
            x = F.adaptive_avg_pool2d(x, 1)
        return self.linear(x.flatten(1))


class ReStyleEncoder(nn.Module):
    """Backbone + ``n_styles`` heads: ``[N, 6, H, W]`` → residual codes ``[N, n_styles, w_dim]``."""

    def __init__(self, n_styles: int,  # = G.synthesis.num_ws (never hard-coded)
                 w_dim: int,  # = G.w_dim
                 input_size: Sequence[int],  # [height, width] of the encoder's input crops
                 input_nc: int = 6,
                 base_channels: int = 64,  # ResNet34 width (64 = torchvision's)
                 head_channels: int = 512):  # channels of each style head (pSp: 512)
        super().__init__()
        self.n_styles, self.w_dim = int(n_styles), int(w_dim)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.backbone = ResNet34Backbone(input_nc, base_channels)
        fh, fw = ResNet34Backbone.out_size(*self.input_size)
        self.styles = nn.ModuleList(MapToStyle(self.backbone.out_channels, head_channels, w_dim, (fh, fw))
                                    for _ in range(self.n_styles))
        self.init_kwargs = {"n_styles": self.n_styles, "w_dim": self.w_dim, "input_size": list(self.input_size),
                            "input_nc": int(input_nc), "base_channels": int(base_channels),
                            "head_channels": int(head_channels)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _shape_ok(x, [None, self.backbone.input_nc, *self.input_size], "ReStyleEncoder input")
        feat = self.backbone(x)
        codes = torch.stack([head(feat) for head in self.styles], dim=1)
        _shape_ok(codes, [x.shape[0], self.n_styles, self.w_dim], "ReStyleEncoder codes")
        return codes


def load_resnet34_weights(backbone: ResNet34Backbone, path, key: str = "encoder.backbone_weights") -> dict:
    """Initialise the backbone from a local torchvision ``resnet34-*.pth`` (``weights_only=True``).

    ``conv1``'s RGB filters go to the first 3 input channels; the other ``input_nc - 3`` keep their
    random init (as pSp does for its 6-channel input). ``fc.*`` is not used. Returns what was loaded.
    """
    from reid_gan.utils.weights import WeightsError, load_state_dict, resolve_weights_path

    p = resolve_weights_path(path, key)
    if backbone.base != 64:
        raise WeightsError(f"{key}={p}: torchvision's ResNet34 has 64 base channels; encoder.base_channels is "
                           f"{backbone.base}")
    state = load_state_dict(p, key)
    own = backbone.state_dict()
    new, used = {}, []
    for k, v in state.items():
        if k.startswith("fc."):
            continue
        if k == "conv1.weight":
            w = own["conv1.weight"].clone()
            if v.shape[1] != 3 or v.shape[0] != w.shape[0]:
                raise WeightsError(f"{key}={p}: conv1.weight has shape {tuple(v.shape)}, expected [64, 3, 7, 7]")
            w[:, :3] = v
            new[k] = w
        elif k in own:
            if tuple(own[k].shape) != tuple(v.shape):
                raise WeightsError(f"{key}={p}: {k} has shape {tuple(v.shape)}, the backbone {tuple(own[k].shape)}")
            new[k] = v
        else:
            raise WeightsError(f"{key}={p}: unexpected entry {k!r}: not a torchvision resnet34 state dict")
        used.append(k)
    missing = sorted(k for k in own if k not in new and not k.startswith("prelu."))
    if missing:
        raise WeightsError(f"{key}={p}: {len(missing)} backbone weights are missing from the file (e.g. {missing[:4]}); "
                           f"is it a resnet34 file?")
    backbone.load_state_dict({**own, **new}, strict=True)
    return {"file": str(p), "loaded": len(used)}


def resize(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize ``[N, C, H, W]`` to ``size`` (area when shrinking both sides, bilinear otherwise); no-op if equal."""
    size = (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == size:
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def identity_input_transform(G: nn.Module) -> bool:
    """Set the generator's input transform to the identity (what ReStyle encodes with); True if it changed.

    Set once when the encoder takes the generator, not around each synthesis call: restoring the buffer in
    place between a forward pass and its backward would invalidate the autograd graph.
    """
    buf = getattr(getattr(getattr(G, "synthesis", None), "input", None), "transform", None)
    if not isinstance(buf, torch.Tensor):
        return False
    eye = torch.eye(3, dtype=buf.dtype, device=buf.device)
    if torch.equal(buf, eye):
        return False
    with torch.no_grad():
        buf.copy_(eye)
    return True


class ReStylePSP(nn.Module):
    """The ReStyle loop around a frozen generator.

    Args:
        encoder: a :class:`ReStyleEncoder` with ``n_styles == G.num_ws`` and ``w_dim == G.w_dim``.
        G: the generator (frozen here: ``requires_grad_(False)``, eval mode); gradients reach the codes.
        iterations: refinement passes (stylegan3-editing uses 3 for StyleGAN3).

    ``forward(x)`` with ``x [N, 3, H_in, W_in]`` in [-1, 1] returns one ``(latent [N, num_ws, w_dim],
    image [N, 3, H_G, W_G])`` per iteration.
    """

    def __init__(self, encoder: ReStyleEncoder, G: nn.Module, iterations: int = 3):
        super().__init__()
        num_ws, w_dim = int(G.synthesis.num_ws), int(G.synthesis.w_dim)
        if encoder.n_styles != num_ws or encoder.w_dim != w_dim:
            raise ValueError(f"encoder makes {encoder.n_styles} codes of {encoder.w_dim}, the generator takes "
                             f"{num_ws} x {w_dim} (G.synthesis.num_ws x w_dim)")
        if iterations < 1:
            raise ValueError(f"encoder.iterations must be >= 1 (got {iterations})")
        self.encoder, self.G, self.iterations = encoder, G.eval().requires_grad_(False), int(iterations)
        self.num_ws, self.w_dim = num_ws, w_dim
        if identity_input_transform(G):
            log.info("The generator's input transform was not the identity: set to the identity for encoding")
        self.g_size = (int(G.synthesis.img_height), int(G.synthesis.img_width))
        self.register_buffer("latent_avg", G.mapping.w_avg.detach().clone().view(1, 1, w_dim).repeat(1, num_ws, 1),
                             persistent=False)

    def train(self, mode: bool = True):  # the generator stays in eval mode
        super().train(mode)
        self.G.eval()
        return self

    def synthesize(self, latent: torch.Tensor) -> torch.Tensor:
        _shape_ok(latent, [None, self.num_ws, self.w_dim], "ReStylePSP latent")
        return self.G.synthesis(latent, noise_mode="const", force_fp32=True)

    def average_image(self, n: int) -> torch.Tensor:
        """The image of ``w_avg`` (what the encoder sees as its 'reconstruction' on the first pass)."""
        with torch.no_grad():
            img = self.synthesize(self.latent_avg)
        return img.expand(n, -1, -1, -1)

    def step(self, x: torch.Tensor, y_prev: torch.Tensor, latent_prev: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One ReStyle pass: codes from ``x ⊕ y_prev`` (at the encoder's size), added to ``w_avg`` (first
        pass, ``latent_prev is None``) or to ``latent_prev``; returns ``(latent, image)``."""
        size = self.encoder.input_size
        _shape_ok(x, [None, 3, *size], "ReStylePSP input")
        codes = self.encoder(torch.cat([x, resize(y_prev, size)], dim=1))
        base = self.latent_avg.expand(x.shape[0], -1, -1) if latent_prev is None else latent_prev
        latent = codes + base
        return latent, self.synthesize(latent)

    def forward(self, x: torch.Tensor, iterations: int | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        y = self.average_image(x.shape[0])
        latent = None
        out = []
        for _ in range(self.iterations if iterations is None else int(iterations)):
            latent, y = self.step(x, y, latent)
            out.append((latent, y))
        return out
