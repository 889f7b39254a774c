"""StyleGAN3 generator and StyleGAN2 residual discriminator (our own code).

Written from the paper (Karras et al. 2021, "Alias-Free Generative Adversarial Networks"; Karras et
al. 2020, "Analyzing and Improving the Image Quality of StyleGAN") and from reading NVIDIA's
``networks_stylegan3.py`` / ``networks_stylegan2.py`` (non-commercial licence: nothing is copied). The
constructor arguments, their defaults and every parameter / buffer name are NVIDIA's, so
``G.load_state_dict(nvidia_G.state_dict())`` works and gives the same images (see
``tests/test_gan_networks.py``, which checks NVIDIA's own outputs to 1e-4).

Extension: **non-square images**. ``img_resolution`` may be an int (square, exactly NVIDIA's network)
or ``[height, width]``. The frequency schedule (cutoffs, stopbands, sampling rates, channel counts) is
that of the square network of side ``max(height, width)``; the image covers ``height / max`` by
``width / max`` of the unit square, with the same sampling rate on both axes (square pixels, so the
alias-free filters and the rotation-equivariant radial filters are unchanged). Each layer's size per
axis is ``sampling_rate * extent + 2 * margin`` (the last two layers: exactly height × width), and
the Fourier-feature input is sampled on that non-square grid. For a 128×64 generator every layer is
the corresponding layer of the 128×128 generator cropped to half the width, with identical parameter
shapes, so square weights load into it. Non-square layer names are ``L{i}_{h}x{w}_{channels}``.
The discriminator does the same: blocks are named and sized by the longer side (``b128`` ... ``b8``)
and the final block ``b4`` sees ``4 × 4·w/h`` (4×2 for 128×64); only ``b4.fc`` changes shape.
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from . import ops

__all__ = [
    "FullyConnectedLayer",
    "MappingNetwork",
    "SynthesisInput",
    "SynthesisLayer",
    "SynthesisNetwork",
    "Generator",
    "Conv2dLayer",
    "DiscriminatorBlock",
    "MinibatchStdLayer",
    "DiscriminatorEpilogue",
    "DiscriminatorMapping",
    "Discriminator",
    "parse_resolution",
]


def _check_shape(t: torch.Tensor, shape: Sequence[Optional[int]], what: str) -> None:
    """Assert ``t.shape`` matches ``shape`` (None = any)."""
    ok = t.ndim == len(shape) and all(s is None or int(a) == int(s) for a, s in zip(t.shape, shape))
    if not ok:
        raise AssertionError(f"{what}: expected shape {list(shape)}, got {list(t.shape)}")


def parse_resolution(img_resolution: int | Sequence[int]) -> tuple[int, int]:
    """``64`` -> (64, 64); ``[128, 64]`` -> (128, 64) (height, width)."""
    if isinstance(img_resolution, (int, np.integer)):
        h = w = int(img_resolution)
    else:
        vals = [int(v) for v in img_resolution]
        if len(vals) != 2:
            raise ValueError(f"img_resolution must be an int or [height, width], got {img_resolution!r}")
        h, w = vals
    if h < 1 or w < 1:
        raise ValueError(f"img_resolution must be positive, got {img_resolution!r}")
    return h, w


# ==============================================================================================
# Shared layers


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate: ``act(x @ (weight * gain).T + bias * lr_mul)``.

    Parameters ``weight [out_features, in_features]`` and ``bias [out_features]`` (NVIDIA's names).
    """

    def __init__(
        self,
        in_features: int,  # input features
        out_features: int,  # output features
        activation: str = "linear",  # 'linear' | 'lrelu' | 'relu' | ...
        bias: bool = True,  # add a bias before the activation?
        lr_multiplier: float = 1.0,  # learning-rate multiplier (weights stored divided by it)
        weight_init: float = 1.0,  # initial std of the weights
        bias_init: float | Sequence[float] = 0.0,  # initial bias (scalar or [out_features])
    ):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) * (weight_init / lr_multiplier))
        if bias:
            b = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features])
            self.bias = nn.Parameter(torch.from_numpy(b / lr_multiplier))
        else:
            self.bias = None
        self.weight_gain = lr_multiplier / math.sqrt(in_features) if in_features > 0 else 0.0
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, in] -> [N, out]
        _check_shape(x, [None, self.in_features], "FullyConnectedLayer input")
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return ops.bias_act(x.matmul(w.t()), b, act=self.activation)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def _normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(1, keepdim=True) + eps).rsqrt()


# ==============================================================================================
# Generator


