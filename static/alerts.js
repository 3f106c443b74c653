// Alert feed: stored alerts are in the page; new ones arrive from the "alerts" room.
(function () {
  "use strict";
  const feed = document.getElementById("feed");
  const only = feed.dataset.ticker;
  const body = feed.tBodies[0];
  const seen = new Set([...body.rows].map((r) => `${r.dataset.ticker}@${r.dataset.time}`));

  function add(a) {
    const key = `${a.ticker}@${a.time}`;
    if ((only && a.ticker !== only) || seen.has(key)) return;
    seen.add(key);
    body.querySelector("tr.none")?.remove();
    const tr = document.createElement("tr");
    tr.dataset.ticker = a.ticker;
    tr.dataset.time = a.time;
    tr.className = "flash";
    const cells = [window.fmtTime(a.time), null, null, window.fmtPrice(a.price), window.fmtPrice(a.sma)];
    cells.forEach((text, i) => {
      const td = document.createElement("td");
      if (i === 1) {
        const link = document.createElement("a");
        link.href = `/stocks/${encodeURIComponent(a.ticker)}?range=all&at=${encodeURIComponent(a.time)}`;
        link.textContent = a.ticker;
        td.append(link);
      } else if (i === 2) {
        const badge = document.createElement("span");
        badge.className = "badge " + a.kind;
        badge.textContent = (a.kind === "bullish" ? "▲ " : "▼ ") + a.kind;
        td.append(badge);
      } else {
        td.textContent = text;
        if (i > 2) td.className = "num";
      }
      tr.append(td);
    });
    body.prepend(tr);
  }

  const socket = window.connectLive((s) => {
    s.emit("follow_alerts", { on: true }, window.ack("alerts"));
    // gap fill after a reconnect: alerts stored meanwhile
    fetch(`/api/alerts?limit=100${only ? "&ticker=" + encodeURIComponent(only) : ""}`, { cache: "no-store" })
      .then((r) => r.json()).then((d) => d.alerts.slice().reverse().forEach(add)).catch(() => {});
  });
  socket.on("alert", add);
})();
