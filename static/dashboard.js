// Live dashboard: joins room "all" and applies each stock_update to the table.
(function () {
  "use strict";
  const table = document.getElementById("quotes");
  const fresh = document.getElementById("freshness");
  const conn = document.getElementById("connection");
  const tickSeconds = Number(fresh.dataset.tickSeconds) || 60;
  const nyTime = new Intl.DateTimeFormat("en-US", {
    timeZone: "America/New_York", hour: "2-digit", minute: "2-digit", second: "2-digit",
    hour12: false, month: "short", day: "numeric", timeZoneName: "short",
  });
  const fmt = (x) => (x === null || x === undefined ? "–" : Number(x).toFixed(2));
  const signed = (x) => (x >= 0 ? "+" : "") + Number(x).toFixed(2);
  let lastUpdate = fresh.dataset.last ? new Date(fresh.dataset.last) : null;

  function setCell(row, cls, text, direction) {
    const cell = row.querySelector("." + cls);
    if (cell.textContent === text) return;
    cell.textContent = text;
    if (direction !== undefined) {
      cell.classList.remove("up", "down", "flash");
      void cell.offsetWidth;  // restart the flash animation
      cell.classList.add(direction > 0 ? "up" : direction < 0 ? "down" : "same", "flash");
    }
  }

  function apply(stock) {
    const row = table.querySelector(`tr[data-ticker="${CSS.escape(stock.ticker)}"]`);
    if (!row) return;
    const before = parseFloat(row.querySelector(".price").textContent);
    setCell(row, "price", fmt(stock.price), isNaN(before) ? 0 : Math.sign(stock.price - before));
    setCell(row, "change", stock.change === null ? "–" : `${signed(stock.change)} (${signed(stock.change_pct)}%)`);
    setCell(row, "sma", stock.sma === null ? "filling…" : fmt(stock.sma));
    const a = stock.last_alert;
    const alertCell = row.querySelector(".alert");
    alertCell.innerHTML = "";
    if (a) {
      const badge = document.createElement("span");
      badge.className = "badge " + a.kind;
      badge.textContent = (a.kind === "bullish" ? "▲ " : "▼ ") + a.kind;
      alertCell.append(badge, " " + nyTime.format(new Date(a.time)));
    }
    const timeCell = row.querySelector(".time");
    timeCell.textContent = nyTime.format(new Date(stock.time));
    row.classList.toggle("stale", !!stock.stale);
    if (stock.stale) {
      const tag = document.createElement("span");
      tag.className = "stale-tag";
      tag.title = stock.stale_reason || "";
      tag.textContent = "stale";
      timeCell.append(" ", tag);
    }
  }

  function tickAge() {
    if (!lastUpdate) return;
    const age = Math.round((Date.now() - lastUpdate.getTime()) / 1000);
    const late = age > 2 * tickSeconds + 5;
    fresh.textContent = late ? `⚠ no update for ${age} s` : `last update ${age} s ago`;
    fresh.classList.toggle("late", late);
  }
  setInterval(tickAge, 1000);

  const socket = io({ transports: ["websocket", "polling"] });
  socket.on("connect", () => {
    conn.textContent = "live";
    conn.classList.remove("down");
    socket.emit("subscribe", { tickers: ["*"] }, (ack) => {
      if (!ack || !ack.ok) { conn.textContent = "subscribe refused: " + (ack && ack.error); }
    });
  });
  socket.on("disconnect", () => { conn.textContent = "reconnecting…"; conn.classList.add("down"); });
  socket.io.on("reconnect_attempt", () => { conn.textContent = "reconnecting…"; conn.classList.add("down"); });
  socket.on("stock_update", (msg) => {
    lastUpdate = new Date();
    msg.stocks.forEach(apply);
    table.dataset.updates = String((Number(table.dataset.updates) || 0) + 1);
    tickAge();
  });
})();
