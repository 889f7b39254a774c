"""StyleGAN3 networks: conformance with NVIDIA's generator, the general case, ops and gradients."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from reid_gan.gan import ops
from reid_gan.gan.networks import Discriminator, Generator, SynthesisLayer, config_kwargs

DATA = Path(__file__).parent / "data" / "sg3_t64.pt"
# NVIDIA's config R generator + StyleGAN2 discriminator, made by NVlabs/stylegan3 @ c233a91 (tests/data/README.md)
DATA_R = Path(__file__).parent / "data" / "sg3_r32_d32.pt"

# a tiny T generator for fast tests (3 layers + ToRGB at 16 px)
TINY = dict(
    z_dim=8, c_dim=0, w_dim=8, img_resolution=16, img_channels=3,
    mapping_kwargs=dict(num_layers=2), channel_base=256, channel_max=16, num_layers=4, num_critical=1,
    margin_size=2,
)


# tiny tensors: one torch thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def conf():
    return torch.load(DATA, weights_only=True)


@pytest.fixture(scope="module")
def conf_r():
    return torch.load(DATA_R, weights_only=True)


def _filter_buffers(module):
    return {k: v for k, v in module.state_dict().items() if k.endswith(("up_filter", "down_filter"))}


@pytest.fixture(scope="module")
def g_conf(conf):
    G = Generator(**conf["init_kwargs"]).eval()
    G.load_state_dict(conf["state_dict"], strict=True)
    return G


# ----------------------------------------------------------------------------------------------
# Conformance with NVIDIA's outputs


def test_conformance_names_and_state(conf, g_conf):
    ours = g_conf.state_dict()
    assert list(ours.keys()) == list(conf["state_dict"].keys())
    for k, v in conf["state_dict"].items():
        assert ours[k].shape == v.shape, k
    assert g_conf.synthesis.layer_names == conf["layer_names"]
    assert g_conf.num_ws == conf["num_ws"] == 16
    assert (g_conf.z_dim, g_conf.c_dim, g_conf.w_dim) == (64, 0, 64)
    assert (g_conf.img_resolution, g_conf.img_channels) == (64, 3)


def test_conformance_outputs(conf, g_conf):
    with torch.no_grad():
        ws = g_conf.mapping(conf["z"], conf["c"], truncation_psi=conf["truncation_psi"])
        img = g_conf.synthesis(ws, noise_mode="const")
        full = g_conf(conf["z"], conf["c"], truncation_psi=conf["truncation_psi"], noise_mode="const")
        ws_mix = ws[conf["mix_rows"][0] : conf["mix_rows"][0] + 1].clone()
        ws_mix[:, conf["mix_cutoff"] :] = ws[conf["mix_rows"][1], conf["mix_cutoff"] :]
        mix = g_conf.synthesis(ws_mix, noise_mode="const")
    assert (ws - conf["ws"]).abs().max().item() <= 1e-4
    assert (img - conf["img"]).abs().max().item() <= 1e-4
    assert (full - conf["img_full"]).abs().max().item() <= 1e-4
    assert (ws_mix - conf["ws_mix"]).abs().max().item() <= 1e-6
    assert (mix - conf["img_mix"]).abs().max().item() <= 1e-4
    # the test can fail: the image depends on every state entry (e.g. the user transform)
    assert img.abs().max().item() > 0.1


def test_conformance_fresh_filters_t(conf):
    """Our filter design, before any state is loaded, equals the filters NVIDIA's code stored (config T).
    (A strict load overwrites every filter buffer, so the output tests alone never compare the designs.)"""
    fresh = _filter_buffers(Generator(**conf["init_kwargs"]))
    nv = {k: v for k, v in conf["state_dict"].items() if k.endswith(("up_filter", "down_filter"))}
    assert fresh.keys() == nv.keys() and len(nv) == 2 * (len(conf["layer_names"]) - 1)  # ToRGB has none
    for k, v in nv.items():
        assert fresh[k].shape == v.shape, k
        assert (fresh[k] - v).abs().max().item() <= 1e-6, k


def test_conformance_fresh_filters_r(conf_r):
    """Config R (radial down-sampling filters): a freshly built generator's filter buffers equal those of
    a freshly built NVIDIA generator (``G_fresh_filter_buffers``), compared before any state is loaded."""
    G = Generator(**conf_r["G_init_kwargs"])
    fresh = _filter_buffers(G)
    nv = conf_r["G_fresh_filter_buffers"]
    assert fresh.keys() == nv.keys()
    assert any(v.ndim == 2 for v in nv.values()), "config R has radial (2-D) down filters"
    for k, v in nv.items():
        assert fresh[k].shape == v.shape, k
        assert (fresh[k] - v).abs().max().item() <= 1e-6, k


def test_conformance_config_r_outputs(conf_r):
    G = Generator(**conf_r["G_init_kwargs"]).eval()
    ours = G.state_dict()
    assert list(ours) == list(conf_r["G_state_dict"])
    G.load_state_dict(conf_r["G_state_dict"], strict=True)
    with torch.no_grad():
        ws = G.mapping(conf_r["z"], conf_r["c"], truncation_psi=conf_r["truncation_psi"])
        img = G.synthesis(ws, noise_mode="const")
    assert (ws - conf_r["ws"]).abs().max().item() <= 1e-4
    assert (img - conf_r["img"]).abs().max().item() <= 1e-4
    assert img.abs().max().item() > 0.1


def test_conformance_discriminator(conf_r):
    """NVIDIA's residual D (minibatch-std over groups of 4, epilogue, conditional projection, fp16 blocks
    run in fp32): same names, same logits to 1e-4."""
    D = Discriminator(**conf_r["D_init_kwargs"]).eval()
    assert list(D.state_dict()) == list(conf_r["D_state_dict"])
    D.load_state_dict(conf_r["D_state_dict"], strict=True)
    x, c, expect = conf_r["D_x"], conf_r["D_c"], conf_r["D_out"]
    with torch.no_grad():
        out = D(x, c)
        # the reference depends on what it claims to test: the labels (projection) and the other images
        # of each minibatch-std group, so a D ignoring either cannot match it
        other_c = D(x, c.roll(1, dims=1))
        # NVIDIA's minibatch-std groups are strided: with 8 images and groups of 4, {0, 2, 4, 6} and {1, 3, 5, 7}
        x2 = x.clone()
        x2[[3, 5, 7]] *= 4
        other_group = D(x2, c)
    assert out.shape == expect.shape == (8, 1)
    assert (out - expect).abs().max().item() <= 1e-4
    assert (other_c - expect).abs().max().item() > 1e-2
    assert (other_group[1] - expect[1]).abs().item() > 1e-3        # same group as the changed images
    assert (other_group[0::2] - expect[0::2]).abs().max().item() <= 1e-4  # the other group is untouched


def test_conformance_ref_impl(conf):
    """The zero-stuffing reference path (benchmark baseline) reproduces NVIDIA's image too."""
    G = Generator(**conf["init_kwargs"], impl="ref").eval()
    G.load_state_dict(conf["state_dict"], strict=True)
    with torch.no_grad():
        img = G.synthesis(conf["ws"][:2], noise_mode="const")
    assert (img - conf["img"][:2]).abs().max().item() <= 1e-4


