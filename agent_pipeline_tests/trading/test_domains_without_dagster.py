"""Logic apart from wiring: the domain packages and the top-level modules (all but ``definitions.py``) never import
Dagster, neither in their source nor, once imported, through anything they pull in. Only ``agent_pipeline/defs``,
``definitions.py`` and the CLI (which starts Dagster jobs) may."""

import ast
import subprocess
import sys
from pathlib import Path

import agent_pipeline

PACKAGE = Path(agent_pipeline.__file__).parent
DOMAINS = ("agents", "allocation", "market", "metrics", "reward", "store", "trading")
WIRING = ("agent_pipeline.defs", "agent_pipeline.definitions")


def domain_modules() -> list[Path]:
    top_level = [p for p in sorted(PACKAGE.glob("*.py")) if p.name != "definitions.py"]
    return top_level + [p for d in DOMAINS for p in sorted((PACKAGE / d).rglob("*.py"))]


def _is_dagster(module: str) -> bool:
    return module.split(".")[0].startswith("dagster") or module.startswith(WIRING)


def _dynamic_import(node: ast.AST) -> str | None:
    """The module named by ``importlib.import_module("...")`` or ``__import__("...")``, if that is what this is."""
    if not isinstance(node, ast.Call) or not node.args or not isinstance(node.args[0], ast.Constant):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
    value = node.args[0].value
    return value if name in ("import_module", "__import__") and isinstance(value, str) else None


def offences(path: Path) -> list[str]:
    """Every import of dagster (or of the Dagster wiring) in one file, by line, dynamic imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [f"{path}:{node.lineno} imports {a.name}" for a in node.names if _is_dagster(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and _is_dagster(node.module):
            found.append(f"{path}:{node.lineno} imports from {node.module}")
        elif (module := _dynamic_import(node)) is not None and _is_dagster(module):
            found.append(f"{path}:{node.lineno} imports {module} at run time")
    return found


def test_domain_sources_never_import_dagster():
    paths = domain_modules()
    assert len(paths) > 50 and PACKAGE / "pipeline_settings.py" in paths  # the scan sees the whole domain code
    found = [line for path in paths for line in offences(path)]
    assert found == [], "domain code takes config and data as arguments; Dagster wiring lives in defs/:\n" + \
        "\n".join(found)


def test_importing_every_domain_module_loads_no_dagster():
    names = [".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts) for p in domain_modules()]
    names = [n.removesuffix(".__init__") for n in names]
    script = ("import importlib, sys\n"
              f"for name in {names!r}:\n    importlib.import_module(name)\n"
              "print(sorted(m for m in sys.modules if m.split('.')[0].startswith('dagster')))\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         cwd=PACKAGE.parent)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", f"a domain import pulls in Dagster: {out.stdout.strip()}"


def test_the_scan_catches_each_way_in(tmp_path):
    rogue = tmp_path / "rogue.py"
    rogue.write_text("import dagster as dg\nfrom dagster_duckdb import DuckDBResource\n"
                     "from agent_pipeline.defs.resources import StoreResource\n"
                     "import importlib\nimportlib.import_module('dagster')\n"
                     "from .sibling import fine\nimport dagster_pipes\nSOURCES = ('dagster', 'cli')\n"
                     "__import__('agent_pipeline.definitions')\n")
    assert sorted(int(line.split(":", 1)[1].split()[0]) for line in offences(rogue)) == [1, 2, 3, 5, 7, 9]
