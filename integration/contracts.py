"""Load a unit contract suite from tests/contract by path, so integration tests rerun the same class.

The unit suites live in ``tests/contract/``, which is not a package; loading by path works
whatever ``sys.path`` holds, and registering the module keeps pytest's assertion rewriting and
class identity stable.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

CONTRACTS = Path(__file__).resolve().parents[1] / "tests" / "contract"


def load_contract(filename: str, module_name: str) -> ModuleType:
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, CONTRACTS / filename)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module
