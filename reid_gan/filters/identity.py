"""The identity-consistency filter (:class:`IdentityFilter`) and its feature extractors.

An extractor is a callable ``x: float tensor [N, 3, H, W] (RGB in [0, 1]) -> features [N, D]``.

* :class:`ReIDFeatureExtractor` — a re-ID network (any ``nn.Module`` built from a ``_target_`` node, e.g.
  the re-ID stage's backbone) with weights from a local checkpoint (``torch.load(weights_only=True)``),
  inputs normalised with the ImageNet mean/std as re-ID models are trained.
* :class:`ColourLayoutExtractor` — no model: mean colour of horizontal bands (a crude appearance
  descriptor: upper/lower clothing colours). For tests and as a weak, model-free baseline; the filter's
  log names it when it is used.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch

from reid_gan.filters.base import ImageFilter, ImageSet, read_bgr
from reid_gan.filters.cache import ScoreCache
from reid_gan.utils.config import stable_hash
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
        from reid_gan.reid.checkpoint import read_checkpoint, reid_net_from_settings

        obj = read_checkpoint(path, f"{key}.checkpoint", "a weights-only torch file")
        net_cfg = obj.get("reid_net") if isinstance(obj, dict) else None
        if not isinstance(net_cfg, dict):
            raise WeightsError(f"{key}.model: not set, and {path} does not record its network (no 'reid_net' "
                               f"entry, as the re-ID stage's checkpoints have); give the network as a _target_ node")
        return reid_net_from_settings(net_cfg)  # the weights come from the checkpoint right after

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


class IdentityFilter(ImageFilter):
    """Keep an image whose re-ID feature has cosine similarity ≥ ``threshold`` to its person's centroid.

    Beyond the thesis; off by default. The centroid is the mean of the L2-normalised features of all
    the person's images in the set.

    Args:
        extractor: callable ``float tensor [N, 3, H, W] (RGB, 0..1) -> features [N, D]`` (e.g.
            :class:`reid_gan.filters.identity.ReIDFeatureExtractor` built from a re-ID checkpoint).
        threshold: cosine similarity in [-1, 1].
        height, width: input size the extractor expects.
    """

    name = "identity"
    score_name = "cosine similarity to the person's centroid"

    def __init__(self, extractor: Callable[[Any], Any], threshold: float = 0.5, enabled: bool = True,
                 name: str | None = None, batch_size: int = 32, height: int = 128, width: int = 64):
        super().__init__(threshold, enabled, name, batch_size)
        if not callable(extractor):
            raise TypeError(f"identity extractor must be callable, got {type(extractor).__name__}")
        self.extractor = extractor
        self.height, self.width = int(height), int(width)
        self.person_key: dict[int, str] = {}

    def prepare(self, image_set: ImageSet, cache: ScoreCache) -> None:
        self.person_key = {pid: stable_hash(sorted(image_set.items[i].sha256 for i in idx))
                           for pid, idx in image_set.by_pid().items()}

    def item_keys(self, image_set: ImageSet) -> list[str]:
        return [it.sha256 + ":" + self.person_key[it.pid] for it in image_set.items]

    def _features(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        import cv2
        import torch

        feats = []
        for s in range(0, len(indices), self.batch_size):
            batch = []
            for i in indices[s:s + self.batch_size]:
                img = read_bgr(image_set.items[i].path)
                img = cv2.resize(img, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
                batch.append(img[:, :, ::-1].astype(np.float32) / 255.0)
            x = torch.from_numpy(np.stack(batch)).permute(0, 3, 1, 2).contiguous()
            with torch.no_grad():
                f = self.extractor(x)
            f = torch.as_tensor(f).float().reshape(len(batch), -1)
            feats.append(torch.nn.functional.normalize(f, dim=1).numpy())
        return np.concatenate(feats).astype(np.float64)

    def batches(self, image_set: ImageSet, todo: Sequence[int]) -> Iterable[list[int]]:
        # the centroid needs every image of the person: one call per person
        by: dict[int, list[int]] = {}
        for i in todo:
            by.setdefault(image_set.items[i].pid, []).append(i)
        yield from by.values()

    def compute(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        # the centroid needs every image of the person: compute whole persons
        by_pid = image_set.by_pid()
        pids = sorted({image_set.items[i].pid for i in indices})
        out: dict[int, float] = {}
        for pid in pids:
            idx = by_pid[pid]
            f = self._features(image_set, idx)
            c = f.mean(axis=0)
            c = c / max(np.linalg.norm(c), 1e-12)
            for i, v in zip(idx, f @ c):
                out[i] = float(v)
        return np.array([out[i] for i in indices], dtype=np.float64)

    def describe(self) -> str:
        return f"{self.name}: re-ID feature cosine similarity to the person's centroid, keep >= {self.threshold:g}"
