"""The generate stage's figures: style mixing and interpolation grids (thesis figs. 4.7 and 4.8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from reid_gan.gan import sampling
from reid_gan.generation.plan import Person
from reid_gan.generation.synthesis import resize
from reid_gan.report.grids import save_grid
from reid_gan.utils.image import to_uint8_hwc

__all__ = ["make_figures"]


def _save_grid(path: Path, images: list[np.ndarray], nrow: int, captions: list[str] | None = None,
               borders: list[tuple[int, int, int] | None] | None = None, scale: int = 1) -> Path:
    """A PNG grid of RGB uint8 images (:func:`reid_gan.report.grids.save_grid` takes BGR)."""
    bgr = [np.ascontiguousarray(im[:, :, ::-1]) for im in images]
    return save_grid(path, bgr, nrow=nrow, captions=captions, border_colors=borders, scale=scale)


@torch.no_grad()
def _base_ws(G: torch.nn.Module, person: Person, gcfg: DictConfig) -> torch.Tensor:
    if person.source == "seed":
        return sampling.seeds_to_ws(G, [person.seed], float(gcfg.psi), gcfg.truncation_cutoff)[0]
    return person.ws.to(next(G.parameters()).device)


@torch.no_grad()
def make_figures(G: torch.nn.Module, persons: list[Person], gcfg: DictConfig, out: Path,
                 size: tuple[int, int]) -> dict[str, str]:
    """``style_mixing.png`` (rows: persons; columns: the person, then for each layer range its donors'
    styles mixed in; top row: the donors) and ``interpolation.png`` (rows: persons; columns: alpha from
    0 to 1 toward a partner; frames in green where alpha <= max_alpha, the range the set uses)."""
    f = gcfg.figures
    sel = persons[: int(f.persons)]
    rng = np.random.default_rng([int(gcfg.plan_seed), 2])
    donor_seeds = [int(rng.integers(int(gcfg.partner_seed_min), 2**31)) for _ in range(int(f.donors))]
    donors = sampling.seeds_to_ws(G, donor_seeds, float(gcfg.psi), gcfg.truncation_cutoff)
    ranges = [r if isinstance(r, str) else [int(v) for v in r] for r in OmegaConf.to_container(f.ranges)]

    def img(ws: torch.Tensor) -> np.ndarray:
        return resize(to_uint8_hwc(sampling.synthesize(G, ws, gcfg.noise_mode))[0], size)

    cols = 1 + len(ranges) * len(donor_seeds)
    cells, caps = [np.full((*size, 3), 255, np.uint8)], [""]
    for r in ranges:
        for j in range(len(donor_seeds)):
            cells.append(img(donors[j:j + 1]))
            caps.append(f"donor{j + 1}")
    for p in sel:
        base = _base_ws(G, p, gcfg)[None]
        cells.append(img(base))
        caps.append(str(p.pid))
        for r in ranges:
            start, end = sampling.layer_range(r, G.num_ws)
            name = r if isinstance(r, str) else f"{start}-{end}"
            for j in range(len(donor_seeds)):
                cells.append(img(sampling.style_mix(base, donors[j:j + 1], start, end)))
                caps.append(name)
    p_mix = _save_grid(out / "style_mixing.png", cells, nrow=cols, captions=caps, scale=int(f.scale))

    steps = int(f.steps)
    alphas = np.linspace(0.0, 1.0, steps)
    amax = float(gcfg.methods.interpolate.max_alpha)
    space = str(gcfg.methods.interpolate.space)
    cells, caps, borders = [], [], []
    for k, p in enumerate(sel):
        partner = int(rng.integers(int(gcfg.partner_seed_min), 2**31))
        base = _base_ws(G, p, gcfg)[None]
        if space == "z" and p.source == "seed":
            z0 = sampling.z_from_seeds([p.seed], G.z_dim)
            z1 = sampling.z_from_seeds([partner], G.z_dim)
            zs = torch.cat([sampling.slerp(z0, z1, float(a)) for a in alphas], 0)
            ws = sampling.z_to_ws(G, zs, float(gcfg.psi), gcfg.truncation_cutoff)
        else:
            wp = sampling.seeds_to_ws(G, [partner], float(gcfg.psi), gcfg.truncation_cutoff)
            ws = torch.cat([sampling.lerp(base, wp, float(a)) for a in alphas], 0)
        for a, w in zip(alphas, ws):
            cells.append(img(w[None]))
            caps.append(f"a={a:.2f}")
            borders.append((0, 200, 0) if a <= amax + 1e-9 else None)
    p_int = _save_grid(out / "interpolation.png", cells, nrow=steps, captions=caps, borders=borders,
                       scale=int(f.scale))
    return {"style_mixing_png": str(p_mix), "interpolation_png": str(p_int)}
