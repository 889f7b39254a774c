"""The layering rule, read from the source: stage entries are leaves, and thin.

Only the pipeline imports a stage entry module (through the stage registry; a package's ``__main__`` is an
entry of its own); library modules never do,
and tests import from a stage file only its task function (and ``main``), never a library function.
A stage entry stays at most :data:`MAX_ENTRY_LINES` lines and defines no class: builders, loops and
writers live in the library packages.
"""

from __future__ import annotations

import ast
from pathlib import Path

from reid_gan.study.runner import STAGE_TASKS
from tests.helpers import REPO

PACKAGE = REPO / "reid_gan"
STAGE_MODULES = {spec.partition(":")[0]: spec.partition(":")[2] for spec in STAGE_TASKS.values()}
# the one module allowed to import stage entries (it runs them); the runner does so by name, lazily
PIPELINE = {"reid_gan.pipeline", "reid_gan.study.runner"}
MAX_ENTRY_LINES = 100  # docs/architecture.md: "keep the file under ~100 lines"


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, name: str | None = None) -> list[tuple[str, list[str], int]]:
    """(imported module, names imported from it, line) for every import statement, nested ones included;
    ``name``: the file's module name (default: from its path under the repository)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = name or _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                mod = ".".join([*base, mod] if mod else base)
            names = [a.name for a in node.names]
            out.append((mod, names, node.lineno))
            out += [(f"{mod}.{n}", [], node.lineno) for n in names]  # `from reid_gan import generate`
    return out


def test_the_registry_names_existing_stage_modules():
    for module, fn in STAGE_MODULES.items():
        path = REPO / (module.replace(".", "/") + ".py")
        assert path.is_file(), f"{module} (registered stage) has no file"
        assert f"def {fn}(" in path.read_text(encoding="utf-8"), f"{module} has no task function {fn}"


def test_no_library_module_imports_a_stage_entry():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        if name in PIPELINE or name.endswith(".__main__"):  # `python -m` entries run a stage too
            continue
        for mod, _, line in _imports(path):
            if mod in STAGE_MODULES and mod != name:
                offenders.append(f"{path.relative_to(REPO)}:{line} imports the stage entry {mod}")
    assert not offenders, "\n".join(offenders)


def test_tests_import_only_task_functions_from_stage_files():
    offenders = []
    for path in sorted((REPO / "tests").rglob("*.py")):
        for mod, names, line in _imports(path):
            if mod in STAGE_MODULES:
                extra = [n for n in names if n not in (STAGE_MODULES[mod], "main")]
                if extra:
                    offenders.append(f"{path.relative_to(REPO)}:{line} imports {extra} from the stage file {mod}")
    assert not offenders, "\n".join(offenders)


def _fat_entry(path: Path) -> list[str]:
    """What makes a stage file more than a thin entry: too many lines, a class."""
    text = path.read_text(encoding="utf-8")
    found = []
    if len(text.splitlines()) > MAX_ENTRY_LINES:
        found.append(f"{len(text.splitlines())} lines (at most {MAX_ENTRY_LINES})")
    found += [f"class {n.name} (line {n.lineno})" for n in ast.parse(text).body if isinstance(n, ast.ClassDef)]
    return found


def test_stage_entries_are_thin():
    fat = {m: f for m in STAGE_MODULES if (f := _fat_entry(REPO / (m.replace(".", "/") + ".py")))}
    assert not fat, "move the library logic into its package: " + "; ".join(f"{m}: {', '.join(f)}"
                                                                           for m, f in fat.items())


def test_the_thin_entry_rule_catches_a_fat_one(tmp_path):
    fat = tmp_path / "fat.py"
    fat.write_text("class Builder:\n    pass\n" + "x = 1\n" * MAX_ENTRY_LINES)
    assert [f.split(" ")[0] for f in _fat_entry(fat)] == [str(MAX_ENTRY_LINES + 2), "class"]
    fat.write_text("x = 1\n" * MAX_ENTRY_LINES)
    assert _fat_entry(fat) == []


def test_the_rule_catches_an_offender(tmp_path):
    """The parser sees relative, nested and aliased imports (so the tests above can fail)."""
    bad = tmp_path / "probe.py"
    bad.write_text("def f():\n    from ..generate import generate as g\n    import reid_gan.train\n"
                   "from reid_gan import filter\n")
    found = {m for m, _, _ in _imports(bad, "reid_gan.data.probe")}
    assert "reid_gan.filter" in found and {"reid_gan.generate", "reid_gan.train"} <= found
