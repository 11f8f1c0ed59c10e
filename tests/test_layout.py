"""The package's floors (described in ``matting/__init__.py``, tabled here): every import points down or sideways, never up."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "matting"

# Floor of each top-level part of the package; ``floor_of`` resolves a module name against it.
FLOORS = {
    "matting.cli": 4,
    "matting.__main__": 4,
    "matting.commands": 3,
    "matting.runtime": 2,
    "matting.bench": 2,
    "matting.study": 2,
    "matting.models": 1,
    "matting.losses": 1,
    "matting.module": 1,
    "matting.metrics": 1,
    "matting.data": 1,
    "matting.soc_loss": 1,
    "matting.soc_module": 1,
    "matting.foreground": 1,
    "matting.baselines": 1,
    "matting.inference": 1,
    "matting.evaluation": 1,
    "matting.report": 1,
    "matting.io": 0,
    "matting": 0,
}


def floor_of(module: str) -> int | None:
    """The floor of a ``matting`` module (``matting.io.images`` -> 0), or None for a module outside the package."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        floor = FLOORS.get(".".join(parts[:end]))
        if floor is not None:
            return floor
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every ``matting`` import in the file, at any depth (function-local ones too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.level:
                pytest.fail(f"{path}:{node.lineno}: relative import; the package uses absolute imports only")
            # `from matting.data import augment` imports matting.data.augment when that is a module.
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                is_module = (REPO / Path(*sub.split("."))).with_suffix(".py").is_file() or (REPO / Path(*sub.split("."))).is_dir()
                found.append((node.lineno, sub if is_module else node.module))
    return [(line, name) for line, name in found if name == "matting" or name.startswith("matting.")]


def package_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_every_package_module_has_a_floor():
    for path in package_files():
        assert floor_of(module_name(path)) is not None, f"{path}: on no floor of FLOORS"


def test_imports_never_point_up():
    wrong = []
    for path in package_files():
        here = module_name(path)
        own = floor_of(here)
        for line, name in imported_modules(path):
            target = floor_of(name)
            if target is not None and target > own:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {here} (floor {own}) imports {name} (floor {target})")
    assert not wrong, "imports that point up a floor:\n" + "\n".join(wrong)


def test_only_the_dispatcher_imports_commands_and_nothing_imports_the_dispatcher():
    wrong = []
    for path in [*package_files(), *(REPO / "tools").rglob("*.py"), *(REPO / "experiments").rglob("*.py")]:
        here = module_name(path)
        for line, name in imported_modules(path):
            if name == "matting.cli" and here != "matting.__main__":
                wrong.append(f"{path.relative_to(REPO)}:{line}: imports the dispatcher matting.cli")
            if name.startswith("matting.commands.") and here != "matting.cli":
                wrong.append(f"{path.relative_to(REPO)}:{line}: imports the command {name}")
    assert not wrong, "\n".join(wrong)


def test_the_dispatcher_names_every_command_module():
    from matting import cli

    modules = {*cli.TOOLS.values(), cli.LIGHTNING_MODULE}
    on_disk = {module_name(p) for p in (PACKAGE / "commands").glob("*.py") if p.stem != "__init__"}
    assert modules == on_disk


def test_no_file_of_the_package_is_over_400_lines():
    long = [f"{p.relative_to(REPO)}: {n}" for p in package_files() if (n := len(p.read_text().splitlines())) > 400]
    assert not long, "files over 400 lines: " + ", ".join(long)


def test_tools_and_experiments_import_the_package_without_path_hacks():
    hacks = []
    for path in [*(REPO / "tools").rglob("*.py"), *(REPO / "experiments").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and isinstance(node.value, ast.Name) and node.value.id == "sys":
                hacks.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not hacks, "sys.path used in: " + ", ".join(hacks)


def test_the_lazy_import_map_names_each_class_where_it_is_defined_or_aliased():
    import importlib

    import matting.data as data

    for name, module in data._WHERE.items():
        value = getattr(importlib.import_module(module), name)
        assert getattr(data, name) is value, name
    assert set(data.__all__) == set(data._WHERE)
    # Every public class a data module defines is reachable by name from matting.data.
    from matting.data.base import MattingDataModule

    defined = set()
    for path in (PACKAGE / "data").rglob("*.py"):
        module = importlib.import_module(module_name(path))
        defined |= {v for v in vars(module).values() if isinstance(v, type) and issubclass(v, MattingDataModule)
                    and v.__module__ == module.__name__ and not v.__name__.startswith("_")}
    reachable = {getattr(data, n) for n in data._WHERE}
    missing = {c.__name__ for c in defined - reachable}
    assert not missing, f"data modules not in matting.data's map: {missing}"
