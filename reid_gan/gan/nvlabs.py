"""Import NVIDIA's StyleGAN3 network pickles (``stylegan3-r-ffhqu-256x256.pkl``, training snapshots) safely.

NVIDIA's ``.pkl`` files are ordinary Python pickles of a dict ``{'G', 'D', 'G_ema', 'augment_pipe',
'training_set_kwargs'}``. Each network is saved by ``torch_utils.persistence``: the pickle calls
``torch_utils.persistence._reconstruct_persistent_obj(meta)`` where ``meta`` is a dict
``{type: 'class', version, module_src: <the whole Python source of the defining module>, class_name,
state: <the module's __dict__>}``; ``state`` holds ``_parameters`` / ``_buffers`` / ``_modules`` (the
submodules are persistent records too) and ``_init_kwargs`` (the constructor arguments, with
``dnnlib.util.EasyDict`` values). Tensors are pickled by torch itself
(``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` over ``torch.storage._load_from_bytes``).
NVIDIA's loader *executes* ``module_src``; a plain ``pickle.load`` would also run any callable the file
names. We do neither:

* :class:`RestrictedUnpickler` resolves only an allow-list of globals: the tensor rebuild functions,
  ``collections.OrderedDict``, numpy array/scalar reconstruction, ``dnnlib.util.EasyDict`` (mapped to a
  plain ``dict`` subclass) and ``_reconstruct_persistent_obj`` (mapped to :class:`PersistentRecord`, an
  inert record that keeps ``class_name``, ``state`` and the source text without ever running it).
  Storages embedded by torch are read with ``torch.load(weights_only=True)``. Any other global raises
  :class:`UnsafePickleError` naming the file and the refused ``module.name``.
* :func:`load_pkl` builds *our* :class:`~reid_gan.gan.networks.Generator` / ``Discriminator`` from the
  stored ``init_kwargs`` and loads the stored tensors with ``load_state_dict(strict=True)``.

Usage::

    from reid_gan.gan.nvlabs import load_pkl
    nets = load_pkl("stylegan3-r-ffhqu-256x256.pkl")          # {'G': ..., 'D': ..., 'G_ema': ...}
    G = nets["G_ema"].eval()
    img = G(torch.randn(1, G.z_dim), None, truncation_psi=0.7)
    load_pkl(path, img_resolution=256, img_channels=3)         # raises PklMismatchError if it differs
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from .networks import Discriminator, Generator, parse_resolution

__all__ = [
    "UnsafePickleError",
    "PklFormatError",
    "PklMismatchError",
    "PersistentRecord",
    "RestrictedUnpickler",
    "read_pkl",
    "load_pkl",
    "record_state_dict",
]

NETWORK_KEYS = ("G", "D", "G_ema")


class UnsafePickleError(pickle.UnpicklingError):
    """The pickle names a global outside the allow-list (nothing from it was executed)."""


class PklFormatError(ValueError):
    """The pickle is safe but not a StyleGAN3 network pickle we can convert."""


class PklMismatchError(ValueError):
    """The networks in the pickle do not match the requested resolution / channels / labels."""


class PersistentRecord:
    """Inert stand-in for an object saved by NVIDIA's ``torch_utils.persistence``.

    ``class_name``: e.g. 'Generator'; ``state``: the saved ``__dict__`` (``_parameters``, ``_buffers``,
    ``_modules``, ``_init_kwargs``, ...); ``module_src``: the saved source text, kept as a string and
    never executed; ``version``: persistence format version.
    """

    __slots__ = ("class_name", "state", "module_src", "version", "type")

    def __init__(self, meta: Any):
        if not isinstance(meta, dict):
            raise UnsafePickleError(f"persistent record: expected a meta dict, got {type(meta).__name__}")
        self.type = meta.get("type")
        self.version = meta.get("version")
        self.class_name = meta.get("class_name")
        self.module_src = meta.get("module_src")
        self.state = meta.get("state")
        if self.type != "class" or not isinstance(self.class_name, str) or not isinstance(self.state, dict):
            raise UnsafePickleError(
                f"persistent record is malformed (type={self.type!r}, class_name={self.class_name!r})"
            )

    def __setstate__(self, state: Any) -> None:  # a BUILD opcode on a record is not part of the format
        raise UnsafePickleError("persistent record: unexpected state update")

    @property
    def init_kwargs(self) -> dict:
        return _plain(self.state.get("_init_kwargs") or {})

    @property
    def init_args(self) -> tuple:
        return tuple(self.state.get("_init_args") or ())

    def __repr__(self) -> str:
        return f"PersistentRecord({self.class_name}, init_kwargs={self.init_kwargs})"


class _EasyDict(dict):
    """Stand-in for ``dnnlib.util.EasyDict`` (a dict with attribute access)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value


