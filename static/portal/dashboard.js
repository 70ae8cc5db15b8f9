/* The dashboard's equity chart (Chart.js, installed by npm: see package.json).
 * Data: #equity-data ({"total": [[iso, equity], ...], "accounts": [{id, name, points}]}).
 * Live: each "balance" event (portal.js -> "alpha:balance") appends a point to its
 * account's line and to the total, without redrawing from scratch. */
(function () {
  "use strict";

  const canvas = document.getElementById("equity-chart");
  const source = document.getElementById("equity-data");
  const empty = document.getElementById("equity-empty");
  if (!canvas || !source) return;
  if (typeof window.Chart === "undefined") {
    if (empty) {
      empty.hidden = false;
      empty.textContent = "The chart library is not installed (run `npm ci`); balances are listed beside.";
    }
    return;
  }

  const palette = ["#4f8cff", "#22c55e", "#f59e0b", "#a855f7", "#14b8a6", "#ec4899", "#eab308"];
  const money = new Intl.NumberFormat("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  const toXY = (points) => points.map(([t, v]) => ({ x: Date.parse(t), y: Number(v) }));
  const pad = (n) => String(n).padStart(2, "0");

  /* Tick labels as fine as the visible span needs: seconds within an hour, dates past a day. */
  function label(ms, span) {
    const d = new Date(ms);
    const hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    if (span < 3600 * 1000) return hm + ":" + pad(d.getSeconds());
    if (span < 20 * 3600 * 1000) return hm;
    return d.toLocaleDateString("en-US", { month: "short", day: "numeric" }) + " " + hm;
  }

  function datasetsFrom(data) {
    const sets = [{
      label: "Total", key: "total", data: toXY(data.total || []), borderColor: "#e6e9ef", borderWidth: 2,
      backgroundColor: "rgba(79, 140, 255, 0.08)", fill: "origin", tension: 0,
    }];
    (data.accounts || []).forEach((acct, i) => {
      sets.push({
        label: acct.name, key: "acct:" + acct.id, accountId: acct.id, data: toXY(acct.points || []),
        borderColor: palette[i % palette.length], borderWidth: 1.5, fill: false, tension: 0,
        hidden: (data.accounts || []).length < 2, skipLegend: (data.accounts || []).length < 2,
      });
    });
    return sets;
  }

  const pointRadius = (ctx) => (ctx.dataset.data.length < 3 ? 3 : 0);
  const chart = new window.Chart(canvas, {
    type: "line",
    data: { datasets: datasetsFrom(JSON.parse(source.textContent)) },
    options: {
      responsive: true, maintainAspectRatio: false, animation: false, parsing: false, normalized: true,
      interaction: { mode: "nearest", axis: "x", intersect: false },
      elements: { point: { radius: pointRadius, hoverRadius: 4 } },
      scales: {
        x: {
          type: "linear",
          ticks: {
            color: "#8b93a3", maxTicksLimit: 7,
            callback: function (value) { return label(value, this.max - this.min); },
          },
          grid: { color: "rgba(42, 49, 64, 0.6)" },
        },
        y: {
          ticks: { color: "#8b93a3", callback: (v) => money.format(v) },
          grid: { color: "rgba(42, 49, 64, 0.6)" },
          grace: "2%",
        },
      },
      plugins: {
        legend: { labels: { color: "#e6e9ef", boxWidth: 12, filter: (item, data) => !data.datasets[item.datasetIndex].skipLegend } },
        tooltip: {
          callbacks: {
            title: (items) => (items.length ? new Date(items[0].parsed.x).toLocaleString() : ""),
            label: (item) => item.dataset.label + ": " + money.format(item.parsed.y),
          },
        },
      },
    },
  });

  function showEmpty() {
    if (empty) empty.hidden = chart.data.datasets.some((ds) => ds.data.length);
  }
  showEmpty();

  function push(ds, point) {
    const last = ds.data[ds.data.length - 1];
    if (last && last.x === point.x) { last.y = point.y; return; }
    if (last && last.x > point.x) return; // an old event arriving late
    ds.data.push(point);
  }

  document.addEventListener("alpha:balance", (event) => {
    const b = event.detail || {};
    const x = Date.parse(b.taken_at);
    const y = Number(b.margin_balance);
    if (!Number.isFinite(x) || !Number.isFinite(y)) return;
    let ds = chart.data.datasets.find((d) => d.accountId === b.account_id);
    if (!ds) {
      const refs = (window.alphaPortal && window.alphaPortal.refs.accounts) || {};
      const n = chart.data.datasets.length - 1;
      ds = { label: refs[String(b.account_id)] || "account #" + b.account_id, key: "acct:" + b.account_id,
        accountId: b.account_id, data: [], borderColor: palette[n % palette.length], borderWidth: 1.5, fill: false,
        tension: 0 };
      chart.data.datasets.push(ds);
    }
    push(ds, { x: x, y: y });
    const accounts = chart.data.datasets.filter((d) => d.accountId !== undefined);
    accounts.forEach((d) => {
      if (accounts.length < 2) { d.hidden = true; d.skipLegend = true; } else if (d.skipLegend) { d.hidden = false; d.skipLegend = false; }
    });
    const total = accounts.reduce((acc, d) => acc + (d.data.length ? d.data[d.data.length - 1].y : 0), 0);
    push(chart.data.datasets[0], { x: x, y: total });
    chart.update("none");
    showEmpty();
  });

  document.addEventListener("alpha:refreshed", (event) => {
    const fresh = event.detail && event.detail.getElementById("equity-data");
    if (!fresh) return;
    chart.data.datasets = datasetsFrom(JSON.parse(fresh.textContent));
    chart.update("none");
    showEmpty();
  });

  window.alphaEquityChart = chart;
})();
