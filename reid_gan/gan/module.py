"""StyleGAN3 training as a LightningModule with manual optimisation (one ``training_step`` = one NVIDIA
training iteration over ``batch_size`` real images).

Per iteration, as in NVIDIA's ``training_loop.py`` for the StyleGAN3 configs:

1. ``Gboth``: G step on the non-saturating loss (no lazy G regularisation: path length is off).
2. ``Dmain``: D step on fakes (``update_emas``) and reals; the signs of the real logits feed ADA.
3. ``Dreg`` every ``r1_interval`` iterations: D step on ``r1_interval * gamma/2 * R1`` (lazy R1). D's Adam
   then uses ``lr * mb_ratio`` and ``betas ** mb_ratio`` with ``mb_ratio = r1_interval / (r1_interval + 1)``.
4. ``G_ema`` ← lerp with ``beta = 0.5 ** (batch / ema_nimg)``, ``ema_nimg = min(ema_kimg * 1000,
   cur_nimg * ema_rampup)``; buffers copied.
5. ADA ``p`` update every ``ada_interval`` iterations.
6. Ticks: tick 0 ends after the first iteration, later ticks every ``tick_kimg`` kimg; a snapshot
   (G_ema file, metric, sample grid) is due at every ``snap``-th tick and when ``kimg`` is reached.
   :class:`GANTickCallback` (in ``reid_gan.gan.callbacks``) acts on :attr:`tick_event`.

State that must survive a kill (``cur_nimg``, ``cur_tick``, ``tick_start_nimg``, ``iteration``, ADA's
running sums) is saved in the checkpoint's ``gan`` record; the networks and ``augment_pipe.p`` are in the
state dict; the optimisers' moments in Lightning's optimizer states.
"""

from __future__ import annotations

import contextlib
import copy
import time
from typing import Any, Callable, Iterator, Mapping, Optional

import pytorch_lightning as pl
import torch
from torch import nn

from reid_gan.gan.augment import AdaController, AugmentPipe
from reid_gan.gan.losses import StyleGAN3Loss
from reid_gan.utils.resumable import rng_state, set_rng_state

__all__ = ["StyleGAN3Module", "ema_beta", "network_record", "LOSS_DEFAULTS"]


def ema_beta(batch_size: int, cur_nimg: int, ema_kimg: float, ema_rampup: Optional[float]) -> float:
    """NVIDIA's G_ema decay for one iteration (half-life ``ema_kimg``, ramped up early in training)."""
    ema_nimg = ema_kimg * 1000
    if ema_rampup is not None:
        ema_nimg = min(ema_nimg, cur_nimg * ema_rampup)
    return 0.5 ** (batch_size / max(ema_nimg, 1e-8))


LOSS_DEFAULTS: dict[str, Any] = {"r1_gamma": 2.0, "r1_interval": 16, "style_mixing_prob": 0.0,
                                 "blur_init_sigma": 0.0, "blur_fade_kimg": None}


def network_record(net: nn.Module) -> tuple[str, Optional[dict]]:
    """``(class path, constructor kwargs)`` a snapshot needs to rebuild ``net`` without the config: the
    ``class_name`` / ``init_kwargs`` that :func:`reid_gan.gan.training.build_network` attaches, else the
    class's own path and ``None``."""
    cls = getattr(net, "class_name", None) or f"{type(net).__module__}.{type(net).__qualname__}"
    kwargs = getattr(net, "init_kwargs", None)
    return cls, (dict(kwargs) if kwargs is not None else None)


