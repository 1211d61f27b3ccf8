"""The size of the zipped Lambda function package, without boto3 (the runtime provides it).

What ``sam build`` puts in the package: the code under ``CodeUri: src/`` (the ``ecpay_lambda`` package,
bytecode caches left out) and ``src/requirements.txt`` with its dependencies installed. Built here
from the distributions installed in this environment (no network): each one's files as its RECORD
lists them. Those are this machine's wheels (Linux x86_64 here); the template deploys arm64, whose
compiled ``pydantic-core`` differs by a few percent. ``--arm64`` resolves the real arm64 wheels with
uv (from PyPI) instead.
"""

from __future__ import annotations

import importlib.metadata as md
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .common import ROOT, Table

PROVIDED_BY_RUNTIME = frozenset({"boto3", "botocore", "s3transfer"})
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(path: Path = ROOT / "src" / "requirements.txt") -> list[str]:
    """Top-level distribution names of the function package."""
    names = []
    for line in path.read_text().splitlines():
        match = _NAME.match(line.split("#", 1)[0])
        if match:
            names.append(_canonical(match.group(1)))
    return names


def closure(names: list[str]) -> list[md.Distribution]:
    """The installed distributions ``names`` need (extras and non-matching markers left out)."""
    seen: dict[str, md.Distribution] = {}
    stack = list(names)
    while stack:
        name = _canonical(stack.pop())
        if name in seen or name in PROVIDED_BY_RUNTIME:
            continue
        dist = md.distribution(name)
        seen[name] = dist
        for requirement in dist.requires or []:
            spec, _, marker = requirement.partition(";")
            if "extra" in marker:
                continue
            if marker.strip():
                from packaging.markers import Marker  # noqa: PLC0415

                if not Marker(marker.strip()).evaluate():
                    continue
            match = _NAME.match(spec)
            if match:
                stack.append(match.group(1))
    return list(seen.values())


@dataclass
class Package:
    """The built archive."""

    path: Path
    zipped: int
    unzipped: int
    files: int
    distributions: list[str]
    source: str


def _add_tree(archive: zipfile.ZipFile, base: Path, root: Path) -> tuple[int, int]:
    count = size = 0
    for path in sorted(root.rglob("*")):
        if path.is_dir() or "__pycache__" in path.parts or path.suffix == ".pyc":
            continue
        archive.write(path, path.relative_to(base).as_posix())
        count += 1
        size += path.stat().st_size
    return count, size


def build(workdir: Path, *, arm64: bool = False) -> Package:
    """Zip the function package into ``workdir``."""
    target = workdir / "function.zip"
    names = requirements()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        files, unzipped = _add_tree(archive, ROOT / "src", ROOT / "src" / "ecpay_lambda")
        if arm64:
            site = workdir / "site-arm64"
            shutil.rmtree(site, ignore_errors=True)
            subprocess.run(
                [str(Path(sys.executable).parent / "uv"), "pip", "install", "--quiet", "--target", str(site),
                 "--python-platform", "aarch64-manylinux2014", "--python-version", "3.12",
                 "-r", str(ROOT / "src" / "requirements.txt")],
                check=True,
            )  # fmt: skip
            for name in PROVIDED_BY_RUNTIME:
                for leftover in site.glob(f"{name}*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            more, more_size = _add_tree(archive, site, site)
            files += more
            unzipped += more_size
            dists = sorted(p.name.split("-")[0] for p in site.glob("*.dist-info"))
            source = "arm64 wheels for Python 3.12 resolved by uv from PyPI"
        else:
            dists = []
            for dist in closure(names):
                dists.append(f"{dist.metadata['Name']} {dist.version}")
                for record in dist.files or []:
                    path = Path(str(dist.locate_file(record)))
                    if path.suffix == ".pyc" or "__pycache__" in record.parts or not path.is_file():
                        continue
                    archive.write(path, record.as_posix())
                    files += 1
                    unzipped += path.stat().st_size
            source = f"the distributions installed here ({sys.platform}, this machine's wheels)"
    return Package(target, target.stat().st_size, unzipped, files, sorted(dists), source)


def table(package: Package) -> Table:
    """Zipped and unzipped size; Lambda's limits are 50 MB zipped (direct upload) and 250 MB unzipped."""
    return Table(
        "Function package (zip, without boto3)",
        ["package", "zipped MB", "unzipped MB", "files"],
        [
            [
                "src/ecpay_lambda + requirements.txt",
                package.zipped / 1e6,
                package.unzipped / 1e6,
                package.files,
            ]
        ],
        note=f"Built from {package.source}: {', '.join(package.distributions)}.",
    )
