"""Feature extractors for the identity-consistency filter (:class:`reid_gan.filters.chain.IdentityFilter`).

An extractor is a callable ``x: float tensor [N, 3, H, W] (RGB in [0, 1]) -> features [N, D]``.

* :class:`ReIDFeatureExtractor` — a re-ID network (any ``nn.Module`` built from a ``_target_`` node, e.g.
  the re-ID stage's backbone) with weights from a local checkpoint (``torch.load(weights_only=True)``),
  inputs normalised with the ImageNet mean/std as re-ID models are trained.
* :class:`ColourLayoutExtractor` — no model: mean colour of horizontal bands (a crude appearance
  descriptor: upper/lower clothing colours). For tests and as a weak, model-free baseline; the filter's
  log names it when it is used.
"""

from __future__ import annotations

from typing import Any

import torch

from reid_gan.utils.logging import get_logger
from reid_gan.utils.weights import WeightsError, load_state_dict, resolve_weights_path

log = get_logger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ReIDFeatureExtractor:
    """Features of a re-ID model restored from a checkpoint.

    Args:
        checkpoint: local ``.pt``/``.pth``/Lightning ``.ckpt`` with the model's state dict (required).
        model: the network: an ``nn.Module`` or a ``_target_`` node/dict that builds it. ``None``: the
            re-ID stage's own checkpoint, which records its network's settings under ``reid_net``, is
            rebuilt as :class:`reid_gan.reid.models.ReIDNet` (eval mode returns its ranking features).
        strip_prefixes: key prefixes removed from the checkpoint's state dict (Lightning modules store
            the injected network under an attribute name).
        key: config key prefix used in error messages.
    """

    def __init__(self, checkpoint: str | None = None, model: Any = None,
                 strip_prefixes: tuple[str, ...] = ("net.", "model.", "backbone."),
                 key: str = "filter.chain.identity.extractor"):
        path = resolve_weights_path(checkpoint, f"{key}.checkpoint")
        if path is None:
            raise WeightsError(f"{key}.checkpoint: not set; the identity filter needs a re-ID checkpoint "
                               f"(or disable it: filter.chain.identity.enabled=false)")
        if model is None:
            model = self._model_from_checkpoint(path, key)
        if not isinstance(model, torch.nn.Module):
            import hydra

            model = hydra.utils.instantiate(model)
        state = load_state_dict(path, f"{key}.checkpoint")
        for prefix in strip_prefixes:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix):]: v for k, v in state.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if missing:
            raise WeightsError(f"{key}.checkpoint={path}: {len(missing)} weights of the model are missing "
                               f"from the file (e.g. {missing[:3]})")
        if unexpected:
            log.warning("%s.checkpoint: %d entries not used by the model (e.g. %s)", key, len(unexpected),
                        unexpected[:3])
        self.model = model.eval()
        self.path = path
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    @staticmethod
    def _model_from_checkpoint(path: Any, key: str) -> torch.nn.Module:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - re-raised with the file's name
            raise WeightsError(f"{key}.checkpoint={path}: cannot be read as a weights-only torch file ({e})") from e
        net_cfg = obj.get("reid_net") if isinstance(obj, dict) else None
        if not isinstance(net_cfg, dict):
            raise WeightsError(f"{key}.model: not set, and {path} does not record its network (no 'reid_net' "
                               f"entry, as the re-ID stage's checkpoints have); give the network as a _target_ node")
        try:
            from reid_gan.reid.models import ReIDNet
        except ImportError as e:
            raise WeightsError(f"{key}.checkpoint={path}: needs reid_gan.reid.models.ReIDNet ({e})") from e
        import inspect

        kwargs = {**net_cfg, "pretrained": None}
        if "log_init" in inspect.signature(ReIDNet).parameters:
            kwargs["log_init"] = False  # the weights come from the checkpoint right after
        return ReIDNet(**kwargs)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model((x - self.mean) / self.std)
        if isinstance(out, (tuple, list)):
            out = out[0]
        if isinstance(out, dict):
            out = out.get("features", next(iter(out.values())))
        return out.reshape(x.shape[0], -1)


class ColourLayoutExtractor:
    """Model-free descriptor: the mean RGB colour of ``bands`` horizontal bands (3·bands numbers).

    Weak (it only sees colour layout) but deterministic and instant; used by tests.
    """

    def __init__(self, bands: int = 6):
        if bands < 1:
            raise ValueError(f"bands must be >= 1 (got {bands})")
        self.bands = int(bands)
        log.info("identity filter: using the model-free colour-layout descriptor (no re-ID model)")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, (self.bands, 1))  # [N, 3, bands, 1]
        return (pooled.reshape(n, c * self.bands) - 0.5)
