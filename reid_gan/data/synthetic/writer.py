"""Writing a dataset: render (or resume) every planned file atomically, in worker processes when there is
enough work, then the sample grid, the README and ``DATASET.json`` last (:func:`render_dataset`);
:func:`ensure_rendered` renders only when no complete render of the parameters is there."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import cv2
import numpy as np

from reid_gan.data.synthetic.marker import GENERATOR, IN_PROGRESS, MARKER, _ours, _readme, _stats, is_rendered
from reid_gan.data.synthetic.params import RENDERER_VERSION, SPLITS, ImageSpec, RenderParams
from reid_gan.data.synthetic.plan import plan_dataset
from reid_gan.data.synthetic.render import render_image
from reid_gan.utils.image import encode_image

# Render workers import this module: keep it free of reid_gan.utils's heavy modules (whose imports pull in
# Lightning, seconds per worker); the main-process functions import reid_gan.utils.io lazily.
log = logging.getLogger(__name__)

GRID_NAME = "sample_grid.png"


def render_dataset(root: str | Path, params: RenderParams | None = None, progress: bool = True,
                   **kwargs: Any) -> dict[str, Any]:
    """Render (or finish rendering) the dataset into ``root``. Returns the ``DATASET.json`` content.

    ``params`` or keyword arguments (the fields of :class:`RenderParams`) give the parameters. Images
    already present (from an interrupted run with the same parameters) are kept; each image is
    written atomically; ``DATASET.json`` is written last and is the completion marker.
    """
    from reid_gan.utils.io import atomic_write_json, atomic_write_text

    root = Path(root)
    params = RenderParams.from_config(params, **kwargs) if kwargs or not isinstance(params, RenderParams) \
        else params
    t0 = time.perf_counter()
    root.mkdir(parents=True, exist_ok=True)
    fp = params.fingerprint()
    progress_file = root / IN_PROGRESS
    existing_split = any((root / s).exists() for s in SPLITS)
    if existing_split:
        same = False
        for name in (IN_PROGRESS, MARKER):
            p = root / name
            if p.is_file():
                try:
                    info = json.loads(p.read_text())
                    same = info.get("generator") == GENERATOR and info.get("fingerprint") == fp
                except (OSError, json.JSONDecodeError):
                    pass
                break
        if not same:
            if not _ours(root):
                raise FileExistsError(
                    f"{root} already holds a dataset that reid_gan.data.synthetic did not render; refusing "
                    f"to overwrite it (choose another data.root or delete the folder)")
            log.info("%s was rendered with other parameters: re-rendering", root)
            for s in SPLITS:
                shutil.rmtree(root / s, ignore_errors=True)
            for name in (MARKER, GRID_NAME, "README.md"):
                (root / name).unlink(missing_ok=True)
    (root / MARKER).unlink(missing_ok=True)
    atomic_write_json(progress_file, {"generator": GENERATOR, "fingerprint": fp, "params": params.to_dict()})

    specs, scheme_of = plan_dataset(params)
    planned = {s.relpath for s in specs}
    for split in SPLITS:
        d = root / split
        d.mkdir(exist_ok=True)
        for f in d.iterdir():  # stray files (temp files of a killed run, files of no plan)
            if f"{split}/{f.name}" not in planned:
                f.unlink()
    todo = [s for s in specs if not (root / s.relpath).is_file()]
    if len(todo) < len(specs):
        log.info("Resuming the render in %s: %d of %d images already there", root, len(specs) - len(todo),
                 len(specs))
    _render_files(root, todo, params, scheme_of, progress)

    if params.grid_ids > 0:
        from reid_gan.report.grids import save_grid

        imgs, labels = sample_grid_images(root, specs, params.grid_ids, params.grid_cols)
        save_grid(root / GRID_NAME, imgs, nrow=params.grid_cols, row_labels=labels, label_width=34)

    hashes = hashlib.sha256()
    for s in sorted(specs, key=lambda x: x.relpath):
        hashes.update(s.relpath.encode())
        hashes.update(hashlib.sha256((root / s.relpath).read_bytes()).digest())
    info = {
        "generator": GENERATOR,
        "renderer_version": RENDERER_VERSION,
        "fingerprint": fp,
        "params": params.to_dict(),
        "layout": "Market-1501",
        "file_counts": {sp: sum(1 for s in specs if s.split == sp) for sp in SPLITS},
        "stats": _stats(specs, scheme_of),
        "content_sha256": hashes.hexdigest(),
        "image_size_hw": [params.height, params.width],
    }
    atomic_write_text(root / "README.md", _readme(info))
    atomic_write_json(root / MARKER, info)
    progress_file.unlink(missing_ok=True)
    log.info("Rendered %d images into %s in %.1f s", len(todo), root, time.perf_counter() - t0)
    return info


_PARALLEL_MIN = 256  # fewer images than this are rendered in this process


def _render_files(root: Path, todo: list[ImageSpec], params: RenderParams, scheme_of: Mapping[int, int],
                  progress: bool) -> None:
    """Render and write ``todo``; in ``params.num_workers`` processes when there is enough work.

    Worker processes are forked where the platform can (no re-import of the package per worker:
    importing ``reid_gan`` pulls in Lightning, seconds per process), before the progress bar's thread
    starts; joblib's loky workers elsewhere. Each image depends only on its own seed, so the files do
    not depend on the number of workers.
    """
    import multiprocessing as mp

    if not todo:
        return
    chunk = 64
    chunks = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    workers = min(params.num_workers, len(chunks)) if len(todo) >= _PARALLEL_MIN else 0
    sch = dict(scheme_of)
    pool = None
    if workers > 1 and "fork" in mp.get_all_start_methods():
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "multi-threaded process, fork()"
            pool = mp.get_context("fork").Pool(workers, initializer=cv2.setNumThreads, initargs=(1,))
    if workers <= 1:
        results: Iterable[int] = (_render_chunk(str(root), c, params, sch) for c in chunks)
    elif pool is not None:
        results = pool.imap_unordered(_render_chunk_args, [(str(root), c, params, sch) for c in chunks])
    else:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=workers, backend="loky", return_as="generator_unordered")
        results = par(delayed(_render_chunk)(str(root), c, params, sch) for c in chunks)
    try:
        if progress:
            from rich.progress import Progress

            with Progress(transient=True) as bar:
                task = bar.add_task(f"rendering {root.name}", total=len(todo))
                for n in results:
                    bar.advance(task, n)
        else:
            for _ in results:
                pass
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _render_chunk_args(args: tuple) -> int:
    return _render_chunk(*args)


def _render_chunk(root: str, specs: list[ImageSpec], params: RenderParams, scheme_of: dict[int, int]) -> int:
    cv2.setNumThreads(1)
    for spec in specs:
        img, q = render_image(spec, params, scheme_of)
        _write(Path(root) / spec.relpath, encode_image(img, "jpg", q))
    return len(specs)


def _write(path: Path, data: bytes) -> None:
    # Atomic (temp + rename) without the fsync of atomic_write_bytes: thousands of tiny files; a crash
    # can lose the last few, never leave a half-written one under its final name.
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    tmp.replace(path)


def sample_grid_images(root: Path, specs: list[ImageSpec], n_ids: int, n_cols: int
                       ) -> tuple[list[np.ndarray], list[str]]:
    """Images of the first ``n_ids`` training identities, spread over their cameras, one row each."""
    by_id: dict[int, list[ImageSpec]] = {}
    for s in specs:
        if s.split == "bounding_box_train":
            by_id.setdefault(s.pid, []).append(s)
    imgs: list[np.ndarray] = []
    labels: list[str] = []
    blank = np.full((128, 64, 3), 255, np.uint8)
    for pid in sorted(by_id)[:n_ids]:
        items = sorted(by_id[pid], key=lambda s: (s.cam, s.name))
        # round-robin over cameras so that the row shows every camera first
        cams: dict[int, list[ImageSpec]] = {}
        for s in items:
            cams.setdefault(s.cam, []).append(s)
        order: list[ImageSpec] = []
        while len(order) < len(items):
            for c in sorted(cams):
                if cams[c]:
                    order.append(cams[c].pop(0))
        row = [cv2.imread(str(root / s.relpath), cv2.IMREAD_COLOR) for s in order[:n_cols]]
        row += [blank] * (n_cols - len(row))
        imgs += row
        labels.append(f"{pid:04d}")
    return imgs, labels


def ensure_rendered(root: str | Path, render_cfg: Any = None, progress: bool = True) -> Path:
    """Render the dataset into ``root`` unless a complete render of these parameters is there.

    ``render_cfg``: the ``data.render`` config node (DictConfig), a dict, a :class:`RenderParams` or
    None (defaults). A file lock (``<root>.lock``) makes concurrent callers wait for one renderer.
    """
    from filelock import FileLock

    root = Path(root)
    params = render_cfg if isinstance(render_cfg, RenderParams) else RenderParams.from_config(render_cfg)
    if is_rendered(root, params):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root) + ".lock"):
        if not is_rendered(root, params):
            render_dataset(root, params, progress=progress)
    return root
