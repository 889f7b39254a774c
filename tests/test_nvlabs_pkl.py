"""NVIDIA .pkl import: same structure as NVIDIA's snapshots, loaded without NVIDIA's code; hostile pickles refused."""

from __future__ import annotations

import copy
import os
import pickle
import sys
import types
from pathlib import Path

import pytest
import torch

from reid_gan.gan.networks import Discriminator, Generator
from reid_gan.gan.nvlabs import (
    PklFormatError,
    PklMismatchError,
    UnsafePickleError,
    load_pkl,
    read_pkl,
)

DATA = Path(__file__).parent / "data" / "sg3_t64.pt"
NV_SRC = "import torch\n@persistence.persistent_class\nclass {name}(torch.nn.Module):\n    pass\n"


# tiny tensors: one torch thread (tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------------------------
# Writing pickles in NVIDIA's structure (needs importable stand-ins for its modules while pickling)


@pytest.fixture
def nv_modules(monkeypatch):
    """Fake ``torch_utils.persistence`` and ``dnnlib.util`` so that ``pickle`` can write the same globals
    NVIDIA's files name. They are removed again before anything is loaded."""
    tu = types.ModuleType("torch_utils")
    pers = types.ModuleType("torch_utils.persistence")
    dn = types.ModuleType("dnnlib")
    du = types.ModuleType("dnnlib.util")

    def _reconstruct_persistent_obj(meta):  # pragma: no cover - never called by our loader
        raise AssertionError("NVIDIA's reconstruct function must never be called")

    _reconstruct_persistent_obj.__module__ = "torch_utils.persistence"
    _reconstruct_persistent_obj.__qualname__ = "_reconstruct_persistent_obj"
    pers._reconstruct_persistent_obj = _reconstruct_persistent_obj

    class EasyDict(dict):
        pass

    EasyDict.__module__ = "dnnlib.util"
    EasyDict.__qualname__ = "EasyDict"
    du.EasyDict = EasyDict
    tu.persistence = pers
    dn.util = du
    mods = [("torch_utils", tu), ("torch_utils.persistence", pers), ("dnnlib", dn), ("dnnlib.util", du)]

    def install():
        for name, mod in mods:
            monkeypatch.setitem(sys.modules, name, mod)

    return types.SimpleNamespace(
        reconstruct=_reconstruct_persistent_obj, EasyDict=EasyDict, monkeypatch=monkeypatch, install=install
    )


class _Persistent:
    """Pickles as NVIDIA's persistence decorator does: reconstruct(meta) with meta.state = __dict__."""

    def __init__(self, fn, meta):
        self.fn, self.meta = fn, meta

    def __reduce__(self):
        return (self.fn, (self.meta,))


def _record(nv, module: torch.nn.Module, init_kwargs=None, class_name=None, module_src=None):
    state = dict(module.__dict__)
    state["_modules"] = {
        k: (_record(nv, v) if v is not None else None) for k, v in module._modules.items()
    }
    state["_init_args"] = ()
    state["_init_kwargs"] = nv.EasyDict(init_kwargs or {})
    name = class_name or type(module).__name__
    meta = dict(
        type="class", version=6, module_src=module_src or NV_SRC.format(name=name), class_name=name, state=state
    )
    return _Persistent(nv.reconstruct, meta)


def _easy(nv, d):
    out = nv.EasyDict()
    for k, v in d.items():
        out[k] = _easy(nv, v) if isinstance(v, dict) else v
    return out


def _write(path, obj, nv):
    nv.install()
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=4)
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        nv.monkeypatch.delitem(sys.modules, name)


@pytest.fixture(scope="module")
def conf():
    return torch.load(DATA, weights_only=True)


D_KW = dict(c_dim=0, img_resolution=64, img_channels=3, channel_base=256, channel_max=16,
            block_kwargs={"freeze_layers": 0}, mapping_kwargs={}, epilogue_kwargs={"mbstd_group_size": 2})


@pytest.fixture
def snapshot(tmp_path, nv_modules, conf):
    G = Generator(**conf["init_kwargs"])
    G.load_state_dict(conf["state_dict"])
    torch.manual_seed(0)
    D = Discriminator(**D_KW)
    gkw = _easy(nv_modules, conf["init_kwargs"])
    data = {
        "G": _record(nv_modules, G, gkw),
        "D": _record(nv_modules, D, _easy(nv_modules, D_KW)),
        "G_ema": _record(nv_modules, G, gkw),
        "augment_pipe": None,
        "training_set_kwargs": nv_modules.EasyDict(path="x.zip", resolution=64),
    }
    path = tmp_path / "network-snapshot-000000.pkl"
    _write(path, data, nv_modules)
    return path, D


