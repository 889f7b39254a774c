"""The encoder's images: leakage-guarded ``bounding_box_train`` only, split by identity.

:func:`split_identities` holds ``val_ids`` training identities out of encoder training (chosen from a
seeded permutation of the sorted pids); their images are the validation set, on which the identity
score ranks reconstructions against the real images of the same held-out people.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from reid_gan.utils.logging import get_logger

log = get_logger(__name__)

__all__ = ["EncoderImages", "split_identities", "load_rgb"]


def load_rgb(path: str, size: Sequence[int]) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` at ``size`` (area when shrinking, bilinear otherwise). A file that does not
    decode raises :class:`~reid_gan.data.BadImageError` naming it (the dataset's header check cannot see a
    corrupt file with valid JPEG markers; ``data.on_bad_image=skip`` decodes every image while indexing)."""
    import cv2

    from reid_gan.data.market1501 import BadImageError

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        raise BadImageError(f"cannot read image {path} (corrupt or not an image; set data.on_bad_image=skip to "
                            f"drop such images with a warning, or data.verify_images=decode to find them all "
                            f"while indexing)")
    h, w = int(size[0]), int(size[1])
    if img.shape[:2] != (h, w):
        interp = cv2.INTER_AREA if img.shape[0] >= h and img.shape[1] >= w else cv2.INTER_LINEAR
        img = cv2.resize(img, (w, h), interpolation=interp)
    return np.ascontiguousarray(img[:, :, ::-1])


def split_identities(samples: Sequence, val_ids: int, seed: int = 0) -> tuple[list, list]:
    """``(train, val)`` samples: ``val_ids`` identities (pid 0 never) go to ``val`` entirely."""
    pids = sorted({int(s.pid) for s in samples if int(s.pid) > 0})
    if len(pids) <= val_ids:
        raise ValueError(f"encoder.val_ids={val_ids}: the training split has only {len(pids)} identities; "
                         f"hold out fewer")
    order = np.random.default_rng(int(seed)).permutation(len(pids))
    held = {pids[i] for i in order[:val_ids]}
    train = [s for s in samples if int(s.pid) not in held]
    val = [s for s in samples if int(s.pid) in held]
    return train, val


class EncoderImages(torch.utils.data.Dataset):
    """Images in memory as uint8, returned as float [-1, 1] at the encoder's input size and at the generator's
    resolution (both read from the file; equal sizes share one array), plus pid and camera.

    Item: ``(x_in [3, H_in, W_in], x_g [3, H_G, W_G], pid, camid, index)``.
    """

    def __init__(self, samples: Sequence, input_size: Sequence[int], g_size: Sequence[int], mirror: bool = False):
        self.samples = list(samples)
        self.input_size, self.g_size = tuple(int(v) for v in input_size), tuple(int(v) for v in g_size)
        self.mirror = bool(mirror)
        self.x_in = torch.from_numpy(np.stack([load_rgb(s.path, self.input_size) for s in self.samples])
                                     ).permute(0, 3, 1, 2).contiguous() if self.samples else torch.zeros(0)
        if self.g_size == self.input_size:
            self.x_g = self.x_in
        else:
            self.x_g = torch.from_numpy(np.stack([load_rgb(s.path, self.g_size) for s in self.samples])
                                        ).permute(0, 3, 1, 2).contiguous()
        self.pids = torch.tensor([int(s.pid) for s in self.samples], dtype=torch.long)
        self.camids = torch.tensor([int(s.camid) for s in self.samples], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key):
        from reid_gan.utils.resumable import split_key

        i, flip = split_key(key, self.mirror)  # a StreamSampler item (index, flip), or a plain index
        a = self.x_in[i].float() / 127.5 - 1
        b = self.x_g[i].float() / 127.5 - 1
        if flip:
            a, b = a.flip(-1), b.flip(-1)
        return a, b, self.pids[i], self.camids[i], i
