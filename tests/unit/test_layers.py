"""The layers import downward only: local -> api -> store -> wallet -> ecpay (design §1).

Imports are read from the source, statements and string imports alike (``importlib.import_module``,
``__import__`` with a literal or f-string name). Inside ``local``, the offline ECPay sandbox stands in
for ECPay itself, so it may import only the ECPay library (and the stdlib-only ``local.http``
plumbing it serves pages with): never the wallet, the stores, the API or the rest of local mode.
"""

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
SANDBOX = "ecpay_lambda.local.sandbox"
# The only modules the sandbox may import from the package (each also the modules below it).
SANDBOX_ALLOWED = ("ecpay_lambda.ecpay", SANDBOX, "ecpay_lambda.local.http")
_IMPORT_FUNCTIONS = frozenset({"import_module", "__import__"})


def _part_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _module_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE_ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _resolve(name: str, level: int, package: tuple[str, ...]) -> str:
    if not level:
        return name
    base = ".".join(package[: len(package) - (level - 1)])
    return f"{base}.{name}" if name else base


def _string_import(node: ast.Call) -> str | None:
    """The (leading, literal) module name of ``importlib.import_module(...)`` / ``__import__(...)``."""
    func = node.func
    called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    if called not in _IMPORT_FUNCTIONS or not node.args:
        return None
    arg = node.args[0]
    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    if isinstance(arg, ast.JoinedStr) and arg.values:  # f"ecpay_lambda.commands.{name}": its prefix
        head = arg.values[0]
        if isinstance(head, ast.Constant) and isinstance(head.value, str):
            return head.value.rstrip(".")
    return None


def imported_modules(source: str, package: tuple[str, ...]) -> set[str]:
    """Every module of the package that ``source`` (a module in ``package``) imports, as dotted names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = _resolve(node.module or "", node.level, package)
            names = [module] if node.module else [f"{module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Call):
            text = _string_import(node)
            if text is not None:
                level = len(text) - len(text.lstrip("."))
                names = [_resolve(text.lstrip("."), level, package)]
        found.update(name for name in names if name.split(".")[0] == "ecpay_lambda")
    return found


def _parts(modules: set[str]) -> set[str]:
    found: set[str] = set()
    for name in modules:
        parts = name.split(".")
        if len(parts) > 1 and parts[1]:
            is_module = (PACKAGE_ROOT / parts[1]).is_dir() or (PACKAGE_ROOT / f"{parts[1]}.py").exists()
            # ``from .. import __version__`` reads the root package, which every layer may do.
            found.add(parts[1] if is_module else "__init__")
    return found


def _imported(path: Path) -> set[str]:
    package = tuple(path.relative_to(PACKAGE_ROOT.parent).parent.parts)
    return imported_modules(path.read_text(encoding="utf-8"), package)


def _within(name: str, allowed: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in allowed)


def _modules() -> list[Path]:
    return sorted(PACKAGE_ROOT.rglob("*.py"))


def _sandbox_modules() -> list[Path]:
    return [p for p in _modules() if _within(_module_of(p), (SANDBOX,))]


def test_every_part_has_a_rule() -> None:
    parts = {_part_of(p) for p in _modules()}
    assert parts <= set(ALLOWED), f"no layering rule for {parts - set(ALLOWED)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE_ROOT)))
def test_imports_point_downward(path: Path) -> None:
    part = _part_of(path)
    illegal = _parts(_imported(path)) - ALLOWED[part] - {part, "__init__"}
    assert not illegal, f"{path.relative_to(PACKAGE_ROOT)} ({part}) imports {sorted(illegal)}"


@pytest.mark.parametrize("path", _sandbox_modules(), ids=lambda p: str(p.relative_to(PACKAGE_ROOT)))
def test_the_sandbox_imports_only_the_ecpay_library(path: Path) -> None:
    illegal = sorted(name for name in _imported(path) if not _within(name, SANDBOX_ALLOWED))
    assert not illegal, f"{path.relative_to(PACKAGE_ROOT)} imports {illegal}"


def test_the_plumbing_the_sandbox_may_use_imports_nothing_of_the_package() -> None:
    assert _imported(PACKAGE_ROOT / "local" / "http.py") == set()


def test_checker_sees_relative_imports() -> None:
    # Guard against a checker that silently finds nothing.
    assert "ecpay" in _parts(_imported(PACKAGE_ROOT / "wallet" / "service.py"))
    assert len(_sandbox_modules()) > 5
    assert any(_within(n, ("ecpay_lambda.ecpay",)) for p in _sandbox_modules() for n in _imported(p))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            'import importlib\nimportlib.import_module("ecpay_lambda.wallet.service")',
            "ecpay_lambda.wallet.service",
        ),
        ('from importlib import import_module\nimport_module("ecpay_lambda.store")', "ecpay_lambda.store"),
        ('__import__("ecpay_lambda.api.handlers")', "ecpay_lambda.api.handlers"),
        ('import importlib\nimportlib.import_module(f"ecpay_lambda.api.{name}")', "ecpay_lambda.api"),
        ('import importlib\nimportlib.import_module("...wallet", __package__)', "ecpay_lambda.wallet"),
    ],
)
def test_checker_sees_string_imports(source: str, expected: str) -> None:
    found = imported_modules(source, ("ecpay_lambda", "local", "sandbox"))
    assert found == {expected}
    assert not _within(expected, SANDBOX_ALLOWED)  # so the sandbox rule would refuse each


def test_checker_ignores_imports_of_other_packages() -> None:
    source = 'import importlib\nimportlib.import_module("json")\n__import__(name)\nimport boto3'
    assert imported_modules(source, ("ecpay_lambda", "local", "sandbox")) == set()
