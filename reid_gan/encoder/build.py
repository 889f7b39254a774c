"""Building the encoder's parts from the ``encoder`` config group (shared by ``train_encoder`` and ``invert``).

The encoder artifact ``<encoder.out_dir>/encoder.pt`` (read with ``weights_only=True``)::

    {'format': 'reid_gan.encoder/1', 'init_kwargs': {...ReStyleEncoder kwargs}, 'state_dict': {...},
     'iterations': int, 'generator': str, 'generator_sha256': str, 'g_size': [H, W], 'step': int,
     'perceptual': name, 'similarity': name or None, 'val': {last validation metrics}}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from reid_gan.config import ConfigError
from reid_gan.utils.logging import get_logger
from reid_gan.utils.weights import read_torch_file

log = get_logger(__name__)

__all__ = ["load_G", "build_encoder", "build_losses", "reid_input_size", "save_encoder", "load_encoder",
           "ENCODER_FORMAT", "ENCODER_FILE"]

ENCODER_FORMAT = "reid_gan.encoder/1"
ENCODER_FILE = "encoder.pt"


def load_G(ecfg: DictConfig, seed: int = 0, key: str = "encoder.ckpt") -> tuple[torch.nn.Module, str, str]:
    """The generator to invert into, its sha256 and a description (``random_init`` only without a file)."""
    from reid_gan.generation.generator import random_generator, resolve_ckpt
    from reid_gan.generation.generator import state_sha256 as _state_sha256
    from reid_gan.utils.io import file_sha256

    if ecfg.ckpt:
        try:
            path = resolve_ckpt(ecfg.ckpt)
        except FileNotFoundError as e:
            raise FileNotFoundError(str(e).replace("generate.ckpt", key)) from None
        from reid_gan.gan.checkpoint import load_generator

        log.info("Generator to invert into: %s", path)
        return load_generator(path), file_sha256(path), str(path)
    if ecfg.get("random_init"):
        G = random_generator(ecfg.random_init, seed)
        log.warning("%s is not set: inverting into a RANDOMLY INITIALISED generator (%s) — fit for a smoke test "
                    "only", key, ecfg.random_init.get("_target_"))
        return G, _state_sha256(G), "random-init"
    raise ConfigError(f"{key}: not set — pass {key}=PATH (a train_gan snapshot network-snapshot-*.pt or a folder "
                      f"of them, a train_gan .ckpt, or an NVIDIA .pkl)")


def build_encoder(ecfg: DictConfig, G: torch.nn.Module):
    """A :class:`ReStyleEncoder` for ``G`` (``n_styles = G.synthesis.num_ws``), backbone from a file or scratch."""
    from reid_gan.encoder.networks import ReStyleEncoder, load_resnet34_weights

    g_size = (int(G.synthesis.img_height), int(G.synthesis.img_width))
    size = tuple(int(v) for v in ecfg.input_size) if ecfg.input_size else g_size
    enc = ReStyleEncoder(n_styles=int(G.synthesis.num_ws), w_dim=int(G.synthesis.w_dim), input_size=size,
                         base_channels=int(ecfg.base_channels), head_channels=int(ecfg.head_channels))
    if ecfg.backbone_weights:
        info = load_resnet34_weights(enc.backbone, ecfg.backbone_weights)
        log.info("Encoder backbone: ResNet34 weights from %s (%d tensors; input channels 4-6 random)", info["file"],
                 info["loaded"])
    else:
        log.info("Encoder backbone: from scratch (encoder.backbone_weights=null; a local torchvision "
                 "resnet34-*.pth initialises it)")
    n = sum(p.numel() for p in enc.parameters())
    log.info("Encoder: ResNet34 layout (base %d), %d style heads (G.synthesis.num_ws) of %d channels -> w_dim %d, "
             "input %dx%d, generator %dx%d; %.2f M parameters", ecfg.base_channels, enc.n_styles, ecfg.head_channels,
             enc.w_dim, size[0], size[1], g_size[0], g_size[1], n / 1e6)
    return enc


def reid_input_size(cfg: DictConfig) -> tuple[int, int]:
    e = cfg.encoder.reid
    if e.height:
        return int(e.height), int(e.width)
    r = cfg.get("reid") or {}
    if r.get("height"):
        return int(r.height), int(r.width)
    return int(cfg.data.height), int(cfg.data.width)


def build_losses(cfg: DictConfig):
    """``(EncoderLoss, identity module or None, description dict)`` from ``encoder.loss/lpips/id_loss``."""
    from reid_gan.encoder.lpips import build_perceptual
    from reid_gan.encoder.losses import EncoderLoss, MocoSimilarity, ReIDSimilarity, load_reid_net

    e = cfg.encoder
    reid_net = None
    if e.reid.ckpt:
        reid_net = load_reid_net(e.reid.ckpt, "encoder.reid.ckpt")
    perceptual = build_perceptual(e.lpips.trunk, e.lpips.substitute, int(e.lpips.seed), int(e.lpips.min_size),
                                  reid_net=reid_net, net=e.lpips.net)
    mode = e.id_loss
    if mode == "auto":
        mode = "moco" if e.moco.weights else ("reid" if reid_net is not None else "none")
    sim = None
    identity = None
    if reid_net is not None:
        identity = ReIDSimilarity(reid_net, reid_input_size(cfg), e.reid.ckpt)
    if mode == "moco":
        if not e.moco.weights:
            raise ConfigError("encoder.id_loss=moco: encoder.moco.weights is not set (a local "
                              "moco_v2_800ep_pretrain.pth.tar)")
        sim = MocoSimilarity(e.moco.weights, int(e.moco.short_side))
    elif mode == "reid":
        if identity is None:
            raise ConfigError("encoder.id_loss=reid: encoder.reid.ckpt is not set (a re-ID checkpoint)")
        sim = identity
    else:
        log.info("Similarity loss: none (encoder.id_loss=%s%s): the term is 0", e.id_loss,
                 ", no MoCo file and no re-ID checkpoint" if e.id_loss == "auto" else "")
    if identity is None:
        log.info("Identity score: not computed (encoder.reid.ckpt=null: no re-ID model)")
    else:
        log.info("Identity score: Rank@1/mAP of reconstructions against the held-out people's real images with the "
                 "re-ID model %s%s", e.reid.ckpt, " (the same model as the similarity loss)" if sim is identity else "")
    loss = EncoderLoss(perceptual, sim, l2=e.loss.l2, lpips=e.loss.lpips, sim=e.loss.sim, w_norm_weight=e.loss.w_norm)
    desc = {"perceptual": perceptual.name, "similarity": None if sim is None else sim.name,
            "identity_model": str(e.reid.ckpt) if identity is not None else None,
            "identity_same_as_similarity": bool(identity is not None and sim is identity)}
    return loss, identity, desc


def save_encoder(path: Path, encoder, iterations: int, meta: dict[str, Any]) -> Path:
    from reid_gan.utils.io import atomic_torch_save

    atomic_torch_save({"format": ENCODER_FORMAT, "init_kwargs": dict(encoder.init_kwargs),
                       "state_dict": {k: v.detach().cpu() for k, v in encoder.state_dict().items()},
                       "iterations": int(iterations), **meta}, path)
    return path


def load_encoder(path: str | Path, key: str = "invert.source") -> tuple[Any, dict[str, Any]]:
    """``(ReStyleEncoder in eval mode, the file's dict)`` from ``encoder.pt`` or the folder holding it."""
    from reid_gan.encoder.networks import ReStyleEncoder
    from reid_gan.utils.weights import load_strict

    p = Path(str(path))
    if p.is_dir():
        p = p / ENCODER_FILE
    if not p.is_file():
        raise FileNotFoundError(f"{key}={path}: no {ENCODER_FILE} (run python -m reid_gan.train_encoder first)")
    data = read_torch_file(p, key, what="an encoder file", error=ValueError)
    if not isinstance(data, dict) or data.get("format") != ENCODER_FORMAT:
        raise ValueError(f"{key}={p}: not an encoder file (format {ENCODER_FORMAT})")
    enc = ReStyleEncoder(**data["init_kwargs"])
    load_strict(enc, data["state_dict"], f"{key}={p}")
    return enc.eval(), data


def plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def instantiate_optimizer(node: Any):
    return hydra.utils.instantiate(node)
