"""The soak's faults, each on its schedule: SIGKILL the worker running a decision, restart
Redis (its data kept), and a venue outage through ``manage.py paper_outage``."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time

from .base import (
    Proc,
    now,
)


class FaultsMixin:
    """The three scripted faults."""

    # -- faults ------------------------------------------------------------------------
    def fault_kill_worker(self) -> None:
        """SIGKILL the worker in the middle of a decision: preferably while one of its
        orders is PENDING (saved, being sent to the venue: the case where a retry could
        double-place), else while a decision is running."""
        from agents.models import Decision
        from trading.models import Order

        wait = max(60, self.args.interval * 2)
        start = now()
        while now() < start + wait:
            target = None
            pending = list(Order.objects.filter(status="PENDING", source="agent",
                                                client_order_id__startswith="at-d").values_list("client_order_id",
                                                                                                flat=True)[:1])
            if pending:
                decision_id = int(pending[0][4:].split("-")[0])
                agent_id = Decision.objects.filter(pk=decision_id).values_list("agent_id", flat=True).first()
                target = (decision_id, agent_id, "order PENDING")
            elif now() > start + wait * 0.6:
                running = list(Decision.objects.filter(
                    status="running", trigger="schedule",
                    started_at__gte=dt.datetime.fromtimestamp(now() - 20, dt.UTC)).order_by("-started_at")
                    .values_list("pk", "agent_id")[:1])
                if running:
                    target = (*running[0], "decision running")
            if target and target[1] is not None:
                decision_id, agent_id, why = target
                victim = self._worker_running(agent_id)
                starts_before = len(victim.starts)
                victim.send_signal(signal.SIGKILL)
                t_kill = now()
                victim.popen.wait(10)
                still = Decision.objects.filter(pk=decision_id).values_list("status", flat=True).first()
                in_flight = list(Order.objects.filter(status="PENDING").values_list("client_order_id", flat=True))
                self.event("kill_worker", worker=victim.name, pid=victim.pid, decision=decision_id, agent=agent_id,
                           when=why, decision_status_after_kill=still, orders_pending_at_kill=in_flight)
                self.kill_info = {"t": t_kill, "decision": decision_id, "agent": agent_id, "worker": victim.name,
                                  "mid_decision": still == "running", "when": why,
                                  "orders_pending_at_kill": in_flight}
                # The supervisor (as systemd / compose would) starts it again.
                deadline = now() + self.args.restart_delay + 30
                while len(victim.starts) == starts_before and now() < deadline:
                    time.sleep(0.2)
                self.kill_info["restarted_at"] = victim.starts[-1] if len(victim.starts) > starts_before else now()
                return
            time.sleep(0.01)
        self.event("kill_worker_skipped", reason="no running decision seen")

    def _worker_running(self, agent_id: int) -> Proc:
        """The decision worker whose log last received a tick for this agent."""
        candidates = [p for p in self.workers if p.role == "decisions"]
        if len(candidates) == 1:
            return candidates[0]
        best, best_t = candidates[0], 0.0
        for proc in candidates:
            try:
                with open(proc.log, "rb") as f:
                    f.seek(max(0, proc.log.stat().st_size - 200_000))
                    tail = f.read().splitlines()
            except OSError:
                continue
            for raw in reversed(tail):
                if b'"agents.tick"' in raw and b"received" in raw and f'"args": "[{agent_id}'.encode() in raw:
                    try:
                        t = json.loads(raw).get("time", "")
                    except ValueError:
                        break
                    ts = dt.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
                    if ts > best_t:
                        best, best_t = proc, ts
                    break
        return best

    def fault_redis_restart(self) -> None:
        import redis as redis_lib

        sig = signal.SIGKILL if self.args.redis_kill_signal.upper() == "KILL" else signal.SIGTERM
        redis_proc = self.procs["redis"]
        t_down = now()
        redis_proc.intentional = True
        redis_proc.stop(timeout=30, sig=sig)
        self.event("redis_stopped", signal=self.args.redis_kill_signal.upper())
        time.sleep(self.args.redis_down)
        self.start_redis()
        t_up = now()
        self.event("redis_started", down_seconds=round(t_up - t_down, 1))
        self.redis_info = {"t_down": t_down, "t_up": t_up, "signal": self.args.redis_kill_signal.upper()}
        try:
            self.redis_info["keys_after_restart"] = redis_lib.Redis.from_url(self.env["REDIS_URL"]).dbsize()
        except Exception:
            pass

    def fault_venue_outage(self) -> None:
        import io

        from django.core.management import call_command

        seconds = self.args.outage_seconds
        out = io.StringIO()
        t_start = now()
        # The management command itself, run in this process (already set up) so that the
        # outage starts now, not after a Django start-up under load.
        call_command("paper_outage", "--seconds", str(seconds), "--reason", "soak outage", stdout=out)
        self.event("venue_outage_on", seconds=seconds, command=out.getvalue().strip())
        self.outage_info = {"t_start": t_start, "t_end": t_start + seconds, "seconds": seconds, "command_ok": True}
