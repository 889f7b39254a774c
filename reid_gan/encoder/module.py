"""The encoder's LightningModule: ReStyle training of a pSp encoder against a frozen StyleGAN3.

Training step (ReStyle, Alaluf et al. 2021): the first pass sees the input ⊕ the average image and adds
its codes to ``w_avg``; each later pass sees the input ⊕ the previous reconstruction and adds its codes to
the previous latent. Every pass has its own loss and backward; the reconstruction and latent are
detached between passes (so no gradient runs through earlier passes); the optimiser steps once per batch
after all passes (manual optimisation).

Validation (held-out identities): the loss terms (all of them, weight 0 or not), SSIM(input,
reconstruction) and the **identity score** — Rank@1 and mAP of the reconstructions used as queries
against the real images of the held-out identities as the gallery (Market-1501 protocol: a query's own
image and same-camera images of its person are ignored), with a re-ID model's features — all after the
last pass; plus ``grid_rows`` (input, then the reconstruction after each pass) for the PNG grid.
Metric names: ``train/loss``, ``train/loss/<term>``, ``train/ssim``, ``val/loss/<term>``, ``val/ssim``,
``val/identity_rank1``, ``val/identity_mAP``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import pytorch_lightning as pl
import torch
from torch import nn

from reid_gan.encoder.losses import EncoderLoss
from reid_gan.encoder.networks import ReStylePSP
from reid_gan.utils.logging import get_logger
from reid_gan.utils.resumable import rng_state, set_rng_state

log = get_logger(__name__)

__all__ = ["ReStyleModule", "batch_ssim", "identity_score"]


def _uint8(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float() * 127.5 + 128).clamp(0, 255).to(torch.uint8)


def batch_ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[N]`` SSIM of 8-bit versions of two [-1, 1] batches (:func:`reid_gan.metrics.ssim.ssim`)."""
    from reid_gan.metrics.ssim import ssim

    return ssim(_uint8(x).cpu(), _uint8(y).cpu(), data_range=255.0)


def identity_score(q_feat: torch.Tensor, q_pids: torch.Tensor, q_cams: torch.Tensor, g_feat: torch.Tensor,
                   g_pids: torch.Tensor, g_cams: torch.Tensor) -> dict[str, float]:
    """Rank@1 / Rank@5 / mAP of queries against a gallery (cosine distance, Market-1501 protocol); NaN if no
    query has a valid match (e.g. every held-out person seen by one camera only)."""
    from reid_gan.metrics.rank import NoValidQueryError, compute_distance_matrix, evaluate_rank

    d = compute_distance_matrix(q_feat, g_feat, "cosine")
    try:
        r = evaluate_rank(d, q_pids, g_pids, q_cams, g_cams, max_rank=5)
    except NoValidQueryError as e:
        log.warning("identity score not computed: %s", e)
        return {"rank1": math.nan, "rank5": math.nan, "mAP": math.nan, "valid_queries": 0}
    cmc = r["cmc"]
    return {"rank1": float(cmc[0]), "rank5": float(cmc[min(4, len(cmc) - 1)]), "mAP": float(r["mAP"]),
            "valid_queries": int(r["num_valid_q"])}


