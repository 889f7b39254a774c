"""The SSIM filter: keep an image when it is structurally similar to a reference image of its person."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from reid_gan.filters.base import ImageFilter, ImageSet, read_bgr
from reid_gan.filters.cache import ScoreCache
from reid_gan.utils.config import stable_hash
from reid_gan.utils.io import file_sha256

__all__ = ["SSIMFilter"]


class SSIMFilter(ImageFilter):
    """Keep an image when its SSIM to the person's reference image is ≥ ``threshold`` (thesis: 0.75).

    Args:
        threshold: keep if SSIM ≥ threshold.
        reference: ``base`` — the person's image with ``method == "base"`` in the manifest (else the
            person's first image); ``medoid`` — the person's image with the highest mean SSIM to the
            person's other images; ``real`` — the real image the person's code was inverted from (the
            manifest's ``reference``, written by ``generate`` for real-variant sets; every image needs one).
        data_range: 255 (8-bit images).
    SSIM setting: :data:`reid_gan.metrics.ssim.SSIM_SETTING`. An image of another size than its
    reference is resized to the reference's size (``cv2.INTER_AREA``) before comparison.
    """

    name = "ssim"
    score_name = "SSIM to reference"

    def __init__(self, threshold: float = 0.75, reference: str = "base", enabled: bool = True,
                 name: str | None = None, batch_size: int = 64, data_range: float = 255.0):
        super().__init__(threshold, enabled, name, batch_size)
        if reference not in ("base", "medoid", "real"):
            raise ValueError(f"ssim.reference must be 'base', 'medoid' or 'real' (got {reference!r})")
        self.reference = reference
        self.data_range = float(data_range)
        self.ref_index: dict[int, int] = {}
        self.ref_path: dict[int, str] = {}  # reference=real: pid -> the real image

    def _pairs(self, image_set: ImageSet, idx_a: Sequence[int], idx_b: Sequence[int]) -> np.ndarray:
        import cv2
        import torch

        from reid_gan.metrics.ssim import ssim

        out = np.zeros(len(idx_a), dtype=np.float64)
        loaded: dict[int, np.ndarray] = {}

        def get(i: int | str) -> np.ndarray:  # an index into the set, or a file (reference=real)
            if i not in loaded:
                path = i if isinstance(i, str) else image_set.items[i].path
                loaded[i] = read_bgr(path)[:, :, ::-1]  # RGB (SSIM is per channel anyway)
            return loaded[i]

        for s in range(0, len(idx_a), self.batch_size):
            a_idx, b_idx = idx_a[s:s + self.batch_size], idx_b[s:s + self.batch_size]
            a, b = [], []
            for i, j in zip(a_idx, b_idx):
                x, r = get(i), get(j)
                if x.shape != r.shape:
                    x = cv2.resize(np.ascontiguousarray(x), (r.shape[1], r.shape[0]), interpolation=cv2.INTER_AREA)
                a.append(x)
                b.append(r)
            # group by size (a set normally has one size)
            shapes = sorted({x.shape for x in b})
            for shp in shapes:
                sel = [k for k, x in enumerate(b) if x.shape == shp]
                ta = torch.from_numpy(np.stack([a[k] for k in sel])).permute(0, 3, 1, 2)
                tb = torch.from_numpy(np.stack([b[k] for k in sel])).permute(0, 3, 1, 2)
                vals = ssim(ta, tb, data_range=self.data_range).double().numpy()
                for k, v in zip(sel, vals):
                    out[s + k] = v
            if len(loaded) > 4 * self.batch_size:
                loaded.clear()
        return out

    def prepare(self, image_set: ImageSet, cache: ScoreCache) -> None:
        self.ref_index, self.ref_path = {}, {}
        if self.reference == "real":
            for pid, idx in image_set.by_pid().items():
                refs = {image_set.items[i].record.get("reference") for i in idx}
                if None in refs or len(refs) != 1:
                    raise ValueError(f"filter.chain.{self.name}.reference=real: the images of pid {pid} in "
                                     f"{image_set.root} name {'no' if None in refs else 'several'} real reference "
                                     f"image(s) in the manifest ('reference'); a real-variant set from generate "
                                     f"with an invert latents file has one")
                ref = Path(refs.pop())
                if not ref.is_file():
                    raise FileNotFoundError(f"filter.chain.{self.name}.reference=real: {ref} (pid {pid}) not found")
                self.ref_path[pid] = str(ref)
            self._ref_sha = {pid: file_sha256(p) for pid, p in self.ref_path.items()}
            return
        for pid, idx in image_set.by_pid().items():
            if self.reference == "base":
                base = [i for i in idx if image_set.items[i].record.get("method") == "base"]
                self.ref_index[pid] = base[0] if base else idx[0]
                continue
            if len(idx) <= 2:
                self.ref_index[pid] = idx[0]
                continue
            key = "medoid:" + stable_hash([self.identity, sorted(image_set.items[i].sha256 for i in idx)])
            hit = cache.get(key)
            if hit is not None:  # cached as the sha's position in the sorted list
                shas = sorted(image_set.items[i].sha256 for i in idx)
                want = shas[int(hit)]
                self.ref_index[pid] = next(i for i in idx if image_set.items[i].sha256 == want)
                continue
            ia = [i for i in idx for _ in idx]
            ib = [j for _ in idx for j in idx]
            sim = self._pairs(image_set, ia, ib).reshape(len(idx), len(idx))
            best = idx[int(np.argmax(sim.sum(axis=1)))]
            self.ref_index[pid] = best
            shas = sorted(image_set.items[i].sha256 for i in idx)
            cache.put(key, float(shas.index(image_set.items[best].sha256)))

    def item_keys(self, image_set: ImageSet) -> list[str]:
        if self.reference == "real":
            return [it.sha256 + ":real:" + self._ref_sha[it.pid] for it in image_set.items]
        return [it.sha256 + ":" + image_set.items[self.ref_index[it.pid]].sha256 for it in image_set.items]

    def compute(self, image_set: ImageSet, indices: Sequence[int]) -> np.ndarray:
        if self.reference == "real":
            return self._pairs(image_set, list(indices), [self.ref_path[image_set.items[i].pid] for i in indices])
        refs = [self.ref_index[image_set.items[i].pid] for i in indices]
        return self._pairs(image_set, list(indices), refs)

    def reference_files(self, image_set: ImageSet) -> dict[int, str]:
        if self.reference == "real":
            return dict(self.ref_path)
        return {pid: image_set.items[i].file for pid, i in self.ref_index.items()}

    def describe(self) -> str:
        ref = {"base": "base image (method == base in the manifest, else the person's first image)",
               "medoid": "medoid image (highest mean SSIM to the person's others)",
               "real": "real image (the one its code was inverted from: manifest 'reference')"}[self.reference]
        return (f"{self.name}: SSIM to the person's {ref} (11x11 Gaussian window, "
                f"sigma 1.5, K1 0.01, K2 0.03), keep >= {self.threshold:g}")