def test_transform_changes_image(conf, g_conf):
    """synthesis.input.transform (user rotation/translation) is honoured."""
    G = Generator(**conf["init_kwargs"]).eval()
    G.load_state_dict(conf["state_dict"], strict=True)
    G.synthesis.input.transform.copy_(torch.eye(3))
    with torch.no_grad():
        img = G.synthesis(conf["ws"][:1])
    assert (img - conf["img"][:1]).abs().max().item() > 0.05


# ----------------------------------------------------------------------------------------------
# The general case


def _tiny(**kw):
    args = dict(TINY)
    args.update(kw)
    return Generator(**args)


def test_config_r_constructs_radial_filters():
    G = _tiny(**config_kwargs("stylegan3-r", channel_base=256, channel_max=16))
    sd = G.state_dict()
    radial = [n for n in G.synthesis.layer_names if getattr(G.synthesis, n).down_radial]
    assert radial, "config R must use radial down-sampling filters"
    for n in G.synthesis.layer_names:
        layer = getattr(G.synthesis, n)
        assert layer.conv_kernel == 1
        if layer.down_radial:
            assert sd[f"synthesis.{n}.down_filter"].ndim == 2
            f = sd[f"synthesis.{n}.down_filter"]
            assert torch.allclose(f, f.t()) and abs(f.sum().item() - 1) < 1e-5
    # critically sampled layers keep separable filters
    crit = getattr(G.synthesis, G.synthesis.layer_names[-2])
    assert crit.is_critically_sampled and not crit.down_radial
    z = torch.randn(2, 8)
    img = G(z, None)
    assert img.shape == (2, 3, 16, 16) and torch.isfinite(img).all()