class ReStyleModule(pl.LightningModule):
    """Args:
        psp: the encoder + frozen generator (:class:`reid_gan.encoder.networks.ReStylePSP`).
        loss: the weighted loss terms (:class:`reid_gan.encoder.losses.EncoderLoss`).
        optimizer: ``_partial_`` optimiser factory (Adam, lr 1e-4 by default); gets the encoder's parameters.
        identity: a module with ``features(x) -> [N, D]`` (L2-normalised re-ID embeddings) for the identity
            score, or ``None`` (not computed; logged).
        grid_images: validation inputs kept for the grid.
    """

    def __init__(self, psp: ReStylePSP, loss: EncoderLoss, optimizer: Callable[..., torch.optim.Optimizer],
                 identity: nn.Module | None = None, grid_images: int = 6):
        super().__init__()
        self.automatic_optimization = False
        self.strict_loading = False  # checkpoints hold the encoder only (the frozen parts come from their files)
        self.psp, self.loss, self.optimizer_factory = psp, loss, optimizer
        self.identity = identity
        self.grid_images = int(grid_images)
        self._val: dict[str, list] = {}
        self.last_val: dict[str, float] = {}
        self.grid_rows: list[list[torch.Tensor]] = []
        self.last_train: dict[str, float] = {}

    # -------------------------------------------------------------------------------------------- training
    def configure_optimizers(self):
        return self.optimizer_factory(params=list(self.psp.encoder.parameters()))

    def train(self, mode: bool = True):
        super().train(mode)
        for m in (self.psp.G, self.loss, self.identity):
            if m is not None:
                m.eval()
        return self

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x_in, x_g = batch[0], batch[1]
        opt = self.optimizers()
        opt.zero_grad(set_to_none=True)
        y = self.psp.average_image(x_in.shape[0])
        latent = None
        for i in range(self.psp.iterations):
            latent, img = self.psp.step(x_in, y, latent)
            total, terms = self.loss(x_g, img, latent, self.psp.latent_avg)
            self.manual_backward(total)
            y, latent = img.detach(), latent.detach()  # no gradient through earlier passes
        opt.step()
        stats = {"train/loss": float(total.detach()), **{f"train/loss/{k}": float(v.detach()) for k, v in terms.items()},
                 "train/ssim": float(batch_ssim(x_g, y).mean())}
        self.last_train = stats
        self.log_dict(stats, on_step=True, on_epoch=False, prog_bar=False, batch_size=x_in.shape[0])
        self.last_stats = stats  # every loss term by name, for the NaN/inf guard (reid_gan.utils.callbacks)
        return total.detach()

    # ------------------------------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val = {"terms": [], "ssim": [], "q": [], "g": [], "pids": [], "cams": [], "total": []}
        self.grid_rows = []

    @torch.no_grad()
    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x_in, x_g, pids, cams = batch[0], batch[1], batch[2], batch[3]
        outs = self.psp(x_in)
        latent, img = outs[-1]
        terms = self.loss.terms(x_g, img, latent, self.psp.latent_avg, all_terms=True)
        total, _ = self.loss(x_g, img, latent, self.psp.latent_avg)
        v = self._val
        v["terms"].append({k: t.detach().cpu() for k, t in terms.items()})
        v["total"].append(torch.full((x_in.shape[0],), float(total)))
        v["ssim"].append(batch_ssim(x_g, img))
        if self.identity is not None:
            v["q"].append(self.identity.features(img).cpu())
            v["g"].append(self.identity.features(x_g).cpu())
        v["pids"].append(pids.cpu())
        v["cams"].append(cams.cpu())
        need = self.grid_images - len(self.grid_rows)
        for j in range(min(need, x_in.shape[0])):
            self.grid_rows.append([x_g[j].cpu()] + [o[1][j].cpu() for o in outs])

    def on_validation_epoch_end(self) -> None:
        v = self._val
        if not v["pids"]:
            return
        out: dict[str, float] = {}
        names = v["terms"][0].keys()
        for k in names:
            out[f"val/loss/{k}"] = float(torch.cat([t[k] for t in v["terms"]]).mean())
        out["val/loss"] = float(torch.cat(v["total"]).mean())
        out["val/ssim"] = float(torch.cat(v["ssim"]).mean())
        if self.identity is not None:
            pids, cams = torch.cat(v["pids"]), torch.cat(v["cams"])
            s = identity_score(torch.cat(v["q"]), pids, cams, torch.cat(v["g"]), pids, cams)
            out["val/identity_rank1"], out["val/identity_rank5"], out["val/identity_mAP"] = s["rank1"], s["rank5"], s["mAP"]
            # the same ranking with the real images as queries: what the re-ID model scores on these people
            r = identity_score(torch.cat(v["g"]), pids, cams, torch.cat(v["g"]), pids, cams)
            out["val/identity_rank1_real"], out["val/identity_mAP_real"] = r["rank1"], r["mAP"]
        self.last_val = out
        self.log_dict({k: v for k, v in out.items() if not math.isnan(v)}, on_step=False, on_epoch=True)

    # ------------------------------------------------------------------------------------------ checkpoints
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("psp.encoder.")}
        checkpoint["encoder_init_kwargs"] = dict(self.psp.encoder.init_kwargs)
        checkpoint["rng"] = rng_state()  # a resumed run draws what the uninterrupted run would have

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        own = {k for k in self.state_dict() if k.startswith("psp.encoder.")}
        have = set(checkpoint.get("state_dict", {}))
        missing = sorted(own - have)
        if missing:
            raise ValueError(f"encoder checkpoint: {len(missing)} encoder weights missing (e.g. {missing[:3]}); "
                             f"was it written with other encoder settings?")
        set_rng_state(checkpoint.get("rng"))
