"""The soak's figures: ticks due, sent, recorded and lost (by cause and fault window),
tick lag, duplicate and unknown orders, health spans, CPU, and the printed tables and JSON."""

from __future__ import annotations

import json
import os
import re
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from .base import (
    BEAT_STOP_MARGIN,
    RESULTS_DIR,
    ROOT,
    fmt,
    iso,
    now,
    read_json_lines,
    stats,
    table,
)


class ReportMixin:
    """Collects what the run did and reports it."""

    def _cpu_summary(self) -> dict[str, float]:
        out: dict[str, float] = defaultdict(float)
        for key, value in self.cpu.items():
            out[re.sub(r"\d*@\d+$", "", key)] += value
        return {k: round(v, 1) for k, v in out.items()}

    # -- results -----------------------------------------------------------------------
    def collect(self) -> None:
        from django.db.models import Count

        from agents.models import Decision
        from exchanges.models import ExchangeAccount, PaperAccountState
        from trading.models import Order

        a, r = self.args, self.results
        interval = a.interval
        beat = read_json_lines(self.tmp / "beat.log")
        worker_lines = [line for p in sorted({w.log for w in self.workers}) for line in read_json_lines(p)]
        sends: dict[int, list[float]] = defaultdict(list)
        failed_sends: dict[int, list[float]] = defaultdict(list)
        send_re = re.compile(r"Sending due task agent-(\d+) ")
        fail_re = re.compile(r"Couldn't apply scheduled task agent-(\d+)")
        for line in beat:
            msg = line.get("message", "")
            m = send_re.search(msg)
            if m:
                sends[int(m.group(1))].append(line["_t"])
                continue
            m = fail_re.search(msg) or fail_re.search(line.get("exc", ""))
            if m:
                failed_sends[int(m.group(1))].append(line["_t"])
        for agent_id, fails in failed_sends.items():
            # A send whose publish failed is not a send: drop the nearest earlier "Sending".
            for tf in fails:
                cands = [s for s in sends[agent_id] if s <= tf + 0.001]
                if cands:
                    sends[agent_id].remove(max(cands))

        decisions: dict[int, list[tuple[float, str, int]]] = defaultdict(list)
        for pk, agent_id, status, started, summary in Decision.objects.filter(trigger="schedule").values_list(
                "pk", "agent_id", "status", "started_at", "summary"):
            if status == "skipped" and summary.startswith("The tick expired in the queue"):
                status = "expired"  # recorded, but it never ran: counted as lost below
            decisions[agent_id].append((started.timestamp(), status, pk))
        # Ticks due in the last seconds before beat was stopped are not counted: beat's own
        # delay reaches 5-7 s under load, and it would have sent them had the run gone on.
        cutoff = self.t_beat_stop - BEAT_STOP_MARGIN
        windows = self._windows()
        ticks: list[dict[str, Any]] = []
        extra_decisions = 0
        unsent_extra = 0
        for agent_id in self.agent_ids:
            s_list = sorted(sends.get(agent_id, []))
            d_list = sorted(decisions.get(agent_id, []))
            t, si = self.first_due[agent_id], 0
            agent_ticks: list[dict[str, Any]] = []
            while t <= cutoff:
                while si < len(s_list) and s_list[si] < t - 1.0:
                    unsent_extra += 1  # a send earlier than its schedule (should not happen)
                    si += 1
                if si < len(s_list) and s_list[si] < t + interval - 1.0:
                    agent_ticks.append({"agent": agent_id, "due": t, "sent": s_list[si]})
                    t = s_list[si] + interval
                    si += 1
                else:
                    agent_ticks.append({"agent": agent_id, "due": t, "sent": None})
                    t = t + interval
            sent_ticks = [x for x in agent_ticks if x["sent"] is not None]
            for k, tick in enumerate(sent_ticks):
                lo = tick["sent"] - 0.5
                hi = sent_ticks[k + 1]["sent"] - 0.5 if k + 1 < len(sent_ticks) else tick["sent"] + interval + 5
                inside = [d for d in d_list if lo <= d[0] < hi]
                tick["decisions"] = inside
                if len(inside) > 1:
                    extra_decisions += len(inside) - 1
            ticks.extend(agent_ticks)
        lags, beat_delays, queue_delays = [], [], []
        lost: list[dict[str, Any]] = []
        for tick in ticks:
            if tick["sent"] is None:
                tick["lost"] = "not_sent"
            elif not tick.get("decisions"):
                tick["lost"] = "sent_not_run"
            elif all(d[1] == "expired" for d in tick["decisions"]):
                tick["lost"] = "expired"
            else:
                started = tick["decisions"][0][0]
                lags.append(started - tick["due"])
                beat_delays.append(tick["sent"] - tick["due"])
                queue_delays.append(started - tick["sent"])
                continue
            tick["window"] = self._which_window(tick["due"], windows)
            lost.append(tick)
        status_counts = dict(Decision.objects.values_list("status").annotate(n=Count("id")))
        errors_by_window: dict[str, Counter] = defaultdict(Counter)
        for started, error in Decision.objects.filter(status="error").values_list("started_at", "error"):
            key = re.sub(r"\d+", "N", (error or "")[:90])
            errors_by_window[self._which_window(started.timestamp(), windows)][key] += 1
        r["ticks"] = {
            "due": len(ticks), "sent": sum(1 for t in ticks if t["sent"] is not None),
            "recorded": sum(1 for t in ticks if t.get("decisions")), "lost": len(lost),
            "lost_not_sent_by_beat": sum(1 for t in lost if t["lost"] == "not_sent"),
            "lost_sent_not_run": sum(1 for t in lost if t["lost"] == "sent_not_run"),
            "lost_expired_recorded_as_skipped": sum(1 for t in lost if t["lost"] == "expired"),
            "lost_by_window": dict(Counter(t["window"] for t in lost)),
            "lost_examples": [{"agent": t["agent"], "due": iso(t["due"]), "cause": t["lost"], "window": t["window"]}
                              for t in lost[:15]],
            "beat_publish_failures": sum(len(v) for v in failed_sends.values()),
            "extra_decisions_in_one_tick_window": extra_decisions,
            "decisions_total": sum(status_counts.values()),
            "decisions_by_status": status_counts,
            "decision_errors_by_window": {w: dict(c.most_common(4)) for w, c in errors_by_window.items()},
            "cutoff": iso(cutoff),
        }
        r["tick_lag_seconds"] = {"due_to_started": stats(lags), "beat_delay": stats(beat_delays),
                                 "queue_delay": stats(queue_delays)}
        expired = sum(1 for line in worker_lines if "Discarding revoked task" in line.get("message", "")
                      and "agents.tick" in line.get("message", ""))
        r["ticks"]["expired_in_queue"] = expired

        # Orders and duplicates, at the venue (the paper books) and in the database.
        venue_cids: Counter[str] = Counter()
        for book in PaperAccountState.objects.values_list("book", flat=True):
            for order in (book or {}).get("orders", []):
                if order.get("client_order_id"):
                    venue_cids[order["client_order_id"]] += 1
        db_orders = list(Order.objects.values_list("client_order_id", "status", "created_at", "source"))
        db_cids = Counter(c for c, *_ in db_orders)
        # A venue order is the platform's when its client id, or its parent's for the
        # attached stop-loss / take-profit ("<cid>-sl", "<cid>-tp"), is an Order row;
        # "autoclose-*" are the venue's own (liquidations).
        unknown_at_venue = sorted(c for c in venue_cids if not c.startswith("autoclose-") and c not in db_cids
                                  and re.sub(r"-(sl|tp)$", "", c) not in db_cids)
        r["orders"] = {
            "total": len(db_orders), "by_status": dict(Counter(s for _, s, *_ in db_orders)),
            "venue_orders": sum(venue_cids.values()),
            "duplicate_client_ids_at_venue": sum(1 for v in venue_cids.values() if v > 1),
            "duplicate_client_ids_in_db": sum(1 for v in db_cids.values() if v > 1),
            "venue_orders_unknown_to_platform": len(unknown_at_venue),
            "venue_orders_unknown_examples": unknown_at_venue[:10],
            "left_pending_or_unknown": sum(1 for _, s, *_ in db_orders if s in ("PENDING", "UNKNOWN")),
            "lost_orders (never reached the venue)": sorted(c for c, s, *_ in db_orders if s == "LOST"),
        }

        faults: dict[str, Any] = {}
        stuck = list(Decision.objects.filter(status="running").values_list("pk", "agent_id", "started_at"))
        if getattr(self, "kill_info", None):
            k = self.kill_info
            killed_orders = list(Order.objects.filter(client_order_id__startswith=f"at-d{k['decision']}-")
                                 .values_list("client_order_id", "status"))
            pending_then = [{"client_order_id": c, "status_at_end": Order.objects.filter(client_order_id=c)
                             .values_list("status", flat=True).first(), "at_venue": venue_cids.get(c, 0)}
                            for c in k["orders_pending_at_kill"]]
            after = [d for d in sorted(decisions.get(k["agent"], [])) if d[0] > k["t"]]
            first_ok = next((d for d in after if d[1] not in ("skipped", "error", "running")), None)
            in_window = [t for t in ticks if k["t"] - interval <= t["due"] <= k["restarted_at"] + 30]
            faults["kill_worker"] = {
                "killed_at": iso(k["t"]), "worker": k["worker"], "decision": k["decision"], "agent": k["agent"],
                "mid_decision": k["mid_decision"], "killed_while": k["when"],
                "restart_delay_seconds": self.args.restart_delay,
                "orders_of_killed_decision": killed_orders,
                "orders_pending_at_kill": pending_then,
                "duplicate_orders": r["orders"]["duplicate_client_ids_at_venue"] + r["orders"]["duplicate_client_ids_in_db"],
                "stuck_running_decisions": [{"decision": pk, "agent": ag, "started_at": st.isoformat()}
                                            for pk, ag, st in stuck],
                "agent_ticks_after_kill": [{"after_s": round(d[0] - k["t"], 1), "status": d[1]} for d in after[:4]],
                "agent_resumed_after_s": round(first_ok[0] - k["t"], 1) if first_ok else None,
                "ticks_due_in_window": len(in_window),
                "ticks_lost_in_window": sum(1 for t in in_window if t.get("lost")),
            }
        if getattr(self, "redis_info", None):
            ri = self.redis_info
            after = sorted(d[0] for ds in decisions.values() for d in ds if d[0] > ri["t_up"])
            bad = [h for h in self.health if h["t"] >= ri["t_down"] and h["code"] != 200]
            good_after = next((h for h in self.health if h["t"] >= ri["t_up"] and h["code"] == 200), None)
            reconnects = [line for line in worker_lines if line["_t"] >= ri["t_down"] and (
                "Connected to redis" in line.get("message", "") or "broker" in line.get("message", "").lower())]
            in_window = [t for t in ticks if ri["t_down"] - 1 <= t["due"] <= ri["t_up"] + 30]
            faults["redis_restart"] = {
                "down_at": iso(ri["t_down"]), "down_seconds": round(ri["t_up"] - ri["t_down"], 1),
                "signal": ri["signal"], "keys_after_restart": ri.get("keys_after_restart"),
                "first_decision_after_restart_s": round(after[0] - ri["t_up"], 1) if after else None,
                "healthz_non_200_samples": len(bad),
                "healthz_200_again_after_restart_s": round(good_after["t"] - ri["t_up"], 1) if good_after else None,
                "beat_publish_failures": r["ticks"]["beat_publish_failures"],
                "worker_broker_log_lines": [line.get("message", "")[:160] for line in reconnects[:6]],
                "ticks_due_in_window": len(in_window),
                "ticks_lost_in_window": sum(1 for t in in_window if t.get("lost")),
                "recovered_by_itself": bool(after) and good_after is not None,
            }
        if getattr(self, "outage_info", None):
            oi = self.outage_info
            opened = [line for line in worker_lines if "circuit breaker opened for account" in line.get("message", "")]
            closed = [line for line in worker_lines if "circuit breaker closed for account" in line.get("message", "")]
            window = [d for ds in decisions.values() for d in ds if oi["t_start"] <= d[0] < oi["t_end"]]
            w_orders = [o for o in db_orders if oi["t_start"] <= o[2].timestamp() < oi["t_end"]]
            after_orders = sorted(o[2].timestamp() for o in db_orders if o[2].timestamp() >= oi["t_end"]
                                  and o[1] == "FILLED")
            in_window = [t for t in ticks if oi["t_start"] <= t["due"] <= oi["t_end"]]
            still_error = ExchangeAccount.objects.filter(last_error__startswith="Circuit breaker open").count()
            faults["venue_outage"] = {
                "started_at": iso(oi["t_start"]), "seconds": oi["seconds"], "command_ok": oi["command_ok"],
                "breaker_opened": len(opened), "breaker_closed": len(closed),
                "accounts_opened": len({line["message"].split("account ")[1].split(":")[0] for line in opened}),
                "accounts_closed": len({line["message"].split("account ")[1].split()[0] for line in closed}),
                "accounts_still_open_at_end": still_error,
                "decisions_during_outage": dict(Counter(d[1] for d in window)),
                "orders_during_outage": dict(Counter(o[1] for o in w_orders)),
                "first_filled_order_after_outage_s": round(after_orders[0] - oi["t_end"], 1) if after_orders else None,
                "ticks_due_in_window": len(in_window),
                "ticks_lost_in_window": sum(1 for t in in_window if t.get("lost")),
            }
        exits = [e for e in self.events if e["kind"] == "process_exited"]
        r["process_exits"] = [{"proc": e["proc"], "at_s": round(e["t"] - self.t0, 1), "exit_code": e["exit_code"],
                               "last_error": e["last_error"]} for e in exits]
        if "redis_restart" in faults:
            ri = self.redis_info
            faults["redis_restart"]["processes_that_died"] = [
                x for x in r["process_exits"] if ri["t_down"] - self.t0 - 1 <= x["at_s"] <= ri["t_up"] - self.t0 + 30]
        r["faults"] = faults
        codes = Counter(h["code"] for h in self.health)
        r["healthz"] = {"samples": len(self.health), "by_code": {str(k): v for k, v in codes.items()},
                        "failures": self._health_spans()}
        loads = [v for _, v in self.load]
        r["load_average_1m"] = {"mean": round(statistics.fmean(loads), 2) if loads else None,
                                "max": round(max(loads), 2) if loads else None}
        r["duration_seconds"] = round(self.t_beat_stop - self.t0, 1)
        decisions_per_min = r["ticks"]["decisions_total"] / max(1.0, (self.t_beat_stop - self.t0) / 60)
        r["throughput_decisions_per_minute"] = round(decisions_per_min, 1)
        r["events"] = [{**e, "t": iso(e["t"]), "t_rel": round(e["t"] - self.t0, 1)} for e in self.events]

    def _windows(self) -> list[tuple[str, float, float]]:
        out = []
        interval = self.args.interval
        if getattr(self, "kill_info", None):
            out.append(("kill_worker", self.kill_info["t"] - interval, self.kill_info["restarted_at"] + 30))
        if getattr(self, "redis_info", None):
            out.append(("redis_restart", self.redis_info["t_down"] - 1, self.redis_info["t_up"] + 30))
        if getattr(self, "outage_info", None):
            out.append(("venue_outage", self.outage_info["t_start"], self.outage_info["t_end"] + 30))
        return out

    @staticmethod
    def _which_window(t: float, windows: list[tuple[str, float, float]]) -> str:
        for name, lo, hi in windows:
            if lo <= t <= hi:
                return name
        return "none"

    def _health_spans(self) -> list[dict[str, Any]]:
        spans, current = [], None
        for h in self.health:
            bad = h["code"] != 200
            if bad and current is None:
                current = {"from_s": round(h["t"] - self.t0, 1), "code": h["code"], "failed": h["failed"],
                           "unknown": h["unknown"]}
            elif bad and current is not None:
                for key in ("failed", "unknown"):
                    for name in h.get(key) or []:
                        if name not in (current.get(key) or []):
                            current[key] = [*(current.get(key) or []), name]
            elif not bad and current is not None:
                current["to_s"] = round(h["t"] - self.t0, 1)
                spans.append(current)
                current = None
        if current is not None:
            current["to_s"] = None
            spans.append(current)
        return spans

    def report(self) -> Path:
        r = self.results
        s, t, lag, o = r["settings"], r["ticks"], r["tick_lag_seconds"], r["orders"]
        table("Run", [
            ("database", f"{r['database']} {r['database_version']}"),
            ("agents / interval", f"{s['agents']} / {s['interval_seconds']}s"),
            ("duration", f"{r['duration_seconds']}s"),
            ("layout", s["layout"]),
            ("decision workers x threads", f"{s['workers']} x {s['concurrency']}"),
            ("reconcile/default workers x threads", f"{s['ops_workers']} x {s['ops_concurrency']}"),
            ("processes restarted by the supervisor", len(r["process_exits"])),
            ("decisions / minute", r["throughput_decisions_per_minute"]),
            ("load average (1 min) mean / max", f"{r['load_average_1m']['mean']} / {r['load_average_1m']['max']}"),
            ("cpu seconds", ", ".join(f"{k} {v}" for k, v in r["cpu_seconds"].items())),
        ])
        table("Ticks (nothing lost = lost 0)", [
            ("due", t["due"]), ("sent by beat", t["sent"]), ("recorded (a Decision row)", t["recorded"]),
            ("LOST", t["lost"]), ("  not sent by beat", t["lost_not_sent_by_beat"]),
            ("  sent, never run", t["lost_sent_not_run"]),
            ("  expired in the queue (recorded as skipped)", t["lost_expired_recorded_as_skipped"]),
            ("  by window", t["lost_by_window"] or "-"),
            ("expired in the queue (worker log)", t["expired_in_queue"]),
            ("beat publish failures", t["beat_publish_failures"]),
            ("decisions by status", t["decisions_by_status"]),
            ("decision errors by window", json.dumps(t["decision_errors_by_window"])),
        ])
        table("Tick lag, seconds (scheduled -> decision started)", [
            (f"{name} p50 / p99 / max", f"{fmt(v['p50'])} / {fmt(v['p99'])} / {fmt(v['max'])}  (n={v['n']})")
            for name, v in lag.items()])
        table("Orders", [
            ("orders (db)", o["total"]), ("by status", o["by_status"]), ("orders at the venue", o["venue_orders"]),
            ("DUPLICATE client ids at the venue", o["duplicate_client_ids_at_venue"]),
            ("duplicate client ids in the db", o["duplicate_client_ids_in_db"]),
            ("venue orders unknown to the platform", o["venue_orders_unknown_to_platform"]),
            ("left PENDING / UNKNOWN", o["left_pending_or_unknown"]),
        ])
        for name, f in r["faults"].items():
            table(f"Fault: {name}", [(k, json.dumps(v) if isinstance(v, dict | list) else v) for k, v in f.items()])
        table("/healthz", [("samples by code", r["healthz"]["by_code"]),
                           *[(f"non-200 from {span['from_s']}s to {span['to_s']}s",
                              f"{span['code']} failed={span['failed']} unknown={span['unknown']}")
                             for span in r["healthz"]["failures"]]])
        r["finished_at"] = iso(now())
        r["load_at_end"] = list(os.getloadavg())
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / ("soak-quick.json" if r["quick"] else "soak.json")
        path.write_text(json.dumps(r, indent=2, default=str))
        print(f"\nFigures written to {path.relative_to(ROOT)}; logs in {self.tmp}"
              f"{'' if self.args.keep_tmp else ' (removed; --keep-tmp keeps them)'}")
        return path