def test_config_r_fast_matches_ref():
    torch.manual_seed(0)
    G = _tiny(**config_kwargs("stylegan3-r", channel_base=256, channel_max=16)).eval()
    for p in G.parameters():
        if p.ndim == 1:
            p.data.add_(0.1 * torch.randn_like(p))
    z = torch.randn(2, 8)
    with torch.no_grad():
        a = G(z, None)
        G.synthesis.set_impl("ref")
        b = G(z, None)
    assert (a - b).abs().max().item() < 1e-4


def test_conditional_uses_embed():
    G = _tiny(c_dim=5)
    names = set(G.state_dict())
    assert {"mapping.embed.weight", "mapping.embed.bias"} <= names
    assert G.state_dict()["mapping.fc0.weight"].shape == (8, 8 + 8)
    z = torch.randn(3, 8)
    c1 = torch.eye(5)[:3]
    c2 = torch.eye(5)[2:5]
    with torch.no_grad():
        w1 = G.mapping(z, c1)
        w2 = G.mapping(z, c2)
    assert w1.shape == (3, G.num_ws, 8)
    assert (w1 - w2).abs().max() > 1e-4, "labels must change w"
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(z, None)


def test_truncation_semantics():
    G = _tiny().eval()
    G.mapping.w_avg.normal_()
    z = torch.randn(2, 8)
    with torch.no_grad():
        w = G.mapping(z, None)
        wt = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.allclose(wt[:, :3], G.mapping.w_avg + 0.5 * (w[:, :3] - G.mapping.w_avg), atol=1e-6)
    assert torch.equal(wt[:, 3:], w[:, 3:])


def test_update_emas():
    """w_avg <- lerp(batch mean of w, w_avg, w_avg_beta); each layer's magnitude_ema <- lerp(mean square of
    its input, magnitude_ema, magnitude_ema_beta) — NVIDIA's formulas, checked with betas far from 1."""
    torch.manual_seed(0)
    bw, bm = 0.7, 0.8
    G = _tiny(mapping_kwargs=dict(num_layers=2, w_avg_beta=bw), magnitude_ema_beta=bm)
    layers = [getattr(G.synthesis, n) for n in G.synthesis.layer_names]
    G.mapping.w_avg.normal_()
    for i, layer in enumerate(layers):
        layer.magnitude_ema.fill_(0.5 + 0.25 * i)
    w_avg0 = G.mapping.w_avg.clone()
    ema0 = [layer.magnitude_ema.clone() for layer in layers]
    z = torch.randn(4, 8)
    with torch.no_grad():
        w = G.mapping(z, None)[:, 0]  # psi = 1: the untruncated w
    inputs = []
    hooks = [layer.register_forward_pre_hook(lambda m, args: inputs.append(args[0].detach().clone())) for layer in layers]
    with torch.no_grad():
        G(z, None, update_emas=True)
    for h in hooks:
        h.remove()
    expect_w = bw * w_avg0 + (1 - bw) * w.mean(0)
    assert torch.allclose(G.mapping.w_avg, expect_w, atol=1e-6)
    assert len(inputs) == len(layers)
    for layer, e0, x in zip(layers, ema0, inputs):
        expect = bm * e0 + (1 - bm) * x.square().mean()
        assert torch.allclose(layer.magnitude_ema, expect, rtol=1e-5), layer
    # without update_emas nothing moves
    before = [layer.magnitude_ema.clone() for layer in layers], G.mapping.w_avg.clone()
    with torch.no_grad():
        G(z, None)
    assert all(torch.equal(layer.magnitude_ema, b) for layer, b in zip(layers, before[0]))
    assert torch.equal(G.mapping.w_avg, before[1])


