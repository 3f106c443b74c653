// Shared by every page: the Socket.IO connection with a visible state, exchange-time
// formatting, and a counter of received events the browser tests read.
(function () {
  "use strict";
  const conn = document.getElementById("connection");
  window.__live = { stock_update: 0, quote: {}, alert: 0, connects: 0, acks: 0, trade: {} };

  window.nyTime = new Intl.DateTimeFormat("en-US", {
    timeZone: "America/New_York", month: "short", day: "2-digit", hour: "2-digit",
    minute: "2-digit", second: "2-digit", hour12: false, timeZoneName: "short",
  });
  window.fmtTime = (iso) => window.nyTime.format(new Date(iso));
  // A fire on the print, just received: how long from the trade to this page (its event carries the
  // trade's time); "" for a fire at the minute, or one read back later
  window.printLatency = (e, live) => {
    const at = e.inputs && e.inputs.trade_time_ms;
    if (!live || !at) return "";
    e.page_latency_ms = Math.max(0, Date.now() - at);
    return ` · ${(e.page_latency_ms / 1000).toFixed(2)} s from the print to this page`;
  };
  // Short, for table cells: the time alone on today's New York date, else the date and minute (the
  // full time is the cell's title)
  const nyDay = new Intl.DateTimeFormat("en-CA", { timeZone: "America/New_York" });
  const nyClock = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", hour: "2-digit",
                                                     minute: "2-digit", second: "2-digit", hour12: false });
  const nyDate = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", month: "short",
                                                    day: "2-digit", hour: "2-digit", minute: "2-digit",
                                                    hour12: false });
  window.fmtShortTime = (iso) => {
    const d = new Date(iso);
    return nyDay.format(d) === nyDay.format(new Date()) ? nyClock.format(d) : nyDate.format(d).replace(",", "");
  };
  window.setTime = (cell, iso) => {  // a table cell's short time, the full one as its title
    cell.textContent = window.fmtShortTime(iso);
    cell.title = window.fmtTime(iso);
  };
  // A quote's precision: cents from $1 up, four decimals below (as stored)
  window.fmtPrice = (p) => (p === null || p === undefined || p === "" ? "–"
    : Math.abs(Number(p)) < 1 ? Number(p).toFixed(4) : Number(p).toFixed(2));
  // A signed-in page's own API write: JSON, with the page's CSRF token (the session rides along);
  // an answer that is not 2xx throws with the API's message.
  window.csrfToken = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  window.sendJson = async (method, url, body) => {
    const resp = await fetch(url, { method, headers: { "Content-Type": "application/json",
                                                       "X-CSRFToken": window.csrfToken() },
                                    body: body === undefined ? undefined : JSON.stringify(body) });
    const got = await resp.json();
    if (!resp.ok) throw new Error(got.error ? got.error.message : `HTTP ${resp.status}`);
    return got;
  };
  window.fmtChange = (change, pct) => {
    if (change === null || change === undefined) return { text: "–", cls: "" };
    const arrow = change > 0 ? "▲" : change < 0 ? "▼" : "•";
    const sign = (x) => (x >= 0 ? "+" : "") + Number(x).toFixed(2);
    return { text: `${arrow} ${sign(change)} (${sign(pct)}%)`, cls: change > 0 ? "up" : change < 0 ? "down" : "" };
  };

  // "opens in 1 d 2 h" / "closes in 25 min", refreshed while the page is open
  window.untilText = (iso) => {
    const min = Math.max(0, Math.round((new Date(iso).getTime() - Date.now()) / 60000));
    const d = Math.floor(min / 1440), h = Math.floor((min % 1440) / 60), m = min % 60;
    return d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : `${m} min`;
  };
  window.showMarket = (m) => {
    const el = document.getElementById("market");
    const sim = document.getElementById("simulated");
    if (!el) return;
    m = m || JSON.parse(el.dataset.market || "null");
    if (!m) return;
    el.dataset.market = JSON.stringify(m);
    el.className = "market market-" + m.state;
    el.dataset.state = m.state;
    el.textContent = `XNYS ${m.state} · ` + (m.is_open
      ? `closes in ${window.untilText(m.next_close)} (${window.fmtTime(m.next_close)})`
      : `opens in ${window.untilText(m.next_open)} (${window.fmtTime(m.next_open)})`)
      + (m.early_close ? " · early close" : "")
      // the simulated market trades around the clock unless told to follow the exchange's hours
      + (!m.is_open && sim && sim.dataset.alwaysOpen === "true" ? " · simulated trading continues" : "");
  };
  setInterval(() => window.showMarket(), 30000);
  document.addEventListener("DOMContentLoaded", () => window.showMarket());

  // The stream process's state (connected, reconnecting and why, trades/s), refreshed every 10 s
  async function showStream() {
    const el = document.getElementById("stream");
    if (!el) return;
    try {
      const s = await (await fetch("/api/stream", { cache: "no-store" })).json();
      const d = s.detail || {};
      el.hidden = s.state === "off";
      el.dataset.state = s.state;
      el.classList.toggle("down", s.state !== "connected");
      el.textContent = s.state === "connected"
        ? `stream ${s.provider} · ${Math.round(d.trades_per_s || 0)} trades/s`
          + (d.symbols_streamed < d.symbols_requested ? ` · ${d.symbols_streamed}/${d.symbols_requested} symbols` : "")
        : `stream ${s.state}` + (s.reason && s.state !== "not running" ? `: ${s.reason}` : "");
      el.title = (s.reason ? s.reason + " · " : "")
        + `last message ${d.last_message_age_s ?? "–"} s ago · reconnects ${d.reconnects ?? 0}`
        + ` · dropped frames ${d.dropped_frames ?? 0}`;
      // the prices come from the stream and it is not connected: say so next to "live" (the page's
      // own connection), and let the tables mark every row at once (window.onStreamStalled)
      stalled = s.feeds_prices && s.state !== "connected"
        ? `stream ${s.state}` + (s.reason && s.state !== "not running" ? `: ${s.reason}` : "") : null;
      document.body.dataset.prices = stalled ? "stalled" : "flowing";
      showConn();
      if (stalled && window.onStreamStalled) window.onStreamStalled(stalled);
    } catch (err) { /* the next refresh will tell */ }
  }
  document.addEventListener("DOMContentLoaded", showStream);
  setInterval(showStream, 5000);

  let stalled = null;  // why prices are not arriving, while the stream that feeds them is down
  let connText = "connecting…";
  function showConn() {
    conn.textContent = connText + (stalled && document.body.dataset.connection === "live"
      ? " · prices stalled" : "");
    conn.title = stalled ? `prices stalled: ${stalled}` : "";
  }
  function setState(text, down) {
    connText = text;
    conn.classList.toggle("down", down);
    document.body.dataset.connection = down ? "down" : "live";
    showConn();
  }

  // onConnect runs on the first connect and after every reconnect: it must
  // (re)subscribe and fill whatever was missed from the JSON endpoints.
  window.connectLive = function (onConnect) {
    // a page may act as a pasted token's owner (window.liveAuth); otherwise the session cookie says who
    const socket = io({ transports: ["websocket", "polling"], reconnectionDelay: 500,
                        reconnectionDelayMax: 3000,
                        auth: (cb) => cb(window.liveAuth ? window.liveAuth() : {}) });
    socket.on("connect", () => {
      window.__live.connects += 1;
      setState("live", false);
      onConnect(socket);
      if (window.onLiveConnect) window.onLiveConnect(socket);  // every page's own feeds (toasts.js)
    });
    if (window.onLiveSocket) window.onLiveSocket(socket);
    socket.on("disconnect", () => setState("reconnecting…", true));
    let refusedFor = 0;  // seconds of the next retry after a refusal ("server full")
    socket.on("connect", () => { refusedFor = 0; });
    socket.on("connect_error", (err) => {
      if (socket.active) { setState("reconnecting…", true); return; }  // the client retries by itself
      // the server refused this connection and said why: show it, retry later with backoff and jitter
      refusedFor = Math.min(60, refusedFor ? refusedFor * 2 : 5);
      const wait = Math.round(refusedFor * (0.5 + Math.random() / 2));
      setState(`${err.message}; retrying in ${wait} s`, true);
      setTimeout(() => socket.connect(), wait * 1000);
    });
    socket.on("stock_update", () => { window.__live.stock_update += 1; });
    socket.on("quote", (q) => { window.__live.quote[q.ticker] = (window.__live.quote[q.ticker] || 0) + 1; });
    socket.on("alert", () => { window.__live.alert += 1; });
    socket.on("trade", (t) => { window.__live.trade[t.ticker] = (window.__live.trade[t.ticker] || 0) + 1; });
    return socket;
  };

  window.ack = (label) => (reply) => {
    if (!reply || !reply.ok) setState(`${label} refused: ${reply && reply.error}`, true);
    else window.__live.acks += 1;
  };
})();