class StyleGAN3Module(pl.LightningModule):
    """G, D (and optionally an ADA pipeline) trained with StyleGAN3's schedule; built from ``gan.module`` by
    ``hydra.utils.instantiate`` (the stage passes G, D, the schedule and the label pool).

    Args:
        G, D: the networks (``nn.Module``s built by ``hydra.utils.instantiate``); ``G_ema`` is a deep copy of G.
            Their ``init_kwargs`` / ``class_name`` (see :func:`network_record`) are recorded in checkpoints so
            the generator can be rebuilt without the config (D's: what ``reid_gan.gan.embed`` packs).
        G_opt, D_opt: ``functools.partial`` optimisers (Hydra ``_partial_: true``) taking ``params``; their
            ``lr``/``betas`` keywords are NVIDIA's (Adam, betas (0, 0.99)); D's are adjusted for lazy R1.
        batch_size: images per iteration (the kimg counter advances by this much).
        kimg, tick_kimg, snap: training length, tick length (kimg) and snapshot period (ticks).
        loss: ``r1_gamma``, ``r1_interval`` (R1 weight and lazy interval; ``r1_gamma = 0`` disables R1),
            ``style_mixing_prob``, ``blur_init_sigma``, ``blur_fade_kimg`` (see :class:`StyleGAN3Loss`); missing
            keys take :data:`LOSS_DEFAULTS`. ``blur_fade_kimg=None`` → NVIDIA's ``batch_size * 200 / 32`` when
            ``blur_init_sigma > 0``, else 0.
        ema_kimg, ema_rampup: G_ema half-life (kimg; None → NVIDIA's ``batch_size * 10 / 32``) and ramp-up
            (0.05 for StyleGAN3; None = off).
        aug: ``ada`` (``augment`` with ``p`` adjusted towards ``ada_target``), ``fixed`` (``p = augment_p``) or
            ``noaug`` (no pipeline).
        augment: a callable ``p -> AugmentPipe`` (Hydra ``_partial_: true``), an :class:`AugmentPipe`, or None.
        augment_p: the pipeline's initial ``p`` (also set on an :class:`AugmentPipe` given built).
        ada_target, ada_interval, ada_kimg: ADA control (with ``aug=ada``).
        label_pool: with a conditional G (``c_dim > 0``) the loader yields ``(image, label)`` (train_gan:
            one-hot identity labels, ``gan.conditional=true``): D sees the real image's label, and generated
            images get labels drawn at random from ``label_pool`` (every training image's label, so identities
            are drawn as often as they occur in the data; NVIDIA's ``gen_c``).
    """

    def __init__(self, G: nn.Module, D: nn.Module, G_opt: Callable, D_opt: Callable, batch_size: int,
                 kimg: float = 5000.0, tick_kimg: float = 4.0, snap: int = 50,
                 loss: Optional[Mapping[str, Any]] = None, ema_kimg: Optional[float] = None,
                 ema_rampup: Optional[float] = 0.05, aug: str = "ada",
                 augment: Optional[Callable[..., AugmentPipe] | AugmentPipe] = None, augment_p: float = 0.0,
                 ada_target: float = 0.6, ada_interval: int = 4, ada_kimg: float = 500.0,
                 label_pool: Optional[torch.Tensor] = None):
        super().__init__()
        self.automatic_optimization = False
        unknown = sorted(set(loss or {}) - set(LOSS_DEFAULTS))
        if unknown:
            raise ValueError(f"loss: unknown settings {unknown} (known: {sorted(LOSS_DEFAULTS)})")
        lk = {**LOSS_DEFAULTS, **dict(loss or {})}
        if aug not in ("ada", "fixed", "noaug"):
            raise ValueError(f"aug must be one of ada, fixed, noaug (got {aug!r})")
        self.batch_size = int(batch_size)
        # Derived defaults (NVIDIA's train.py): they follow the batch size.
        blur_fade_kimg = lk["blur_fade_kimg"]
        if blur_fade_kimg is None:
            blur_fade_kimg = self.batch_size * 200 / 32 if lk["blur_init_sigma"] > 0 else 0.0
        if ema_kimg is None:
            ema_kimg = self.batch_size * 10 / 32
        augment_pipe = None
        if aug != "noaug" and augment is not None:
            if isinstance(augment, nn.Module):  # built already (a node without _partial_): its p is augment_p too
                augment_pipe = augment
                augment_pipe.p.fill_(float(augment_p))
            else:
                augment_pipe = augment(p=float(augment_p))
        self.G, self.D = G, D
        self.G_ema = copy.deepcopy(G).eval().requires_grad_(False)
        self.augment_pipe = augment_pipe
        self.G_opt_partial, self.D_opt_partial = G_opt, D_opt
        self.r1_gamma, self.r1_interval = float(lk["r1_gamma"]), int(lk["r1_interval"])
        self.loss = StyleGAN3Loss(G, D, augment_pipe, r1_gamma=lk["r1_gamma"],
                                  style_mixing_prob=lk["style_mixing_prob"],
                                  blur_init_sigma=lk["blur_init_sigma"], blur_fade_kimg=blur_fade_kimg)
        self.ema_kimg, self.ema_rampup = float(ema_kimg), ema_rampup
        self.ada = (AdaController(augment_pipe, ada_target, ada_interval, ada_kimg)
                    if augment_pipe is not None and aug == "ada" else None)
        self.kimg, self.tick_kimg, self.snap = float(kimg), float(tick_kimg), int(snap)
        self.G_class, G_kwargs = network_record(G)
        self.G_init_kwargs = G_kwargs or {}
        self.D_class, self.D_init_kwargs = network_record(D)
        self.z_dim = int(self.G_init_kwargs.get("z_dim") or getattr(G, "z_dim"))
        self.c_dim = int(self.G_init_kwargs.get("c_dim", getattr(G, "c_dim", 0)) or 0)
        if self.c_dim > 0:
            if label_pool is None or label_pool.ndim != 2 or label_pool.shape[1] != self.c_dim:
                raise ValueError(f"c_dim={self.c_dim}: a label_pool [N, {self.c_dim}] of training labels is needed "
                                 f"(got {None if label_pool is None else tuple(label_pool.shape)})")
        self.label_pool = label_pool.float() if label_pool is not None else None
        self.c_pids: Optional[list[int]] = None  # label index → person id (set by train_gan; saved in checkpoints)
        # Progress (saved in checkpoints).
        self.cur_nimg = 0
        self.cur_tick = 0
        self.tick_start_nimg = 0
        self.iteration = 0
        self.tick_event: Optional[dict[str, Any]] = None
        self.last_stats: dict[str, float] = {}
        # Set to {} to accumulate wall seconds per phase of training_step (benchmarks/gan_train.py --profile).
        self.phase_seconds: Optional[dict[str, float]] = None

    # -- optimisers ----------------------------------------------------------------------------
    def configure_optimizers(self):
        gkw = dict(getattr(self.G_opt_partial, "keywords", {}) or {})
        g_extra = {"betas": tuple(float(b) for b in gkw["betas"])} if "betas" in gkw else {}
        g_opt = self.G_opt_partial(params=self.G.parameters(), **g_extra)
        kw = dict(getattr(self.D_opt_partial, "keywords", {}) or {})
        if self.r1_gamma > 0 and self.r1_interval > 0:
            mb = self.r1_interval / (self.r1_interval + 1)
            extra = {}
            if "lr" in kw:
                extra["lr"] = kw["lr"] * mb
            if "betas" in kw:
                extra["betas"] = tuple(float(b) ** mb for b in kw["betas"])
            d_opt = self.D_opt_partial(params=self.D.parameters(), **extra)
        else:
            extra = {"betas": tuple(float(b) for b in kw["betas"])} if "betas" in kw else {}
            d_opt = self.D_opt_partial(params=self.D.parameters(), **extra)
        return [g_opt, d_opt]

    # -- helpers -------------------------------------------------------------------------------
    @property
    def done(self) -> bool:
        return self.cur_nimg >= self.kimg * 1000

    def _c(self, n: int, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Labels for ``n`` generated images: empty when unconditional, else rows drawn from ``label_pool``."""
        if self.c_dim == 0:
            return torch.zeros(n, 0, device=self.device)
        idx = torch.randint(0, self.label_pool.shape[0], (n,), generator=generator)
        return self.label_pool[idx].to(self.device)

    @staticmethod
    def _sanitise(module: nn.Module) -> None:
        for p in module.parameters():
            if p.grad is not None:
                torch.nan_to_num_(p.grad, nan=0, posinf=1e5, neginf=-1e5)

    @torch.no_grad()
    def update_ema(self) -> float:
        beta = ema_beta(self.batch_size, self.cur_nimg, self.ema_kimg, self.ema_rampup)
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.copy_(p.detach().lerp(p_ema, beta))
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b.detach())
        return beta

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        if self.phase_seconds is None:
            yield
            return
        t0 = time.perf_counter()
        yield
        self.phase_seconds[name] = self.phase_seconds.get(name, 0.0) + time.perf_counter() - t0

    # -- one iteration -------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        if isinstance(batch, (list, tuple)):
            real, real_c = batch[0], (batch[1] if len(batch) > 1 else None)
        else:
            real, real_c = batch, None
        real = real.to(self.device, torch.float32)
        n = real.shape[0]
        if self.c_dim > 0:
            if real_c is None:
                raise ValueError(f"this module is conditional (c_dim={self.c_dim}): batches must be (image, label)")
            real_c = real_c.to(self.device, torch.float32)
        else:
            real_c = torch.zeros(n, 0, device=self.device)
        opt_g, opt_d = self.optimizers()

        # Gboth: non-saturating G loss.
        with self._phase("G"):
            self.G.requires_grad_(True)
            self.D.requires_grad_(False)
            z = torch.randn(n, self.z_dim, device=self.device)
            loss_g = self.loss.generator_loss(z, self._c(n), self.cur_nimg)
            opt_g.zero_grad(set_to_none=True)
            self.manual_backward(loss_g)
            self._sanitise(self.G)
            opt_g.step()
            self.G.requires_grad_(False)

        # Dmain: logistic loss on fakes and reals.
        with self._phase("D"):
            self.D.requires_grad_(True)
            z = torch.randn(n, self.z_dim, device=self.device)
            loss_d, real_logits = self.loss.discriminator_loss(real, real_c, z, self._c(n), self.cur_nimg)
            opt_d.zero_grad(set_to_none=True)
            self.manual_backward(loss_d)
            self._sanitise(self.D)
            opt_d.step()
        if self.ada is not None:
            self.ada.accumulate(real_logits)

        # Dreg: lazy R1, weighted by the interval.
        r1 = None
        if self.r1_gamma > 0 and self.r1_interval > 0 and self.iteration % self.r1_interval == 0:
            with self._phase("R1"):
                loss_r1, r1 = self.loss.r1_loss(real, real_c, self.cur_nimg)
                opt_d.zero_grad(set_to_none=True)
                self.manual_backward(loss_r1 * self.r1_interval)
                self._sanitise(self.D)
                opt_d.step()
        self.D.requires_grad_(False)

        # G_ema, counters, ADA.
        with self._phase("EMA"):
            self.update_ema()
        self.cur_nimg += n
        if self.ada is not None:
            with self._phase("ADA p update"):
                self.ada.step(self.iteration, n)
        self.iteration += 1

        stats = {"train/loss_G": float(loss_g.detach()), "train/loss_D": float(loss_d.detach()),
                 "train/ada_p": float(self.augment_pipe.p) if self.augment_pipe is not None else 0.0,
                 "train/kimg": self.cur_nimg / 1000,
                 "train/real_sign": float(torch.sign(real_logits).mean())}
        if r1 is not None:
            stats["train/r1"] = float(r1)
        self.last_stats = stats
        for k, v in stats.items():
            self.log(k, v, on_step=True, on_epoch=False, prog_bar=k in ("train/loss_G", "train/loss_D", "train/kimg"),
                     batch_size=n)

        # Tick / snapshot bookkeeping (the callback writes the files).
        done = self.done
        self.tick_event = None
        if done or self.cur_tick == 0 or self.cur_nimg >= self.tick_start_nimg + self.tick_kimg * 1000:
            snapshot = done or (self.snap > 0 and self.cur_tick % self.snap == 0)
            self.tick_event = {"tick": self.cur_tick, "snapshot": snapshot, "done": done, "cur_nimg": self.cur_nimg}
            self.cur_tick += 1
            self.tick_start_nimg = self.cur_nimg
        return None

    # -- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["gan"] = {
            "cur_nimg": int(self.cur_nimg), "cur_tick": int(self.cur_tick),
            "tick_start_nimg": int(self.tick_start_nimg), "iteration": int(self.iteration),
            "G_init_kwargs": self.G_init_kwargs, "G_class": self.G_class,
            "D_init_kwargs": self.D_init_kwargs, "D_class": self.D_class, "c_pids": self.c_pids,
            "ada_sum": float(self.ada._sum) if self.ada else 0.0, "ada_count": int(self.ada._count) if self.ada else 0,
        }
        # the random stream as the next step finds it (the tick callback's state from before its own work)
        checkpoint["rng"] = getattr(self, "rng_at_tick", None) or rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        g = checkpoint.get("gan")
        if g is None:
            raise ValueError("not a train_gan checkpoint: it has no 'gan' record")
        self.cur_nimg, self.cur_tick = int(g["cur_nimg"]), int(g["cur_tick"])
        self.tick_start_nimg, self.iteration = int(g["tick_start_nimg"]), int(g["iteration"])
        if self.ada is not None:
            self.ada._sum, self.ada._count = float(g.get("ada_sum", 0.0)), int(g.get("ada_count", 0))
        set_rng_state(checkpoint.get("rng"))

    def generate(self, z: torch.Tensor, use_ema: bool = True, truncation_psi: float = 1.0,
                 c: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Images [N, C, H, W] in about [-1, 1] from latents ``z`` (eval, no grad); ``c``: labels [N, c_dim]
        (a conditional module without ``c`` draws them from ``label_pool``)."""
        G = self.G_ema if use_ema else self.G
        with torch.no_grad():
            if c is None:
                c = self._c(z.shape[0]) if self.c_dim else torch.zeros(z.shape[0], 0, device=z.device)
            c = c.to(z.device)
            ws = G.mapping(z, c, truncation_psi=truncation_psi)
            return G.synthesis(ws, noise_mode="const")


