from reid_gan.utils.io import (
    append_jsonl,
    atomic_path,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    file_sha256,
    read_jsonl,
)
from reid_gan.utils.logging import get_logger
from reid_gan.utils.task import run_stage, task_wrapper

__all__ = [
    "append_jsonl",
    "atomic_path",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "file_sha256",
    "get_logger",
    "read_jsonl",
    "run_stage",
    "task_wrapper",
]
