"""What makes a resumed training run continue *exactly* as the uninterrupted run would have.

Lightning restores weights, optimisers and counters from a checkpoint, but not where the training data
stood or the random generators' states: a ``RandomSampler`` draws a new order after a resume, and the noise,
augmentation and flip draws go on from wherever the global generators happen to be. Two pieces close that:

* :class:`StreamSampler`: an endless stream of training indices whose item at position ``p`` depends only
  on ``(seed, p)`` — epoch ``p // n`` is a seeded permutation — started at the position a callable gives when
  the iteration begins (after Lightning has restored the module: ``batches done × batch size``). With
  ``mirror`` it also decides each item's x-flip, so flips do not come from the global generator either
  (the data loader fetches a batch ahead, so a flip drawn there would shift every later draw).
* :func:`rng_state` / :func:`set_rng_state`: the global generators (torch CPU and CUDA, NumPy, Python), as
  plain values a ``weights_only`` checkpoint holds.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Iterator

import numpy as np
import torch

__all__ = ["StreamSampler", "rng_state", "set_rng_state", "split_key"]


class StreamSampler(torch.utils.data.Sampler):
    """Endless ``(index, flip)`` items (``flip`` False unless ``mirror``) over a set of ``n`` items.

    ``position()`` is read each time an iteration starts: the number of items already consumed. The loader
    has no length: the training loop stops by its own counter (``max_steps``, ``gan.kimg``)."""

    def __init__(self, n: int, seed: int, mirror: bool = False, position: Callable[[], int] = lambda: 0):
        if n <= 0:
            raise ValueError("StreamSampler: the training set is empty")
        self.n, self.seed, self.mirror, self.position = int(n), int(seed), bool(mirror), position
        self._epoch, self._perm, self._flip = -1, None, None

    def _load(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        self._perm = torch.randperm(self.n, generator=g).tolist()
        self._flip = (torch.rand(self.n, generator=g) < 0.5).tolist() if self.mirror else [False] * self.n
        self._epoch = epoch

    def item(self, p: int) -> tuple[int, bool]:
        """The item at stream position ``p``."""
        e, r = divmod(int(p), self.n)
        if e != self._epoch:
            self._load(e)
        return self._perm[r], self._flip[r]

    def __iter__(self) -> Iterator[tuple[int, bool]]:
        p = int(self.position())
        while True:
            yield self.item(p)
            p += 1


def split_key(key: Any, mirror: bool) -> tuple[int, bool]:
    """A dataset's ``__getitem__`` key → ``(index, flip)``: a :class:`StreamSampler` item carries its flip; a
    plain index is flipped at random (the global generator) when ``mirror``."""
    if isinstance(key, (tuple, list)):
        return int(key[0]), bool(key[1])
    return int(key), bool(mirror and torch.rand(()) < 0.5)


def rng_state() -> dict[str, Any]:
    """The global random generators' states, as tensors and plain values (``weights_only``-readable)."""
    py = random.getstate()
    np_state = np.random.get_state()
    out: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gauss": float(np_state[4])},
        "python": {"version": int(py[0]), "state": list(py[1]), "gauss": py[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = torch.cuda.get_rng_state_all()
    return out


def set_rng_state(state: dict[str, Any] | None) -> None:
    """Restore what :func:`rng_state` saved (nothing for ``None``: a checkpoint from before it existed)."""
    if not state:
        return
    torch.set_rng_state(state["torch"].cpu() if isinstance(state["torch"], torch.Tensor) else state["torch"])
    n = state.get("numpy")
    if n is not None:
        np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                             n["cached_gauss"]))
    p = state.get("python")
    if p is not None:
        random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
