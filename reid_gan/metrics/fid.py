"""FID (Heusel et al. 2017) and KID (Bińkowski et al. 2018) as the literature computes them: torch-fidelity's
Inception-v3 feature extractor and its FID/KID formulas, with the weights read from a local file.

The weights file is torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` (the TensorFlow FID
Inception converted to PyTorch; the same file torchmetrics' ``feature_extractor_weights_path`` takes),
given as ``metrics.inception=PATH``. Nothing is downloaded: without a file there is no FID (train_gan then
reports the sliced Wasserstein distance and says so). The file is first read with
``torch.load(weights_only=True)`` — it must be a plain state dict of tensors — and only then handed to
torch-fidelity (which reads it again itself).

Features: the 2048-d pool3 output of uint8 images resized to 299×299 with torch-fidelity's TF1-compatible
bilinear resize, so the values are comparable with published FIDs computed by the reference protocol
(the thesis's 9.29 was fid50k_full: 50,000 generated images against all real ones).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["load_inception", "FIDKIDMetric", "FEATURE_LAYER"]

FEATURE_LAYER = "2048"
_EXTRACTOR_NAME = "inception-v3-compat"  # torch-fidelity's registry name of this extractor


def load_inception(path: str | Path):
    """torch-fidelity's ``FeatureExtractorInceptionV3`` (pool3 features) with the weights of ``path``.

    Raises FileNotFoundError / ValueError naming ``metrics.inception`` and the file."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"metrics.inception: file not found: {p} (nothing is downloaded; give a local "
                                "copy of weights-inception-2015-12-05-6726825d.pth or set metrics.inception=null)")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)  # tensors only: no code runs
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"metrics.inception: {p} is not a readable weights file ({e})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ValueError(f"metrics.inception: {p} is not a plain state dict of tensors (torch-fidelity's layout)")
    try:
        net = FeatureExtractorInceptionV3(_EXTRACTOR_NAME, [FEATURE_LAYER], feature_extractor_weights_path=str(p))
    except RuntimeError as e:  # load_state_dict: missing / unexpected keys, wrong shapes
        msg = " ".join(str(e).split())
        raise ValueError(f"metrics.inception: {p} is not torch-fidelity's Inception-v3 layout: {msg[:600]}") from None
    return net.eval().requires_grad_(False)


class FIDKIDMetric:
    """Real features computed once; ``__call__(fake uint8 [N, 3, H, W])`` → ``{'fid', 'kid', 'kid_std'}``.

    FID: ``torch_fidelity.metric_fid`` (statistics of the features, then its formula); KID:
    ``torch_fidelity.metric_kid.kid_features_to_metric`` (cubic polynomial kernel, ``kid_subsets`` subsets of
    ``min(kid_subset_size, N_real, N_fake)`` images, RandomState ``seed``). The same numbers as
    ``torch_fidelity.calculate_metrics`` on the same images and weights."""

    wants_uint8 = True

    def __init__(self, weights: str | Path, reals_uint8: torch.Tensor, batch_size: int = 32, kid_subsets: int = 100,
                 kid_subset_size: int = 1000, seed: int = 0, net: torch.nn.Module | None = None):
        self.net = net if net is not None else load_inception(weights)
        self.batch_size, self.kid_subsets, self.kid_subset_size, self.seed = batch_size, kid_subsets, kid_subset_size, seed
        self.real = self.features(reals_uint8)
        from torch_fidelity.metric_fid import fid_features_to_statistics

        self.real_stats = fid_features_to_statistics(self.real)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """[N, 2048] float32 pool3 features of uint8 RGB images (CPU tensor)."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"FID/KID take uint8 RGB images [N, 3, H, W] (got {images.dtype} {tuple(images.shape)})")
        dev = next(self.net.parameters()).device
        out = [self.net(images[i:i + self.batch_size].to(dev))[0].cpu()
               for i in range(0, images.shape[0], self.batch_size)]
        return torch.cat(out)

    def __call__(self, fakes_uint8: torch.Tensor) -> dict[str, float]:
        from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_features_to_statistics, fid_statistics_to_metric
        from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

        f = self.features(fakes_uint8)
        fid = fid_statistics_to_metric(self.real_stats, fid_features_to_statistics(f), verbose=False)[KEY_METRIC_FID]
        size = min(self.kid_subset_size, len(self.real), len(f))
        kid = kid_features_to_metric(self.real, f, kid_subsets=self.kid_subsets, kid_subset_size=size,
                                     rng_seed=self.seed, verbose=False)
        return {"fid": float(fid), "kid": float(kid[KEY_METRIC_KID_MEAN]), "kid_std": float(kid[KEY_METRIC_KID_STD])}