# ----------------------------------------------------------------------------------------------


def test_load_pkl_outputs_equal_nvidia(snapshot, conf):
    path, D = snapshot
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    nets = load_pkl(path)
    assert set(nets) == {"G", "D", "G_ema"}
    G = nets["G_ema"]
    assert isinstance(G, Generator) and isinstance(nets["D"], Discriminator)
    with torch.no_grad():
        img = G(conf["z"], conf["c"], truncation_psi=conf["truncation_psi"], noise_mode="const")
    assert (img - conf["img_full"]).abs().max().item() <= 1e-4
    for k, v in D.state_dict().items():
        assert torch.equal(nets["D"].state_dict()[k], v), k
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(nets["D"](x, None), D.eval()(x, None), atol=1e-6)
    assert "torch_utils" not in sys.modules, "loading must not import NVIDIA's modules"


def test_load_pkl_mismatch_reported(snapshot):
    path, _ = snapshot
    with pytest.raises(PklMismatchError, match="img_resolution 64 != requested 128"):
        load_pkl(path, img_resolution=128)
    with pytest.raises(PklMismatchError, match="img_channels 3 != requested 1"):
        load_pkl(path, img_channels=1)
    nets = load_pkl(path, img_resolution=64, img_channels=3, c_dim=0, keys=["G_ema"])
    assert list(nets) == ["G_ema"]


def test_stylegan2_generator_refused(tmp_path, nv_modules):
    g = torch.nn.Module()
    g.synthesis = torch.nn.Module()
    g.synthesis.b4 = torch.nn.Linear(2, 2)
    path = tmp_path / "sg2.pkl"
    _write(path, {"G_ema": _record(nv_modules, g, {"z_dim": 2}, class_name="Generator")}, nv_modules)
    with pytest.raises(PklFormatError, match="not a StyleGAN3 generator"):
        load_pkl(path)


# ----------------------------------------------------------------------------------------------
# Hostile pickles


class _RunsCommand:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def test_hostile_reduce_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    with open(path, "wb") as f:
        pickle.dump({"G_ema": _RunsCommand(f"touch {marker}")}, f)
    with pytest.raises(UnsafePickleError) as e:
        load_pkl(path)
    assert str(path) in str(e.value) and "system" in str(e.value)
    assert not marker.exists()


def test_hostile_global_inside_state_refused(tmp_path, nv_modules, conf):
    """A callable hidden deep in a record's state (e.g. a backward hook) is refused too."""
    marker = tmp_path / "pwned2"
    g = torch.nn.Linear(2, 2)
    rec = _record(nv_modules, g, {}, class_name="Generator")
    rec.meta["state"]["_forward_hooks"] = {0: _RunsCommand(f"touch {marker}")}
    path = tmp_path / "evil2.pkl"
    _write(path, {"G_ema": rec}, nv_modules)
    with pytest.raises(UnsafePickleError, match="refused global"):
        read_pkl(path)
    assert not marker.exists()


def test_malicious_module_src_never_executed(tmp_path, nv_modules, conf):
    marker = tmp_path / "pwned3"
    evil_src = f"import os\nos.system('touch {marker}')\n"
    G = Generator(**conf["init_kwargs"])
    G.load_state_dict(conf["state_dict"])
    gkw = _easy(nv_modules, conf["init_kwargs"])
    # (1) a record whose source is not an NVIDIA network module: refused with a clear error
    path = tmp_path / "evil3.pkl"
    _write(path, {"G_ema": _record(nv_modules, G, gkw, module_src=evil_src)}, nv_modules)
    with pytest.raises(PklFormatError, match="does not define class 'Generator'"):
        load_pkl(path)
    assert not marker.exists()
    # (2) an unknown class: refused
    path2 = tmp_path / "evil4.pkl"
    rec = _record(nv_modules, torch.nn.Linear(2, 2), {}, class_name="Payload", module_src=evil_src + "class Payload: pass\n")
    _write(path2, {"G_ema": rec}, nv_modules)
    with pytest.raises(PklFormatError, match="'Payload'"):
        load_pkl(path2)
    assert not marker.exists()


