"""StyleGAN3 training: losses/R1 math, ADA, SWD, the training stage (real run, resume), snapshots."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reid_gan.gan.augment import AdaController, AugmentPipe
from reid_gan.gan.checkpoint import load_generator, save_snapshot
from reid_gan.gan.losses import StyleGAN3Loss, blur_sigma_at, gaussian_blur
from reid_gan.gan.module import ema_beta
from reid_gan.metrics.swd import swd
from tests.helpers import compose_stage


# --- tiny stand-ins with the generator/discriminator call signatures (NOT the package's networks) ---------
class TinyG(nn.Module):
    def __init__(self, z_dim, c_dim, w_dim, img_resolution, img_channels, mapping_kwargs=None, channels=32,
                 **_unused):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.img_channels = z_dim, c_dim, w_dim, img_channels
        self.img_resolution = list(img_resolution) if isinstance(img_resolution, (list, tuple)) else [img_resolution] * 2
        self.num_ws = 3
        self.fc0 = nn.Linear(z_dim + c_dim, w_dim)
        self.fc1 = nn.Linear(w_dim, w_dim)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        h, w = self.img_resolution
        self.h0, self.w0 = h // 4, w // 4
        self.channels = channels
        self.const = nn.Parameter(torch.randn(channels, self.h0, self.w0))
        self.aff = nn.Linear(w_dim, channels * 3)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.rgb = nn.Conv2d(channels, img_channels, 1)

    def mapping(self, z, c, truncation_psi=1, truncation_cutoff=None, update_emas=False):
        x = torch.cat([z, c], 1) if self.c_dim else z
        w = self.fc1(F.leaky_relu(self.fc0(x), 0.2))
        if update_emas:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, 0.995))
        w = self.w_avg.lerp(w, truncation_psi)
        return w.unsqueeze(1).repeat(1, self.num_ws, 1)

    def synthesis(self, ws, noise_mode="random", update_emas=False):
        s = self.aff(ws[:, 0]).view(-1, 3, self.channels, 1, 1)
        x = self.const.unsqueeze(0) * (1 + s[:, 0])
        x = F.interpolate(F.leaky_relu(self.conv1(x) * (1 + s[:, 1]), 0.2), scale_factor=2)
        x = F.interpolate(F.leaky_relu(self.conv2(x) * (1 + s[:, 2]), 0.2), scale_factor=2)
        return self.rgb(x)

    def forward(self, z, c, truncation_psi=1, truncation_cutoff=None, noise_mode="const", update_emas=False):
        return self.synthesis(self.mapping(z, c, truncation_psi, truncation_cutoff, update_emas), noise_mode)


class TinyD(nn.Module):
    def __init__(self, c_dim, img_resolution, img_channels, channels=32, **_unused):
        super().__init__()
        self.img_resolution, self.img_channels = img_resolution, img_channels
        h, w = img_resolution if isinstance(img_resolution, (list, tuple)) else (img_resolution, img_resolution)
        self.net = nn.Sequential(nn.Conv2d(img_channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.AvgPool2d(2), nn.Conv2d(channels, channels, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.AvgPool2d(2), nn.Flatten(), nn.Linear(channels * (h // 4) * (w // 4), 1))

    def forward(self, img, c, update_emas=False):
        return self.net(img)


class KillAfter:
    """A Lightning callback (built lazily) that raises after ``n`` training batches: a simulated kill."""

    def __new__(cls, n: int):
        import pytorch_lightning as pl

        class _K(pl.Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if pl_module.iteration >= n:
                    raise RuntimeError("simulated kill")

        return _K()


BATCHES_SEEN: list[int] = []
START_STATE: dict = {}


class CountBatches:
    """A Lightning callback (built lazily) recording the iteration counter after every batch."""

    def __new__(cls):
        import pytorch_lightning as pl

        class _C(pl.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if not START_STATE:  # what the first resumed iteration starts from
                    START_STATE["state_dict"] = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}
                    opt_d = trainer.optimizers[1]
                    START_STATE["d_exp_avg"] = [opt_d.state[p]["exp_avg"].clone() for p in pl_module.D.parameters()
                                                if p in opt_d.state]

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                BATCHES_SEEN.append(pl_module.iteration)

        return _C()


STANDIN = ["gan.G._target_=tests.test_gan_train.TinyG", "gan.D._target_=tests.test_gan_train.TinyD",
           "logger=csv", "callbacks=none"]


def _write_dataset(root: Path, n: int = 48, h: int = 32, w: int = 16, seed: int = 0) -> Path:
    """Little people: a head, a coloured torso and dark legs on a light, noisy background (Market names)."""
    rng = np.random.default_rng(seed)
    d = root / "bounding_box_train"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = np.full((h, w, 3), 200, np.uint8) + rng.integers(0, 30, (h, w, 3), dtype=np.uint8)
        torso = tuple(int(v) for v in rng.integers(0, 255, 3))
        cx = w // 2 + int(rng.integers(-1, 2))
        cv2.circle(img, (cx, h // 8 + 1), max(1, w // 8), (120, 150, 190), -1)
        cv2.rectangle(img, (cx - w // 4, h // 4), (cx + w // 4, h * 9 // 16), torso, -1)
        cv2.rectangle(img, (cx - w // 4, h * 9 // 16), (cx - 1, h - 2), (40, 40, 60), -1)
        cv2.rectangle(img, (cx + 1, h * 9 // 16), (cx + w // 4, h - 2), (40, 40, 60), -1)
        cv2.imwrite(str(d / f"{i // 4 + 1:04d}_c{i % 6 + 1}s1_{i:06d}_00.jpg"), img)
    return root


def _cfg(tmp_path: Path, extra: list[str]):
    # Tiny ops: one thread is several times faster than two on a shared 2-core machine.
    torch.set_num_threads(1)
    ds = _write_dataset(tmp_path / "ds")
    return compose_stage("train_gan", tmp_path, [*STANDIN, "data.name=folder", f"data.root={ds}", *extra])


# --- losses ----------------------------------------------------------------------------------------------
class _LinD(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.tensor([[0.5, -1.0]]))

    def forward(self, img, c):
        return (img.flatten(1) ** 2 @ self.w.t()) if img.shape[1] else img


def test_losses_match_formulas():
    torch.manual_seed(0)
    G = TinyG(8, 0, 8, [8, 4], 3)
    D = TinyD(0, [8, 4], 3)
    loss = StyleGAN3Loss(G, D, r1_gamma=3.0)
    z = torch.randn(5, 8)
    c = torch.zeros(5, 0)
    torch.manual_seed(1)
    lg = loss.generator_loss(z, c, 0)
    with torch.no_grad():
        ref = torch.log1p(torch.exp(-D(G(z, c), c))).mean()
    assert torch.allclose(lg, ref, atol=1e-6)
    real = torch.randn(5, 3, 8, 4)
    ld, logits = loss.discriminator_loss(real, c, z, c, 0)
    with torch.no_grad():
        ref = torch.log1p(torch.exp(D(G(z, c), c))).mean() + torch.log1p(torch.exp(-D(real, c))).mean()
    assert torch.allclose(ld, ref, atol=1e-5)
    assert torch.equal(logits, D(real, c).detach())


def test_r1_penalty_analytic():
    # D(x) = sum(a * x²) → ∇D = 2 a x → R1 = sum(4 a² x²); loss = gamma/2 * mean_n R1
    class QuadD(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.tensor(0.7))

        def forward(self, img, c):
            return (self.a * img.square()).sum(dim=[1, 2, 3]).unsqueeze(1)

    D = QuadD()
    loss = StyleGAN3Loss(TinyG(4, 0, 4, [4, 4], 3), D, r1_gamma=2.5)
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    D.double()
    val, pen = loss.r1_loss(x, torch.zeros(3, 0), 0)
    expect = (4 * 0.7 ** 2 * x.square().sum(dim=[1, 2, 3]))
    assert torch.allclose(pen, expect.mean(), rtol=1e-6)
    assert torch.allclose(val, 2.5 / 2 * expect.mean(), rtol=1e-6)
    val.backward()  # create_graph: the penalty is differentiable w.r.t. D's parameters
    # d/da of gamma/2 * mean(4 a² sum x²) = gamma/2 * 8 a * mean(sum x²)
    assert math.isclose(D.a.grad.item(), 2.5 / 2 * 8 * 0.7 * x.square().sum(dim=[1, 2, 3]).mean().item(), rel_tol=1e-6)


def test_blur_schedule_and_kernel():
    assert blur_sigma_at(0, 10, 100) == 10
    assert blur_sigma_at(50_000, 10, 100) == pytest.approx(5)
    assert blur_sigma_at(200_000, 10, 100) == 0
    assert blur_sigma_at(10, 10, 0) == 0
    img = torch.zeros(1, 3, 21, 21)
    img[0, :, 10, 10] = 1
    out = gaussian_blur(img, 2.0)
    assert torch.allclose(out.sum(), torch.tensor(3.0), atol=1e-5)  # mass preserved away from borders
    assert out[0, 0, 10, 10] < 1 and out[0, 0, 10, 11] > 0
    assert torch.equal(gaussian_blur(img, 0.2), img)  # radius 0 → identity


def test_style_mixing_uses_two_latents():
    torch.manual_seed(0)
    G = TinyG(8, 0, 8, [8, 4], 3)
    seen = []
    orig = G.synthesis

    def spy(ws, **kw):
        seen.append(ws.detach().clone())
        return orig(ws, **kw)

    G.synthesis = spy
    loss = StyleGAN3Loss(G, TinyD(0, [8, 4], 3), style_mixing_prob=1.0)
    loss.run_G(torch.randn(4, 8), torch.zeros(4, 0))
    ws = seen[-1]
    assert not torch.allclose(ws[:, 0], ws[:, -1])  # the last input comes from another latent
    loss.style_mixing_prob = 0.0
    loss.run_G(torch.randn(4, 8), torch.zeros(4, 0))
    assert torch.allclose(seen[-1][:, 0], seen[-1][:, -1])


def test_ema_beta_rampup():
    # early: ema_nimg = cur_nimg * 0.05 ; later: ema_kimg * 1000
    assert ema_beta(16, 1000, 5.0, 0.05) == pytest.approx(0.5 ** (16 / 50))
    assert ema_beta(16, 10_000_000, 5.0, 0.05) == pytest.approx(0.5 ** (16 / 5000))
    assert ema_beta(16, 0, 5.0, None) == pytest.approx(0.5 ** (16 / 5000))


def _tiny_module(**kw):
    import functools

    from reid_gan.gan.module import StyleGAN3Module

    torch.manual_seed(0)
    args = dict(G=TinyG(8, 0, 8, [8, 4], 3), D=TinyD(0, [8, 4], 3),
                G_opt=functools.partial(torch.optim.Adam, lr=0.002, betas=[0.0, 0.99], eps=1e-8),
                D_opt=functools.partial(torch.optim.Adam, lr=0.003, betas=[0.5, 0.99], eps=1e-8),
                batch_size=4, ema_kimg=0.01, ema_rampup=0.05)
    loss = {"r1_gamma": 2.0, "r1_interval": 16}
    loss.update({k: kw.pop(k) for k in list(kw) if k in loss})
    args.update(kw, loss=loss)
    return StyleGAN3Module(**args)


def test_g_ema_update_formula():
    """G_ema ← lerp(G, G_ema, beta) with beta = 0.5 ** (batch / min(ema_kimg·1000, cur_nimg·rampup));
    buffers copied from G."""
    m = _tiny_module()
    for p in m.G.parameters():
        p.data.add_(torch.randn_like(p))
    m.G.w_avg.normal_()
    before = [p.clone() for p in m.G_ema.parameters()]
    m.cur_nimg = 120  # ema_nimg = min(10, 6) = 6
    beta = m.update_ema()
    assert beta == pytest.approx(0.5 ** (4 / 6))
    for pe, p0, p in zip(m.G_ema.parameters(), before, m.G.parameters()):
        assert torch.allclose(pe, beta * p0 + (1 - beta) * p, atol=1e-6)
    assert torch.equal(m.G_ema.w_avg, m.G.w_avg)


def test_d_adam_uses_mb_ratio_for_lazy_r1():
    m = _tiny_module()
    g, d = m.configure_optimizers()
    mb = 16 / 17
    assert g.param_groups[0]["lr"] == pytest.approx(0.002) and tuple(g.param_groups[0]["betas"]) == (0.0, 0.99)
    assert d.param_groups[0]["lr"] == pytest.approx(0.003 * mb)
    assert d.param_groups[0]["betas"] == pytest.approx((0.5 ** mb, 0.99 ** mb))
    g, d = _tiny_module(r1_gamma=0.0).configure_optimizers()  # no R1: no adjustment
    assert d.param_groups[0]["lr"] == pytest.approx(0.003) and tuple(d.param_groups[0]["betas"]) == (0.5, 0.99)


def test_lazy_r1_runs_every_interval_weighted_by_it():
    """Dreg runs at iterations 0, r1_interval, 2·r1_interval … and back-propagates r1_interval × gamma/2 × R1."""
    m = _tiny_module(r1_interval=3)
    g_opt, d_opt = m.configure_optimizers()
    backs, r1_vals = [], []
    real_r1 = m.loss.r1_loss

    def spy_r1(*a, **k):
        val, pen = real_r1(*a, **k)
        r1_vals.append((m.iteration, val.detach()))
        return val, pen

    m.loss.r1_loss = spy_r1
    m.manual_backward = lambda loss: (backs.append((m.iteration, loss.detach())), loss.backward())
    m.optimizers = lambda: (g_opt, d_opt)
    m.log = lambda *a, **k: None
    real = torch.rand(4, 3, 8, 4) * 2 - 1
    for _ in range(7):
        m.training_step((real,), 0)
    assert [it for it, _ in r1_vals] == [0, 3, 6]
    per_iter = {}
    for it, loss in backs:
        per_iter.setdefault(it, []).append(loss)
    assert [len(per_iter[i]) for i in range(7)] == [3, 2, 2, 3, 2, 2, 3]  # G, Dmain (+ Dreg)
    for it, val in r1_vals:
        assert torch.allclose(per_iter[it][2], 3 * val)
    assert m.iteration == 7 and m.cur_nimg == 28


# --- ADA -------------------------------------------------------------------------------------------------
def test_ada_identity_at_p0_and_changes_at_p1():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 8) * 2 - 1
    assert torch.equal(AugmentPipe(p=0.0)(x), x)
    y = AugmentPipe(p=1.0)(x)
    assert y.shape == x.shape
    assert (y - x).abs().flatten(1).mean(1).min() > 1e-3  # every sample changed


_ADA = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast", "lumaflip",
        "hue", "saturation"]


def _only(name, p=1.0, **kw):
    return AugmentPipe(p=p, **{n: (1 if n == name else 0) for n in _ADA}, **kw)


def test_ada_each_transform_alone():
    torch.manual_seed(0)
    x = torch.rand(8, 3, 16, 8) * 2 - 1
    for name in _ADA:
        y = _only(name)(x)
        assert (y - x).abs().max() > 1e-3, name


def test_ada_p0_matrices_are_identity_and_p_is_the_probability():
    """At p = 0 every transform's matrix is the identity (not only the short cut in forward); at p = 0.2
    a 90° rotation (k = 1, 2, 3 of 4 choices) is drawn for 0.2 × 3/4 of the samples."""
    torch.manual_seed(0)
    full = AugmentPipe(p=0.0)
    assert torch.equal(full.geometric_matrix(64, 16, 8, "cpu"), torch.eye(3).expand(64, 3, 3))
    assert torch.equal(full.color_matrix(64, "cpu"), torch.eye(4).expand(64, 4, 4))
    G = _only("rotate90", p=0.2).geometric_matrix(20000, 16, 16, "cpu")
    changed = (G - torch.eye(3)).abs().flatten(1).amax(1) > 1e-6
    assert changed.float().mean().item() == pytest.approx(0.2 * 0.75, abs=0.01)


def test_ada_rotate90_and_xint_are_exact_pixel_moves():
    torch.manual_seed(1)
    x = torch.rand(32, 3, 8, 8) * 2 - 1
    y = _only("rotate90")(x)
    ks = []
    for i in range(32):
        k = [k for k in range(4) if torch.allclose(y[i], torch.rot90(x[i], k, dims=(1, 2)), atol=1e-5)]
        assert len(k) == 1, i
        ks.append(k[0])
    assert set(ks) == {0, 1, 2, 3}
    # xint: an integer translation of at most xint_max of the size (reflection at the borders)
    h, w = 16, 8
    x = torch.rand(24, 3, h, w) * 2 - 1
    y = _only("xint")(x)
    moved = 0
    for i in range(24):
        hits = []
        for dy in range(-2, 3):
            for dx in range(-1, 2):
                a = y[i, :, max(0, dy): h + min(0, dy), max(0, dx): w + min(0, dx)]
                b = x[i, :, max(0, -dy): h + min(0, -dy), max(0, -dx): w + min(0, -dx)]
                if torch.allclose(a, b, atol=1e-5):
                    hits.append((dy, dx))
        assert len(hits) == 1, (i, hits)
        moved += hits[0] != (0, 0)
    assert moved >= 12


def test_ada_geometric_matrices():
    """scale: s·I; rotate: a rotation; aniso: diag(s, 1/s); xfrac: a pure translation (fractional)."""
    torch.manual_seed(2)
    n = 64
    S = _only("scale").geometric_matrix(n, 16, 8, "cpu")
    assert torch.allclose(S[:, 0, 0], S[:, 1, 1]) and S[:, 0, 0].std() > 0.05
    assert torch.allclose(S - torch.diag_embed(torch.diagonal(S, dim1=1, dim2=2)), torch.zeros_like(S))
    R = _only("rotate").geometric_matrix(n, 16, 8, "cpu")
    r = R[:, :2, :2]
    assert torch.allclose(r @ r.transpose(1, 2), torch.eye(2).expand(n, 2, 2), atol=1e-5)
    assert torch.allclose(torch.linalg.det(r), torch.ones(n), atol=1e-5) and (r[:, 0, 1].abs() > 1e-3).any()
    assert torch.allclose(R[:, :2, 2], torch.zeros(n, 2), atol=1e-6)
    A = _only("aniso").geometric_matrix(n, 16, 8, "cpu")
    assert torch.allclose(A[:, 0, 0] * A[:, 1, 1], torch.ones(n), atol=1e-5) and A[:, 0, 0].std() > 0.05
    assert A[:, 0, 1].abs().max() == 0 and A[:, 1, 0].abs().max() == 0
    T = _only("xfrac").geometric_matrix(n, 16, 8, "cpu")
    assert torch.allclose(T[:, :2, :2], torch.eye(2).expand(n, 2, 2))
    frac = T[:, :2, 2] - T[:, :2, 2].round()
    assert frac.abs().max() > 0.05  # not whole pixels


def test_ada_colour_transforms_exact():
    """contrast scales about 0; luma flip reflects through the grey axis; hue rotates about it (grey level
    and chroma length kept); saturation scales the chroma."""
    torch.manual_seed(3)
    x = torch.rand(16, 3, 8, 4) * 2 - 1
    grey = x.mean(1, keepdim=True)
    y = _only("contrast")(x)
    ratio = y / x
    assert torch.allclose(ratio, ratio.flatten(1)[:, :1].view(-1, 1, 1, 1).expand_as(ratio), atol=1e-4)
    y = _only("lumaflip")(x)
    flipped = [torch.allclose(y[i], x[i] - 2 * grey[i], atol=1e-5) for i in range(16)]
    assert all(f or torch.allclose(y[i], x[i], atol=1e-5) for i, f in enumerate(flipped)) and any(flipped)
    y = _only("hue")(x)
    assert torch.allclose(y.mean(1, keepdim=True), grey, atol=1e-5)
    assert torch.allclose((y - y.mean(1, keepdim=True)).norm(dim=1), (x - grey).norm(dim=1), atol=1e-5)
    assert (y - x).abs().max() > 1e-2
    y = _only("saturation")(x)
    s = (y - grey) / (x - grey)
    assert torch.allclose(y.mean(1, keepdim=True), grey, atol=1e-5)
    assert torch.allclose(s, s.flatten(1)[:, :1].view(-1, 1, 1, 1).expand_as(s), atol=1e-3)
    assert (s.flatten(1)[:, 0] > 0).all()


def test_ada_xflip_and_brightness_exact():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 4) * 2 - 1
    names = ["rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "brightness", "contrast", "lumaflip",
             "hue", "saturation"]
    y = AugmentPipe(p=1.0, **{n: 0 for n in names})(x)
    for i in range(16):  # each sample is either itself or its mirror image
        assert torch.allclose(y[i], x[i], atol=1e-5) or torch.allclose(y[i], x[i].flip(-1), atol=1e-5)
    names = ["xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac", "contrast", "lumaflip", "hue",
             "saturation"]
    y = AugmentPipe(p=1.0, **{n: 0 for n in names})(x)
    d = y - x  # brightness: one constant per sample
    assert torch.allclose(d, d.flatten(1)[:, :1].view(-1, 1, 1, 1).expand_as(d), atol=1e-5)


def test_ada_gradients_flow():
    x = (torch.rand(4, 3, 16, 8) * 2 - 1).requires_grad_(True)
    y = AugmentPipe(p=1.0)(x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_ada_controller_direction():
    pipe = AugmentPipe(p=0.1)
    ada = AdaController(pipe, target=0.6, interval=4, kimg=1.0)
    for it in range(4):  # D very confident on reals: sign = +1 > 0.6 → p increases
        ada.accumulate(torch.ones(8, 1))
        ada.step(it, 8)
    assert float(pipe.p) == pytest.approx(0.1 + 8 * 4 / 1000)
    for it in range(4, 8):  # D unsure: sign mean = 0 < 0.6 → p decreases
        ada.accumulate(torch.tensor([[1.0], [-1.0]]))
        ada.step(it, 8)
    assert float(pipe.p) == pytest.approx(0.1)
    for it in range(8, 400):
        ada.accumulate(-torch.ones(8, 1))
        ada.step(it, 8)
    assert float(pipe.p) == 0.0  # clamped at 0


# --- SWD -------------------------------------------------------------------------------------------------
def test_swd_identity_and_monotone():
    torch.manual_seed(0)
    reals = torch.from_numpy(np.stack([cv2.imread(str(p))[:, :, ::-1].copy() for p in
                                       sorted((_write_dataset(Path(__import__("tempfile").mkdtemp()), n=96)
                                               / "bounding_box_train").iterdir())])).permute(0, 3, 1, 2)
    x = reals.float() / 127.5 - 1
    a, b = x[:48], x[48:]
    kw = dict(min_res=8, per_image=64, num_dirs=128, num_repeats=2)
    assert swd(a, a, **kw)["swd"] == pytest.approx(0.0, abs=1e-9)
    base = swd(a, b, **kw)["swd"]
    noisy = [swd(a, (b + s * torch.randn_like(b)).clamp(-1, 1), **kw)["swd"] for s in (0.1, 0.3, 0.6)]
    assert base < noisy[0] < noisy[1] < noisy[2]
    shifted = swd(a, (b + 0.5).clamp(-1, 1), **kw)["swd"]
    assert shifted > base


# --- snapshots -------------------------------------------------------------------------------------------
def test_snapshot_round_trip(tmp_path):
    torch.manual_seed(0)
    G = TinyG(8, 0, 8, [16, 8], 3)
    kw = dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=[16, 8], img_channels=3)
    p = save_snapshot(G, kw, tmp_path / "network-snapshot-000001.000.pt", "tests.test_gan_train.TinyG", 1000)
    obj = torch.load(p, weights_only=True)
    assert set(obj) >= {"init_kwargs", "state_dict"}
    G2 = load_generator(p)
    assert not G2.training
    z = torch.randn(3, 8)
    c = torch.zeros(3, 0)
    assert torch.equal(G.eval()(z, c), G2(z, c))
    assert isinstance(load_generator(tmp_path), TinyG)  # a folder → its newest snapshot
    bad = dict(kw, img_resolution=[32, 16])
    p2 = save_snapshot(G, bad, tmp_path / "bad.pt", "tests.test_gan_train.TinyG")
    with pytest.raises(ValueError, match="do not fit"):
        load_generator(p2)
    p3 = save_snapshot(G, kw, tmp_path / "evil.pt", "os.system")
    with pytest.raises(ValueError, match="nn.Module"):
        load_generator(p3)


# --- the stage -------------------------------------------------------------------------------------------
def test_train_gan_learns_and_writes_artifacts(tmp_path):
    from reid_gan.train_gan import train_gan

    cfg = _cfg(tmp_path, ["gan.batch_size=8", "gan.kimg=1.6", "gan.tick_kimg=0.4", "gan.snap=2",
                          "gan.G.z_dim=16", "gan.G.w_dim=16", "metrics.num_images=96",
                          "metrics.swd.per_image=64", "metrics.swd.num_dirs=128"])
    metrics, obj = train_gan(cfg)
    out = Path(cfg.gan.out_dir)
    hist = obj["history"]
    kimgs = [h["kimg"] for h in hist]
    assert kimgs == [0.008, 0.808, 1.6]  # tick 0 ends after one iteration; snapshot every 2nd tick of 0.4 kimg; the end
    assert hist[-1]["metric/swd"] < 0.7 * hist[0]["metric/swd"], hist
    assert metrics["train/kimg"] == pytest.approx(1.6)
    assert "metric/swd" in metrics and "metric/fid" not in metrics
    for h in hist:
        assert (out / h["snapshot"]).exists()
        assert (out / "grids" / f"fakes-{h['kimg']:010.3f}.png").exists()
    assert (out / "metrics.csv").read_text().count("\n") == 4
    assert (out / "checkpoints" / "last.ckpt").exists()
    G = load_generator(out / "checkpoints" / "last.ckpt")
    G2 = load_generator(out)
    z = torch.randn(2, 16)
    assert torch.allclose(G(z, torch.zeros(2, 0)), G2(z, torch.zeros(2, 0)))
    csv_logs = list(Path(cfg.paths.output_dir).rglob("metrics.csv"))
    text = "".join(p.read_text() for p in csv_logs)
    for key in ("train/loss_G", "train/loss_D", "train/r1", "train/ada_p", "train/kimg", "metric/swd"):
        assert key in text, key


def test_train_gan_resume_after_kill(tmp_path):
    from reid_gan.train_gan import train_gan

    base = ["gan.batch_size=4", "gan.kimg=0.04", "gan.tick_kimg=0.008", "gan.snap=100", "gan.resume=auto",
            "gan.G.z_dim=8", "gan.G.w_dim=8"]
    killed = _cfg(tmp_path, [*base, "+callbacks.kill._target_=tests.test_gan_train.KillAfter",
                             "+callbacks.kill.n=5"])
    with pytest.raises(RuntimeError, match="simulated kill"):
        train_gan(killed)
    out = Path(killed.gan.out_dir)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    meta = ckpt["gan"]
    # Ticks end at 4 (tick 0), 12, 20 … images; the kill came at iteration 5 (20 images) before that tick's
    # checkpoint was written, so the last checkpoint is the one of 12 images (iteration 3).
    assert meta["cur_nimg"] == 12 and meta["iteration"] == 3
    cfg = compose_stage("train_gan", tmp_path, [*STANDIN, "data.name=folder", f"data.root={tmp_path / 'ds'}", *base,
                                                "+callbacks.count._target_=tests.test_gan_train.CountBatches"])
    BATCHES_SEEN.clear()
    START_STATE.clear()
    metrics, obj = train_gan(cfg)
    m = obj["module"]
    assert BATCHES_SEEN == list(range(4, 11))  # continued at iteration 4: 7 more iterations, not 10
    # ... from the checkpoint's weights (G, D, G_ema, ADA p) and D's Adam moments, not from a fresh start
    start = START_STATE["state_dict"]
    assert set(start) == set(ckpt["state_dict"])
    for k, v in ckpt["state_dict"].items():
        assert torch.equal(start[k], v), k
    assert any(not torch.equal(v, m.state_dict()[k]) for k, v in ckpt["state_dict"].items() if k.startswith("G."))
    saved_moments = [st["exp_avg"] for st in ckpt["optimizer_states"][1]["state"].values()]
    assert len(START_STATE["d_exp_avg"]) == len(saved_moments) > 0
    assert all(torch.equal(a, b) for a, b in zip(START_STATE["d_exp_avg"], saved_moments))
    assert m.cur_nimg == 40 and m.iteration == 10
    assert [h["kimg"] for h in obj["history"]] == [0.004, 0.04]  # tick-0 snapshot (first run) + the final one
    # Once done, resume=auto does nothing more.
    metrics2, _ = train_gan(cfg)
    assert metrics2["train/kimg"] == pytest.approx(0.04)
    # that finished checkpoint named from another run's folder: nothing to train, its own run's metrics
    named = [a for a in base if not a.startswith("gan.resume=")]
    other = compose_stage("train_gan", tmp_path / "other", [*STANDIN, "data.name=folder", f"data.root={tmp_path / 'ds'}",
                                                            *named, f"gan.resume={out / 'checkpoints' / 'last.ckpt'}"])
    metrics3, _ = train_gan(other)
    assert metrics3 == metrics2 and "metric/swd" in metrics3
    # the checkpoint alone, away from its run: a named error saying how to fine-tune from it instead
    import shutil

    lone = tmp_path / "lone.ckpt"
    shutil.copy(out / "checkpoints" / "last.ckpt", lone)
    alone = compose_stage("train_gan", tmp_path / "alone", [*STANDIN, "data.name=folder", f"data.root={tmp_path / 'ds'}",
                                                            *named, f"gan.resume={lone}"])
    with pytest.raises(ValueError, match=r"lone\.ckpt: that checkpoint already reached 0\.040 kimg.*continued, not "
                                         r"fine-tuned.*reid_gan\.gan\.embed"):
        train_gan(alone)
    # ... and what it reached is bit for bit what the uninterrupted run reaches: same batches, same flips,
    # same latents and augmentations after the resume (a snapshot's metric does not shift them either)
    whole = compose_stage("train_gan", tmp_path / "whole", [*STANDIN, "data.name=folder",
                                                            f"data.root={tmp_path / 'ds'}", *base, "gan.mirror=true"])
    half = compose_stage("train_gan", tmp_path / "half", [*STANDIN, "data.name=folder",
                                                          f"data.root={tmp_path / 'ds'}", *base, "gan.mirror=true",
                                                          "gan.kimg=0.02", "gan.snap=1"])
    _, w = train_gan(whole)
    train_gan(half)
    from omegaconf import open_dict

    with open_dict(half):
        half.gan.kimg = 0.04
        half.gan.snap = 100
    _, h = train_gan(half)
    assert h["module"].cur_nimg == w["module"].cur_nimg == 40
    for net in ("G", "G_ema", "D"):
        a, b = getattr(w["module"], net).state_dict(), getattr(h["module"], net).state_dict()
        for k in a:
            assert torch.equal(a[k], b[k]), (net, k)


def test_resume_resolution_mismatch_is_reported(tmp_path):
    from reid_gan.train_gan import train_gan

    G = TinyG(8, 0, 8, [64, 32], 3)
    p = save_snapshot(G, dict(z_dim=8, c_dim=0, w_dim=8, img_resolution=[64, 32], img_channels=3),
                      tmp_path / "other.pt", "tests.test_gan_train.TinyG")
    cfg = _cfg(tmp_path, ["gan.G.z_dim=8", "gan.G.w_dim=8", f"gan.resume={p}"])
    with pytest.raises(ValueError, match="64x32 but gan.resolution is 32x16"):
        train_gan(cfg)


# --- FID / KID -------------------------------------------------------------------------------------------
def _write_fidelity_weights(path: Path, seed: int = 0) -> Path:
    """A weights file of torch-fidelity's true Inception-v3 layout with random values: torch-fidelity's own
    module built without its weights (its loader is bypassed for this one construction; nothing downloads),
    convolutions re-drawn with He scaling so activations keep their size through the ~90 layers."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    cls = fe.FeatureExtractorInceptionV3
    orig_url, orig_load = fe.load_state_dict_from_url, cls.load_state_dict
    fe.load_state_dict_from_url = lambda *a, **k: {}
    cls.load_state_dict = lambda self, *a, **k: None
    try:
        net = cls("inception-v3-compat", ["2048"])
    finally:
        fe.load_state_dict_from_url, cls.load_state_dict = orig_url, orig_load
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, v in net.state_dict().items():
        if k.endswith("conv.weight") or k == "fc.weight":
            v = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / v[0].numel())
        elif k.endswith("running_var"):
            v = torch.rand(v.shape, generator=g) + 0.5
        elif k.endswith("running_mean") or k.endswith("bn.bias") or k == "fc.bias":
            v = torch.randn(v.shape, generator=g) * 0.05
        state[k] = v.clone()
    torch.save(state, path)
    return path


