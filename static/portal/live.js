/* AlphaTransformer live updates: one websocket to /ws/updates/, kept open.
 *
 * - Reconnects with exponential backoff and full jitter (1 s doubling to 30 s), at once
 *   when the browser comes back online or the tab becomes visible again.
 * - A heartbeat (ping every 15 s, pong expected within 5 s) catches a connection whose
 *   server side died without closing it (the browser would not notice).
 * - Reports its state ("connecting", "live", "offline") to every status listener.
 * - Dispatches each event by its "type" to the handlers registered with on(type, fn);
 *   "*" handlers see every event.
 *
 * Used by the portal pages (portal.js) and the live admin change lists (admin_live.js).
 */
(function () {
  "use strict";

  const BASE_DELAY = 1000;
  const MAX_DELAY = 30000;
  const PING_EVERY = 15000;
  const PONG_WITHIN = 5000;

  function LiveSocket(path) {
    this.path = path;
    this.handlers = {};
    this.statusListeners = [];
    this.attempt = 0;
    this.ws = null;
    this.state = "connecting";
    this.retryTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.nextRetryAt = null;
    this.stopped = false;
  }

  LiveSocket.prototype.url = function () {
    if (/^wss?:/.test(this.path)) return this.path;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + this.path;
  };

  LiveSocket.prototype.on = function (type, fn) {
    (this.handlers[type] = this.handlers[type] || []).push(fn);
    return this;
  };

  LiveSocket.prototype.onStatus = function (fn) {
    this.statusListeners.push(fn);
    fn(this.state, this);
    return this;
  };

  LiveSocket.prototype.setState = function (state) {
    this.state = state;
    this.statusListeners.forEach((fn) => {
      try { fn(state, this); } catch (err) { console.error(err); }
    });
  };

  LiveSocket.prototype.dispatch = function (event) {
    const run = (fn) => {
      try { fn(event, this); } catch (err) { console.error("live handler failed", event.type, err); }
    };
    (this.handlers[event.type] || []).forEach(run);
    (this.handlers["*"] || []).forEach(run);
  };

  LiveSocket.prototype.connect = function () {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.nextRetryAt = null;
    if (this.ws && (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING)) return;
    this.setState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (err) {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this.setState("live");
      this.startHeartbeat();
    };
    ws.onmessage = (msg) => {
      let event;
      try { event = JSON.parse(msg.data); } catch (err) { return; }
      if (!event || typeof event.type !== "string") return;
      if (event.type === "pong") { clearTimeout(this.pongTimer); return; }
      this.dispatch(event);
    };
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.stopHeartbeat();
      this.ws = null;
      // 4401/4403: the server refuses this session (signed out): retrying cannot help
      // until the page is reloaded after signing in, so back off to the maximum.
      if (ev.code === 4401 || ev.code === 4403) this.attempt = Math.max(this.attempt, 8);
      this.scheduleReconnect();
    };
    ws.onerror = () => { /* onclose follows and schedules the retry */ };
  };

  LiveSocket.prototype.delay = function () {
    const cap = Math.min(MAX_DELAY, BASE_DELAY * Math.pow(2, this.attempt));
    // Full jitter: many tabs reconnecting after a restart spread out instead of stampeding.
    return Math.round(cap / 2 + Math.random() * (cap / 2));
  };

  LiveSocket.prototype.scheduleReconnect = function () {
    if (this.stopped || this.retryTimer) return;
    const wait = this.delay();
    this.attempt += 1;
    this.nextRetryAt = Date.now() + wait;
    this.setState("offline");
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, wait);
  };

  LiveSocket.prototype.reconnectNow = function () {
    if (this.state === "live") return;
    this.attempt = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  };

  LiveSocket.prototype.startHeartbeat = function () {
    this.stopHeartbeat();
    this.pingTimer = setInterval(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      this.ws.send(JSON.stringify({ type: "ping", t: Date.now() }));
      clearTimeout(this.pongTimer);
      this.pongTimer = setTimeout(() => {
        // No answer: the connection is dead even if the browser has not noticed.
        if (this.ws) this.ws.close();
      }, PONG_WITHIN);
    }, PING_EVERY);
  };

  LiveSocket.prototype.stopHeartbeat = function () {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
  };

  LiveSocket.prototype.start = function () {
    window.addEventListener("online", () => this.reconnectNow());
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible") this.reconnectNow();
    });
    window.addEventListener("pagehide", () => { this.stopped = true; if (this.ws) this.ws.close(); });
    this.connect();
    return this;
  };

  /* The small "● live" badge: its data-state drives the colour (portal.css / admin). */
  function bindIndicator(socket, el) {
    if (!el) return;
    let ticker = null;
    socket.onStatus((state) => {
      el.dataset.state = state;
      clearInterval(ticker);
      const label = el.querySelector("[data-label]") || el;
      if (state === "live") {
        label.textContent = "Live";
        el.title = "Receiving live updates";
      } else if (state === "connecting") {
        label.textContent = "Connecting…";
        el.title = "Connecting to live updates";
      } else {
        const render = () => {
          const left = socket.nextRetryAt ? Math.max(0, Math.ceil((socket.nextRetryAt - Date.now()) / 1000)) : 0;
          label.textContent = left ? "Offline · retry in " + left + " s" : "Offline";
        };
        render();
        ticker = setInterval(render, 1000);
        el.title = "Not receiving live updates; this page may be out of date. Click to retry now.";
      }
    });
    el.addEventListener("click", () => socket.reconnectNow());
  }

  window.AlphaLive = { LiveSocket: LiveSocket, bindIndicator: bindIndicator };
})();
