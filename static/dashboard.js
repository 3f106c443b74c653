// Live dashboard: every row updates from stock_update (room "all"), or, with a
// watchlist, only the watched rows update from their ticker rooms.
(function () {
  "use strict";
  const table = document.getElementById("quotes");
  const tbody = table.tBodies[0];
  const fresh = document.getElementById("freshness");
  const tickSeconds = Number(fresh.dataset.tickSeconds) || 60;
  const rows = new Map([...tbody.rows].map((r) => [r.dataset.ticker, r]));
  const KEY = "stock-tracker.watchlist";
  let watch = new Set(JSON.parse(localStorage.getItem(KEY) || "[]").filter((t) => rows.has(t)));
  let lastUpdate = fresh.dataset.last ? new Date(fresh.dataset.last) : null;
  let socket = null;
  let subscribed = [];

  function setText(cell, text, direction) {
    if (cell.textContent === text) return;
    cell.textContent = text;
    if (direction !== undefined) {
      cell.classList.remove("flash");
      void cell.offsetWidth;  // restart the flash animation
      cell.classList.add("flash");
    }
  }

  function drawSpark(row, price) {
    const svg = row.querySelector(".spark svg");
    const prices = JSON.parse(svg.dataset.prices || "[]");
    prices.push(price);
    while (prices.length > 30) prices.shift();
    svg.dataset.prices = JSON.stringify(prices);
    if (prices.length < 2) return;
    const lo = Math.min(...prices), hi = Math.max(...prices), span = (hi - lo) || 1;
    const step = 120 / (prices.length - 1);
    svg.querySelector("polyline").setAttribute("points",
      prices.map((p, i) => `${(i * step).toFixed(1)},${(26 - (p - lo) / span * 24).toFixed(1)}`).join(" "));
  }

  function apply(s) {
    const row = rows.get(s.ticker);
    if (!row) return;
    const isNew = row.dataset.time !== s.time;
    const before = parseFloat(row.dataset.price);
    row.dataset.price = s.price;
    row.dataset.change_pct = s.change_pct ?? "";
    row.dataset.sma = s.sma ?? "";
    row.dataset.time = s.time;
    const priceCell = row.querySelector(".price");
    setText(priceCell, Number(s.price).toFixed(2), isNaN(before) ? 0 : Math.sign(s.price - before));
    priceCell.classList.toggle("up", s.price > before);
    priceCell.classList.toggle("down", s.price < before);
    const ch = window.fmtChange(s.change, s.change_pct);
    const changeCell = row.querySelector(".change");
    setText(changeCell, ch.text);
    changeCell.className = "num change " + ch.cls;
    setText(row.querySelector(".sma"), s.sma === null ? "filling…" : Number(s.sma).toFixed(2));
    const alertCell = row.querySelector(".alert");
    alertCell.replaceChildren();
    if (s.last_alert) {
      row.dataset.alert = s.last_alert.time;
      const badge = document.createElement("span");
      badge.className = "badge " + s.last_alert.kind;
      badge.textContent = (s.last_alert.kind === "bullish" ? "▲ " : "▼ ") + s.last_alert.kind;
      alertCell.append(badge, " " + window.fmtTime(s.last_alert.time));
    }
    const timeCell = row.querySelector(".time");
    timeCell.textContent = window.fmtTime(s.time);
    row.classList.toggle("stale", !!s.stale);
    if (s.stale) {
      const tag = document.createElement("span");
      tag.className = "stale-tag";
      tag.title = s.stale_reason || "";
      tag.textContent = "⚠ stale: " + (s.stale_reason || "");
      timeCell.append(" ", tag);
    }
    if (isNew) drawSpark(row, s.price);
  }

  const showMarket = window.showMarket;

  function tickAge() {
    if (!lastUpdate) return;
    const age = Math.max(0, Math.round((Date.now() - lastUpdate.getTime()) / 1000));
    const late = age > 2 * tickSeconds + 5;
    fresh.textContent = late ? `⚠ no update for ${age} s — data may be stale` : `last update ${age} s ago`;
    fresh.classList.toggle("late", late);
  }
  setInterval(tickAge, 1000);

  // Filter and sort
  const filter = document.getElementById("filter");
  function visible() {
    const q = filter.value.trim().toUpperCase();
    for (const [t, row] of rows) {
      row.hidden = (watch.size > 0 && !watch.has(t)) || (q !== "" && !t.includes(q));
    }
  }
  filter.addEventListener("input", visible);
  let sortKey = null, sortDir = 1;
  for (const th of table.tHead.rows[0].cells) {
    if (!th.dataset.sort) continue;
    th.tabIndex = 0;
    th.addEventListener("click", () => {
      sortDir = sortKey === th.dataset.sort ? -sortDir : 1;
      sortKey = th.dataset.sort;
      const val = (r) => (sortKey === "ticker" ? r.dataset.ticker : r.dataset[sortKey]);
      const sorted = [...rows.values()].sort((a, b) => {
        const x = val(a), y = val(b);
        const nx = parseFloat(x), ny = parseFloat(y);
        const cmp = !isNaN(nx) && !isNaN(ny) ? nx - ny : String(x).localeCompare(String(y));
        return cmp * sortDir;
      });
      sorted.forEach((r) => tbody.appendChild(r));
      for (const h of table.tHead.rows[0].cells) h.removeAttribute("aria-sort");
      th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    });
  }

  // Watchlist: kept in localStorage; with one, only those rooms are joined.
  const info = document.getElementById("watch-info");
  const clear = document.getElementById("watch-clear");
  function showWatch() {
    for (const [t, row] of rows) {
      const star = row.querySelector(".star");
      star.textContent = watch.has(t) ? "★" : "☆";
      star.setAttribute("aria-pressed", watch.has(t));
    }
    info.textContent = watch.size ? `Watchlist: ${[...watch].join(", ")} (live for these only)` : "";
    clear.hidden = watch.size === 0;
    visible();
  }
  function subscribe() {
    if (!socket || !socket.connected) return;
    if (subscribed.length) socket.emit("unsubscribe", { tickers: subscribed }, window.ack("unsubscribe"));
    subscribed = watch.size ? [...watch] : ["*"];
    socket.emit("subscribe", { tickers: subscribed }, window.ack("subscribe"));
  }
  function saveWatch() {
    localStorage.setItem(KEY, JSON.stringify([...watch]));
    showWatch();
    subscribe();
  }
  tbody.addEventListener("click", (e) => {
    const star = e.target.closest(".star");
    if (!star) return;
    const t = star.closest("tr").dataset.ticker;
    if (watch.has(t)) watch.delete(t); else watch.add(t);
    saveWatch();
  });
  clear.addEventListener("click", () => { watch = new Set(); saveWatch(); });
  showWatch();

  // Gap fill: after a (re)connect, take the latest snapshot from the JSON API.
  async function fill() {
    try {
      const snap = await (await fetch("/api/stocks", { cache: "no-store" })).json();
      snap.stocks.filter((s) => !watch.size || watch.has(s.ticker)).forEach(apply);
      showMarket(snap.market);
      if (snap.last_tick) { lastUpdate = new Date(snap.last_tick.ran_at); tickAge(); }
    } catch (err) { /* the next tick will bring the data */ }
  }

  socket = window.connectLive(() => { subscribed = []; subscribe(); fill(); });
  socket.on("stock_update", (msg) => {
    if (watch.size) return;  // not subscribed to "all" any more; ignore a late one
    lastUpdate = new Date();
    msg.stocks.forEach(apply);
    showMarket(msg.market);
    tickAge();
  });
  socket.on("quote", (q) => {
    if (!watch.has(q.ticker)) return;
    lastUpdate = new Date();
    apply(q);
    tickAge();
  });
})();
