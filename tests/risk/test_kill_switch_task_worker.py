"""The kill switch's flattening in a real Celery worker, through Redis, on a database of its own.

The trip commits while no worker runs: it returns with the flattening queued and every
position still open (nothing waited for a venue). A worker started afterwards picks the
task up from the broker and flattens both accounts, recording its progress on the switch.
"""

import json
import os
import time

import pytest

from tests.integration.test_celery_agent import (
    _manage,
    _migrated_env,
    _query,
    _start,
    _stop,
    _wait_ready,
)

pytestmark = pytest.mark.integration

SETUP = (
    "from decimal import Decimal as D\n"
    "from django.contrib.auth.models import User\n"
    "from exchanges.services import exchange_account_create\n"
    "from agents.services import agent_create\n"
    "from trading.services import order_submit\n"
    "u = User.objects.create_user('ks', password='x-long-password-1')\n"
    "for name, symbol in (('p1', 'BTC/USDT'), ('p2', 'ETH/USDT')):\n"
    "    a = exchange_account_create(owner=u, name=name, venue='paper', credentials={})\n"
    "    o = order_submit(account=a, symbol=symbol, side='BUY', position_side='LONG', quantity=D('0.01'),\n"
    "                     source='api').order\n"
    "    assert o.status == 'FILLED', (o.status, o.error)\n"
    "agent_create(owner=u, account=a, name='ks-agent', symbols=['BTC/USDT'], interval_seconds=3600)\n"
)

TRIP = (
    "import json\n"
    "from django.contrib.auth.models import User\n"
    "from trading.models import Position\n"
    "from trading.services import kill_switch_trip\n"
    "from agents.models import AgentConfig\n"
    "u = User.objects.get(username='ks')\n"
    "s = kill_switch_trip(user=u, label='user:ks', reason='integration', by=u)\n"
    "s.refresh_from_db()\n"
    "print(json.dumps({'id': s.pk, 'state': s.flatten_state, 'total': s.flatten_accounts_total,\n"
    "                  'open': Position.objects.filter(owner=u, status='open').count(),\n"
    "                  'agents': list(AgentConfig.objects.filter(owner=u).values_list('status', flat=True))}))\n"
)

PROGRESS = (
    "import json\n"
    "from risk.models import KillSwitch\n"
    "from trading.models import Position\n"
    "s = KillSwitch.objects.get(user__username='ks', active=True)\n"
    "print(json.dumps({'state': s.flatten_state, 'done': s.flatten_accounts_done,\n"
    "                  'closed': s.flatten_positions_closed, 'errors': s.flatten_errors,\n"
    "                  'open': Position.objects.filter(owner=s.user, status='open').count()}))\n"
)


def test_the_trip_returns_at_once_and_a_real_worker_flattens(tmp_path):
    env = _migrated_env(tmp_path, redis_db=12)
    _manage(env, "shell", "-c", SETUP)
    tripped = json.loads(_query(env, TRIP))
    assert tripped["state"] == "queued" and tripped["total"] == 2
    assert tripped["open"] == 2 and tripped["agents"] == ["halted"]

    worker = _start(env, "worker", "--pool", "threads", "--concurrency", "2", "--loglevel", "INFO",
                    "--hostname", f"ks-{os.getpid()}@%h", log=tmp_path / "worker.log")
    try:
        _wait_ready(worker, tmp_path / "worker.log")
        deadline, progress = time.time() + 90, {}
        while time.time() < deadline:
            progress = json.loads(_query(env, PROGRESS))
            if progress["state"] in ("done", "failed"):
                break
            time.sleep(1)
        log = (tmp_path / "worker.log").read_text()[-3000:]
        assert progress == {"state": "done", "done": 2, "closed": 2, "errors": [], "open": 0}, log
        assert "trading.kill_switch_flatten" in log
    finally:
        _stop(worker)
