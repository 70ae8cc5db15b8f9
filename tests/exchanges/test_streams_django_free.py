"""The venue stream classes are Django-free, at run time too: importing them in a fresh
interpreter loads no more of Django than the adapters' own base module does (the
project package's Celery app makes kombu probe ``django.utils`` for everyone), and
nothing of the ORM, the app registry or the platform's models."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def django_modules(*modules: str) -> set[str]:
    code = (f"import json, sys\nimport {', '.join(modules)}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'django' or m.startswith(('django.', "
            "'exchanges.models', 'trading', 'exchanges.services')))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_stream_modules_load_no_django():
    loaded = django_modules("exchanges.streams", "exchanges.streams.binance", "exchanges.streams.hyperliquid",
                            "exchanges.streams.paper")
    assert loaded <= django_modules("exchanges.adapters.base")
    assert not {m for m in loaded if m.startswith(("django.db", "django.apps", "trading", "exchanges.models"))}