class MappingNetwork(nn.Module):
    """z (+ label c) -> w, broadcast to ``num_ws`` copies, with truncation toward ``w_avg``.

    Submodules ``embed`` (only when ``c_dim > 0``), ``fc0`` ... ``fc{num_layers-1}``; buffer ``w_avg [w_dim]``.
    """

    def __init__(
        self,
        z_dim: int,  # latent z dimensionality
        c_dim: int,  # label dimensionality, 0 = unconditional
        w_dim: int,  # intermediate latent w dimensionality
        num_ws: int,  # number of w copies produced (= synthesis.num_ws)
        num_layers: int = 2,  # mapping depth (StyleGAN3: 2)
        lr_multiplier: float = 0.01,  # learning-rate multiplier of the mapping layers
        w_avg_beta: float = 0.998,  # decay of the running mean of w (tracked when update_emas=True)
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.embed = FullyConnectedLayer(c_dim, w_dim) if c_dim > 0 else None
        feats = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            setattr(
                self,
                f"fc{idx}",
                FullyConnectedLayer(feats[idx], feats[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier),
            )
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(
        self,
        z: torch.Tensor,  # [N, z_dim]
        c: Optional[torch.Tensor],  # [N, c_dim] (ignored when c_dim == 0)
        truncation_psi: float = 1.0,  # 1 = no truncation
        truncation_cutoff: Optional[int] = None,  # truncate only ws[:, :cutoff]; None = all
        update_emas: bool = False,  # update w_avg (training)
    ) -> torch.Tensor:  # [N, num_ws, w_dim]
        _check_shape(z, [None, self.z_dim], "mapping z")
        x = _normalize_2nd_moment(z.to(torch.float32) if z.dtype != torch.float64 else z)
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this generator is conditional (c_dim={self.c_dim}): pass labels c")
            _check_shape(c, [z.shape[0], self.c_dim], "mapping c")
            y = _normalize_2nd_moment(self.embed(c.to(x.dtype)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        if update_emas:
            with torch.no_grad():
                self.w_avg.copy_(x.detach().mean(dim=0).to(self.w_avg.dtype).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            w_avg = self.w_avg.to(x.dtype)
            head = w_avg.lerp(x[:, :cutoff], truncation_psi)
            x = torch.cat([head, x[:, cutoff:]], dim=1)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


class SynthesisInput(nn.Module):
    """Fourier-feature input: ``channels`` sinusoids of random frequency (uniform in a disc of radius
    ``bandwidth``) sampled on a ``size`` grid at ``sampling_rate`` samples per unit, rotated/translated
    per sample by ``affine(w)`` and by the user ``transform``, then mixed by ``weight``.

    Parameters ``weight [C, C]``, ``affine.*`` (w -> (cos, sin, tx, ty)); buffers ``transform [3, 3]``
    (inverse user transform of the image: set it to rotate/translate the output), ``freqs [C, 2]``,
    ``phases [C]``.
    """

    def __init__(
        self,
        w_dim: int,  # w dimensionality
        channels: int,  # number of output channels C
        size: int | Sequence[int],  # output size: int or [width, height]
        sampling_rate: float,  # samples per unit length
        bandwidth: float,  # max frequency (cycles per unit)
    ):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = np.broadcast_to(np.asarray(size), [2]).astype(np.int64)  # [width, height]
        self.sampling_rate = float(sampling_rate)
        self.bandwidth = float(bandwidth)
        g = torch.randn([channels, 2])
        r = g.square().sum(dim=1, keepdim=True).sqrt()
        freqs = g / (r * torch.exp(r.square() / 4)) * bandwidth  # radial density -> uniform-ish disc
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = FullyConnectedLayer(w_dim, 4, weight_init=0, bias_init=[1, 0, 0, 0])
        self.register_buffer("transform", torch.eye(3, 3))
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:  # [N, w_dim] -> [N, C, height, width]
        _check_shape(w, [None, self.w_dim], "SynthesisInput w")
        n = w.shape[0]
        dt, dev = w.dtype, w.device
        # per-sample rotation (r_c, r_s) and translation (t_x, t_y), rotation normalised to unit length
        t = self.affine(w)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        cos, sin, tx, ty = t.unbind(1)
        one, zero = torch.ones_like(cos), torch.zeros_like(cos)
        m_rot = torch.stack([cos, -sin, zero, sin, cos, zero, zero, zero, one], 1).reshape(n, 3, 3)
        m_tr = torch.stack([one, zero, -tx, zero, one, -ty, zero, zero, one], 1).reshape(n, 3, 3)
        tf = m_rot @ m_tr @ self.transform.to(dt).unsqueeze(0)  # [N, 3, 3]
        freqs = self.freqs.to(dt).unsqueeze(0)  # [1, C, 2]
        phases = self.phases.to(dt).unsqueeze(0) + (freqs @ tf[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ tf[:, :2, :2]  # [N, C, 2]
        # attenuate frequencies that the user transform pushed out of band
        amp = (1 - (freqs.norm(dim=2) - self.bandwidth) / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)
        sx, sy = int(self.size[0]), int(self.size[1])
        theta = torch.zeros(1, 2, 3, dtype=dt, device=dev)
        theta[0, 0, 0] = 0.5 * sx / self.sampling_rate
        theta[0, 1, 1] = 0.5 * sy / self.sampling_rate
        grid = torch.nn.functional.affine_grid(theta, [1, 1, sy, sx], align_corners=False)  # [1, H, W, 2]
        x = grid.reshape(1, sy * sx, 2) @ freqs.transpose(1, 2)  # [N, H*W, C]
        x = torch.sin((x + phases.unsqueeze(1)) * (2 * math.pi)) * amp.unsqueeze(1)
        x = x @ (self.weight.to(dt) / math.sqrt(self.channels)).t()
        x = x.reshape(n, sy, sx, self.channels).permute(0, 3, 1, 2)
        _check_shape(x, [n, self.channels, sy, sx], "SynthesisInput output")
        return x.contiguous()

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, channels={self.channels}, size={list(self.size)}, "
            f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}"
        )


class SynthesisLayer(nn.Module):
    """One alias-free layer: modulated conv -> bias + filtered leaky ReLU (up-sample ``up_factor``,
    activation at ``tmp_sampling_rate``, low-pass + down-sample ``down_factor``) -> clamp.
    The last layer (``is_torgb``) is a 1×1 modulated conv without demodulation or activation.

    Parameters ``weight [O, I, k, k]``, ``bias [O]``, ``affine.*`` (w -> styles [I]); buffers
    ``magnitude_ema []`` (running mean square of the input), ``up_filter``, ``down_filter``
    (``[taps]`` separable, ``[taps, taps]`` radial; absent when identity).
    Sizes are stored as NVIDIA does, ``[width, height]``.
    """

    def __init__(
        self,
        w_dim: int,  # w dimensionality
        is_torgb: bool,  # final ToRGB layer?
        is_critically_sampled: bool,  # critically sampled (last num_critical layers)?
        use_fp16: bool,  # NVIDIA's fp16 flag: stored; we compute in the input's dtype (use autocast for AMP)
        in_channels: int,
        out_channels: int,
        in_size: int | Sequence[int],  # input size, int or [width, height]
        out_size: int | Sequence[int],  # output size, int or [width, height]
        in_sampling_rate: float,  # s of the input
        out_sampling_rate: float,  # s of the output
        in_cutoff: float,  # f_c of the input
        out_cutoff: float,  # f_c of the output
        in_half_width: float,  # f_h of the input
        out_half_width: float,  # f_h of the output
        conv_kernel: int = 3,  # conv kernel size (1 for ToRGB)
        filter_size: int = 6,  # low-pass taps relative to the lower rate
        lrelu_upsampling: int = 2,  # activation runs at this multiple of the higher rate
        use_radial_filters: bool = False,  # radial down-sampling filter (not for critically sampled layers)
        conv_clamp: Optional[float] = 256,  # clamp activations to [-X, X]; None = off
        magnitude_ema_beta: float = 0.999,  # decay of magnitude_ema
        impl: str = "fast",  # filtered_lrelu implementation: 'fast' | 'ref'
    ):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.in_size = np.broadcast_to(np.asarray(in_size), [2]).astype(np.int64)
        self.out_size = np.broadcast_to(np.asarray(out_size), [2]).astype(np.int64)
        self.in_sampling_rate = in_sampling_rate
        self.out_sampling_rate = out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.in_half_width, self.out_half_width = in_half_width, out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta
        self.impl = impl

        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(np.rint(self.tmp_sampling_rate / in_sampling_rate))
        assert in_sampling_rate * self.up_factor == self.tmp_sampling_rate
        self.up_taps = filter_size * self.up_factor if (self.up_factor > 1 and not is_torgb) else 1
        self.register_buffer(
            "up_filter",
            ops.design_lowpass_filter(self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate),
        )
        self.down_factor = int(np.rint(self.tmp_sampling_rate / out_sampling_rate))
        assert out_sampling_rate * self.down_factor == self.tmp_sampling_rate
        self.down_taps = filter_size * self.down_factor if (self.down_factor > 1 and not is_torgb) else 1
        self.down_radial = bool(use_radial_filters and not is_critically_sampled)
        self.register_buffer(
            "down_filter",
            ops.design_lowpass_filter(
                self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, radial=self.down_radial
            ),
        )
        # Padding (per axis, [x, y]) so that the output samples sit at the centres of the output pixels:
        # wanted length before down-sampling, minus the up-sampled length, plus what the filters eat;
        # the low side gets the extra up_factor // 2 of the symmetric half-pixel convention.
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo[0]), int(pad_hi[0]), int(pad_lo[1]), int(pad_hi[1])]

    def forward(
        self,
        x: torch.Tensor,  # [N, in_channels, in_h, in_w]
        w: torch.Tensor,  # [N, w_dim]
        noise_mode: str = "random",  # accepted for API compatibility: StyleGAN3 has no noise inputs
        force_fp32: bool = False,  # accepted for API compatibility
        update_emas: bool = False,  # update magnitude_ema (training)
    ) -> torch.Tensor:  # [N, out_channels, out_h, out_w]
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        _check_shape(x, [None, self.in_channels, int(self.in_size[1]), int(self.in_size[0])], "SynthesisLayer x")
        _check_shape(w, [x.shape[0], self.w_dim], "SynthesisLayer w")
        if update_emas:
            with torch.no_grad():
                cur = x.detach().to(self.magnitude_ema.dtype).square().mean()
                self.magnitude_ema.copy_(cur.lerp(self.magnitude_ema, self.magnitude_ema_beta))
        input_gain = self.magnitude_ema.to(x.dtype).rsqrt()
        styles = self.affine(w.to(x.dtype))
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel**2))
        x = ops.modulated_conv2d(
            x,
            self.weight,
            styles,
            demodulate=not self.is_torgb,
            padding=self.conv_kernel - 1,
            input_gain=input_gain,
            fused=(self.impl == "ref"),
        )
        x = ops.filtered_lrelu(
            x,
            fu=self.up_filter,
            fd=self.down_filter,
            b=self.bias.to(x.dtype),
            up=self.up_factor,
            down=self.down_factor,
            padding=self.padding,
            gain=1.0 if self.is_torgb else math.sqrt(2),
            slope=1.0 if self.is_torgb else 0.2,
            clamp=self.conv_clamp,
            impl=self.impl,
        )
        _check_shape(x, [None, self.out_channels, int(self.out_size[1]), int(self.out_size[0])], "SynthesisLayer out")
        return x

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, is_torgb={self.is_torgb}, is_critically_sampled={self.is_critically_sampled}, "
            f"in_sampling_rate={self.in_sampling_rate:g}, out_sampling_rate={self.out_sampling_rate:g}, "
            f"in_cutoff={self.in_cutoff:g}, out_cutoff={self.out_cutoff:g}, "
            f"in_size={list(self.in_size)}, out_size={list(self.out_size)} (w, h), "
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, up={self.up_factor}, "
            f"down={self.down_factor}, radial={self.down_radial}"
        )