def _load_storage_from_bytes(b: bytes):
    """torch pickles a storage as ``torch.storage._load_from_bytes(<torch.save bytes>)``; read those bytes
    with torch's own restricted loader."""
    if not isinstance(b, (bytes, bytearray)):
        raise UnsafePickleError("storage record does not hold bytes")
    return torch.load(io.BytesIO(bytes(b)), weights_only=True, map_location="cpu")


def _allowed_globals() -> dict[tuple[str, str], Any]:
    import numpy as np

    allowed: dict[tuple[str, str], Any] = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
        ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
        ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
        ("torch", "Size"): torch.Size,
        ("builtins", "set"): set,
        ("builtins", "frozenset"): frozenset,
        ("dnnlib.util", "EasyDict"): _EasyDict,
        ("dnnlib", "EasyDict"): _EasyDict,
        ("torch_utils.persistence", "_reconstruct_persistent_obj"): PersistentRecord,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
    }
    if hasattr(torch._utils, "_rebuild_parameter_with_state"):
        allowed[("torch._utils", "_rebuild_parameter_with_state")] = torch._utils._rebuild_parameter_with_state
    mu = getattr(np, "_core", None) or np.core
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = mu.multiarray._reconstruct
        allowed[(mod, "scalar")] = mu.multiarray.scalar
    # numpy >= 1.25 pickles dtypes through their classes (numpy.dtypes.Float64DType, ...)
    dtypes_mod = getattr(np, "dtypes", None)
    if dtypes_mod is not None:
        for name in dir(dtypes_mod):
            if name.endswith("DType") and name not in ("ObjectDType", "VoidDType"):
                allowed[("numpy.dtypes", name)] = getattr(dtypes_mod, name)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` resolves only the allow-list above; refuses persistent ids."""

    def __init__(self, file, source: str = "<pickle>"):
        super().__init__(file)
        self._source = source
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        obj = self._allowed.get((module, name))
        if obj is None:
            raise UnsafePickleError(
                f"{self._source}: refused global '{module}.{name}' — only tensors, plain values and NVIDIA's "
                "persistent network records are accepted from a network pickle (nothing was executed)"
            )
        return obj

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"{self._source}: persistent ids are not part of a network pickle ({pid!r})")


def read_pkl(path: str | os.PathLike) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; networks come back as :class:`PersistentRecord`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"network pickle not found: {path}")
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, source=str(path)).load()
        except UnsafePickleError:
            raise
        except Exception as e:  # truncated / corrupt file, bad tensor records, ...
            raise PklFormatError(f"{path}: cannot read as a network pickle: {type(e).__name__}: {e}") from e


def _plain(x: Any) -> Any:
    """EasyDicts -> dicts, recursively (init kwargs)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


def record_state_dict(rec: PersistentRecord, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a persistent record tree into a ``state_dict`` (parameters + persistent buffers)."""
    out: dict[str, torch.Tensor] = {}
    state = rec.state
    non_persistent = set(state.get("_non_persistent_buffers_set") or ())
    for name, t in (state.get("_parameters") or {}).items():
        if t is not None:
            out[prefix + name] = _as_tensor(t, prefix + name)
    for name, t in (state.get("_buffers") or {}).items():
        if t is not None and name not in non_persistent:
            out[prefix + name] = _as_tensor(t, prefix + name)
    for name, sub in (state.get("_modules") or {}).items():
        if sub is None:
            continue
        if not isinstance(sub, PersistentRecord):
            raise PklFormatError(f"submodule {prefix + name} is a {type(sub).__name__}, not a persistent record")
        out.update(record_state_dict(sub, prefix + name + "."))
    return out


def _as_tensor(t: Any, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise PklFormatError(f"{name}: expected a tensor, got {type(t).__name__}")
    return t.detach()


def _is_stylegan3_generator(rec: PersistentRecord) -> bool:
    syn = (rec.state.get("_modules") or {}).get("synthesis")
    return isinstance(syn, PersistentRecord) and "input" in (syn.state.get("_modules") or {})


def _build(key: str, rec: PersistentRecord, source: str) -> nn.Module:
    # The source text is never executed; this only checks that the record is what it claims to be.
    src = rec.module_src if isinstance(rec.module_src, str) else ""
    if not re.search(rf"^class {re.escape(rec.class_name)}\b", src, re.M):
        raise PklFormatError(
            f"{source}: {key}: the record's module_src does not define class {rec.class_name!r} — not an NVIDIA "
            "network record; refused (its source was not executed)"
        )
    kwargs = rec.init_kwargs
    if rec.init_args:
        raise PklFormatError(f"{source}: {key} was built with positional arguments {rec.init_args!r}; expected keywords")
    if rec.class_name == "Generator":
        if not _is_stylegan3_generator(rec):
            raise PklFormatError(
                f"{source}: {key} is not a StyleGAN3 generator (a StyleGAN2 / ADA generator?); only "
                "networks_stylegan3.Generator is supported"
            )
        module: nn.Module = Generator(**kwargs)
    elif rec.class_name == "Discriminator":
        module = Discriminator(**kwargs)
    else:
        raise PklFormatError(f"{source}: {key} is a {rec.class_name!r}; expected 'Generator' or 'Discriminator'")
    state = record_state_dict(rec)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise PklFormatError(f"{source}: {key} tensors do not fit our {rec.class_name}: {e}") from e
    return module.eval().requires_grad_(False)


def load_pkl(
    path: str | os.PathLike,
    img_resolution: Optional[int | Sequence[int]] = None,
    img_channels: Optional[int] = None,
    c_dim: Optional[int] = None,
    keys: Sequence[str] = NETWORK_KEYS,
) -> dict[str, nn.Module]:
    """Read an NVIDIA StyleGAN3 ``.pkl`` into our modules, executing nothing from the file.

    Returns ``{'G': Generator, 'D': Discriminator, 'G_ema': Generator}`` restricted to what the file holds
    (and to ``keys``), each in eval mode with ``requires_grad_(False)`` like NVIDIA's snapshots; call
    ``.train().requires_grad_(True)`` to fine-tune. ``img_resolution`` / ``img_channels`` / ``c_dim``:
    when given, every network must match them, else :class:`PklMismatchError` says what differs.
    """
    source = str(path)
    data = read_pkl(path)
    if isinstance(data, PersistentRecord):  # a bare network pickle
        data = {"G_ema" if data.class_name == "Generator" else "D": data}
    if not isinstance(data, dict):
        raise PklFormatError(f"{source}: expected a dict of networks, got {type(data).__name__}")
    found = {k: v for k, v in data.items() if k in keys and v is not None}
    if not found:
        raise PklFormatError(f"{source}: no networks {list(keys)} in the file (keys: {sorted(map(str, data))})")
    out: dict[str, nn.Module] = {}
    for key, rec in found.items():
        if not isinstance(rec, PersistentRecord):
            raise PklFormatError(f"{source}: {key} is a {type(rec).__name__}, not a persistent network record")
        kw = rec.init_kwargs
        problems = []
        if img_resolution is not None and "img_resolution" in kw:
            if parse_resolution(kw["img_resolution"]) != parse_resolution(img_resolution):
                problems.append(f"img_resolution {kw['img_resolution']} != requested {img_resolution}")
        if img_channels is not None and kw.get("img_channels") != img_channels:
            problems.append(f"img_channels {kw.get('img_channels')} != requested {img_channels}")
        if c_dim is not None and kw.get("c_dim") != c_dim:
            problems.append(f"c_dim {kw.get('c_dim')} != requested {c_dim}")
        if problems:
            raise PklMismatchError(f"{source}: {key}: " + "; ".join(problems))
        out[key] = _build(key, rec, source)
    return out
