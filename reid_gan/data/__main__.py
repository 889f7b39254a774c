"""Print the statistics of a dataset folder: ``python -m reid_gan.data ROOT [--format market1501]``."""

from __future__ import annotations

import argparse
import sys

from reid_gan.data import DATASETS, DatasetError, dataset_class


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reid_gan.data", description=__doc__)
    ap.add_argument("root", help="dataset folder (or a parent holding Market-1501-v15.09.15/ / DukeMTMC-reID/)")
    ap.add_argument("--format", default="folder", choices=sorted(set(DATASETS) - {"synthetic"}),
                    help="naming rules to apply (default: folder = any Market-layout folder)")
    ap.add_argument("--verify", default="header", choices=["none", "header", "decode"], help="image check")
    ap.add_argument("--skip-bad", action="store_true", help="drop bad images with a warning instead of failing")
    args = ap.parse_args(argv)
    try:
        ds = dataset_class(args.format)(args.root, on_bad_image="skip" if args.skip_bad else "error",
                                        verify_images=args.verify)
    except DatasetError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ds.print_summary()
    if ds.bad_images:
        print(f"{len(ds.bad_images)} bad image(s) skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
