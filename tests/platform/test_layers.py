"""The Django-free core is free at run time, not only in its static imports.

import-linter (``make test`` runs it) reads ``import`` statements; these tests import the
modules in a fresh interpreter, with no DJANGO_SETTINGS_MODULE, and look at what was
actually loaded: neither Django nor Celery, and no settings module named behind our back.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FRAMEWORKS = ("django", "celery", "kombu", "rest_framework", "channels")

CORE = [
    # every venue's adapter, the pool and the registry
    "exchanges.adapters.base", "exchanges.adapters.errors", "exchanges.adapters.registry",
    "exchanges.adapters.pool", "exchanges.adapters.resilience", "exchanges.adapters.paper",
    "exchanges.adapters.ccxt", "exchanges.adapters.hyperliquid",
    # the venues' user-data streams
    "exchanges.streams", "exchanges.streams.binance", "exchanges.streams.hyperliquid",
    "exchanges.streams.paper",
    # the decision graph and the pure risk policy
    "agents.graph", "risk.policy",
    # the ground's pure modules
    "alpha_platform", "alpha_platform.common.money", "alpha_platform.common.errors",
    "alpha_platform.common.secrets", "alpha_platform.common.keys", "alpha_platform.common.safe_json",
    "alpha_platform.common.vocabulary",
]


def loaded_after_importing(*modules: str) -> dict:
    code = (
        "import json, os, sys\n"
        f"for name in {list(modules)!r}:\n"
        "    __import__(name)\n"
        f"frameworks = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})\n"
        "print(json.dumps({'frameworks': frameworks,"
        " 'settings': os.environ.get('DJANGO_SETTINGS_MODULE')}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={"PATH": "", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("module", CORE)
def test_core_module_loads_neither_django_nor_celery(module):
    loaded = loaded_after_importing(module)
    assert loaded == {"frameworks": [], "settings": None}, f"{module} loaded {loaded}"


def test_the_whole_core_together_loads_neither():
    assert loaded_after_importing(*CORE) == {"frameworks": [], "settings": None}


def test_the_probe_sees_django_and_celery_when_they_are_loaded():
    # The same probe on modules that do need the frameworks: it would catch a regression.
    loaded = loaded_after_importing("alpha_platform.common.crypto", "alpha_platform.celery")
    assert "django" in loaded["frameworks"] and "celery" in loaded["frameworks"]
    assert loaded["settings"] == "alpha_platform.settings"
