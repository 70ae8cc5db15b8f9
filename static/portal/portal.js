/* AlphaTransformer portal: formats numbers and times, and keeps the page live.
 *
 * Events from /ws/updates/?stream=user (live.js) are dispatched by type:
 *   order      -> rows of every table[data-live="orders"] (upsert; new rows on top where
 *                 the table has data-prepend), a toast when filled / rejected / cancelled
 *   position   -> rows of table[data-live="positions"] (open: upsert, closed: removed)
 *   balance    -> the account's balance card, the equity / PnL / loss-limit figures, and
 *                 "alpha:balance" for the equity chart (dashboard.js)
 *   decision   -> rows of table[data-live="decisions"], the agent's "last decision" cell
 *   agent      -> the agent's state badge and its pause / resume buttons
 *   risk.event -> the kill-switch banner (tripped / lifted)
 *   kill_switch -> the flattening's progress (banner line, the kill switch page's region)
 * Elements with data-refresh-on="<type>:<id>" are re-fetched when that object changes,
 * and every [data-region] is re-fetched after a reconnect (events may have been missed).
 * Everything is built with DOM calls and textContent: event data never becomes HTML.
 */
(function () {
  "use strict";

  const refsEl = document.getElementById("portal-refs");
  const refs = refsEl ? JSON.parse(refsEl.textContent) : { accounts: {}, agents: {} };

  // ---------------------------------------------------------------- formatting
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const DASH = "—";

  function toNumber(v) {
    if (v === null || v === undefined) return null;
    const s = String(v).trim();
    if (s === "" || s === "None") return null;
    const n = Number(s);
    return Number.isFinite(n) ? n : null;
  }

  function fmtPrice(n) {
    const a = Math.abs(n);
    if (a >= 1000) return money.format(n);
    if (a >= 1) return n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 4 });
    if (a === 0) return "0";
    return n.toLocaleString("en-US", { maximumSignificantDigits: 6 });
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function fmtTime(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return null;
    const now = new Date();
    const hms = pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds());
    if (d.toDateString() === now.toDateString()) return hms;
    return d.toLocaleDateString("en-US", { month: "short", day: "numeric" }) + " " + hms;
  }

  const fmt = {
    usd: (n) => money.format(n),
    pnl: (n) => (n > 0 ? "+" : "") + money.format(n),
    qty: (n) => n.toLocaleString("en-US", { maximumFractionDigits: 8 }),
    price: fmtPrice,
    pct: (n) => (n * 100).toLocaleString("en-US", { maximumFractionDigits: 1 }) + "%",
    lev: (n) => n.toLocaleString("en-US", { maximumFractionDigits: 2 }) + "×",
    cost: (n) => "$" + (n !== 0 && Math.abs(n) < 0.01 ? n.toFixed(5) : n.toFixed(2)),
  };

  /* Set an element's value: keeps the raw value in data-raw, shows the formatted one. */
  function setValue(el, raw) {
    const kind = el.dataset.fmt;
    el.dataset.raw = raw === null || raw === undefined ? "" : String(raw);
    if (kind === "time") {
      const text = fmtTime(el.dataset.raw);
      if (el.dataset.raw) { el.setAttribute("datetime", el.dataset.raw); el.title = new Date(el.dataset.raw).toLocaleString(); }
      el.textContent = text || el.textContent || DASH;
      return;
    }
    const n = toNumber(el.dataset.raw);
    if (n === null || !fmt[kind]) {
      el.textContent = el.dataset.raw || DASH;
    } else {
      el.textContent = fmt[kind](n);
    }
    if (kind === "pnl") {
      el.classList.toggle("up", n !== null && n > 0);
      el.classList.toggle("down", n !== null && n < 0);
    }
  }

  function formatAll(root) {
    (root || document).querySelectorAll("[data-fmt]").forEach((el) => {
      const raw = el.dataset.raw !== undefined ? el.dataset.raw
        : el.dataset.fmt === "time" ? (el.getAttribute("datetime") || "") : el.textContent.trim();
      setValue(el, raw);
    });
    (root || document).querySelectorAll(".gauge[data-used]").forEach(setGauge);
  }

  function setGauge(gauge) {
    const used = Math.max(0, Math.min(1, toNumber(gauge.dataset.used) || 0));
    gauge.firstElementChild.style.width = (used * 100).toFixed(1) + "%";
    gauge.dataset.level = used >= 0.8 ? "danger" : used >= 0.5 ? "warn" : "ok";
  }

  // ---------------------------------------------------------------- DOM helpers
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    Object.entries(props || {}).forEach(([k, v]) => {
      if (v === null || v === undefined || v === false) return;
      if (k === "class") el.className = v;
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (k === "text") el.textContent = v;
      else el.setAttribute(k, v === true ? "" : v);
    });
    children.flat().forEach((c) => {
      if (c === null || c === undefined || c === false) return;
      el.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return el;
  }

  function valueEl(tag, kind, raw, cls) {
    const el = h(tag, { class: cls, dataset: { fmt: kind } });
    setValue(el, raw);
    return el;
  }

  function badge(text, cls, title) {
    return h("span", { class: "badge " + String(cls || text || "").toLowerCase(), title: title }, String(text || ""));
  }

  function timeEl(iso, cls) {
    const el = h("time", { class: cls, dataset: { fmt: "time" } });
    setValue(el, iso);
    return el;
  }

  function url(kind, id) { return "/" + kind + "/" + encodeURIComponent(id) + "/"; }

  function name(kind, id) {
    const known = (refs[kind] || {})[String(id)];
    return known || (kind === "agents" ? "agent #" : "account #") + id;
  }

  // ---------------------------------------------------------------- row renderers
  // The same cells, in the same order, as templates/portal/_*_rows.html.
  const renderers = {
    orders: (o) => [
      h("td", {}, h("a", { href: url("orders", o.id) }, timeEl(o.created_at))),
      h("td", {}, name("accounts", o.account_id)),
      h("td", {}, o.symbol),
      h("td", {}, badge(o.side), " ", h("span", { class: "muted small" }, o.position_side || "")),
      h("td", {}, o.order_type),
      valueEl("td", "qty", o.quantity, "num"),
      valueEl("td", "qty", o.executed_quantity, "num"),
      valueEl("td", "price", o.executed_price !== null && o.executed_price !== undefined ? o.executed_price : o.price, "num"),
      h("td", {}, badge(o.status, o.status, o.error || "")),
      h("td", { class: "muted" }, o.source || ""),
    ],
    positions: (p) => {
      const size = toNumber(p.size), mark = toNumber(p.mark_price);
      return [
        h("td", {}, name("accounts", p.account_id)),
        h("td", {}, p.symbol),
        h("td", {}, badge(p.side)),
        valueEl("td", "qty", p.size, "num"),
        valueEl("td", "price", p.entry_price, "num"),
        valueEl("td", "price", p.mark_price, "num"),
        valueEl("td", "usd", size !== null && mark !== null ? size * mark : null, "num"),
        valueEl("td", "pnl", p.unrealized_pnl, "num"),
        valueEl("td", "lev", p.leverage, "num"),
        valueEl("td", "price", p.liquidation_price, "num"),
      ];
    },
    decisions: (d) => [
      h("td", {}, h("a", { href: url("decisions", d.id) }, timeEl(d.started_at))),
      h("td", {}, name("agents", d.agent_id)),
      h("td", {}, badge(d.status, d.status)),
      h("td", { class: "summary", title: d.summary || "" }, (d.summary || "").slice(0, 160)),
      h("td", { class: "num" }, String((d.prompt_tokens || 0) + (d.completion_tokens || 0))),
      valueEl("td", "cost", d.cost_usd, "num"),
    ],
  };

  function flash(row) {
    row.classList.remove("flash");
    void row.offsetWidth; // restart the animation
    row.classList.add("flash");
  }

  function rows(table) {
    return Array.from(table.tBodies[0].rows).filter((r) => !r.classList.contains("empty-row"));
  }

  function emptyRow(table, show) {
    const body = table.tBodies[0];
    let empty = body.querySelector("tr.empty-row");
    if (show && !empty) {
      const cols = table.tHead ? table.tHead.rows[0].cells.length : 1;
      empty = h("tr", { class: "empty-row" }, h("td", { class: "empty", colspan: cols }, table.dataset.empty || "Nothing here."));
      body.appendChild(empty);
    }
    if (!show && empty) {
      if (!table.dataset.empty) table.dataset.empty = empty.textContent.trim();
      empty.remove();
    }
  }

  /* Update the row of ``id`` in place, or add it on top (tables with data-prepend). */
  function upsert(table, id, cells) {
    const body = table.tBodies[0];
    let row = body.querySelector('tr[data-id="' + CSS.escape(String(id)) + '"]');
    if (row) {
      row.replaceChildren(...cells);
    } else {
      if (!("prepend" in table.dataset)) return null;
      emptyRow(table, false);
      row = h("tr", { dataset: { id: String(id) } }, cells);
      body.insertBefore(row, body.firstChild);
      const limit = parseInt(table.dataset.limit || "0", 10);
      if (limit) rows(table).slice(limit).forEach((r) => r.remove());
    }
    flash(row);
    return row;
  }

  function removeRow(table, id) {
    const row = table.tBodies[0].querySelector('tr[data-id="' + CSS.escape(String(id)) + '"]');
    if (row) row.remove();
    if (!rows(table).length) emptyRow(table, true);
  }

  function tables(kind) { return document.querySelectorAll('table[data-live="' + kind + '"]'); }

  // ---------------------------------------------------------------- toasts
  function toast(text, kind) {
    const box = document.getElementById("toasts");
    if (!box) return;
    const el = h("div", { class: "toast " + (kind || ""), role: "status" }, text);
    box.appendChild(el);
    while (box.children.length > 4) box.firstElementChild.remove();
    setTimeout(() => el.remove(), 6000);
  }

  // ---------------------------------------------------------------- handlers
  const handlers = {};

  handlers.order = (e) => {
    const o = e.order || {};
    tables("orders").forEach((t) => upsert(t, o.id, renderers.orders(o)));
    const label = o.side + " " + fmt.qty(toNumber(o.quantity) || 0) + " " + o.symbol;
    if (e.action === "filled") {
      toast("Filled: " + label + " @ " + fmtPrice(toNumber(o.executed_price) || 0), "success");
    } else if (e.action === "rejected") {
      toast("Rejected: " + label + (o.error ? " — " + o.error : ""), "error");
    } else if (e.action === "cancelled") {
      toast("Cancelled: " + label);
    }
    refreshFor("order", o.id);
  };

  handlers.position = (e) => {
    const p = e.position || {};
    const open = p.status === "open" && (toNumber(p.size) || 0) > 0;
    tables("positions").forEach((t) => {
      if (open) {
        upsert(t, p.id, renderers.positions(p));
      } else {
        removeRow(t, p.id);
      }
    });
    const table = document.querySelector("#positions-table");
    const count = document.getElementById("kpi-positions");
    if (table && count) count.textContent = String(rows(table).length);
  };

  handlers.balance = (e) => {
    const b = e.balance || {};
    const card = document.querySelector('.balance[data-account-id="' + CSS.escape(String(b.account_id)) + '"]');
    let first = false;
    if (card) {
      first = card.dataset.hasSnapshot !== "1";
      card.dataset.hasSnapshot = "1";
      card.querySelectorAll("[data-field]").forEach((el) => setValue(el, b[el.dataset.field]));
      flash(card);
    } else if (document.getElementById("balances")) {
      scheduleRefresh(); // an account added since the page was drawn: redraw its card
    }
    updateTotals(b, first);
    document.dispatchEvent(new CustomEvent("alpha:balance", { detail: b }));
    // The figures above are computed here at once; the server's (realized PnL, fees, open
    // orders) follow shortly.
    if (document.getElementById("kpis")) scheduleRefresh(["kpis"], 1000);
  };

  function updateTotals(b, first) {
    const kpis = document.getElementById("kpis");
    if (!kpis) return;
    const sum = (field) => Array.from(document.querySelectorAll('.balance[data-has-snapshot="1"] [data-field="' + field + '"]'))
      .reduce((acc, el) => acc + (toNumber(el.dataset.raw) || 0), 0);
    const equity = sum("margin_balance");
    const set = (id, v) => { const el = document.getElementById(id); if (el) setValue(el, v); };
    set("kpi-equity", equity);
    set("kpi-available", sum("available_balance"));
    set("kpi-unrealized", sum("unrealized_pnl"));
    // The day's start: an account's first snapshot today counts at its current equity.
    let start = toNumber(kpis.dataset.dayStart);
    if (first) start = (start || 0) + (toNumber(b.margin_balance) || 0);
    if (start === null) start = equity;
    kpis.dataset.dayStart = String(start);
    const change = equity - start;
    const limit = (toNumber(kpis.dataset.limitPercent) || 0) * start;
    set("kpi-pnl", change);
    set("kpi-limit", limit);
    const used = limit > 0 ? Math.min(1, Math.max(0, -change) / limit) : 0;
    set("kpi-limit-used", used);
    const gauge = document.getElementById("kpi-limit-gauge");
    if (gauge) { gauge.dataset.used = String(used); setGauge(gauge); }
  }

  handlers.decision = (e) => {
    const d = e.decision || {};
    tables("decisions").forEach((t) => {
      if (t.dataset.agent && t.dataset.agent !== String(d.agent_id)) return; // one agent's list
      upsert(t, d.id, renderers.decisions(d));
    });
    document.querySelectorAll('table[data-live="agents"] tr[data-id="' + CSS.escape(String(d.agent_id)) + '"] [data-cell="last_decision"]')
      .forEach((cell) => {
        cell.replaceChildren(h("a", { href: url("decisions", d.id) }, badge(d.status, d.status)), " ", timeEl(d.started_at, "muted small"));
        flash(cell.parentElement);
      });
    toast("Decision by " + name("agents", d.agent_id) + ": " + d.status + (d.summary ? " — " + d.summary.slice(0, 120) : ""),
      d.status === "error" || d.status === "rejected" ? "error" : "");
    refreshFor("decision", d.id);
  };

  handlers.agent = (e) => {
    const a = e.agent || {};
    if (a.id !== undefined && a.name) refs.agents[String(a.id)] = a.name;
    const agentRows = document.querySelectorAll('table[data-live="agents"] tr[data-id="' + CSS.escape(String(a.id)) + '"]');
    if (!agentRows.length && tables("agents").length) scheduleRefresh(); // a new agent: redraw the list
    agentRows.forEach((row) => {
      const cell = row.querySelector('[data-cell="status"]');
      if (cell) cell.replaceChildren(badge(a.status, a.status, a.status_reason || ""));
      row.querySelectorAll("[data-when]").forEach((form) => {
        form.hidden = (form.dataset.when === "active") !== (a.status === "active");
      });
      flash(row);
    });
    const count = document.getElementById("kpi-agents");
    if (count) {
      count.textContent = String(document.querySelectorAll('#agents-table [data-cell="status"] .badge.active').length);
    }
    document.querySelectorAll('[data-agent-status="' + CSS.escape(String(a.id)) + '"]').forEach((el) => {
      el.replaceChildren(badge(a.status, a.status, a.status_reason || ""));
    });
  };

  handlers["risk.event"] = (e) => {
    const banner = document.getElementById("halt-banner");
    if (!banner) return;
    if (e.rule === "kill_switch" && e.kind !== "pre_trade") {
      const on = !e.allowed;
      const part = document.getElementById("halt-user");
      part.hidden = !on;
      const detail = document.getElementById("halt-user-detail");
      if (detail && on) detail.textContent = e.message || "";
      const button = document.getElementById("kill-button");
      if (button) {
        button.classList.toggle("on", on);
        button.textContent = on ? "Kill switch ON" : "Stop all trading";
      }
      toast(on ? "Kill switch ON: " + (e.message || "") : "Kill switch lifted.", on ? "error" : "success");
    } else if (e.rule === "global_halt") {
      document.getElementById("halt-global").hidden = e.allowed;
    }
    banner.hidden = Array.from(banner.querySelectorAll(".halt-part")).every((p) => p.hidden);
  };

  // A kill switch's flattening, step by step (a worker does it after the trip): the
  // banner's line everywhere, and the kill switch page's progress region.
  handlers.kill_switch = (e) => {
    const p = e.progress || {};
    document.querySelectorAll("[data-kill-progress]").forEach((el) => {
      el.textContent = p.text || "";
      el.hidden = !p.text || !e.active;
    });
    document.querySelectorAll("[data-kill-state]").forEach((el) => {
      el.textContent = p.state || "";
      el.className = "badge " + (p.state || "");
    });
    if (document.querySelector('[data-refresh-on~="kill_switch:' + CSS.escape(String(e.id)) + '"]')) scheduleRefresh(["kill-progress"]);
  };

  // ---------------------------------------------------------------- region refresh
  let refreshTimer = null;
  let refreshIds = new Set(); // empty: every region

  // Events that arrive while a refresh is in flight are replayed on the regions it swapped
  // in: the page it fetched may predate them (a decision's "executed" pushed while the
  // server drew it as "running" would otherwise be overwritten by the older state).
  const refreshesInFlight = new Set(); // one buffer of [handler, event] per refresh

  async function refreshRegions(only) {
    const replay = [];
    refreshesInFlight.add(replay);
    try {
      const response = await fetch(window.location.href, { credentials: "same-origin", headers: { "X-Requested-With": "live-refresh" } });
      if (!response.ok || response.redirected) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      document.querySelectorAll("[data-region][id]").forEach((el) => {
        if (only && only.size && !only.has(el.id)) return;
        const fresh = doc.getElementById(el.id);
        if (!fresh) return;
        const node = document.importNode(fresh, true);
        el.replaceWith(node);
        formatAll(node);
      });
      const freshRefs = doc.getElementById("portal-refs");
      if (freshRefs) Object.assign(refs, JSON.parse(freshRefs.textContent));
      document.dispatchEvent(new CustomEvent("alpha:refreshed", { detail: doc }));
      replay.forEach(([fn, event]) => fn(event));
    } catch (err) {
      console.warn("refresh failed", err);
    } finally {
      refreshesInFlight.delete(replay);
    }
  }

  /* Re-fetch the page and swap regions: all of them, or the ids given (debounced, merged). */
  function scheduleRefresh(ids, delay) {
    if (!ids) refreshIds = null;
    else if (refreshIds) ids.forEach((id) => refreshIds.add(id));
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(() => {
      const only = refreshIds;
      refreshIds = new Set();
      refreshRegions(only && only.size ? only : null);
    }, delay || 300);
  }

  function refreshFor(type, id) {
    if (document.querySelector('[data-refresh-on~="' + type + ":" + CSS.escape(String(id)) + '"]')) scheduleRefresh();
  }

  // ---------------------------------------------------------------- forms and dialogs
  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!form.matches("form[data-ajax]")) return;
    event.preventDefault();
    const button = form.querySelector("button[type=submit], button:not([type])");
    if (button) button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST", body: new FormData(form), credentials: "same-origin", headers: { Accept: "application/json" },
      });
      const data = await response.json().catch(() => ({}));
      toast(data.message || (response.ok ? "Done." : "Failed (" + response.status + ")."), response.ok ? "success" : "error");
    } catch (err) {
      toast("Could not reach the server: " + err.message, "error");
    } finally {
      if (button) setTimeout(() => { button.disabled = false; }, 1200);
    }
  });

  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-dialog]");
    if (opener && !opener.classList.contains("on")) {
      const dialog = document.getElementById(opener.dataset.dialog);
      if (dialog && typeof dialog.showModal === "function") {
        event.preventDefault();
        dialog.showModal();
      }
    }
    const closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  // Venue-dependent credential inputs (exchange account form).
  function syncCredentialFields() {
    const venue = document.querySelector("select[data-venue-fields]");
    if (!venue) return;
    const wanted = JSON.parse(venue.dataset.venueFields)[venue.value] || [];
    document.querySelectorAll("[data-credential]").forEach((input) => {
      const field = input.closest(".field");
      if (field) field.hidden = !wanted.includes(input.dataset.credential);
    });
    const none = document.getElementById("no-credentials");
    if (none) none.hidden = wanted.length > 0;
  }
  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-venue-fields]")) syncCredentialFields();
  });

  // ---------------------------------------------------------------- start
  formatAll(document);
  syncCredentialFields();

  const socket = new window.AlphaLive.LiveSocket(document.body.dataset.wsUrl || "/ws/updates/?stream=user");
  Object.entries(handlers).forEach(([type, fn]) => socket.on(type, (event) => {
    refreshesInFlight.forEach((replay) => replay.push([fn, event]));
    fn(event);
  }));
  // Redraw the live regions once the socket is subscribed for the first time (what changed
  // between the server drawing this page and the subscription was pushed to nobody: a kill
  // switch's flattening that finishes while the dashboard loads, say), and after every
  // reconnect (events may have been missed while offline).
  let wasOffline = true;
  socket.onStatus((state) => {
    document.body.dataset.live = state;
    if (state === "offline") wasOffline = true;
    if (state === "live" && wasOffline) { wasOffline = false; scheduleRefresh(); }
  });
  window.AlphaLive.bindIndicator(socket, document.getElementById("live-status"));
  socket.start();

  window.alphaPortal = { socket: socket, fmt: fmt, setValue: setValue, formatAll: formatAll, toast: toast, refs: refs,
    toNumber: toNumber, refreshRegions: refreshRegions };
})();
