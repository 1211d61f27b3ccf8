"""The layers import downward only: local -> api -> store -> wallet -> ecpay (design §1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "src" / "ecpay_lambda"

# What each part of the package may import from the others (itself always allowed).
ALLOWED: dict[str, set[str]] = {
    "ecpay": set(),
    "wallet": {"ecpay"},
    "store": {"wallet", "ecpay"},
    "config": {"ecpay"},
    "api": {"config", "store", "wallet", "ecpay"},
    "local": {"api", "config", "store", "wallet", "ecpay"},
    "commands": {"local", "api", "config", "store", "wallet", "ecpay"},
    "cli": {"commands"},
    "__init__": set(),
}


def _part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_parts(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # The package a module's relative imports resolve against (for __init__.py, its own folder).
    package_parts = path.relative_to(PACKAGE_ROOT.parent).parent.parts
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(package_parts[: len(package_parts) - (node.level - 1)])
                module = ".".join([*base, node.module] if node.module else base)
                names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
            elif node.module:
                names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "ecpay_lambda" and len(parts) > 1:
                is_module = (PACKAGE_ROOT / parts[1]).is_dir() or (PACKAGE_ROOT / f"{parts[1]}.py").exists()
                # ``from .. import __version__`` reads the root package, which every layer may do.
                found.add(parts[1] if is_module else "__init__")
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def test_every_part_has_a_rule() -> None:
    parts = {_part_of(p) for p in _modules()}
    assert parts <= set(ALLOWED), f"no layering rule for {parts - set(ALLOWED)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE_ROOT)))
def test_imports_point_downward(path: Path) -> None:
    part = _part_of(path)
    illegal = _imported_parts(path) - ALLOWED[part] - {part, "__init__"}
    assert not illegal, f"{path.relative_to(PACKAGE_ROOT)} ({part}) imports {sorted(illegal)}"


def test_checker_sees_relative_imports() -> None:
    # Guard against a checker that silently finds nothing.
    sample = PACKAGE_ROOT / "wallet" / "service.py"
    assert "ecpay" in _imported_parts(sample)
