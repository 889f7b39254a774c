"""The package never deserialises untrusted data unsafely or runs strings as code: an AST scan of every
module of ``reid_gan`` for ``pickle.load``, ``torch.load`` without ``weights_only=True``, ``eval``/``exec``,
``yaml.load`` without a safe loader, ``subprocess`` with ``shell=True`` (and ``os.system``/``os.popen``),
and Lightning checkpoint loading without ``weights_only=True``. The scanner is checked on bad snippets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reid_gan"
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}
CKPT_METHODS = {"fit", "validate", "test", "predict"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _kw(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def scan_source(source: str, filename: str = "<src>") -> list[str]:
    """Every unsafe use in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    pickle_aliases = {"pickle", "_pickle", "cPickle", "dill"}
    imported_loads: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in pickle_aliases:
            for a in node.names:
                if a.name in ("load", "loads"):
                    imported_loads.add(a.asname or a.name)
        if isinstance(node, ast.ClassDef):
            bases = {_dotted(b) for b in node.bases}
            if bases & {"pickle.Unpickler", "Unpickler", "_pickle.Unpickler"}:
                if not any(isinstance(b, ast.FunctionDef) and b.name == "find_class" for b in node.body):
                    found.append(f"{filename}:{node.lineno}: Unpickler subclass {node.name} without find_class")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        where = f"{filename}:{node.lineno}"
        head, _, tail = name.rpartition(".")
        if (head in pickle_aliases and tail in ("load", "loads")) or name in imported_loads:
            found.append(f"{where}: {name}")
        if name == "torch.load" and not _is_true(_kw(node, "weights_only")):
            found.append(f"{where}: torch.load without weights_only=True")
        if name in ("eval", "exec", "builtins.eval", "builtins.exec"):
            found.append(f"{where}: {name}")
        if name in ("yaml.load", "yaml.load_all"):
            loader = _kw(node, "Loader") or (node.args[1] if len(node.args) > 1 else None)
            if loader is None or _dotted(loader).rpartition(".")[2] not in SAFE_YAML_LOADERS:
                found.append(f"{where}: {name} without a safe loader")
        if name in ("yaml.unsafe_load", "yaml.full_load", "yaml.unsafe_load_all"):
            found.append(f"{where}: {name}")
        if head == "subprocess" and _is_true(_kw(node, "shell")):
            found.append(f"{where}: {name} with shell=True")
        if name in ("os.system", "os.popen"):
            found.append(f"{where}: {name}")
        if tail in CKPT_METHODS and _kw(node, "ckpt_path") is not None and not _is_true(_kw(node, "weights_only")):
            found.append(f"{where}: {name}(ckpt_path=...) without weights_only=True")
        if tail == "load_from_checkpoint" and not _is_true(_kw(node, "weights_only")):
            found.append(f"{where}: {name} without weights_only=True")
    return found


def test_package_has_no_unsafe_loading_or_code_execution():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 30
    found = [f for p in files for f in scan_source(p.read_text(), str(p.relative_to(PACKAGE.parent)))]
    assert not found, "unsafe calls:\n" + "\n".join(found)


@pytest.mark.parametrize("snippet", [
    "import pickle\npickle.load(open('x', 'rb'))",
    "import pickle\npickle.loads(b'')",
    "from pickle import load\nload(f)",
    "import pickle\nclass U(pickle.Unpickler):\n    pass",
    "import torch\ntorch.load('x.pt')",
    "import torch\ntorch.load('x.pt', weights_only=False)",
    "eval('1+1')",
    "exec('x = 1')",
    "import yaml\nyaml.load(open('c.yaml'))",
    "import yaml\nyaml.load(s, Loader=yaml.FullLoader)",
    "import yaml\nyaml.unsafe_load(s)",
    "import subprocess\nsubprocess.run('ls', shell=True)",
    "import os\nos.system('ls')",
    "trainer.fit(model, ckpt_path='last.ckpt')",
    "trainer.validate(model, ckpt_path=p, weights_only=False)",
    "Module.load_from_checkpoint('x.ckpt')",
])
def test_scanner_flags_each_unsafe_pattern(snippet):
    assert scan_source(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "import torch\ntorch.load('x.pt', map_location='cpu', weights_only=True)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)",
    "import yaml\nyaml.safe_load(s)",
    "import subprocess\nsubprocess.run(['ls'])",
    "model.eval()",
    "import pickle\nclass U(pickle.Unpickler):\n    def find_class(self, m, n):\n        raise ValueError",
    "trainer.fit(model, ckpt_path=p, weights_only=True)",
])
def test_scanner_accepts_the_safe_forms(snippet):
    assert scan_source(snippet) == [], snippet
