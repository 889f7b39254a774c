"""The ``aug`` group: generated images added to the re-ID training set (never to query/gallery).

The arm follows from which number is given (:func:`reid_gan.config.reid.aug_arm`; both is an error):

* neither (or ``aug.persons=0``): the real training set only (the thesis's baseline).
* ``aug.persons=N``: the first ``N`` synthetic persons (pids >= 10000, ascending) of a kept generated set
  (``aug.source``), all their images.
* ``aug.images_per_person=K``: ``K`` generated images of each real training identity found in the set
  (images carry the real pid; the first ``K`` by file name), labelled as that identity. A person with
  fewer than ``K`` kept variants (the filters dropped the rest) follows ``aug.short``: ``skip`` (the
  default: that person gets none, so every person added has exactly ``K``), ``fewer`` (it gets the ones
  it has) or ``error`` (stop). The run records how many persons got variants and how many were short.
* ``aug.source``: null → the kept set of the newest complete study under ``paths.artifacts`` (the pointer
  the pipeline writes, :func:`reid_gan.utils.artifacts.read_latest`).
* ``aug.label``: ``new_class`` (each synthetic person is a new class; the thesis) or ``lsro`` (a uniform
  target over the real classes, Zheng et al. 2017): the classifier then has only the real classes.

Everything is checked before training: asking for more persons than the set holds, or for ``K`` variants
when no person has them, fails with both numbers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reid_gan.config.reid import aug_arm
from reid_gan.data.generated import SYNTHETIC_PID_START
from reid_gan.data.leakage import manifest_source_pids
from reid_gan.data.market1501 import DatasetError, FolderDataset, Sample
from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["AugError", "AugInfo", "SHORT_RULES", "apply_augmentation", "resolve_source", "SYNTHETIC_PID_START"]

# aug.short: what a real person with fewer than K kept variants gets (see the module docstring)
SHORT_RULES = ("skip", "fewer", "error")


class AugError(ValueError):
    """The requested augmentation does not fit the generated set (the message names both numbers)."""


@dataclass
class AugInfo:
    name: str = "none"
    label: str = "new_class"
    source: str | None = None
    persons: int = 0
    images: int = 0
    per_person: dict[int, int] = field(default_factory=dict)
    # real-variants arm: the rule for persons with fewer than K kept variants, and how many there were
    short_rule: str | None = None
    short_persons: int = 0

    def as_dict(self) -> dict[str, Any]:
        d = {"aug/name": self.name, "aug/label": self.label, "aug/source": self.source,
             "aug/persons": self.persons, "aug/images": self.images}
        if self.short_rule is not None:
            d.update({"aug/short": self.short_rule, "aug/short_persons": self.short_persons})
        return d


def _get(cfg: Any, key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)


def resolve_source(cfg: Any, artifacts: str | Path | None) -> str | None:
    """``aug.source``, or (null) the kept set of the newest complete study under ``artifacts``; ``None``
    when the arm adds nothing (the baseline needs no generated set)."""
    arm = aug_arm(_get(cfg, "persons"), _get(cfg, "images_per_person"))
    n = _get(cfg, "persons") if arm == "persons" else _get(cfg, "images_per_person")
    source = _get(cfg, "source")
    if source:
        return str(source)
    if arm == "none" or not n:
        return None
    from reid_gan.utils.artifacts import LATEST, read_latest

    key = "kept" if arm == "persons" else "kept_variants"
    latest = read_latest(artifacts) if artifacts is not None else None
    if latest is None or not latest.get(key):
        what = f"aug.persons={n}" if arm == "persons" else f"aug.images_per_person={n}"
        where = f"{artifacts}/{LATEST}" if artifacts is not None else "paths.artifacts"
        if latest is None:
            why = f"there is no complete study under paths.artifacts ({where} not found)"
        else:
            why = f"the newest study ({where}) has no {'kept set' if arm == 'persons' else 'kept variants set'}"
        raise AugError(f"{what} needs a generated set and aug.source is not set: {why}. Run the pipeline first "
                       f"(python -m reid_gan.pipeline) or give aug.source=DIR (a kept set: bounding_box_train/ + "
                       f"manifest.jsonl)")
    log.info("aug.source not set: the %s of the newest study (%s, finished %s): %s", key.replace("_", " "),
             latest.get("study_dir"), latest.get("finished_at"), latest[key])
    return str(latest[key])


def _load_set(source: str, on_bad_image: str = "error", verify_images: str = "header") -> FolderDataset:
    root = Path(str(source))
    if not root.is_dir():
        raise AugError(f"aug.source={source}: folder not found (a generated set in Market layout: "
                       f"bounding_box_train/ + manifest.jsonl)")
    if not (root / "manifest.jsonl").is_file():
        raise AugError(f"aug.source={source}: no manifest.jsonl in {root} (a generated or kept set has one: "
                       f"written by `python -m reid_gan.generate` / `reid_gan.filter`)")
    try:
        return FolderDataset(root, on_bad_image=on_bad_image, verify_images=verify_images,
                             display_name="generated set")
    except DatasetError as e:
        raise AugError(f"aug.source={source}: {e}") from None


def select_samples(cfg: Any, real_train_pids: set[int], on_bad_image: str = "error",
                   verify_images: str = "header") -> tuple[list[Sample], AugInfo, FolderDataset | None]:
    """The generated samples the ``aug`` config asks for (original pids), checked against the set (its bad
    images handled as the real data's: ``data.on_bad_image`` / ``data.verify_images``)."""
    name = aug_arm(_get(cfg, "persons"), _get(cfg, "images_per_person"))
    label = str(_get(cfg, "label", "new_class"))
    info = AugInfo(name=name, label=label)
    n = _get(cfg, "persons") if name == "persons" else _get(cfg, "images_per_person")
    if name == "none" or not n:  # nothing to add: the baseline (no generated set needed)
        info.source = str(_get(cfg, "source")) if _get(cfg, "source") else None
        return [], info, None
    source = _get(cfg, "source")
    if not source:
        raise AugError("aug.source: no generated set given (resolve it with resolve_source first)")
    info.source = str(source)
    ds = _load_set(source, on_bad_image, verify_images)
    by_pid: dict[int, list[Sample]] = defaultdict(list)
    for s, pid in zip(ds.train, ds.train_orig_pids):
        by_pid[int(pid)].append(Sample(s.path, int(pid), s.camid))
    for v in by_pid.values():
        v.sort(key=lambda s: Path(s.path).name)
    if name == "persons":
        n = int(_get(cfg, "persons"))
        synth = sorted(p for p in by_pid if p >= SYNTHETIC_PID_START)
        if n > len(synth):
            raise AugError(f"aug.persons={n} but aug.source={source} holds only {len(synth)} synthetic persons "
                           f"(pids >= {SYNTHETIC_PID_START})")
        chosen = synth[:n]
        samples = [s for p in chosen for s in by_pid[p]]
        info.persons, info.images = n, len(samples)
        info.per_person = {p: len(by_pid[p]) for p in chosen}
    elif name == "real_variants":
        k = int(_get(cfg, "images_per_person"))
        real = sorted(p for p in by_pid if p < SYNTHETIC_PID_START)
        if not real:
            raise AugError(f"aug.images_per_person={k} but aug.source={source} holds no image of a real person "
                           f"(all pids >= {SYNTHETIC_PID_START}); use aug.persons=N for synthetic persons")
        unknown = [p for p in real if p not in real_train_pids]
        if unknown:
            raise AugError(f"aug.source={source} has variants of {len(unknown)} persons that are not real training "
                           f"identities (e.g. pids {unknown[:5]})")
        rule = str(_get(cfg, "short", "skip") or "skip")
        if rule not in SHORT_RULES:
            raise AugError(f"aug.short={rule!r}: must be one of {', '.join(SHORT_RULES)}")
        # short: real training identities with fewer than K kept variants, those with none included
        short = {p: len(by_pid.get(p, ())) for p in sorted(real_train_pids | set(real)) if len(by_pid.get(p, ())) < k}
        missing = len(real_train_pids - set(real))
        if missing:
            log.warning("aug.source=%s has no variants of %d of the %d real training identities", source, missing,
                        len(real_train_pids))
        if short:
            fewest = min(short.values())
            example = next(iter(short))
            what = (f"aug.images_per_person={k} but aug.source={source} holds only {fewest} variants for some "
                    f"persons ({len(short)} of {len(real_train_pids | set(real))} real training persons have fewer "
                    f"than {k}, e.g. pid {example}: {short[example]})")
            if rule == "error":
                raise AugError(f"{what}; aug.short=error (aug.short=skip leaves those persons out, "
                               f"aug.short=fewer adds the variants they have)")
            if rule == "skip" and all(p in short for p in real):
                raise AugError(f"{what}: no person has {k}, so aug.short=skip would add nothing (the baseline)")
            log.warning("%s: aug.short=%s %s", what, rule,
                        "adds none of theirs" if rule == "skip" else "adds the variants they have")
        chosen = [p for p in real if rule != "skip" or p not in short]
        info.per_person = {p: min(k, len(by_pid[p])) for p in chosen}
        samples = [s for p in chosen for s in by_pid[p][:k]]
        info.persons, info.images = len(chosen), len(samples)
        info.short_rule, info.short_persons = rule, len(short)
    else:  # pragma: no cover - the schema rejects it
        raise AugError(f"aug.name: unknown augmentation {name!r}")
    return samples, info, ds


def apply_augmentation(dm: Any, cfg: Any, artifacts: str | Path | None = None) -> AugInfo:
    """Add the selected generated images to the DataModule's training split (checked first).
    ``artifacts``: where to find the newest study when ``aug.source`` is null."""
    cfg = {k: _get(cfg, k) for k in ("persons", "images_per_person", "label", "source", "short")}
    cfg["source"] = resolve_source(cfg, artifacts)
    dm.setup()
    real_pids = set(int(p) for p in dm.dataset.train_orig_pids)
    samples, info, ds = select_samples(cfg, real_pids, getattr(dm.dataset, "on_bad_image", "error"),
                                       getattr(dm.dataset, "verify_images", "header"))
    if info.name == "none" or not samples:
        if info.name != "none":
            log.info("aug arm %s with 0 images: training on the real set only (the baseline)", info.name)
        return info
    if info.name == "real_variants" and info.label == "new_class":
        mode = "real"  # a variant is labelled as the real identity it shows
    else:
        mode = "new"  # new classes; with lsro they are marked (label >= real classes) and get a uniform target
    dm.add_train_samples(samples, label_mode=mode, name=f"aug:{Path(str(info.source)).name}",
                         source_pids=manifest_source_pids(ds) if ds is not None else ())
    log.info("aug=%s: +%d images of %d persons from %s (label: %s)%s", info.name, info.images, info.persons,
             info.source, info.label,
             f"; {info.short_persons} persons had fewer than K (aug.short={info.short_rule})" if info.short_persons else "")
    return info
