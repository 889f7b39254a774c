"""reid-gan: does GAN-made people improve person re-identification, and by how much?

Stages are Hydra apps (``python -m reid_gan.<stage>``) that talk only through artifacts on disk.
See DESIGN in the README for the stage graph.
"""

__version__ = "0.1.0"


def _launch_dir() -> str:
    from reid_gan.config import launch_dir

    return launch_dir()


def _quality_metric(inception) -> str:
    """``${quality_metric:${metrics.inception}}``: the GAN metric a train_gan run produces, so that
    ``optimized_metric`` names it: FID with Inception weights, SWD without (see reid_gan/metrics)."""
    return "metric/fid" if inception not in (None, "", "null") else "metric/swd"


def _register_resolvers() -> None:
    """The OmegaConf resolvers the config tree uses. ``${launch_dir:}`` (behind ``paths.root_dir``, see
    :func:`reid_gan.config.launch_dir`) must exist wherever a config is resolved, also in a joblib or
    submitit worker that only unpickles a job: any import from the package registers them (omegaconf
    only; hydra is imported when ``launch_dir`` resolves)."""
    try:
        from omegaconf import OmegaConf
    except ImportError:  # pragma: no cover - the package's own dependency
        return
    if not OmegaConf.has_resolver("launch_dir"):
        OmegaConf.register_new_resolver("launch_dir", _launch_dir)
    if not OmegaConf.has_resolver("quality_metric"):
        OmegaConf.register_new_resolver("quality_metric", _quality_metric)


_register_resolvers()
