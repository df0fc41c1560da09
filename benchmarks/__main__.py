"""Run every benchmark module in this folder that defines ``main()``, one after the other."""

import importlib
import pkgutil
import sys
from pathlib import Path

if __name__ == "__main__":
    only = set(sys.argv[1:])
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("_") or (only and info.name not in only):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        if hasattr(module, "main"):
            print(f"\n## {info.name}\n", flush=True)
            module.main()