def test_fid_kid_match_torch_fidelity(tmp_path):
    """Our FID/KID on two image sets equal torch_fidelity.calculate_metrics on the same images and weights."""
    import torch_fidelity

    from reid_gan.metrics.fid import FIDKIDMetric

    torch.set_num_threads(1)
    w = _write_fidelity_weights(tmp_path / "weights-inception-2015-12-05-6726825d.pth")
    files = sorted((_write_dataset(tmp_path / "ds", n=12) / "bounding_box_train").iterdir())
    imgs = torch.from_numpy(np.stack([cv2.imread(str(p))[:, :, ::-1].copy() for p in files])).permute(0, 3, 1, 2)
    a, b = imgs[:6].contiguous(), imgs[6:].contiguous()
    b_dark = (b // 3).contiguous()

    class _DS(torch.utils.data.Dataset):
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            return self.x[i]

    m = FIDKIDMetric(w, a, batch_size=6, kid_subsets=5, kid_subset_size=4, seed=3)
    ours = m(b)
    ref = torch_fidelity.calculate_metrics(input1=_DS(a), input2=_DS(b), cuda=False, fid=True, kid=True,
                                           feature_extractor_weights_path=str(w), kid_subsets=5, kid_subset_size=4,
                                           rng_seed=3, batch_size=6, verbose=False, cache=False,
                                           save_cpu_ram=True)
    assert ours["fid"] == pytest.approx(ref["frechet_inception_distance"], rel=1e-5)
    assert ours["kid"] == pytest.approx(ref["kernel_inception_distance_mean"], rel=1e-5, abs=1e-9)
    assert ours["kid_std"] == pytest.approx(ref["kernel_inception_distance_std"], rel=1e-5, abs=1e-9)
    assert ours["fid"] > 0 and m(b_dark)["fid"] > ours["fid"]  # darker images are farther from the reals


def test_inception_file_errors(tmp_path):
    from reid_gan.metrics.fid import load_inception

    with pytest.raises(FileNotFoundError, match="metrics.inception"):
        load_inception(tmp_path / "absent.pth")
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3)}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="metrics.inception: .*Inception-v3 layout.*Missing key"):
        load_inception(tmp_path / "partial.pth")
    torch.save({"net": nn.Linear(2, 2)}, tmp_path / "pickled_module.pth")  # not tensors only
    with pytest.raises(ValueError, match="metrics.inception: .*not a readable weights file"):
        load_inception(tmp_path / "pickled_module.pth")


