"""The simulator is a stand-in for MindIE and the host, not a relative of the product: nothing under
supervisor_pd/simulator may import a supervisor_pd module outside supervisor_pd.simulator."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import supervisor_pd.simulator

SIMULATOR = Path(supervisor_pd.simulator.__file__).parent
PACKAGE_ROOT = SIMULATOR.parent.parent
ALLOWED = "supervisor_pd.simulator"
MODULE_NAME = re.compile(r"supervisor_pd(\.[A-Za-z_]\w*)+")


def modules() -> list[Path]:
    found = sorted(SIMULATOR.rglob("*.py"))
    assert len(found) > 20  # the walk sees the whole simulator
    return found


def module_name(path: Path, root: Path = PACKAGE_ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_outside(name: str) -> bool:
    return (name == "supervisor_pd" or name.startswith("supervisor_pd.")) and not (
        name == ALLOWED or name.startswith(ALLOWED + ".")
    )


def imported(path: Path, root: Path = PACKAGE_ROOT) -> list[tuple[int, str]]:
    """Every module an import statement names, anywhere in the file, relative ones resolved."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.append((node.lineno, module))
            # `from supervisor_pd import errors` imports supervisor_pd.errors
            names += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return names


def test_no_import_statement_reaches_the_product() -> None:
    offending = [
        f"{path.relative_to(PACKAGE_ROOT)}:{line}: {name}"
        for path in modules()
        for line, name in imported(path)
        if is_outside(name) and name != "supervisor_pd"
    ]
    assert offending == []


def test_no_module_named_in_a_string_is_the_product() -> None:
    # importlib.import_module("..."), `python -m ...` in the bin wrappers: dotted names in strings.
    offending = [
        f"{path.relative_to(PACKAGE_ROOT)}:{node.lineno}: {node.value}"
        for path in modules()
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
        if MODULE_NAME.fullmatch(node.value) and is_outside(node.value)
    ]
    assert offending == []


def test_the_checks_see_a_product_import(tmp_path: Path) -> None:
    sample = tmp_path / "supervisor_pd" / "simulator" / "controller" / "sample.py"
    sample.parent.mkdir(parents=True)
    sample.write_text(
        "import supervisor_pd.simulator.knobs\n"
        "def f():\n"
        "    from ... import errors\n"
        "    from ...formats.ranktable import SERVER_GROUP\n"
        "    from ..host import MARKER\n"
    )
    outside = [name for _, name in imported(sample, tmp_path) if is_outside(name) and name != "supervisor_pd"]
    assert outside == [
        "supervisor_pd.errors",
        "supervisor_pd.formats.ranktable",
        "supervisor_pd.formats.ranktable.SERVER_GROUP",
    ]


def test_importing_every_simulator_module_loads_no_product_module() -> None:
    names = [module_name(path) for path in modules() if path.name != "__main__.py"]
    code = (
        "import importlib, json, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('supervisor_pd'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE_ROOT, timeout=60
    )
    loaded = json.loads(result.stdout)
    assert set(names) <= set(loaded)
    assert [name for name in loaded if is_outside(name) and name != "supervisor_pd"] == []
