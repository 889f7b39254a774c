"""The one torch-file reader (``reid_gan.utils.weights.read_torch_file``) and the error types its callers
raise: each caller keeps its own (``FileNotFoundError``/``ValueError`` or ``WeightsError``), every message
names the file."""

from __future__ import annotations

import pytest
import torch

from reid_gan.data.generated import load_latents_file
from reid_gan.gan.embed import read_bundle
from reid_gan.reid.checkpoint import read_checkpoint
from reid_gan.utils.weights import WeightsError, load_state_dict, read_torch_file


def test_reader_loads_tensors_and_names_key_and_file(tmp_path):
    f = tmp_path / "w.pt"
    torch.save({"a": torch.arange(3)}, f)
    assert torch.equal(read_torch_file(f)["a"], torch.arange(3))
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(WeightsError, match=r"^my\.key=.*junk\.pt: cannot be read as a weights-only torch file"):
        read_torch_file(junk, "my.key")
    with pytest.raises(KeyError, match=r"junk\.pt: cannot be read as thing"):
        read_torch_file(junk, what="thing", error=KeyError)
    # an absent file: its own type when asked for, else the read error's
    with pytest.raises(FileNotFoundError, match=r"^'?k=.*absent\.pt: file not found"):
        read_torch_file(tmp_path / "absent.pt", "k", missing=FileNotFoundError)
    with pytest.raises(WeightsError, match=r"absent\.pt: cannot be read"):
        read_torch_file(tmp_path / "absent.pt", "k")


@pytest.mark.parametrize("reader,missing,unreadable", [
    (lambda p: load_latents_file(p, 4, 8), FileNotFoundError, ValueError),
    (read_bundle, FileNotFoundError, ValueError),
    (lambda p: load_state_dict(p, "reid.pretrained"), WeightsError, WeightsError),
    (read_checkpoint, WeightsError, WeightsError),
])
def test_each_caller_keeps_its_error_types(tmp_path, reader, missing, unreadable):
    with pytest.raises(missing, match=r"absent\.pt"):
        reader(tmp_path / "absent.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(unreadable, match=r"junk\.pt") as ei:
        reader(junk)
    assert not isinstance(ei.value, FileNotFoundError)  # a file that is there is not reported missing