def _random_cov(rng, d, n=None):
    a = rng.normal(size=(n or 2 * d, d))
    return a.T @ a / len(a) + 0.05 * np.eye(d)  # full, well-conditioned, not diagonal


def _frechet_reference(f1, f2):
    """||mu1 - mu2||² + tr(S1) + tr(S2) - 2 tr((S1^½ S2 S1^½)^½): the symmetric form, with scipy's sqrtm for
    S1^½ and an eigen-decomposition for the outer root (independent of sqrtm(S1 S2))."""
    import scipy.linalg

    mu1, mu2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    r1 = np.real(scipy.linalg.sqrtm(s1))
    ev = np.linalg.eigvalsh(r1 @ s2 @ r1)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(ev.clip(0)).sum())


def _kid_reference(f1, f2):
    """Unbiased MMD² with k(x, y) = (x·y / d + 1)³, pair by pair."""
    d, m = f1.shape[1], len(f1)
    k = lambda a, b: (a @ b / d + 1) ** 3
    xx = sum(k(f1[i], f1[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(f2[i], f2[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(f1[i], f2[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


class _LookupFeatures(nn.Module):
    """Feature 'network' returning row ``img[:, 0, 0, 0]`` of a fixed table (torch-fidelity's (features,) form)."""

    def __init__(self, table):
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=torch.float32))
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        return (self.table[x[:, 0, 0, 0].long()],)


def test_fid_kid_math_with_full_covariances():
    """FIDKIDMetric's FID on features with random full (non-commuting) covariances equals the Fréchet
    distance computed independently (a wrong matrix square root — element-wise, or one that assumes the
    covariances commute — fails); its KID on whole sets equals the unbiased MMD² written out."""
    from reid_gan.metrics.fid import FIDKIDMetric

    rng = np.random.default_rng(0)
    d, n = 6, 40
    l1, l2 = np.linalg.cholesky(_random_cov(rng, d)), np.linalg.cholesky(_random_cov(rng, d))
    f_real = rng.normal(size=(n, d)) @ l1.T
    f_fake = rng.normal(size=(n, d)) @ l2.T * 1.5 + 0.3
    s1, s2 = np.cov(f_real, rowvar=False), np.cov(f_fake, rowvar=False)
    assert not np.allclose(s1 @ s2, s2 @ s1, atol=1e-2)  # they do not commute
    table = np.concatenate([f_real, f_fake]).astype(np.float32)
    f_real, f_fake = table[:n].astype(np.float64), table[n:].astype(np.float64)
    net = _LookupFeatures(table)
    idx = torch.arange(2 * n, dtype=torch.uint8).view(-1, 1, 1, 1).expand(-1, 3, 2, 2).contiguous()
    m = FIDKIDMetric(None, idx[:n], batch_size=16, kid_subsets=3, kid_subset_size=n, seed=0, net=net)
    out = m(idx[n:])
    assert out["fid"] == pytest.approx(_frechet_reference(f_real, f_fake), rel=1e-5)
    assert out["kid"] == pytest.approx(_kid_reference(f_real, f_fake), rel=1e-5)
    assert out["kid_std"] == pytest.approx(0, abs=1e-9)  # whole sets: every subset is the same
    same = m(idx[:n])
    assert same["fid"] == pytest.approx(0, abs=1e-4) and out["fid"] > 1




class _TinyFeatures(nn.Module):
    """A stand-in feature network (uint8 images -> 8 features) that records what it was shown."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.seen: list[torch.Tensor] = []

    def forward(self, x):
        assert x.dtype == torch.uint8
        f = torch.tanh(self.conv(x.float() / 127.5 - 1)).mean(dim=[2, 3]) + 0.01 * self.conv(x.float() / 255).amax(dim=[2, 3])
        self.seen.append(f.detach().double())
        return (f,)  # torch-fidelity's extractors return a tuple of the requested features


def test_train_gan_reports_fid_kid_small(tmp_path, monkeypatch):
    """The FID/KID path of train_gan (the slow test's wiring with a small feature network instead of
    Inception-v3): every snapshot reports FID and KID of its fakes against the reals, exactly the Fréchet
    distance of the features the network produced, and the SWD substitute is not reported."""
    import reid_gan.metrics.fid as fid_mod
    from reid_gan.train_gan import train_gan

    nets = []
    monkeypatch.setattr(fid_mod, "load_inception", lambda path: nets.append(_TinyFeatures()) or nets[-1])
    w = tmp_path / "inception.pth"
    w.write_bytes(b"unused: load_inception is replaced")
    cfg = _cfg(tmp_path, ["gan.G.z_dim=8", "gan.G.w_dim=8", f"metrics.inception={w}", "metrics.num_images=16",
                          "metrics.num_real=16", "metrics.kid_subsets=2", "metrics.batch_size=16",
                          "gan.batch_size=4", "gan.kimg=0.016", "gan.tick_kimg=0.008", "gan.snap=1"])
    metrics, obj = train_gan(cfg)
    assert {"metric/fid", "metric/kid"} <= set(metrics) and "metric/swd" not in metrics
    hist = obj["history"]
    assert len(nets) == 1 and len(hist) >= 2
    real, fakes = nets[0].seen[0].numpy(), [f.numpy() for f in nets[0].seen[1:]]
    assert len(real) == 16 and len(fakes) == len(hist)
    for h, f in zip(hist, fakes):
        expect = _frechet_reference(real, f)
        assert h["metric/fid"] == pytest.approx(expect, rel=1e-4) and expect > 0
        # 16 reals and 16 fakes: every KID subset is the whole set, so KID is the unbiased MMD² of the two
        assert h["metric/kid"] == pytest.approx(_kid_reference(real.astype(np.float64), f), rel=1e-4)
        assert h["metric/kid_std"] == pytest.approx(0, abs=1e-6)
    assert metrics["metric/fid"] == pytest.approx(hist[-1]["metric/fid"])
    # the fakes scored at each snapshot are that snapshot's images (G_ema as saved) of the fixed metric codes
    from reid_gan.utils.image import to_uint8

    (tick,) = [c for c in obj["trainer"].callbacks if hasattr(c, "fake_z")]
    z = tick.fake_z
    assert z.shape[0] == 16
    for h, f in zip(hist, fakes):
        G = load_generator(Path(obj["out_dir"]) / h["snapshot"])
        with torch.no_grad():
            img = G.synthesis(G.mapping(z, torch.zeros(z.shape[0], 0), truncation_psi=1.0), noise_mode="const")
            seen = nets[0](to_uint8(img))[0].double().numpy()
        np.testing.assert_allclose(seen, f, rtol=0, atol=1e-5, err_msg=h["snapshot"])


@pytest.mark.slow  # ~40 s: Inception-v3 at 299x299 on a CPU
def test_train_gan_reports_fid_with_local_inception(tmp_path):
    from reid_gan.train_gan import train_gan

    w = _write_fidelity_weights(tmp_path / "inception.pth")
    cfg = _cfg(tmp_path, ["gan.G.z_dim=8", "gan.G.w_dim=8", f"metrics.inception={w}", "metrics.num_images=4",
                          "metrics.num_real=4", "metrics.kid_subsets=2", "gan.kimg=0.008"])
    metrics, obj = train_gan(cfg)
    assert {"metric/fid", "metric/kid"} <= set(metrics) and "metric/swd" not in metrics
    assert all(math.isfinite(h["metric/fid"]) and h["metric/fid"] >= 0 for h in obj["history"])


def test_smoke_preset_with_the_real_networks(tmp_path):
    """experiment=smoke, nothing prepared: renders its data, trains our StyleGAN3 briefly, writes a usable G."""
    from reid_gan.gan.networks import Discriminator, Generator
    from reid_gan.train_gan import train_gan

    torch.set_num_threads(1)
    cfg = compose_stage("train_gan", tmp_path, ["logger=csv", "callbacks=none"])
    metrics, obj = train_gan(cfg)
    m = obj["module"]
    assert isinstance(m.G, Generator) and isinstance(m.D, Discriminator)
    assert metrics["train/kimg"] == pytest.approx(cfg.gan.kimg) and math.isfinite(metrics["metric/swd"])
    G = load_generator(Path(cfg.gan.out_dir))
    assert isinstance(G, Generator) and not G.training
    img = G(torch.randn(2, G.z_dim), torch.zeros(2, 0), truncation_psi=0.7, noise_mode="const")
    assert img.shape == (2, 3, 32, 16) and torch.isfinite(img).all()
    # the snapshot equals G_ema of the final checkpoint
    G2 = load_generator(Path(cfg.gan.out_dir) / "checkpoints" / "last.ckpt")
    z = torch.randn(2, G.z_dim)
    assert torch.equal(G(z, torch.zeros(2, 0), noise_mode="const"), G2(z, torch.zeros(2, 0), noise_mode="const"))


@pytest.mark.parametrize("lr,learns", [(0.0025, True), (0.0, False)])
def test_real_networks_metric_improves_between_snapshots(tmp_path, lr, learns):
    """Our StyleGAN3-T and residual D (the smoke sizes) on the embedded renderer's images: the metric of
    a later snapshot is clearly better than the first; with both learning rates at 0 (the control) it is
    not, so the improvement comes from training, not from the metric's sampling."""
    from reid_gan.gan.networks import Discriminator, Generator
    from reid_gan.train_gan import train_gan

    torch.set_num_threads(1)
    cfg = compose_stage("train_gan", tmp_path, [
        "logger=csv", "callbacks=none", "gan.batch_size=8", "gan.kimg=1.2", "gan.tick_kimg=0.4", "gan.snap=3",
        f"gan.module.G_opt.lr={lr}", f"gan.module.D_opt.lr={lr}", "metrics.num_images=64", "metrics.num_real=64",
    ])
    metrics, obj = train_gan(cfg)
    assert isinstance(obj["module"].G, Generator) and isinstance(obj["module"].D, Discriminator)
    hist = obj["history"]
    assert [h["kimg"] for h in hist] == [0.008, 1.2]
    first, last = hist[0]["metric/swd"], hist[-1]["metric/swd"]
    print(f"lr={lr}: swd {first:.1f} -> {last:.1f}")
    if learns:
        assert last < 0.8 * first, hist  # measured: 259.3 -> 180.1 (lr 0.0025), 259.9 -> 259.2 (control)
    else:
        assert abs(last - first) < 0.1 * first, hist


# --- the system as a _target_ node (gan.module) ---------------------------------------------------------
@pytest.mark.parametrize("gan, aug", [("stylegan3_t", "ada"), ("stylegan3_r", "fixed"), ("stylegan3_t", "noaug")])
def test_module_is_instantiated_from_gan_module_with_derived_defaults(tmp_path, gan, aug):
    """``gan.module`` is a ``_target_`` node: the stage instantiates it with G, D and the schedule, and the
    module resolves the null defaults from the batch size (NVIDIA's train.py): G_ema half-life batch·10/32,
    blur fade batch·200/32 with config R's blur, ADA only with aug=ada; G's magnitude EMA 0.5^(batch/20000)."""
    from reid_gan.config import validate_config
    from reid_gan.gan.module import StyleGAN3Module
    from reid_gan.gan.training import build_module, build_networks

    cfg = compose_stage("train_gan", tmp_path, [f"gan={gan}", "gan.batch_size=8", f"gan.module.aug={aug}",
                                                "gan.module.augment_p=0.25", "gan.G.z_dim=8", "gan.G.w_dim=8",
                                                "gan.G.channel_base=64", "gan.G.channel_max=8",
                                                "gan.D.channel_base=64", "gan.D.channel_max=8"])
    validate_config(cfg)
    assert cfg.gan.module._target_ == "reid_gan.gan.module.StyleGAN3Module"
    G, D = build_networks(cfg)
    m = build_module(cfg, G, D)
    assert isinstance(m, StyleGAN3Module) and m.G is G and m.D is D
    assert m.batch_size == 8 and m.kimg == cfg.gan.kimg and m.snap == cfg.gan.snap
    assert m.ema_kimg == pytest.approx(8 * 10 / 32)
    assert m.loss.blur_fade_kimg == pytest.approx(8 * 200 / 32 if gan == "stylegan3_r" else 0.0)
    assert m.loss.blur_init_sigma == (10.0 if gan == "stylegan3_r" else 0.0)
    assert G.init_kwargs["magnitude_ema_beta"] == pytest.approx(0.5 ** (8 / 20000))
    assert m.G_init_kwargs == G.init_kwargs and m.G_class == "reid_gan.gan.networks.Generator"
    assert m.D_class == "reid_gan.gan.networks.Discriminator" and m.D_init_kwargs["channel_max"] == 8
    if aug == "noaug":
        assert m.augment_pipe is None and m.ada is None
    else:
        assert float(m.augment_pipe.p) == pytest.approx(0.25)
        assert (m.ada is not None) == (aug == "ada")
    # given values win over the derived ones
    cfg2 = compose_stage("train_gan", tmp_path, [f"gan={gan}", "gan.module.ema_kimg=3",
                                                 "gan.module.loss.blur_fade_kimg=7", "gan.G.magnitude_ema_beta=0.9"])
    G, D = build_networks(cfg2)
    m2 = build_module(cfg2, G, D)
    assert m2.ema_kimg == 3 and m2.loss.blur_fade_kimg == 7 and G.init_kwargs["magnitude_ema_beta"] == 0.9


@pytest.mark.parametrize("override, match", [
    ("gan.module._target_=StyleGAN3Module", r"gan.module._target_: must be a dotted import path"),
    ("gan.module.G_opt=null", r"gan.module.G_opt._target_: must be a node with a _target_"),
    ("gan.D._target_=null", r"gan.D._target_: must be a node with a _target_"),
    ("gan.module.aug=sometimes", r"gan.module.aug: must be one of ada, fixed, noaug"),
    ("gan.module.loss.r1_gamma=-1", r"gan.module.loss.r1_gamma: must be >= 0"),
])
def test_gan_module_schema_rejects_bad_values_naming_the_key(tmp_path, override, match):
    from reid_gan.config import ConfigError, validate_config

    cfg = compose_stage("train_gan", tmp_path, [override])
    with pytest.raises(ConfigError, match=match):
        validate_config(cfg)


@pytest.mark.parametrize("override", ["gan.module.r1_gamma=1", "gan.loss.r1_gamma=1", "gan.aug=noaug"])
def test_unknown_or_moved_gan_keys_are_rejected_at_compose(tmp_path, override):
    """An unknown key, and a key of the module's at its old place (gan.loss, gan.aug: now under gan.module),
    stops composition naming it."""
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=override.split("=")[0].split(".")[-1]):
        compose_stage("train_gan", tmp_path, [override])