@pytest.mark.parametrize("res", [32, 16])
def test_other_resolutions_layer_names(res):
    G = _tiny(img_resolution=res)
    sizes = [int(n.split("_")[1]) for n in G.synthesis.layer_names]
    assert sizes[-1] == res and sizes[-2] == res
    img = G(torch.randn(1, 8), None)
    assert img.shape == (1, 3, res, res)


# ----------------------------------------------------------------------------------------------
# Native non-square output


def test_non_square_generator():
    G = _tiny(img_resolution=[32, 16]).eval()
    assert G.img_resolution == (32, 16) and (G.img_height, G.img_width) == (32, 16)
    with torch.no_grad():
        img = G(torch.randn(2, 8), None)
    assert img.shape == (2, 3, 32, 16)
    # every intermediate layer has the same sampling rate as the square 32-px network, half the width
    Gsq = _tiny(img_resolution=32)
    for n_ns, n_sq in zip(G.synthesis.layer_names, Gsq.synthesis.layer_names):
        a, b = getattr(G.synthesis, n_ns), getattr(Gsq.synthesis, n_sq)
        assert a.out_sampling_rate == b.out_sampling_rate
        assert int(a.out_size[1]) == int(b.out_size[1])
        m = 2 * G.synthesis.margin_size if not a.is_critically_sampled else 0
        if n_ns != G.synthesis.layer_names[-1] and not a.is_critically_sampled:
            assert int(a.out_size[0]) - m == (int(b.out_size[0]) - m) // 2
    # parameters have the square network's shapes: square weights load into it, entry by entry (the layer
    # names differ: they carry the sizes), strictly, and every parameter then equals the square one's
    sd_sq = Gsq.state_dict()
    assert len(G.state_dict()) == len(sd_sq)
    renamed = {k_ns: v for k_ns, v in zip(G.state_dict(), sd_sq.values())}
    G.load_state_dict(renamed, strict=True)
    for (k_ns, p_ns), (k_sq, p_sq) in zip(G.state_dict().items(), sd_sq.items()):
        assert k_ns.split(".")[-1] == k_sq.split(".")[-1] and torch.equal(p_ns, p_sq), (k_ns, k_sq)


def test_non_square_is_a_crop_of_the_square_fourier_input():
    """The non-square input layer samples the same Fourier features on the central columns."""
    G = _tiny(img_resolution=[32, 16]).eval()
    Gsq = _tiny(img_resolution=32).eval()
    sd = {k2: v for (k1, v), k2 in zip(Gsq.state_dict().items(), G.state_dict().keys())}
    G.load_state_dict(sd)
    w = torch.randn(1, 8)
    with torch.no_grad():
        a = G.synthesis.input(w)
        b = Gsq.synthesis.input(w)
    wa, wb = a.shape[3], b.shape[3]
    off = (wb - wa) // 2
    assert a.shape[2] == b.shape[2]
    assert torch.allclose(a, b[:, :, :, off : off + wa], atol=1e-5)


