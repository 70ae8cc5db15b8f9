"""Shared set-up for the benchmark scripts under bench/ (not a test module, not imported
by the platform).

Each script is standalone (``.venv/bin/python bench/<name>.py [--quick]``). ``Bench``
prepares a private environment BEFORE Django is imported: a temp dir (ALPHA_VAR_DIR),
a fresh Fernet key, SQLite in the temp dir (or a throw-away database created next to
the PostgreSQL ``--database-url`` given), an embedded redis-server on a free port
(unless ``--redis-url``), then ``django.setup()`` and ``migrate``. Everything it started
(child process groups, the temp database, the temp dir) is stopped/removed on exit,
normal or not. Figures are printed as tables and written as JSON to var/bench/<name>.json
(var/ is git-ignored).

Layout: ``paths`` (root, sys.path, results folder), ``stats`` (figures, tables), ``machine``
(ports, CPU seconds), ``stack`` (``Bench``: the private environment), ``fixtures`` (platform
objects), ``books`` (the paper book under load). Importing the package puts the root on sys.path
first, as the single module did.
"""

from . import paths  # noqa: F401  (first: the root and scripts/ on sys.path)

# isort: split
from .books import (
    QTY,
    STORES,
    SYMBOL,
    LiveBookStore,
    book_bytes,
    place_alternating,
    prefill_book,
    trader_with_store,
)
from .fixtures import (
    Probe,
    QueryCounter,
    fresh_account,
    make_agent,
    make_paper_account,
    make_user,
    relax_risk,
)
from .machine import (
    _proc_field,
    cpu_of_processes,
    free_port,
    machine_cpu_seconds,
    machine_info,
    proc_cpu_seconds,
)
from .paths import (
    PYTHON,
    RESULTS_DIR,
    ROOT,
)
from .stack import (
    EXTRA_PAPER_SYMBOLS,
    Bench,
    _json_default,
    base_parser,
    create_temp_database,
    drop_temp_database,
)
from .stats import (
    fmt,
    load,
    median_of,
    percentile,
    print_table,
    ratio,
    summarize,
    timed,
)

__all__ = [
    "ROOT",
    "RESULTS_DIR",
    "PYTHON",
    "percentile",
    "summarize",
    "median_of",
    "ratio",
    "fmt",
    "print_table",
    "load",
    "timed",
    "free_port",
    "proc_cpu_seconds",
    "cpu_of_processes",
    "machine_cpu_seconds",
    "_proc_field",
    "machine_info",
    "base_parser",
    "create_temp_database",
    "drop_temp_database",
    "EXTRA_PAPER_SYMBOLS",
    "Bench",
    "_json_default",
    "make_user",
    "make_paper_account",
    "relax_risk",
    "make_agent",
    "QueryCounter",
    "Probe",
    "fresh_account",
    "SYMBOL",
    "QTY",
    "LiveBookStore",
    "STORES",
    "trader_with_store",
    "book_bytes",
    "place_alternating",
    "prefill_book",
]