def test_malicious_src_with_valid_tensors_is_inert(tmp_path, nv_modules, conf):
    """Even when the source pretends to define the class, it is never run: the tensors load, nothing executes."""
    marker = tmp_path / "pwned4"
    evil_src = f"import os\nos.system('touch {marker}')\nclass Generator: pass\n"
    G = Generator(**conf["init_kwargs"])
    G.load_state_dict(conf["state_dict"])
    path = tmp_path / "evil5.pkl"
    _write(path, {"G_ema": _record(nv_modules, G, _easy(nv_modules, conf["init_kwargs"]), module_src=evil_src)}, nv_modules)
    nets = load_pkl(path)
    assert not marker.exists()
    assert torch.equal(nets["G_ema"].synthesis.input.transform, conf["state_dict"]["synthesis.input.transform"])


def test_persistent_id_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "x" if isinstance(obj, str) and obj == "hook" else None

    path = tmp_path / "pid.pkl"
    with open(path, "wb") as f:
        P(f).dump({"G_ema": "hook"})
    with pytest.raises(UnsafePickleError, match="persistent ids"):
        read_pkl(path)


def test_corrupt_file_clear_error(tmp_path):
    path = tmp_path / "trunc.pkl"
    path.write_bytes(pickle.dumps({"a": 1})[:5])
    with pytest.raises(PklFormatError, match="trunc.pkl"):
        load_pkl(path)
    with pytest.raises(FileNotFoundError, match="missing.pkl"):
        load_pkl(tmp_path / "missing.pkl")


# ----------------------------------------------------------------------------------------------
# A snapshot written by NVIDIA's own training code (NVlabs/stylegan3 @ c233a91, tests/data/README.md)

_NV_SNAPSHOT_CHECK = r"""
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch_utils", "dnnlib", "training", "legacy"):
            raise ImportError("NVIDIA's module " + name + " is not importable in this test")
sys.meta_path.insert(0, _Block())
for m in ("torch_utils", "dnnlib"):
    try:
        __import__(m)
    except ImportError:
        pass
    else:
        raise SystemExit("NVIDIA's " + m + " is importable: the test would prove nothing")
import torch
torch.set_num_threads(1)
from reid_gan.gan.networks import Discriminator, Generator
from reid_gan.gan.nvlabs import PersistentRecord, load_pkl, read_pkl
pkl, exp = sys.argv[1], sys.argv[2]
data = read_pkl(pkl)
assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}, sorted(data)
assert isinstance(data["augment_pipe"], PersistentRecord) and data["augment_pipe"].class_name == "AugmentPipe"
nets = load_pkl(pkl, img_resolution=32, img_channels=3, c_dim=0)
assert set(nets) == {"G", "D", "G_ema"}
assert isinstance(nets["G_ema"], Generator) and isinstance(nets["D"], Discriminator)
e = torch.load(exp, weights_only=True)
with torch.no_grad():
    img = nets["G_ema"](e["z"], e["c"], truncation_psi=e["truncation_psi"], noise_mode="const")
    d_out = nets["D"](e["img"], e["c"])
print("img", (img - e["img"]).abs().max().item())
print("D", (d_out - e["D_out"]).abs().max().item())
print("img_max", e["img"].abs().max().item())
print("nvidia_modules", sorted(m for m in sys.modules if m.split(".")[0] in ("torch_utils", "dnnlib")))
"""


def test_nvidia_training_snapshot_loads_without_nvidia_code(tmp_path):
    """The snapshot NVIDIA's training loop pickled (G, D, G_ema, augment_pipe, training_set_kwargs; only the
    arguments NVIDIA stores) loads through our restricted unpickler in a process where NVIDIA's modules
    cannot be imported, and G_ema's images and D's logits equal those NVIDIA's code computed (≤ 1e-4)."""
    import subprocess

    data = Path(__file__).parent / "data"
    script = tmp_path / "check.py"
    script.write_text(_NV_SNAPSHOT_CHECK)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, str(script), str(data / "nvidia-snapshot-t32.pkl"),
                          str(data / "nvidia-snapshot-t32-expected.pt")], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    vals = dict(line.split(" ", 1) for line in res.stdout.strip().splitlines())
    assert float(vals["img"]) <= 1e-4, vals
    assert float(vals["D"]) <= 1e-4, vals
    assert float(vals["img_max"]) > 0.1
    assert vals["nvidia_modules"] == "[]"
