"""The whole study as one run: the pipeline's runner (:mod:`.runner`: stage registry, artifact keys,
skip/lock/markers) and the study it runs (:mod:`.flow`). The entry is ``python -m reid_gan.pipeline``."""
