"""StyleGAN3: networks, .pkl import, losses, ADA, the training LightningModule and generator loading.

``reid_gan.gan.load_generator(path)`` → an eval-mode generator from a snapshot, a train_gan Lightning
checkpoint or an NVIDIA ``.pkl`` (see :mod:`reid_gan.gan.checkpoint`).
"""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:  # lazy: importing the package does not import the networks
    if name == "load_generator":
        from reid_gan.gan.checkpoint import load_generator

        return load_generator
    raise AttributeError(f"module 'reid_gan.gan' has no attribute {name!r}")
