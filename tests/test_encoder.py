"""The pSp (ReStyle) encoder: W+ wiring against our generator, the loss terms, LPIPS against the reference
package, the MoCo loader, and a short real training run against an lr=0 control."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from reid_gan.config import validate_config
from reid_gan.encoder.lpips import LPIPS, FeatureDistance, build_perceptual, random_alexnet
from reid_gan.encoder.losses import EncoderLoss, ReIDSimilarity, load_moco_resnet50, w_norm
from reid_gan.encoder.networks import ReStyleEncoder, ReStylePSP, load_resnet34_weights
from reid_gan.gan.networks import Generator
from tests.helpers import compose_stage

pytestmark = pytest.mark.usefixtures("one_thread")


def _G(res, w_dim=16, num_layers=4, seed=0) -> Generator:
    torch.manual_seed(seed)
    G = Generator(z_dim=16, c_dim=0, w_dim=w_dim, img_resolution=res, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, channel_base=256, channel_max=32, num_layers=num_layers,
                  num_critical=1)
    with torch.no_grad():
        G.mapping.w_avg.normal_()  # a non-zero average latent, so that adding it is visible
    return G.eval()


def _zero_heads(enc: ReStyleEncoder, bias: torch.Tensor | None = None) -> None:
    with torch.no_grad():
        for i, head in enumerate(enc.styles):
            head.linear.weight.zero_()
            head.linear.bias.copy_(bias[i] if bias is not None else torch.zeros_like(head.linear.bias))


@pytest.mark.parametrize("res,input_size", [(32, (32, 32)), ([32, 16], (32, 16)), ([32, 16], (64, 32))])
def test_shapes_and_w_plus_wiring(res, input_size):
    G = _G(res, num_layers=5)
    assert G.synthesis.num_ws == 7  # num_layers + 2: the encoder must take it from G, not assume 16
    enc = ReStyleEncoder(G.synthesis.num_ws, G.w_dim, input_size, base_channels=8, head_channels=16)
    psp = ReStylePSP(enc, G, iterations=3)
    x = torch.rand(2, 3, *input_size) * 2 - 1
    outs = psp(x)
    assert len(outs) == 3
    gh, gw = (res, res) if isinstance(res, int) else res
    for latent, img in outs:
        assert latent.shape == (2, 7, 16) and img.shape == (2, 3, gh, gw)
    # codes of 0: the first pass is exactly w_avg on every style input, and the image is G(w_avg)
    _zero_heads(enc)
    (l1, i1), (l2, _), _ = psp(x)
    assert torch.equal(l1, G.mapping.w_avg.view(1, 1, -1).expand(2, 7, -1))
    assert torch.allclose(i1, G.synthesis(l1, noise_mode="const"))
    # constant codes c_i per head: pass k gives w_avg + k * c (added to the previous latent, per style)
    c = torch.randn(7, 16)
    _zero_heads(enc, c)
    outs = psp(x)
    for k, (latent, _) in enumerate(outs, start=1):
        assert torch.allclose(latent, G.mapping.w_avg.view(1, 1, -1) + k * c[None], atol=1e-5)
    with pytest.raises(ValueError, match="num_ws"):
        ReStylePSP(ReStyleEncoder(6, 16, input_size, base_channels=8, head_channels=16), G)
    with pytest.raises(ValueError, match="input"):
        psp(torch.zeros(1, 3, input_size[0] + 2, input_size[1]))


def test_backbone_from_a_torchvision_resnet34_file(tmp_path):
    import torchvision

    torch.manual_seed(1)
    ref = torchvision.models.resnet34(weights=None)
    f = tmp_path / "resnet34-test.pth"
    torch.save(ref.state_dict(), f)
    enc = ReStyleEncoder(6, 16, (64, 32), base_channels=64, head_channels=16)
    before = enc.backbone.conv1.weight[:, 3:].clone()
    info = load_resnet34_weights(enc.backbone, f)
    assert info["loaded"] == len([k for k in ref.state_dict() if not k.startswith("fc.")])
    assert torch.equal(enc.backbone.conv1.weight[:, :3], ref.conv1.weight)
    assert torch.equal(enc.backbone.conv1.weight[:, 3:], before)  # the reconstruction channels stay random
    assert torch.equal(enc.backbone.layer3[5].conv2.weight, ref.layer3[5].conv2.weight)
    assert torch.equal(enc.backbone.layer4[0].downsample[1].running_var, ref.layer4[0].downsample[1].running_var)
    bad = tmp_path / "bad.pth"
    torch.save({"layer1.0.conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(Exception, match="bad.pth"):
        load_resnet34_weights(enc.backbone, bad)


def _write_trunk(tmp_path: Path, net: str) -> Path:
    import torchvision

    torch.manual_seed(3)
    m = {"alex": torchvision.models.alexnet, "squeeze": torchvision.models.squeezenet1_1}[net](weights=None)
    f = tmp_path / f"{net}-trunk.pth"
    torch.save(m.state_dict(), f)  # the true torchvision layout (features.* + classifier.*)
    return f


@pytest.mark.parametrize("net", ["alex", "squeeze"])
def test_lpips_equals_reference_package(tmp_path, net):
    lpips = pytest.importorskip("lpips")
    f = _write_trunk(tmp_path, net)
    ours = LPIPS(f, min_size=0)
    assert ours.name == f"lpips_{net}"
    # the reference, built without any download: random trunk (pnet_rand), its own shipped heads, then the
    # same trunk weights as ours copied into its slices (sliceK.<i>.* is torchvision's features.<i>.*)
    ref = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)
    state = torch.load(f, weights_only=True)
    ref_state = ref.net.state_dict()
    ref.net.load_state_dict({k: state["features." + k.split(".", 1)[1]] for k in ref_state}, strict=True)
    torch.manual_seed(0)
    x = torch.rand(3, 3, 64, 48) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    with torch.no_grad():
        a = ours(x, y)
        b = ref(x, y).flatten()
    assert a.shape == (3,)
    assert torch.allclose(a, b, atol=1e-5, rtol=0), (a, b)
    assert torch.all(ours(x, x) == 0)
    assert torch.all(ours(x, y) > 0)


def test_substitute_is_named_and_behaves(caplog):
    caplog.set_level("INFO")
    m = build_perceptual(None, "alex_random", seed=0, min_size=32)
    assert isinstance(m, FeatureDistance) and m.name == "featdist_alex_random"
    assert "NOT LPIPS" in caplog.text
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 16) * 2 - 1
    y = (x + 0.2 * torch.randn_like(x)).clamp(-1, 1)
    z = (x + 0.6 * torch.randn_like(x)).clamp(-1, 1)
    assert torch.all(m(x, x) == 0)
    assert torch.all(m(x, y) > 0) and torch.all(m(x, z) > m(x, y))
    # the same seed gives the same network (a fixed substitute, not a fresh random one each run)
    a, b = random_alexnet(0), random_alexnet(0)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    with pytest.raises(ValueError, match="re-ID checkpoint"):
        build_perceptual(None, "reid")


def test_moco_loader_on_the_true_key_layout(tmp_path):
    import torchvision

    torch.manual_seed(5)
    ref = torchvision.models.resnet50(weights=None)
    state = {f"module.encoder_q.{k}": v for k, v in ref.state_dict().items() if not k.startswith("fc.")}
    # MoCo v2's projection MLP and its key encoder: both present in the real file, neither used
    state.update({"module.encoder_q.fc.0.weight": torch.zeros(2048, 2048), "module.encoder_q.fc.0.bias": torch.zeros(2048),
                  "module.encoder_q.fc.2.weight": torch.zeros(128, 2048), "module.encoder_q.fc.2.bias": torch.zeros(128),
                  "module.encoder_k.conv1.weight": torch.zeros(64, 3, 7, 7), "module.queue": torch.zeros(128, 16)})
    f = tmp_path / "moco_v2_800ep_pretrain.pth.tar"
    torch.save({"epoch": 800, "arch": "resnet50", "state_dict": state, "optimizer": {}}, f)
    net = load_moco_resnet50(f)
    assert isinstance(net.fc, torch.nn.Identity)
    assert torch.equal(net.layer2[1].conv2.weight, ref.layer2[1].conv2.weight)
    with torch.no_grad():
        assert net(torch.zeros(1, 3, 64, 32)).shape == (1, 2048)
    bad = tmp_path / "not_moco.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, bad)
    with pytest.raises(Exception, match="not_moco.pth"):
        load_moco_resnet50(bad)


class _TinyReID(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, x):
        return self.conv(x).relu().mean(dim=(2, 3))


def test_each_loss_term_changes_with_its_input_and_is_zero_where_it_should_be():
    sim = ReIDSimilarity(_TinyReID(), (32, 16))
    perc = build_perceptual(None, "alex_random", min_size=32)
    loss = EncoderLoss(perc, sim, l2=1.0, lpips=0.8, sim=0.5, w_norm_weight=0.1)
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 16) * 2 - 1
    y = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    avg = torch.randn(1, 6, 16)
    lat = avg + torch.randn(2, 6, 16)
    same = loss.terms(x, x, avg.expand(2, -1, -1), avg)
    assert set(same) == {"l2", "featdist_alex_random", "sim_reid", "w_norm"}
    for k, v in same.items():
        assert torch.allclose(v, torch.zeros_like(v), atol=1e-6), k
    diff = loss.terms(x, y, lat, avg)
    for k, v in diff.items():
        assert torch.all(v > 1e-6), k
    assert torch.allclose(w_norm(lat, avg), (lat - avg).flatten(1).norm(dim=1))
    total, t = loss(x, y, lat, avg)
    want = t["l2"] + 0.8 * t["featdist_alex_random"] + 0.5 * t["sim_reid"] + 0.1 * t["w_norm"]
    assert torch.allclose(total, want)
    # gradients reach the reconstruction through every image term
    y2 = y.clone().requires_grad_(True)
    loss(x, y2, lat, avg)[0].backward()
    assert y2.grad is not None and y2.grad.abs().sum() > 0
    # without a similarity model the term is absent (0), never a fake value
    t0 = EncoderLoss(perc, None).terms(x, y, lat, avg)
    assert "sim_reid" not in t0 and "w_norm" not in t0


def _run(tmp_path: Path, lr: float, steps: int):
    from reid_gan.train_encoder import train_encoder

    cfg = compose_stage("train_encoder", tmp_path, [
        f"encoder.optimizer.lr={lr}", f"encoder.max_steps={steps}", f"encoder.val_every={steps}",
        "logger=none", "trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"])
    validate_config(cfg)
    return train_encoder(cfg)


def test_short_training_run_lowers_reconstruction_loss_against_lr0_control(tmp_path):
    m, o = _run(tmp_path / "learn", 2e-3, 16)
    c, _ = _run(tmp_path / "control", 0.0, 16)
    hist = o["history"]
    assert hist[0]["step"] == 0 and hist[-1]["step"] == 16
    start = hist[0]["val/loss"]
    # same start (same seed, same data, same untrained encoder), then only the learning run improves
    assert start == pytest.approx(_start(tmp_path / "control"))
    assert m["val/loss"] < 0.93 * start, (start, m["val/loss"])
    assert m["val/loss"] < 0.95 * c["val/loss"], (m["val/loss"], c["val/loss"])
    out = Path(o["out_dir"])
    assert (out / "encoder.pt").is_file() and (out / "checkpoints" / "last.ckpt").is_file()
    assert Path(o["grid"]).is_file() and o["perceptual"] == "featdist_alex_random"
    for k in ("val/loss/l2", "val/loss/featdist_alex_random", "val/loss/w_norm", "val/ssim",
              "train/loss/l2", "train/ssim"):
        assert k in m, k


def _start(folder: Path) -> float:
    from reid_gan.utils.io import read_jsonl

    return read_jsonl(next(folder.rglob("metrics.jsonl")))[0]["val/loss"]


def test_invert_output_is_read_by_generate_and_the_filter_uses_the_real_image(tmp_path):
    """train_encoder → invert (K=2 per identity) → generate (real-variants mode) → filter (SSIM to the real image)."""
    from reid_gan.filter import filter as filter_stage
    from reid_gan.data.generated import load_latents_file
    from reid_gan.generate import generate
    from reid_gan.invert import invert
    from reid_gan.train_encoder import train_encoder
    from reid_gan.utils.io import read_jsonl

    common = ["logger=none", "trainer=cpu", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
              "encoder.max_steps=1", "encoder.val_every=1", f"encoder.out_dir={tmp_path}/enc"]
    _, o = train_encoder(compose_stage("train_encoder", tmp_path, common))
    cfg = compose_stage("invert", tmp_path, [*common, f"invert.out={tmp_path}/inv", "invert.images_per_identity=2"])
    validate_config(cfg)
    m, io = invert(cfg)
    inv = Path(io["out"])
    lines = read_jsonl(inv / "manifest.jsonl")
    pids = sorted({r["pid"] for r in lines})
    assert all(sum(r["pid"] == p for r in lines) <= 2 for p in pids)
    assert {"file", "pid", "camid", "perceptual", "ssim", "identity", "person_code"} <= set(lines[0])
    assert all(Path(r["file"]).parent.name == "bounding_box_train" for r in lines)
    assert sum(r["person_code"] for r in lines) == len(pids)
    assert m["invert/persons"] == len(pids) and 0 < m["invert/ssim_mean"] <= 1
    # generate's real-variants mode reads the file: real pids, one person per identity, reference = real image
    gcfg = compose_stage("generate", tmp_path, [f"generate.latents={inv}/latents.pt", "generate.persons=null",
                                                 "generate.images_per_person=3", f"generate.out={tmp_path}/var",
                                                 "generate.figures.enabled=false"])
    G_pids, ws = load_latents_file(inv / "latents.pt", 6, 16)
    assert G_pids.tolist() == pids
    generate(gcfg)
    recs = read_jsonl(tmp_path / "var" / "manifest.jsonl")
    assert sorted({r["pid"] for r in recs}) == pids and len(recs) == 3 * len(pids)
    chosen = {r["pid"]: r["file"] for r in lines if r["person_code"]}
    assert all(r["reference"] == chosen[r["pid"]] for r in recs)
    # the filter's SSIM reference is the person's real image
    fcfg = compose_stage("filter", tmp_path, [f"filter.source={tmp_path}/var", f"filter.out={tmp_path}/kept",
                                              f"filter.report_dir={tmp_path}/frep", "filter.chain.ssim.reference=real"])
    validate_config(fcfg)
    filter_stage(fcfg)
    scores = read_jsonl(tmp_path / "frep" / "scores.jsonl")
    assert len(scores) == len(recs)
    # recompute one image's SSIM against its real image (resized to the reference's size, as the filter does)
    import cv2

    from reid_gan.metrics.ssim import ssim

    r0 = next(r for r in scores if r["file"] == recs[0]["file"])
    ref = cv2.imread(recs[0]["reference"])[:, :, ::-1]
    img = cv2.imread(str(tmp_path / "var" / recs[0]["file"]))[:, :, ::-1]
    img = cv2.resize(np.ascontiguousarray(img), (ref.shape[1], ref.shape[0]), interpolation=cv2.INTER_AREA)
    want = float(ssim(torch.from_numpy(img.copy()).permute(2, 0, 1)[None], torch.from_numpy(ref.copy()).permute(2, 0, 1)[None]))
    got = r0["scores"]["ssim"] if "scores" in r0 else r0["ssim"]
    assert got == pytest.approx(want, abs=1e-5)


def test_resume_auto_continues_from_the_last_checkpoint(tmp_path, monkeypatch):
    """A run stopped after its step-2 checkpoint (as a kill after it would leave it) continues at step 2 with
    encoder.resume=auto: weights (its first step starts from them), optimiser and step come from the
    checkpoint, and the result is bit-identical to an uninterrupted run's (the data stream and the random
    generators continue where they stood)."""
    from reid_gan.train_encoder import train_encoder
    from reid_gan.utils.io import read_jsonl

    def run(out, steps, resume):
        cfg = compose_stage("train_encoder", tmp_path, [
            f"encoder.out_dir={out}", f"encoder.max_steps={steps}", "encoder.val_every=2", f"encoder.resume={resume}",
            "encoder.optimizer.lr=1e-3", "logger=none", "trainer=cpu", "trainer.enable_progress_bar=false",
            "trainer.enable_model_summary=false"])
        return train_encoder(cfg)

    run(tmp_path / "a", 2, "null")
    ck = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck["global_step"] == 2 and all(k.startswith("psp.encoder.") for k in ck["state_dict"])
    first = read_jsonl(tmp_path / "a" / "metrics.jsonl")
    from reid_gan.encoder.module import ReStyleModule

    start: dict = {}
    step = ReStyleModule.training_step

    def record_start(self, batch, batch_idx):  # the weights the resumed run's first step starts from
        if not start:
            start.update({k: v.detach().clone() for k, v in self.state_dict().items() if k.startswith("psp.encoder.")})
        return step(self, batch, batch_idx)

    monkeypatch.setattr(ReStyleModule, "training_step", record_start)
    _, o = run(tmp_path / "a", 4, "auto")
    assert set(start) == set(ck["state_dict"])
    for k, v in ck["state_dict"].items():
        assert torch.equal(start[k], v), k
    hist = read_jsonl(tmp_path / "a" / "metrics.jsonl")
    assert [r["step"] for r in hist] == [0, 2, 4] and hist[:2] == first  # no re-validation at step 0
    ck4 = torch.load(tmp_path / "a" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ck4["global_step"] == 4
    # the optimiser state came from the checkpoint: Adam's step count went on from 2 to 4 (fresh: 2)
    steps = {int(v["step"]) for v in ck4["optimizer_states"][0]["state"].values()}
    assert steps == {4}
    # and a fresh 4-step run from scratch is not what ran (its step-2 line would be rewritten)
    assert hist[1]["val/loss"] == first[1]["val/loss"]
    # the uninterrupted 4-step run: the same weights, bit for bit, and the same metric lines
    monkeypatch.setattr(ReStyleModule, "training_step", step)
    run(tmp_path / "b", 4, "null")
    ckb = torch.load(tmp_path / "b" / "checkpoints" / "last.ckpt", weights_only=True)
    for k, v in ckb["state_dict"].items():
        assert torch.equal(ck4["state_dict"][k], v), k
    hb = read_jsonl(tmp_path / "b" / "metrics.jsonl")
    drop = ("seconds", "time", "wall")
    assert [{k: v for k, v in r.items() if not any(d in k for d in drop)} for r in hb] == \
        [{k: v for k, v in r.items() if not any(d in k for d in drop)} for r in hist]
