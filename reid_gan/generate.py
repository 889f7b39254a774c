"""``python -m reid_gan.generate``: a generated set of new persons (or variants of real persons) from a generator.

::

    python -m reid_gan.generate generate.ckpt=PATH generate.out=DIR generate.persons=401 generate.images_per_person=51

Writes ``generate.out`` in the generated-set format (:mod:`reid_gan.data.generated`: Market-1501 layout,
``manifest.jsonl``, per-person latents, the resume guard ``generate.json``) plus ``summary.json`` and the
figures ``style_mixing.png`` / ``interpolation.png``. How persons, their images and the bytes are made,
and why a resumed run ends byte-identical: :mod:`reid_gan.generation`; the settings: ``docs/generate.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig

import reid_gan.config  # noqa: F401  (registers the schemas before Hydra composes)
from reid_gan.data.generated import MANIFEST
from reid_gan.generation import build_persons, load_G, write_set
from reid_gan.generation.figures import make_figures
from reid_gan.utils.io import atomic_write_json
from reid_gan.utils.logging import get_logger
from reid_gan.utils.runtime import pick_device
from reid_gan.utils.task import run_stage

log = get_logger(__name__)


def generate(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task function: writes (or finishes) the generated set in ``cfg.generate.out``."""
    gcfg = cfg.generate
    out = Path(gcfg.out)
    device = pick_device(gcfg.device, "generate.device")
    G, gsha, gdesc = load_G(gcfg, int(cfg.get("seed", 0)))
    G = G.eval().requires_grad_(False).to(device)
    persons, latents_sha = build_persons(gcfg, G)
    res = write_set(G, persons, gcfg, out, gsha, gdesc, latents_sha, device)
    figures = make_figures(G, persons, gcfg, out, res.out_size) if gcfg.figures.enabled else {}
    ips = res.written / res.seconds if res.written and res.seconds > 0 else 0.0
    summary = {"persons": len(persons), "images_per_person": int(gcfg.images_per_person), "images": res.images,
               "written_this_run": res.written, "seconds": round(res.seconds, 3), "images_per_s": round(ips, 3),
               "generator": gdesc, "generator_sha256": gsha, "out_size": list(res.out_size)}
    atomic_write_json(out / "summary.json", summary)
    log.info("Generated set complete: %d images of %d persons in %s (%d made now, %.2f img/s)", res.images,
             len(persons), out, res.written, ips)
    metrics = {"generate/images": res.images, "generate/persons": len(persons), "generate/written": res.written,
               "generate/images_per_s": ips}
    return metrics, {"out": str(out), "manifest": str(out / MANIFEST), **figures}


@hydra.main(version_base="1.3", config_path="../conf", config_name="generate")
def main(cfg: DictConfig) -> float | None:
    return run_stage(cfg, generate)


if __name__ == "__main__":
    main()