class SynthesisNetwork(nn.Module):
    """ws ``[N, num_ws, w_dim]`` -> image ``[N, img_channels, H, W]``: Fourier input + ``num_layers + 1``
    synthesis layers named ``L{i}_{size}_{channels}`` (non-square: ``L{i}_{h}x{w}_{channels}``)."""

    def __init__(
        self,
        w_dim: int,  # w dimensionality
        img_resolution: int | Sequence[int],  # int (square) or [height, width]
        img_channels: int,  # output colour channels
        channel_base: int = 32768,  # channels = min(channel_base / 2 / cutoff, channel_max)
        channel_max: int = 512,  # max channels in any layer
        num_layers: int = 14,  # layers excluding the input and ToRGB
        num_critical: int = 2,  # critically sampled layers at the end
        first_cutoff: float = 2,  # f_{c,0}
        first_stopband: float = 2**2.1,  # f_{t,0}
        last_stopband_rel: float = 2**0.3,  # f_{t,N} / f_{c,N}
        margin_size: int = 10,  # extra pixels around the image in the intermediate layers
        output_scale: float = 0.25,  # final image scale
        num_fp16_res: int = 4,  # NVIDIA's fp16 setting: stored (sets layers' use_fp16); we compute in fp32
        impl: str = "fast",  # filtered_lrelu / modulated conv implementation ('fast' | 'ref')
        **layer_kwargs: Any,  # SynthesisLayer hyper-parameters (conv_kernel, filter_size, ...)
    ):
        super().__init__()
        h, w = parse_resolution(img_resolution)
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_height, self.img_width = h, w
        self.img_resolution = h if h == w else (h, w)
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res
        res = max(h, w)

        # geometric progression of cutoffs and minimum stopbands, as in the square network of side res
        last_cutoff = res / 2
        last_stopband = last_cutoff * last_stopband_rel
        exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
        cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
        stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
        sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, res))))
        half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
        if not (half_widths > 0).all():
            bad = int(np.argmin(half_widths))
            raise ValueError(
                f"SynthesisNetwork: layer {bad} has cutoff {cutoffs[bad]:g} at or above its stopband "
                f"{max(stopbands[bad], sampling_rates[bad] / 2):g} (no transition band: its low-pass filter "
                f"would be NaN); raise first_stopband (now {first_stopband:g}) above first_cutoff "
                f"({first_cutoff:g}) or lower first_cutoff"
            )
        # sizes per axis [width, height]: extent (fraction of the unit square) * rate + margins
        ext = np.array([w / res, h / res])
        sizes = sampling_rates[:, None] * ext[None, :] + margin_size * 2
        sizes[-2:] = [w, h]
        if not np.allclose(sizes, np.rint(sizes)):
            raise ValueError(
                f"img_resolution={img_resolution!r}: the layers' sampling rates {sampling_rates.tolist()} times the "
                f"aspect ({h}x{w}) must give whole pixel counts; use sides whose ratio is a power of two"
            )
        sizes = np.rint(sizes).astype(np.int64)
        channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
        channels[-1] = img_channels
        self.cutoffs, self.stopbands, self.sampling_rates = cutoffs, stopbands, sampling_rates
        self.half_widths, self.sizes, self.channels = half_widths, sizes, channels

        self.input = SynthesisInput(
            w_dim=w_dim,
            channels=int(channels[0]),
            size=sizes[0].tolist() if h != w else int(sizes[0][0]),
            sampling_rate=sampling_rates[0],
            bandwidth=cutoffs[0],
        )
        self.layer_names: list[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SynthesisLayer(
                w_dim=w_dim,
                is_torgb=(idx == num_layers),
                is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sampling_rates[idx] * (2**num_fp16_res) > res),
                in_channels=int(channels[prev]),
                out_channels=int(channels[idx]),
                in_size=sizes[prev].tolist(),
                out_size=sizes[idx].tolist(),
                in_sampling_rate=int(sampling_rates[prev]),
                out_sampling_rate=int(sampling_rates[idx]),
                in_cutoff=cutoffs[prev],
                out_cutoff=cutoffs[idx],
                in_half_width=half_widths[prev],
                out_half_width=half_widths[idx],
                impl=impl,
                **layer_kwargs,
            )
            if h == w:
                name = f"L{idx}_{int(layer.out_size[0])}_{layer.out_channels}"
            else:
                name = f"L{idx}_{int(layer.out_size[1])}x{int(layer.out_size[0])}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def set_impl(self, impl: str) -> None:
        """Switch every layer between the 'fast' and the 'ref' (zero-stuffing) implementation."""
        if impl not in ("fast", "ref"):
            raise ValueError(f"impl must be 'fast' or 'ref', got {impl!r}")
        for name in self.layer_names:
            getattr(self, name).impl = impl

    def forward(
        self,
        ws: torch.Tensor,  # [N, num_ws, w_dim]
        noise_mode: str = "random",  # accepted for API compatibility (no noise in StyleGAN3)
        update_emas: bool = False,  # update the layers' magnitude_ema (training)
        force_fp32: bool = False,  # accepted for API compatibility
    ) -> torch.Tensor:  # [N, img_channels, H, W]
        _check_shape(ws, [None, self.num_ws, self.w_dim], "synthesis ws")
        if ws.dtype != torch.float64:
            ws = ws.to(torch.float32)
        ws_list = ws.unbind(dim=1)
        x = self.input(ws_list[0])
        for name, w in zip(self.layer_names, ws_list[1:]):
            x = getattr(self, name)(x, w, noise_mode=noise_mode, update_emas=update_emas)
        if self.output_scale != 1:
            x = x * self.output_scale
        _check_shape(x, [None, self.img_channels, self.img_height, self.img_width], "synthesis output")
        return x

    def extra_repr(self) -> str:
        return (
            f"w_dim={self.w_dim}, num_ws={self.num_ws}, img_resolution={self.img_resolution}, "
            f"img_channels={self.img_channels}, num_layers={self.num_layers}, num_critical={self.num_critical}, "
            f"margin_size={self.margin_size}"
        )