def test_non_square_bad_aspect_rejected():
    with pytest.raises(ValueError, match="whole pixel"):
        _tiny(img_resolution=[32, 17])


def test_cutoff_without_transition_band_rejected():
    # first_cutoff 8 at the first layer's sampling rate 16 leaves no room below the stopband: NVIDIA's
    # formula designs a NaN filter there, and the images came out NaN; here it is a named error instead
    with pytest.raises(ValueError, match="first_stopband"):
        Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=[64, 32], img_channels=3, channel_base=256,
                  channel_max=8, num_layers=4, first_cutoff=8)
    Generator(z_dim=8, c_dim=0, w_dim=8, img_resolution=[64, 32], img_channels=3, channel_base=256,
              channel_max=8, num_layers=4, first_cutoff=8, first_stopband=2**3.5)  # with a band: fine


# ----------------------------------------------------------------------------------------------
# Ops: fast path == reference path, gradients


@pytest.mark.parametrize(
    "up,down,radial,radial_up",
    [(2, 2, False, False), (4, 2, False, False), (2, 4, False, False), (2, 2, True, False), (1, 1, False, False),
     (2, 2, True, True), (4, 2, False, True)],
)
def test_filtered_lrelu_fast_equals_ref(up, down, radial, radial_up):
    torch.manual_seed(1)
    x = torch.randn(2, 3, 9, 7, dtype=torch.float64)
    b = torch.randn(3, dtype=torch.float64)
    fu = ops.design_lowpass_filter(6 * up, 2.0, 1.5, 8.0 * up, radial=radial_up) if up > 1 else None
    fd = ops.design_lowpass_filter(6 * down, 2.0, 1.5, 8.0 * up, radial=radial) if down > 1 else None
    fu = fu.double() if fu is not None else None
    fd = fd.double() if fd is not None else None
    for pad in ([12, 11, 12, 11], [13, 10, 11, 14], [20, 20, 18, 18], [-1, 0, 2, 0]):
        if up == 1 and down == 1 and pad[0] > 5:
            continue
        if up > 1 and pad[0] < 5:
            continue
        kw = dict(fu=fu, fd=fd, b=b, up=up, down=down, padding=pad, gain=math.sqrt(2), slope=0.2, clamp=2.0)
        a = ops.filtered_lrelu(x, impl="fast", **kw)
        r = ops.filtered_lrelu(x, impl="ref", **kw)
        assert a.shape == r.shape
        assert (a - r).abs().max().item() < 1e-10


@pytest.mark.parametrize("radial", [False, True])
def test_filtered_lrelu_fast_equals_ref_float32_channels_last(radial):
    # float32 on CPU takes the channels-last path (and the in-place activation without grad); the sizes
    # are those of a real layer (12-tap filters, up 2 / down 2 and up 4 / down 2 with cropping paddings)
    torch.manual_seed(5)
    for c, n_in, up, pad in ((24, 20, 2, [11, 10, 11, 10]), (16, 12, 4, [-2, -5, -2, -5])):
        x = torch.randn(2, c, n_in, n_in + 3)
        b = 0.3 * torch.randn(c)
        fu = ops.design_lowpass_filter(6 * up, 3.0, 2.0, 8.0 * up)
        fd = ops.design_lowpass_filter(12, 3.0, 2.0, 16.0, radial=radial)
        kw = dict(fu=fu, fd=fd, b=b, up=up, down=2, padding=pad, gain=math.sqrt(2), slope=0.2, clamp=1.0)
        x0 = x.clone()
        with torch.no_grad():
            a = ops.filtered_lrelu(x, impl="fast", **kw)
            r = ops.filtered_lrelu(x, impl="ref", **kw)
        assert torch.equal(x, x0)  # the caller's tensor is never written
        assert a.shape == r.shape and (a - r).abs().max().item() < 1e-5
        # with autograd on: same values and the same input gradient as the reference path
        xg = x.clone().requires_grad_(True)
        gy = torch.randn_like(r)
        (ga,) = torch.autograd.grad((ops.filtered_lrelu(xg, impl="fast", **kw) * gy).sum(), xg)
        (gr,) = torch.autograd.grad((ops.filtered_lrelu(xg, impl="ref", **kw) * gy).sum(), xg)
        assert (ga - gr).abs().max().item() < 1e-4 * gr.abs().max().item()


