"""The fast loop (``-m "not slow"``) stays fast: a test that trains, spawns a process or runs a
command end to end is marked ``slow``.

What counts is read from the test's source: calls that train (``build_cli``, ``.fit(``, the
``tiny_fit`` / ``tiny_ckpt`` fixtures), spawn (``subprocess``, ``run_matting``, worker pools) or run a
command (``cli.main``, ``<command>.main([...])``), directly or through a helper or fixture of the
same module.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

TESTS = Path(__file__).parent
HEAVY = re.compile(
    r"subprocess|run_matting|Popen|build_cli|smoke_cli|make_tiny_checkpoint|\.fit\(|\.validate\(|"
    r"cli\.main|cli_main|\bmain\("
)
HEAVY_FIXTURES = {"tiny_fit", "tiny_ckpt"}


def _is_slow(node: ast.FunctionDef, source: str) -> bool:
    return any("mark.slow" in ast.get_source_segment(source, d) for d in node.decorator_list)


def heavy_tests(path: Path) -> tuple[list[str], set[str]]:
    """(tests that train / spawn / run a command, tests marked slow) of one test module."""
    source = path.read_text()
    tree = ast.parse(source)
    module_slow = "pytest.mark.slow" in "".join(
        ast.get_source_segment(source, n) for n in tree.body
        if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in n.targets))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    heavy: set[str] = set()
    changed = True
    while changed:  # a helper or fixture that is heavy makes its callers heavy
        changed = False
        for name, fn in functions.items():
            if name in heavy:
                continue
            body = ast.get_source_segment(source, fn).split("\n", 1)[-1]
            used = {a.arg for a in fn.args.args} | {c.func.id for c in ast.walk(fn)
                                                    if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)}
            if HEAVY.search(body) or used & (heavy | HEAVY_FIXTURES):
                heavy.add(name)
                changed = True
    tests = [n for n in functions if n.startswith("test_")]
    slow = {n for n in tests if module_slow or _is_slow(functions[n], source)}
    return [n for n in tests if n in heavy], slow


def test_tests_that_train_spawn_or_run_a_command_are_marked_slow():
    unmarked = []
    for path in sorted(TESTS.glob("test_*.py")):
        if path.name == Path(__file__).name:
            continue
        heavy, slow = heavy_tests(path)
        unmarked += [f"{path.name}::{name}" for name in heavy if name not in slow]
    assert not unmarked, "mark these @pytest.mark.slow:\n" + "\n".join(unmarked)


def test_the_rule_sees_a_training_test(tmp_path):
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import pytest\n\n"
        "def helper(x):\n    return build_cli(x)\n\n"
        "def test_trains():\n    helper(1)\n\n"
        "@pytest.mark.slow\ndef test_marked(tiny_ckpt):\n    pass\n\n"
        "def test_plain():\n    assert 1\n"
    )
    heavy, slow = heavy_tests(sample)
    assert heavy == ["test_trains", "test_marked"] and slow == {"test_marked"}