class Generator(nn.Module):
    """StyleGAN3 generator: ``G(z, c) = synthesis(mapping(z, c))``.

    Constructor arguments are NVIDIA's (``networks_stylegan3.Generator``): ``z_dim``, ``c_dim``,
    ``w_dim``, ``img_resolution`` (int, or ``[height, width]`` for native non-square output),
    ``img_channels``, ``mapping_kwargs`` (MappingNetwork: ``num_layers``, ``lr_multiplier``,
    ``w_avg_beta``) and ``**synthesis_kwargs`` (SynthesisNetwork + SynthesisLayer: ``channel_base``,
    ``channel_max``, ``num_layers``, ``num_critical``, ``first_cutoff``, ``first_stopband``,
    ``last_stopband_rel``, ``margin_size``, ``output_scale``, ``num_fp16_res``, ``conv_kernel``,
    ``filter_size``, ``lrelu_upsampling``, ``use_radial_filters``, ``conv_clamp``,
    ``magnitude_ema_beta``) plus ``impl`` ('fast' default, 'ref' = zero-stuffing reference ops).
    Config T: ``conv_kernel=3``; config R: ``conv_kernel=1, use_radial_filters=True`` with doubled
    ``channel_base``/``channel_max`` (see :func:`config_kwargs`).
    """

    def __init__(
        self,
        z_dim: int,
        c_dim: int,
        w_dim: int,
        img_resolution: int | Sequence[int],
        img_channels: int,
        mapping_kwargs: Optional[dict] = None,
        **synthesis_kwargs: Any,
    ):
        super().__init__()
        self.z_dim = z_dim
        self.c_dim = c_dim
        self.w_dim = w_dim
        h, w = parse_resolution(img_resolution)
        self.img_height, self.img_width = h, w
        self.img_resolution = h if h == w else (h, w)
        self.img_channels = img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=w_dim, img_resolution=img_resolution, img_channels=img_channels, **synthesis_kwargs
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, num_ws=self.num_ws, **dict(mapping_kwargs or {})
        )

    def forward(
        self,
        z: torch.Tensor,  # [N, z_dim]
        c: Optional[torch.Tensor],  # [N, c_dim] (or [N, 0] / None when unconditional)
        truncation_psi: float = 1.0,
        truncation_cutoff: Optional[int] = None,
        update_emas: bool = False,
        **synthesis_kwargs: Any,  # noise_mode, force_fp32
    ) -> torch.Tensor:  # [N, img_channels, H, W]
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff, update_emas=update_emas)
        return self.synthesis(ws, update_emas=update_emas, **synthesis_kwargs)