def test_filtered_lrelu_identity_filters_leave_input_alone():
    # no up-filter, no bias, no padding: the activation must not run in place on the caller's tensor
    x = torch.randn(1, 2, 5, 5)
    x0 = x.clone()
    with torch.no_grad():
        y = ops.filtered_lrelu(x, None, None, None, up=1, down=1, padding=0, gain=1.0, slope=0.2, clamp=0.5)
    assert torch.equal(x, x0)
    assert torch.allclose(y, torch.nn.functional.leaky_relu(x0, 0.2).clamp(-0.5, 0.5))


def test_filtered_lrelu_gradcheck():
    torch.manual_seed(2)
    x = torch.randn(1, 2, 4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True)
    fu = ops.design_lowpass_filter(8, 1.0, 1.0, 4.0).double()
    fd = ops.design_lowpass_filter(8, 1.0, 1.0, 4.0, radial=True).double()
    for f_down in (fu, fd):
        fn = lambda x, b: ops.filtered_lrelu(x, fu, f_down, b, up=2, down=2, padding=[5, 4, 5, 4], clamp=1.5)
        assert torch.autograd.gradcheck(fn, (x, b), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("fused", [False, True])
def test_modulated_conv_gradcheck_and_equivalence(fused):
    torch.manual_seed(3)
    x = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, 3, 3, dtype=torch.float64, requires_grad=True)
    s = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    g = torch.tensor(0.7, dtype=torch.float64)
    fn = lambda x, w, s: ops.modulated_conv2d(x, w, s, demodulate=True, padding=2, input_gain=g, fused=fused)
    assert torch.autograd.gradcheck(fn, (x, w, s), eps=1e-6, atol=1e-5)
    # both formulations compute the same thing; compare with an explicit per-sample computation
    y = fn(x, w, s)
    for n in range(2):
        wn = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
        sn = s * s.square().mean().rsqrt()
        k = wn * sn[n].reshape(1, 3, 1, 1)
        k = k * (k.square().sum([1, 2, 3], keepdim=True) + 1e-8).rsqrt() * g
        ref = torch.nn.functional.conv2d(x[n : n + 1], k, padding=2)
        assert torch.allclose(y[n : n + 1], ref, atol=1e-10)


