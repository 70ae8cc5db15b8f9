/* Live admin change lists (orders, positions, decisions).
 *
 * The staff stream carries every user's events. On an event of a type this list shows,
 * the same URL (filters, search, page and ordering included) is fetched again and the
 * result table, paginator and filters are swapped in place; the admin's action checkboxes
 * are re-armed. While rows are selected for an action nothing is swapped (a selection is
 * never lost): a "new updates" note waits until the selection is cleared.
 *
 * Configured by the <script> tag: data-events="order position" (event types to follow).
 */
(function () {
  "use strict";

  const script = document.currentScript;
  const types = ((script && script.dataset.events) || "").split(/\s+/).filter(Boolean);
  const DEBOUNCE = 400;

  let timer = null;
  let inflight = false;
  let again = false;
  let pending = false;

  function selectionActive() {
    return Array.from(document.querySelectorAll("#result_list input.action-select")).some((el) => el.checked)
      || !!document.querySelector("#changelist-form input.select-across[value='1']");
  }

  function setNote(text) {
    const note = document.getElementById("live-note");
    if (!note) return;
    note.textContent = text || "";
    note.hidden = !text;
  }

  function swap(doc) {
    const parts = ["#result_list", "#changelist-form .paginator", "#changelist-filter",
      "#changelist .actions .action-counter"];
    let swapped = false;
    parts.forEach((selector) => {
      const fresh = doc.querySelector(selector);
      const current = document.querySelector(selector);
      if (fresh && current) {
        current.replaceWith(document.importNode(fresh, true));
        swapped = true;
      }
    });
    if (!document.querySelector("#result_list")) {
      // The list was empty ("0 orders") and now has rows, or the other way: swap the form.
      const fresh = doc.querySelector("#changelist-form");
      const current = document.querySelector("#changelist-form");
      if (fresh && current) current.replaceWith(document.importNode(fresh, true));
    }
    const boxes = document.querySelectorAll("tr input.action-select");
    if (boxes.length && typeof window.Actions === "function") window.Actions(boxes);
    return swapped;
  }

  async function refresh() {
    if (inflight) { again = true; return; }
    if (selectionActive()) {
      pending = true;
      setNote("New updates — clear the selection to see them");
      return;
    }
    inflight = true;
    try {
      const response = await fetch(window.location.href, {
        credentials: "same-origin", headers: { "X-Requested-With": "live-refresh" },
      });
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      if (!selectionActive()) {
        swap(doc);
        pending = false;
        setNote("");
        const badge = document.getElementById("live-badge");
        if (badge) {
          badge.classList.remove("flash");
          void badge.offsetWidth;
          badge.classList.add("flash");
        }
      } else {
        pending = true;
        setNote("New updates — clear the selection to see them");
      }
    } catch (err) {
      console.warn("live refresh failed", err);
    } finally {
      inflight = false;
      if (again) { again = false; schedule(); }
    }
  }

  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(refresh, DEBOUNCE);
  }

  document.addEventListener("change", (event) => {
    if (pending && event.target.matches && event.target.matches("input.action-select, #action-toggle")
        && !selectionActive()) {
      schedule();
    }
  });

  function start() {
    if (!window.AlphaLive) return;
    const socket = new window.AlphaLive.LiveSocket("/ws/updates/?stream=staff");
    types.forEach((type) => socket.on(type, schedule));
    // After a reconnect, events may have been missed while offline: catch up once.
    let wasOffline = true; // the first subscription too: changes since the page was drawn
    socket.onStatus((state) => {
      if (state === "offline") wasOffline = true;
      if (state === "live" && wasOffline) { wasOffline = false; schedule(); }
    });
    window.AlphaLive.bindIndicator(socket, document.getElementById("live-badge"));
    socket.start();
    window.alphaAdminLive = socket;
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