def config_kwargs(cfg: str, channel_base: int = 32768, channel_max: int = 512) -> dict:
    """Synthesis kwargs of NVIDIA's ``train.py`` for ``stylegan3-t`` / ``stylegan3-r`` (``magnitude_ema_beta``
    depends on the batch size and is left to the caller)."""
    if cfg in ("stylegan3-t", "t", "T"):
        return dict(channel_base=channel_base, channel_max=channel_max)
    if cfg in ("stylegan3-r", "r", "R"):
        return dict(
            channel_base=channel_base * 2, channel_max=channel_max * 2, conv_kernel=1, use_radial_filters=True
        )
    raise ValueError(f"unknown StyleGAN3 config {cfg!r}: expected 'stylegan3-t' or 'stylegan3-r'")


# ==============================================================================================
# Discriminator (StyleGAN2 residual D, as used to train StyleGAN3)


class Conv2dLayer(nn.Module):
    """Equalised-lr conv with optional 2× down-sampling (low-pass ``resample_filter`` first), bias,
    activation and clamp. Parameters ``weight [O, I, k, k]``, ``bias [O]`` (buffers when frozen);
    buffer ``resample_filter [4, 4]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,  # only 1 is supported (the discriminator never up-samples)
        down: int = 1,  # down-sampling factor
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
        channels_last: bool = False,  # accepted for compatibility
        trainable: bool = True,  # False = weights are buffers (Freeze-D)
    ):
        super().__init__()
        if up != 1:
            raise NotImplementedError("Conv2dLayer: up-sampling is not used by the discriminator")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", ops.setup_filter(list(resample_filter)))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ops.activation_gain(activation)
        weight = torch.randn([out_channels, in_channels, kernel_size, kernel_size])
        b = torch.zeros([out_channels]) if bias else None
        if trainable:
            self.weight = nn.Parameter(weight)
            self.bias = nn.Parameter(b) if b is not None else None
        else:
            self.register_buffer("weight", weight)
            if b is not None:
                self.register_buffer("bias", b)
            else:
                self.bias = None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:  # [N, I, H, W] -> [N, O, H/d, W/d]
        _check_shape(x, [None, self.in_channels, None, None], "Conv2dLayer input")
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = ops.conv2d_resample_down(x, w, self.resample_filter, down=self.down, padding=self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return ops.bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, out_channels={self.out_channels}, activation={self.activation}, down={self.down}"


class DiscriminatorBlock(nn.Module):
    """Residual block at one resolution: (fromrgb) -> conv0 (3×3) -> conv1 (3×3, ↓2) + skip (1×1, ↓2).
    Submodules ``fromrgb`` (first block, or 'skip' architecture), ``conv0``, ``conv1``, ``skip`` ('resnet')."""

    def __init__(
        self,
        in_channels: int,  # 0 = first block (reads the image)
        tmp_channels: int,
        out_channels: int,
        resolution: int | Sequence[int],  # this block's input size: int or [height, width]
        img_channels: int,
        first_layer_idx: int,  # index of this block's first layer (for freeze_layers)
        architecture: str = "resnet",  # 'orig' | 'skip' | 'resnet'
        activation: str = "lrelu",
        resample_filter: Sequence[float] = (1, 3, 3, 1),
        conv_clamp: Optional[float] = None,
        use_fp16: bool = False,  # accepted; computation stays in the input dtype
        fp16_channels_last: bool = False,  # accepted for compatibility
        freeze_layers: int = 0,  # Freeze-D: the first N layers of D are not trained
    ):
        assert in_channels in (0, tmp_channels)
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"architecture must be 'orig', 'skip' or 'resnet', got {architecture!r}")
        super().__init__()
        self.in_channels = in_channels
        self.res_hw = parse_resolution(resolution)
        self.resolution = max(self.res_hw)
        self.img_channels = img_channels
        self.first_layer_idx = first_layer_idx
        self.architecture = architecture
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", ops.setup_filter(list(resample_filter)))
        self.num_layers = 0

        def trainable() -> bool:
            t = (first_layer_idx + self.num_layers) >= freeze_layers
            self.num_layers += 1
            return t

        common = dict(activation=activation, conv_clamp=conv_clamp)
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, kernel_size=1, trainable=trainable(), **common)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, kernel_size=3, trainable=trainable(), **common)
        self.conv1 = Conv2dLayer(
            tmp_channels, out_channels, kernel_size=3, down=2, resample_filter=resample_filter,
            trainable=trainable(), **common,
        )
        if architecture == "resnet":
            self.skip = Conv2dLayer(
                tmp_channels, out_channels, kernel_size=1, bias=False, down=2,
                resample_filter=resample_filter, trainable=trainable(),
            )

    def forward(self, x: Optional[torch.Tensor], img: Optional[torch.Tensor], force_fp32: bool = False):
        h, w = self.res_hw
        if x is not None:
            _check_shape(x, [None, self.in_channels, h, w], f"D block {self.res_hw} x")
        if self.in_channels == 0 or self.architecture == "skip":
            _check_shape(img, [None, self.img_channels, h, w], f"D block {self.res_hw} img")
            y = self.fromrgb(img.to(x.dtype) if x is not None else img)
            x = x + y if x is not None else y
            img = ops.downsample2d(img, self.resample_filter) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv0(x)
            x = self.conv1(x, gain=math.sqrt(0.5))
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img

    def extra_repr(self) -> str:
        return f"resolution={self.res_hw}, architecture={self.architecture}"


class MinibatchStdLayer(nn.Module):
    """Appends ``num_channels`` feature maps holding the std-dev of features across groups of
    ``group_size`` samples (the batch size must be divisible by min(group_size, N))."""

    def __init__(self, group_size: Optional[int], num_channels: int = 1):
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C + F, H, W]
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g != 0:
            raise ValueError(f"minibatch-std: batch size {n} is not divisible by the group size {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """Final block ``b4``: (fromrgb) -> mbstd -> conv (3×3) -> fc -> out (1 score, or ``cmap_dim``
    features projected on the mapped label)."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,  # 0 = unconditional
        resolution: int | Sequence[int],  # 4, or [4, 4 * w / h] for non-square
        img_channels: int,
        architecture: str = "resnet",
        mbstd_group_size: Optional[int] = 4,
        mbstd_num_channels: int = 1,
        activation: str = "lrelu",
        conv_clamp: Optional[float] = None,
    ):
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.res_hw = parse_resolution(resolution)
        self.resolution = max(self.res_hw)
        self.img_channels = img_channels
        self.architecture = architecture
        if architecture == "skip":
            self.fromrgb = Conv2dLayer(img_channels, in_channels, kernel_size=1, activation=activation)
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, kernel_size=3, activation=activation, conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * self.res_hw[0] * self.res_hw[1], in_channels, activation=activation)
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, img: Optional[torch.Tensor], cmap: Optional[torch.Tensor]) -> torch.Tensor:
        h, w = self.res_hw
        _check_shape(x, [None, self.in_channels, h, w], "D epilogue x")
        if self.architecture == "skip":
            _check_shape(img, [None, self.img_channels, h, w], "D epilogue img")
            x = x + self.fromrgb(img.to(x.dtype))
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.fc(x.flatten(1))
        x = self.out(x)
        if self.cmap_dim > 0:
            _check_shape(cmap, [x.shape[0], self.cmap_dim], "D cmap")
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x  # [N, 1]

    def extra_repr(self) -> str:
        return f"resolution={self.res_hw}, architecture={self.architecture}"


