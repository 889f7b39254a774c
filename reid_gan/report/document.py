"""A small report document rendered to both Markdown and self-contained HTML.

Blocks are headings, paragraphs, tables (pandas DataFrames) and images. Images are copied into the
report's ``img/`` folder so the report folder can be moved or attached to a paper's supplementary
material as a whole; the HTML embeds nothing remote.
"""

from __future__ import annotations

import html
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from reid_gan.utils.io import atomic_write_text


@dataclass
class Block:
    kind: str  # "h" | "p" | "table" | "image"
    payload: Any
    level: int = 2
    caption: str = ""


@dataclass
class Report:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> "Report":
        self.blocks.append(Block("h", text, level=level))
        return self

    def para(self, text: str) -> "Report":
        self.blocks.append(Block("p", text))
        return self

    def table(self, df: pd.DataFrame, caption: str = "") -> "Report":
        self.blocks.append(Block("table", df, caption=caption))
        return self

    def image(self, path: str | Path, caption: str = "") -> "Report":
        """Add an image if the file exists (a missing optional figure is skipped, not an error)."""
        if path and Path(path).is_file():
            self.blocks.append(Block("image", Path(path), caption=caption))
        return self

    # -- rendering ---------------------------------------------------------------------------------
    def _collect_images(self, out_dir: Path) -> dict[Path, str]:
        img_dir = out_dir / "img"
        img_dir.mkdir(parents=True, exist_ok=True)
        rel: dict[Path, str] = {}
        for i, b in enumerate(b for b in self.blocks if b.kind == "image"):
            src: Path = b.payload
            if src in rel:
                continue
            dst = img_dir / f"{i:02d}_{src.name}"
            if src.resolve() != dst.resolve():
                shutil.copyfile(src, dst)
            rel[src] = f"img/{dst.name}"
        return rel

    def to_markdown(self, rel: dict[Path, str] | None = None) -> str:
        rel = rel or {}
        lines = [f"# {self.title}", ""]
        for b in self.blocks:
            if b.kind == "h":
                lines += ["#" * b.level + " " + b.payload, ""]
            elif b.kind == "p":
                lines += [b.payload, ""]
            elif b.kind == "table":
                if b.caption:
                    lines += [f"*{b.caption}*", ""]
                lines += [b.payload.to_markdown(index=False), ""]
            elif b.kind == "image":
                lines += [f"![{b.caption}]({rel.get(b.payload, str(b.payload))})", ""]
                if b.caption:
                    lines += [f"*{b.caption}*", ""]
        return "\n".join(lines)

    def to_html(self, rel: dict[Path, str] | None = None) -> str:
        rel = rel or {}
        e = html.escape
        body = [f"<h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if b.kind == "h":
                body.append(f"<h{b.level}>{e(b.payload)}</h{b.level}>")
            elif b.kind == "p":
                body.append(f"<p>{e(b.payload)}</p>")
            elif b.kind == "table":
                cap = f"<caption>{e(b.caption)}</caption>" if b.caption else ""
                t = b.payload.to_html(index=False, border=0, classes="t")
                body.append(t.replace(">", f">{cap}", 1))  # caption right after the <table ...> tag
            elif b.kind == "image":
                body.append(f'<figure><img src="{e(rel.get(b.payload, str(b.payload)))}" '
                            f'alt="{e(b.caption)}"><figcaption>{e(b.caption)}</figcaption></figure>')
        style = ("body{font-family:sans-serif;max-width:960px;margin:2em auto;line-height:1.4}"
                 "table.t{border-collapse:collapse;margin:1em 0}table.t td,table.t th{border:1px solid #ccc;"
                 "padding:3px 8px;text-align:right}img{max-width:100%}figcaption{color:#555;font-size:90%}")
        return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>"
                f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")

    def save(self, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        rel = self._collect_images(out_dir)
        md = atomic_write_text(out_dir / f"{stem}.md", self.to_markdown(rel))
        ht = atomic_write_text(out_dir / f"{stem}.html", self.to_html(rel))
        return md, ht
