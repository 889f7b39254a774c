"""Every ``python -m reid_gan.*`` command in README.md and docs/ is run by a test or marked as needing a GPU
or real data (issue 12): a command a user copies must not fail on a fresh clone.

The scanner (default run) reads every command in a fenced block (backslash continuations joined) or an
inline code span, and fails on one that is neither in :data:`TESTED` nor marked on its own line with
"GPU" or "real data". The runner (slow) runs each TESTED command smoke-sized (``experiment=smoke`` in
place of any preset, the listed replacements) in one fresh temporary folder, in this order, as a user
would type it there.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.test_sweep import run_cli

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARK = re.compile(r"\bGPU\b|real data")
TEMPLATE = "python -m reid_gan.<stage>"  # names the stages' form, not a command

# doc command (as written, comment stripped) → replacements that make it smoke-sized. In running order:
# a command may rely on what an earlier one wrote (the study, a generated set, a run, a sweep).
TESTED: list[tuple[str, list[tuple[str, str]]]] = [
    ("python -m reid_gan.make_dataset", []),
    ("python -m reid_gan.make_dataset experiment=smoke", []),
    ("python -m reid_gan.make_dataset data.root=/some/dir", [("/some/dir", "some/dir")]),
    ("python -m reid_gan.make_dataset data.root=data/big data.render.num_train_ids=300 "
     "data.render.images_per_id=[10,20]", [("num_train_ids=300", "num_train_ids=4"), ("[10,20]", "[3,4]")]),
    ("python -m reid_gan.pipeline", []),
    ("python -m reid_gan.train_gan", []),
    ("python -m reid_gan.train_gan experiment=smoke", []),
    ("python -m reid_gan.train_gan experiment=quickstart", []),
    ("python -m reid_gan.train_gan experiment=quickstart seed=N", [("seed=N", "seed=1")]),
    ("python -m reid_gan.train_gan experiment=quickstart seed=N gan.run_name=stylegan3-t-seedN",
     [("seed=N", "seed=1"), ("seedN", "seed1")]),
    ("python -m reid_gan.train_gan gan.resume=auto", []),
    # (--out: never the package's own embedded file)
    ("python -m reid_gan.gan.embed RUN_DIR --commit HASH",
     [("RUN_DIR", "artifacts/gan/stylegan3-t"), ("HASH", "0000000 --out embedded.pt")]),
    ('python -m reid_gan.gan.embed /some/dir/artifacts/gan/stylegan3-t-pretrain --commit <the commit it ran from> '
     '[--command "<the exact command>"]',
     [("/some/dir/artifacts/gan/stylegan3-t-pretrain", "artifacts/gan/stylegan3-t"),
      ("<the commit it ran from>", "0000000 --out embedded.pt"),
      ('[--command "<the exact command>"]', '--command "python -m reid_gan.train_gan experiment=smoke"')]),
    ("python -m reid_gan.gan.embed unpack embedded ROOT/artifacts/gan/stylegan3-t-pretrain",
     [("unpack embedded", "unpack embedded.pt"), ("ROOT/artifacts/gan/stylegan3-t-pretrain", "unpacked/run")]),
    ("python -m reid_gan.gan.embed unpack embedded /some/dir/artifacts/gan/stylegan3-t-pretrain",
     [("unpack embedded", "unpack embedded.pt"), ("/some/dir/artifacts/gan/stylegan3-t-pretrain", "unpacked2/run")]),
    ("python -m reid_gan.generate", []),
    ("python -m reid_gan.filter", []),
    ("python -m reid_gan.filter filter.source=artifacts/generated", []),
    ("python -m reid_gan.filter -m filter.source=artifacts/generated filter.chain.detector.threshold=0.5,0.6,0.7", []),
    ("python -m reid_gan.filter calibrate=true filter.calibrate_target=0.0645", []),
    ("python -m reid_gan.filter 'filter.source=${data.root}'", []),
    # the second arm (docs/encoder.md): encoder, inversion, variants of real persons, the SSIM-to-real filter
    ("python -m reid_gan.train_encoder", []),
    ("python -m reid_gan.invert", []),
    ("python -m reid_gan.generate generate.latents=artifacts/invert/default/latents.pt generate.persons=null "
     "generate.out=artifacts/variants", []),
    ("python -m reid_gan.filter filter.source=artifacts/variants filter.chain.ssim.reference=real", []),
    ("python -m reid_gan.pipeline experiment=quickstart_variants", []),
    ("python -m reid_gan.pipeline 'pipeline.sweep.seeds=[0,1,2]'", [("[0,1,2]", "[0,1]")]),
    ("python -m reid_gan.pipeline experiment=quickstart_variants 'pipeline.sweep.seeds=[0,1,2]'",
     [("[0,1,2]", "[0,1]")]),
    ("python -m reid_gan.train", []),
    ("python -m reid_gan.train experiment=smoke", []),
    ("python -m reid_gan.evaluate ckpt_path=logs/train/runs/<run>/checkpoints/last.ckpt", []),
    ("python -m reid_gan.train ckpt_path=last", []),
    ("python -m reid_gan.train aug.persons=2", []),
    ("python -m reid_gan.train aug.persons=2 aug.label=lsro", []),
    ("python -m reid_gan.train reid=resnet50 aug.persons=10,20,...,320 -m", [("10,20,...,320", "0,2,...,2")]),
    ("python -m reid_gan.train reid=resnet50 'aug.persons=range(0,330,10)' seed=1,2,3 -m",
     [("range(0,330,10)", "range(0,3,2)"), ("seed=1,2,3", "seed=1")]),
    ("python -m reid_gan.train reid=resnet50 'aug.persons=range(0,330,10)' seed=1,2,3 hydra/launcher=joblib -m",
     [("range(0,330,10)", "range(0,3,2)"), ("seed=1,2,3", "seed=1")]),
    ("python -m reid_gan.train 'aug.persons=range(0,30,10)' seed=1,2,3 -m",
     [("range(0,30,10)", "range(0,2)"), ("seed=1,2,3", "seed=1")]),
    ("python -m reid_gan.train 'aug.persons=range(0,30,10)' seed=1,2,3 hydra/launcher=joblib -m",
     [("range(0,30,10)", "range(0,2)"), ("seed=1,2,3", "seed=1")]),
    ("python -m reid_gan.report sweep_dir=logs/train/multiruns/<time>", []),
    ("python -m reid_gan.train experiment=smoke reid.max_epochs=3 aug.source=/tmp/standin aug.persons=0,8,24 "
     "seed=1,2 hydra/launcher=joblib hydra.launcher.n_jobs=2 -m",
     [("/tmp/standin", "standin"), ("reid.max_epochs=3", "reid.max_epochs=1"), ("aug.persons=0,8,24", "aug.persons=0,2"),
      ("seed=1,2", "seed=1")]),
]


def doc_commands() -> list[tuple[str, int, str, str]]:
    """(file, line, command, the rest of its source line) for every python -m reid_gan.* command."""
    found = []
    for f in DOCS:
        lines = f.read_text().splitlines()
        fence, i = False, 0
        while i < len(lines):
            line = lines[i]
            if line.strip().startswith("```"):
                fence, i = not fence, i + 1
                continue
            if fence and line.lstrip().startswith("python -m reid_gan"):
                text, j = line, i
                while text.rstrip().endswith("\\") and j + 1 < len(lines):
                    j += 1
                    text = text.rstrip()[:-1] + " " + lines[j].strip()
                cmd, _, comment = text.partition(" #")
                found.append((f.name, i + 1, " ".join(cmd.split()), comment))
                i = j + 1
                continue
            if not fence:
                for m in re.finditer(r"`(python -m reid_gan[^`]*)`", line):
                    found.append((f.name, i + 1, " ".join(m.group(1).split()), line.replace(m.group(0), "")))
            i += 1
    return found


def test_every_documented_command_is_tested_or_marked():
    tested = {c for c, _ in TESTED}
    bad = [f"{f}:{n}: {cmd}" for f, n, cmd, rest in doc_commands()
           if cmd != TEMPLATE and cmd not in tested and not MARK.search(rest)]
    assert not bad, ("commands neither run by tests/test_doc_commands.py (TESTED) nor marked 'GPU' / 'real data' "
                     "on their line:\n" + "\n".join(bad))
    documented = {cmd for _, _, cmd, _ in doc_commands()}
    stale = [c for c in tested if c not in documented]
    assert not stale, f"TESTED lists commands no document has any more: {stale}"


def smoke_sized(cmd: str, replacements: list[tuple[str, str]], cwd: Path) -> list[str]:
    for old, new in replacements:
        assert old in cmd, (old, cmd)
        cmd = cmd.replace(old, new)
    args = shlex.split(cmd)
    assert args[:2] == ["python", "-m"]
    args = args[1:]
    if (REPO / "conf" / f"{args[1].removeprefix('reid_gan.')}.yaml").is_file():  # a Hydra stage
        args = [a for a in args if not a.startswith("experiment=")]
        # beside the other overrides: argparse takes them only as one run (`-m a=1 b=2` or `a=1 b=2 -m`)
        args.insert(3 if args[2:3] == ["-m"] else 2, "experiment=smoke")
    for i, a in enumerate(args):
        if "<time>" in a:
            args[i] = a.replace("logs/train/multiruns/<time>", str(sorted((cwd / "logs/train/multiruns").iterdir())[-1]))
        if "<run>" in a:
            args[i] = a.replace("logs/train/runs/<run>", str(sorted((cwd / "logs/train/runs").iterdir())[-1]))
    return args


@pytest.mark.slow
def test_documented_commands_run_smoke_sized(tmp_path):
    import sys

    run_cli([str(REPO / "experiments" / "standin_generated_set.py"), str(tmp_path / "standin"), "--persons", "4",
             "--images-per-person", "3"], cwd=tmp_path)
    done = set()
    for cmd, repl in TESTED:
        args = smoke_sized(cmd, repl, tmp_path)
        if tuple(args) in done:
            continue
        done.add(tuple(args))
        r = run_cli(args, cwd=tmp_path, check=False)
        assert r.returncode == 0, f"{cmd}\n  ran as: {sys.executable} {' '.join(args)}\n" + (r.stdout + r.stderr)[-3000:]
