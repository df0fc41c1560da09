"""One execution layer: no module other than the execution layer reaches the paper broker."""

import ast
from pathlib import Path

import agent_pipeline

PACKAGE = Path(agent_pipeline.__file__).parent
ALLOWED = {PACKAGE / "trading" / "execution.py", PACKAGE / "trading" / "broker.py"}
BROKER_NAMES = {"PaperBroker", "BrokerResult", "_broker"}


def _offences(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module.endswith("trading.broker") or
                (node.module.endswith("trading") and any(a.name == "broker" for a in node.names))):
            found.append(f"{path}:{node.lineno} imports the broker")
        elif isinstance(node, ast.Import) and any(a.name.endswith("trading.broker") for a in node.names):
            found.append(f"{path}:{node.lineno} imports the broker")
        elif isinstance(node, ast.Attribute) and node.attr in BROKER_NAMES:
            found.append(f"{path}:{node.lineno} touches {node.attr}")
        elif isinstance(node, ast.Name) and node.id in BROKER_NAMES:
            found.append(f"{path}:{node.lineno} names {node.id}")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "trading.broker" in node.value:
            found.append(f"{path}:{node.lineno} names the broker module in a string (dynamic import?)")
    return found


def test_only_the_execution_layer_reaches_the_broker():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path not in ALLOWED:
            offences += _offences(path)
    assert offences == [], "orders must go through agent_pipeline.trading.execution:\n" + "\n".join(offences)


def test_the_scan_catches_a_bypass(tmp_path):
    rogue = tmp_path / "rogue.py"
    rogue.write_text("from agent_pipeline.trading.broker import PaperBroker\n"
                     "import importlib\nimportlib.import_module('agent_pipeline.trading.broker')\n"
                     "def sneak(layer, order, decision):\n    return layer._broker.submit(order, decision)\n")
    assert len(_offences(rogue)) >= 3


def test_the_package_does_not_export_the_broker():
    import agent_pipeline.trading as trading

    assert not any("Broker" in name for name in trading.__all__)