class DiscriminatorMapping(nn.Module):
    """Label mapping of the conditional discriminator (StyleGAN2 MappingNetwork with z_dim=0):
    ``c -> embed -> normalise -> fc0..fc{num_layers-1}`` giving ``cmap [N, cmap_dim]``; no w_avg."""

    def __init__(
        self,
        z_dim: int,  # must be 0 here
        c_dim: int,
        w_dim: int,  # = cmap_dim
        num_ws: Optional[int] = None,  # must be None here
        num_layers: int = 8,
        embed_features: Optional[int] = None,  # default w_dim
        layer_features: Optional[int] = None,  # default w_dim
        activation: str = "lrelu",
        lr_multiplier: float = 0.01,
        w_avg_beta: Optional[float] = None,  # must be None here
    ):
        super().__init__()
        assert z_dim == 0 and num_ws is None, "DiscriminatorMapping maps labels only"
        self.c_dim, self.w_dim, self.num_layers = c_dim, w_dim, num_layers
        embed_features = w_dim if embed_features is None else embed_features
        layer_features = w_dim if layer_features is None else layer_features
        feats = [embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            setattr(
                self,
                f"fc{idx}",
                FullyConnectedLayer(feats[idx], feats[idx + 1], activation=activation, lr_multiplier=lr_multiplier),
            )

    def forward(self, z: None, c: torch.Tensor) -> torch.Tensor:  # c [N, c_dim] -> [N, cmap_dim]
        _check_shape(c, [None, self.c_dim], "D mapping c")
        x = _normalize_2nd_moment(self.embed(c.to(torch.float32) if c.dtype != torch.float64 else c))
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        return x


class Discriminator(nn.Module):
    """StyleGAN2 discriminator (``networks_stylegan2.Discriminator``, what StyleGAN3 trains with).

    Arguments are NVIDIA's: ``c_dim``, ``img_resolution`` (int or ``[height, width]``), ``img_channels``,
    ``architecture`` ('resnet'), ``channel_base``, ``channel_max``, ``num_fp16_res`` (stored only),
    ``conv_clamp``, ``cmap_dim`` (None = channels at 4×4), ``block_kwargs`` (``freeze_layers``, ...),
    ``mapping_kwargs``, ``epilogue_kwargs`` (``mbstd_group_size``, ``mbstd_num_channels``).
    Blocks ``b{res}`` for res = longest side down to 8, then epilogue ``b4``; ``mapping`` when conditional.
    ``D(img [N, C, H, W], c [N, c_dim]) -> logits [N, 1]``.
    """

    def __init__(
        self,
        c_dim: int,
        img_resolution: int | Sequence[int],
        img_channels: int,
        architecture: str = "resnet",
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: Optional[float] = 256,
        cmap_dim: Optional[int] = None,
        block_kwargs: Optional[dict] = None,
        mapping_kwargs: Optional[dict] = None,
        epilogue_kwargs: Optional[dict] = None,
    ):
        super().__init__()
        h, w = parse_resolution(img_resolution)
        res = max(h, w)
        log2 = int(round(math.log2(res)))
        if 2**log2 != res or res < 4:
            raise ValueError(f"Discriminator img_resolution {img_resolution!r}: the longest side must be a power of two >= 4")
        if (4 * h) % res or (4 * w) % res:
            raise ValueError(
                f"Discriminator img_resolution {img_resolution!r}: the shorter side must be the longest side / 1, 2 or 4 "
                "(the final 4-pixel block needs whole pixels on both axes)"
            )
        self.c_dim = c_dim
        self.img_height, self.img_width = h, w
        self.img_resolution = h if h == w else (h, w)
        self.img_resolution_log2 = log2
        self.img_channels = img_channels
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        def hw(r: int) -> tuple[int, int]:
            return (r * h // res, r * w // res)

        common = dict(img_channels=img_channels, architecture=architecture, conv_clamp=conv_clamp)
        layer_idx = 0
        for r in self.block_resolutions:
            block = DiscriminatorBlock(
                channels[r] if r < res else 0,
                channels[r],
                channels[r // 2],
                resolution=hw(r),
                first_layer_idx=layer_idx,
                use_fp16=(r >= fp16_resolution),
                **dict(block_kwargs or {}),
                **common,
            )
            setattr(self, f"b{r}", block)
            layer_idx += block.num_layers
        if c_dim > 0:
            self.mapping = DiscriminatorMapping(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, w_avg_beta=None, **dict(mapping_kwargs or {})
            )
        self.b4 = DiscriminatorEpilogue(
            channels[4], cmap_dim=cmap_dim, resolution=hw(4), **dict(epilogue_kwargs or {}), **common
        )

    def forward(self, img: torch.Tensor, c: Optional[torch.Tensor] = None, update_emas: bool = False, **block_kwargs):
        _check_shape(img, [None, self.img_channels, self.img_height, self.img_width], "Discriminator img")
        if img.dtype != torch.float64:
            img = img.to(torch.float32)
        x = None
        for r in self.block_resolutions:
            x, img = getattr(self, f"b{r}")(x, img)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}): pass labels c")
            cmap = self.mapping(None, c)
        return self.b4(x, img, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels}"
