"""Structured logs: LOG_FORMAT=json gives one JSON object per line, with the extra fields
(the decision's and the order's ids) and the same redaction as the plain lines."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from alpha_platform.common.logging import JsonFormatter, RedactSecretsFilter

ROOT = Path(__file__).resolve().parents[2]
KEY = "0x" + "ab" * 32


def _capture(fn, *, with_filter=True) -> list[dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    if with_filter:
        handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("tests.ops.json")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        fn(logger)
    finally:
        logger.removeHandler(handler)
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_the_standard_fields_and_the_extras():
    [line] = _capture(lambda log: log.info(
        "order %s cid=%s status=%s", 7, "at-d3-0", "FILLED",
        extra={"order": {"order_id": 7, "client_order_id": "at-d3-0", "quantity": Decimal("0.010"),
                         "status": "FILLED", "rule": ""}}))
    assert line["level"] == "INFO" and line["logger"] == "tests.ops.json"
    assert line["message"] == "order 7 cid=at-d3-0 status=FILLED"
    assert line["time"].endswith("Z") and "T" in line["time"]
    assert line["order"] == {"order_id": 7, "client_order_id": "at-d3-0", "quantity": "0.010",
                             "status": "FILLED", "rule": ""}
    assert isinstance(line["process"], int)


def test_secrets_are_redacted_in_the_message_the_extras_and_the_traceback():
    def emit(log):
        log.warning("connecting with api_key=AKIA123456 and %s", KEY,
                    extra={"account": {"api_secret": "s3cr3t-value", "note": f"Bearer abc.def.ghi {KEY}",
                                       "nested": [{"password": "hunter2"}]},
                           "token": "tok-123"})
        try:
            raise ValueError(f"bad private_key={KEY}")
        except ValueError:
            log.exception("failed with secret=topsecret")

    for with_filter in (True, False):  # the formatter redacts even without the filter
        lines = _capture(emit, with_filter=with_filter)
        text = json.dumps(lines)
        for secret in ("AKIA123456", "ab" * 32, "s3cr3t-value", "hunter2", "abc.def.ghi", "tok-123", "topsecret"):
            assert secret not in text, (with_filter, secret)
        assert lines[0]["account"]["api_secret"] == "********"
        assert lines[1]["level"] == "ERROR" and "ValueError" in lines[1]["exc"]


def test_unserialisable_extras_become_strings():
    class Thing:
        def __repr__(self):
            return "<Thing>"

        __str__ = __repr__

    [line] = _capture(lambda log: log.info("x", extra={"thing": Thing(), "when": None, "ok": True}))
    assert line["thing"] == "<Thing>" and line["when"] is None and line["ok"] is True


def test_log_format_json_is_what_the_settings_select():
    code = ("import logging, django; django.setup(); "
            "logging.getLogger('agents.services').info('decision %s agent=%s status=%s', 5, 2, 'recorded', "
            "extra={'decision': {'decision_id': 5, 'agent_id': 2, 'status': 'recorded'}})")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "alpha_platform.settings", "LOG_FORMAT": "json",
           "ALPHA_ENV": "testing"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    [line] = [json.loads(x) for x in out.stderr.splitlines() if x.startswith("{")]
    assert line["decision"] == {"decision_id": 5, "agent_id": 2, "status": "recorded"}
    assert line["logger"] == "agents.services" and line["message"] == "decision 5 agent=2 status=recorded"
    bad = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=ROOT,
                         env={**env, "LOG_FORMAT": "xml"}, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "LOG_FORMAT must be plain or json" in bad.stderr
