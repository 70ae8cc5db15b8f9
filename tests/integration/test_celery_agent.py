"""A real Celery worker and a real Celery beat, with Redis, running an agent end to end.

The processes run as `make run` starts them (threads pool, DatabaseScheduler) against a
file database of their own; this test only reads what they record.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def _manage(env, *args, timeout=120):
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, check=True)


def _start(env, *args, log: Path):
    fh = open(log, "w")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "alpha_platform", *args], cwd=ROOT, env=env,
                            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(proc, log: Path, timeout: float = 120) -> None:
    """Wait for the worker's ready line (as tests/e2e/stack.py does): a task sent before it is
    consumed together with the ones after it, in no particular order."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        text = log.read_text() if log.exists() else ""
        if "ready." in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited ({proc.returncode}) before it was ready\n{text[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"the worker did not log 'ready.' within {timeout} s\n{log.read_text()[-3000:]}")


def _stop(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def _query(env, code):
    out = _manage(env, "shell", "-c", code).stdout.strip().splitlines()
    return out[-1] if out else ""


def _migrated_env(tmp_path, *, redis_db: int, **extra: str) -> dict:
    """The processes' environment (as `make run` has it, on a file database of their own), migrated."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST", "DJANGO_SETTINGS"))}
    env.update(DJANGO_SETTINGS_MODULE="alpha_platform.settings", ALPHA_ENV="testing", ALPHA_VAR_DIR=str(tmp_path),
               DATABASE_URL=f"sqlite:///{tmp_path}/db.sqlite3", CREDENTIALS_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
               REDIS_URL=os.environ["REDIS_URL"].rsplit("/", 1)[0] + f"/{redis_db}", **extra)
    _manage(env, "migrate", "--noinput", "-v", "0")
    return env


def test_beat_schedules_and_worker_runs_an_agent(tmp_path):
    env = _migrated_env(tmp_path, redis_db=9, RECONCILE_INTERVAL_SECONDS="5")
    _manage(env, "shell", "-c", (
        "from django.contrib.auth.models import User\n"
        "from exchanges.services import exchange_account_create\n"
        "from agents.services import agent_create\n"
        "u = User.objects.create_user('it', password='x-long-password-1')\n"
        "a = exchange_account_create(owner=u, name='Paper', venue='paper', credentials={})\n"
        "agent_create(owner=u, account=a, name='it-agent', symbols=['BTC/USDT', 'ETH/USDT'], interval_seconds=10)\n"))
    worker = _start(env, "worker", "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO",
                    "--hostname", f"it-{os.getpid()}@%h", log=tmp_path / "worker.log")
    beat = _start(env, "beat", "--loglevel", "INFO", "--pidfile=", "--schedule", str(tmp_path / "beat"),
                  log=tmp_path / "beat.log")
    try:
        deadline = time.time() + 90
        count = 0
        while time.time() < deadline:
            count = int(_query(env, "from agents.models import Decision; "
                                    "print(Decision.objects.filter(trigger='schedule').exclude(status='running').count())"))
            if count >= 2:
                break
            time.sleep(3)
        logs = (tmp_path / "worker.log").read_text()[-3000:] + (tmp_path / "beat.log").read_text()[-2000:]
        assert count >= 2, f"beat + worker recorded {count} scheduled decisions\n{logs}"
        statuses = _query(env, "from agents.models import Decision; "
                               "print(sorted(set(Decision.objects.values_list('status', flat=True))))")
        assert "error" not in statuses, logs
        # The start-up and periodic reconciliation ran in the worker too.
        assert "trading.account_reconcile" in (tmp_path / "worker.log").read_text()
        audit = _query(env, "from agents.models import Decision; d = Decision.objects.exclude(status='running')"
                            ".first(); print(bool(d.messages) and bool(d.context) and 'decide' in d.node_timings)")
        assert audit == "True"
    finally:
        _stop(beat)
        _stop(worker)


def test_a_tick_that_expired_in_the_queue_is_recorded_as_skipped(tmp_path):
    """A worker that was behind drops an expired tick: the tick still leaves a Decision row,
    so the agent's history shows the gap and why."""
    env = _migrated_env(tmp_path, redis_db=10)
    _manage(env, "shell", "-c", (
        "from datetime import timedelta\n"
        "from django.utils import timezone\n"
        "from django.contrib.auth.models import User\n"
        "from exchanges.services import exchange_account_create\n"
        "from agents.services import agent_create\n"
        "from agents.tasks import agent_tick_task\n"
        "u = User.objects.create_user('ex', password='x-long-password-1')\n"
        "a = exchange_account_create(owner=u, name='Paper', venue='paper', credentials={})\n"
        "g = agent_create(owner=u, account=a, name='late', symbols=['BTC/USDT'], interval_seconds=3600)\n"
        "agent_tick_task.apply_async(args=[g.pk], expires=timezone.now() - timedelta(seconds=5))\n"))
    worker = _start(env, "worker", "--pool", "threads", "--concurrency", "2", "--loglevel", "INFO",
                    "-Q", "decisions,reconcile,celery", "--hostname", f"ex-{os.getpid()}@%h", log=tmp_path / "worker.log")
    try:
        deadline, rows = time.time() + 60, "[]"
        while time.time() < deadline:
            rows = _query(env, "from agents.models import Decision; "
                               "print(list(Decision.objects.values_list('status', 'summary')))")
            if "expired" in rows:
                break
            time.sleep(2)
        log = (tmp_path / "worker.log").read_text()[-3000:]
        assert "'skipped', 'The tick expired in the queue" in rows, f"{rows}\n{log}"
        assert "executed" not in rows and "held" not in rows, rows  # the stale tick did not run
    finally:
        _stop(worker)


def test_the_time_limit_holds_under_the_threads_pool(tmp_path):
    """Celery's threads pool ignores soft and hard time limits: the decision enforces its own.
    A model that answers in 40 s against a 10 s limit: the decision ends at the limit, as error,
    and a tick of the same agent sent while it runs is skipped (the lock is held)."""
    from tests.fakes.openai_server import FakeOpenAIServer

    delay, key = 40.0, "sk-integration-0123456789"
    with FakeOpenAIServer(api_key=key) as server:
        server.script(server.forever(server.delayed(server.reply("hold"), delay)))
        env = _migrated_env(tmp_path, redis_db=11, AGENT_TICK_TIME_LIMIT="10", OPENAI_API_KEY=key,
                            OPENAI_BASE_URL=server.url + "/v1", LLM_MAX_RETRIES="0", LLM_TIMEOUT_SECONDS="60")
        _manage(env, "shell", "-c", (
            "from django.contrib.auth.models import User\n"
            "from exchanges.services import exchange_account_create\n"
            "from agents.services import agent_create\n"
            "u = User.objects.create_user('tl', password='x-long-password-1')\n"
            "a = exchange_account_create(owner=u, name='Paper', venue='paper', credentials={})\n"
            "agent_create(owner=u, account=a, name='slow', symbols=['BTC/USDT'], model_name='gpt-4o-mini',\n"
            "             interval_seconds=3600)\n"))
        worker = _start(env, "worker", "--pool", "threads", "--concurrency", "4", "--loglevel", "INFO",
                        "-Q", "decisions,reconcile,celery", "--hostname", f"tl-{os.getpid()}@%h",
                        log=tmp_path / "worker.log")
        try:
            _wait_ready(worker, tmp_path / "worker.log")
            # The second tick of the same agent is sent only once the first one runs: its row
            # is 'running' and it holds the agent's lock (the row is claimed just before the
            # lock is taken). Both are waited for with a bound, never a fixed sleep.
            sent = _query(env, (
                "import time\n"
                "from agents.models import AgentConfig, Decision\n"
                "from agents.services.lock import AgentLock\n"
                "from agents.tasks import agent_tick_task\n"
                "pk = AgentConfig.objects.get().pk\n"
                "agent_tick_task.apply_async(args=[pk], task_id='tick-slow')\n"
                "deadline = time.monotonic() + 60\n"
                "while time.monotonic() < deadline and not (\n"
                "        Decision.objects.filter(tick_id='tick-slow', status='running').exists()\n"
                "        and AgentLock.locked(pk)):\n"
                "    time.sleep(0.05)\n"
                "running = Decision.objects.filter(tick_id='tick-slow', status='running').exists() and AgentLock.locked(pk)\n"
                "if running:\n"
                "    agent_tick_task.apply_async(args=[pk], task_id='tick-beside')\n"
                "print('sent' if running else 'the first tick did not start within 60 s')\n"))
            assert sent == "sent", f"{sent}\n{(tmp_path / 'worker.log').read_text()[-3000:]}"
            deadline = time.time() + 90
            rows = "[]"
            while time.time() < deadline:
                rows = _query(env, "from agents.models import Decision; print(sorted((d.tick_id, d.status, d.error, "
                                   "(d.finished_at - d.started_at).total_seconds() if d.finished_at else None) "
                                   "for d in Decision.objects.all()))")
                if rows.count("'tick-") == 2 and "'running'" not in rows:
                    break
                time.sleep(1)
            log = (tmp_path / "worker.log").read_text()[-3000:]
            found = eval(rows)  # noqa: S307 - our own repr of tuples of plain values
            assert [r[0] for r in found] == ["tick-beside", "tick-slow"], f"{rows}\n{log}"
            beside, slow = found
            assert beside[1] == "skipped", f"{rows}\n{log}"
            assert slow[1] == "error" and "time limit of 10 s reached" in slow[2], f"{rows}\n{log}"
            assert slow[3] < delay, rows  # ended at its limit, not when the model answered
            assert len(server.requests) == 1
        finally:
            _stop(worker)
