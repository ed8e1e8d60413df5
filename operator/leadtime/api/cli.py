"""`leadtime crds`: write the CRD (and its chart copy and reference doc) generated from the models."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..cli import CliError
from .crd import CRD_FILENAME, render_crd_yaml
from .reference import render_reference


def generated_files(root: Path) -> dict[Path, str]:
    """Every file `leadtime crds` owns, relative to the repository root, with its content."""
    crd = render_crd_yaml()
    return {
        root / "crds" / CRD_FILENAME: crd,
        root / "charts" / "leadtime" / "crds" / CRD_FILENAME: crd,
        root / "docs" / "crd-reference.md": render_reference(),
    }


def _run(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if not (root / "operator" / "leadtime").is_dir():
        raise CliError(f"{root} is not the leadtime repository root (no operator/leadtime); use --root")
    stale = []
    for path, content in generated_files(root).items():
        current = path.read_text() if path.exists() else None
        if current == content:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
    if args.check and stale:
        raise CliError("out of date, run `leadtime crds`: " + ", ".join(str(p) for p in stale))
    for path in stale:
        print(f"wrote {path}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "crds",
        help="generate the ModelDeployment CRD from the API models",
        description="Write crds/, charts/leadtime/crds/ and docs/crd-reference.md from the pydantic models.",
    )
    parser.add_argument("--root", default=".", help="repository root (default: current directory)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 2 if a file is out of date")
    parser.set_defaults(func=_run)