def test_synthesis_layer_gradcheck():
    torch.manual_seed(4)
    layer = SynthesisLayer(
        w_dim=3, is_torgb=False, is_critically_sampled=False, use_fp16=False, in_channels=2, out_channels=2,
        in_size=6, out_size=6, in_sampling_rate=4, out_sampling_rate=4, in_cutoff=1.0, out_cutoff=1.0,
        in_half_width=1.0, out_half_width=1.0, conv_kernel=3, filter_size=4,
    ).double()
    layer.bias.data.normal_()
    x = torch.randn(2, 2, 6, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    params = [layer.weight, layer.bias, layer.affine.weight]
    def fn(x, w, *ps):
        return layer(x, w)
    assert torch.autograd.gradcheck(fn, (x, w, *params), eps=1e-6, atol=1e-5)


def test_generator_float64_and_backward():
    G = _tiny().double()
    z = torch.randn(2, 8, dtype=torch.float64)
    img = G(z, None)
    assert img.dtype == torch.float64
    img.square().mean().backward()
    missing = [n for n, p in G.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


# ----------------------------------------------------------------------------------------------
# Discriminator


def _d_names(res: int = 32, c_dim: int = 0):
    return set(Discriminator(c_dim=c_dim, img_resolution=res, img_channels=3, channel_base=512, channel_max=32).state_dict())


def test_discriminator_names_and_shapes():
    D = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=512, channel_max=32)
    names = set(D.state_dict())
    for n in [
        "b32.fromrgb.weight", "b32.fromrgb.bias", "b32.conv0.weight", "b32.conv1.weight", "b32.skip.weight",
        "b32.resample_filter", "b32.conv1.resample_filter", "b16.conv0.weight", "b8.skip.weight",
        "b4.conv.weight", "b4.fc.weight", "b4.out.weight", "b4.out.bias",
    ]:
        assert n in names, n
    assert "b16.fromrgb.weight" not in names
    assert D.state_dict()["b32.resample_filter"].shape == (4, 4)
    assert D.state_dict()["b4.fc.weight"].shape == (32, 32 * 16)
    out = D(torch.randn(4, 3, 32, 32), None)
    assert out.shape == (4, 1)


def test_discriminator_conditional_projection():
    D = Discriminator(c_dim=4, img_resolution=16, img_channels=3, channel_base=256, channel_max=16)
    names = set(D.state_dict())
    assert {"mapping.embed.weight", "mapping.fc0.weight", "mapping.fc7.weight"} <= names
    assert "mapping.w_avg" not in names
    img = torch.randn(4, 3, 16, 16)
    a = D(img, torch.eye(4))
    b = D(img, torch.eye(4).flip(0))
    assert a.shape == (4, 1) and (a - b).abs().max() > 1e-6


def test_discriminator_non_square():
    D = Discriminator(c_dim=0, img_resolution=[32, 16], img_channels=3, channel_base=512, channel_max=32)
    assert D.b4.res_hw == (4, 2)
    assert D.state_dict()["b4.fc.weight"].shape == (32, 32 * 8)
    out = D(torch.randn(4, 3, 32, 16), None)
    assert out.shape == (4, 1)
    Dsq = Discriminator(c_dim=0, img_resolution=32, img_channels=3, channel_base=512, channel_max=32)
    sq = {k: v for k, v in Dsq.state_dict().items() if k != "b4.fc.weight"}
    missing, unexpected = D.load_state_dict(sq, strict=False)
    assert missing == ["b4.fc.weight"] and not unexpected


def test_discriminator_block_against_explicit_computation():
    """conv1 (3×3, ↓2 after [1,3,3,1] blur) equals blur-pad-conv-stride written out by hand."""
    torch.manual_seed(5)
    D = Discriminator(c_dim=0, img_resolution=8, img_channels=3, channel_base=64, channel_max=4, conv_clamp=None)
    blk = D.b8
    x = torch.randn(2, 4, 8, 8)
    f = torch.tensor([1.0, 3, 3, 1])
    f2 = torch.outer(f, f) / 64
    xp = torch.nn.functional.pad(x, [2, 2, 2, 2])
    xb = torch.nn.functional.conv2d(xp, f2[None, None].repeat(4, 1, 1, 1), groups=4)  # [2,4,9,9]
    y = torch.nn.functional.conv2d(xb, blk.conv1.weight * blk.conv1.weight_gain, stride=2)
    y = torch.nn.functional.leaky_relu(y + blk.conv1.bias.reshape(1, -1, 1, 1), 0.2) * math.sqrt(2)
    assert torch.allclose(blk.conv1(x), y, atol=1e-5)
    # skip: blur (pad 1,1) then 1×1 conv on every other pixel
    xs = torch.nn.functional.conv2d(torch.nn.functional.pad(x, [1, 1, 1, 1]), f2[None, None].repeat(4, 1, 1, 1), groups=4, stride=2)
    ys = torch.nn.functional.conv2d(xs, blk.skip.weight * blk.skip.weight_gain)
    assert torch.allclose(blk.skip(x), ys, atol=1e-5)
