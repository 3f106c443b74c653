// Chart page: draws the server-embedded history at once, then appends live quotes
// and alert markers from the ticker's room.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("chart-data").textContent);
  const focus = JSON.parse(document.getElementById("chart-focus").textContent);
  const el = document.getElementById("chart");
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  // the line colours are the legend's (app.css), so a key always matches its line
  const css = getComputedStyle(document.documentElement);
  const lineColour = (name) => css.getPropertyValue(name).trim();
  const LC = window.LightweightCharts;
  const hhmm = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", hour: "2-digit",
                                                  minute: "2-digit", hour12: false });
  const day = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", month: "short", day: "numeric" });

  const chart = LC.createChart(el, {
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: dark ? "#d0d4da" : "#222",
              attributionLogo: true },
    grid: { vertLines: { color: dark ? "#2a2f36" : "#eee" }, horzLines: { color: dark ? "#2a2f36" : "#eee" } },
    timeScale: {
      timeVisible: true, secondsVisible: false,
      // times are UTC epochs; label them in exchange time, whatever the browser's zone
      tickMarkFormatter: (t, type) => (type <= 2 ? day : hhmm).format(new Date(t * 1000)),
    },
    localization: { timeFormatter: (t) => window.nyTime.format(new Date(t * 1000)) },
  });
  const price = chart.addSeries(LC.LineSeries, { color: lineColour("--price-line"), lineWidth: 2,
                                                 title: data.ticker });
  const sma = chart.addSeries(LC.LineSeries, { color: lineColour("--sma-line"), lineWidth: 1,
                                               lineStyle: 0, title: `SMA ${data.sma_period}`,
                                               priceLineVisible: false, lastValueVisible: true });
  price.setData(data.prices);
  sma.setData(data.sma);
  const up = dark ? "#3fb96b" : "#0a7d32", down = dark ? "#ff6b6b" : "#c0262d";
  const marker = (a) => a.kind === "bullish"
    ? { id: `sma-${a.time}`, time: a.time, position: "belowBar", color: up, shape: "arrowUp", text: "▲ bullish" }
    : { id: `sma-${a.time}`, time: a.time, position: "aboveBar", color: down, shape: "arrowDown", text: "▼ bearish" };
  // a rule's fire (an alert_event): a dot with the rule's name; its explanation is on /alerts/rules
  const eventMarker = (e) => ({ id: `evt-${e.id}`, time: Math.floor(new Date(e.bar_time).getTime() / 1000),
                                position: "inBar", color: lineColour("--sma-line"), shape: "circle",
                                text: e.rule_name || `rule ${e.rule_id}` });
  const markerList = data.alerts.map(marker);
  const markers = LC.createSeriesMarkers(price, markerList);
  let last = data.prices.length ? data.prices[data.prices.length - 1].time : 0;

  function state() {
    el.dataset.points = String(price.data().length);
    el.dataset.markers = String(markerList.length);
  }
  if (focus) {
    const t = Math.floor(new Date(focus).getTime() / 1000);
    chart.timeScale().setVisibleRange({ from: t - 30 * 60, to: t + 30 * 60 });
  } else {
    chart.timeScale().fitContent();
  }

  function addPoint(p) {
    const t = Math.floor(new Date(p.time).getTime() / 1000);
    if (t <= last) return;
    last = t;
    price.update({ time: t, value: p.price });
    if (p.sma !== null) sma.update({ time: t, value: p.sma });
    state();
  }
  // The legend's "window now": the last SMA_PERIOD prices, as the server keeps them
  const windowNow = (data.window || []).slice();
  let windowTime = data.latest ? data.latest.time : null;
  const older = (q) => windowTime !== null && new Date(q.time) < new Date(windowTime);
  function showWindow(q) {
    if (q.time === windowTime || older(q)) return;
    windowTime = q.time;
    windowNow.push(q.price);
    while (windowNow.length > data.sma_period) windowNow.shift();
    document.getElementById("window-now").textContent =
      windowNow.length ? windowNow.map(window.fmtPrice).join(", ") : "empty";
  }
  let lastTrade = null;  // the newest streamed trade's time: a reading stamped before it is older news
  function showLatest(q) {
    showWindow(q);
    data.latest = q;  // its previous close is what a trade's change is measured against
    if (lastTrade !== null && new Date(q.time) <= lastTrade) return;  // a newer trade shows already
    document.getElementById("last-price").textContent = window.fmtPrice(q.price);
    const ch = window.fmtChange(q.change, q.change_pct);
    const c = document.getElementById("last-change");
    c.textContent = ch.text;
    c.className = "change " + ch.cls;
  }
  function addQuote(q) {
    addPoint(q);
    // a reconnect's snapshot may answer after a newer live quote: never step the header back
    if (!older(q)) showLatest(q);
  }
  function addMarker(m) {
    if (markerList.some((x) => x.id === m.id)) return;
    markerList.push(m);
    markerList.sort((x, y) => x.time - y.time);
    markers.setMarkers(markerList);
    state();
  }
  const addAlert = (a) => addMarker(marker({ time: Math.floor(new Date(a.time).getTime() / 1000), kind: a.kind }));
  const addEvent = (e) => { if (e.ticker === data.ticker) addMarker(eventMarker(e)); };

  // Gap fill after a (re)connect: every stored point and alert since the last one drawn.
  async function fill() {
    const t = encodeURIComponent(data.ticker);
    try {
      let cursor = null;
      do {
        const url = `/api/stocks/${t}/history?start=${last + 1}&limit=5000` + (cursor ? `&cursor=${cursor}` : "");
        const page = await (await fetch(url, { cache: "no-store" })).json();
        page.items.forEach(addPoint);
        cursor = page.next_cursor;
      } while (cursor);
      const detail = await (await fetch(`/api/stocks/${t}`, { cache: "no-store" })).json();
      if (detail.latest) addQuote(detail.latest);
      const since = markerList.length ? markerList[markerList.length - 1].time + 1 : last;
      const alerts = await (await fetch(`/api/alerts?ticker=${t}&since=${since}&limit=500`)).json();
      alerts.alerts.forEach(addAlert);
      const events = await (await fetch(`/api/alert-events?ticker=${t}&limit=500`, { cache: "no-store" })).json();
      events.events.forEach(addEvent);
    } catch (err) { /* the next quote will come over the socket */ }
  }

  const socket = window.connectLive((s) => {
    s.emit("subscribe", { tickers: [data.ticker] }, window.ack("subscribe"));
    s.emit("follow_alerts", { on: true }, window.ack("alerts"));  // rules' fires (alert_event) come there
    fill();
  });
  socket.on("quote", (q) => { if (q.ticker === data.ticker) addQuote(q); });
  socket.on("alert", (a) => { if (a.ticker === data.ticker) addAlert(a); });
  socket.on("alert_event", addEvent);
  // Between readings, the stream's trades move the header and the line's last point: drawn at
  // the boundary where the next reading lands (which then replaces it), and only once the
  // previous boundary's reading is drawn, so the line never has to step back in time.
  socket.on("trade", (tr) => {
    if (tr.ticker !== data.ticker) return;
    const sec = new Date(tr.time).getTime() / 1000;
    const at = Math.ceil((sec + 0.001) / data.tick_seconds) * data.tick_seconds;
    if (lastTrade !== null && new Date(tr.time) < lastTrade) return;
    lastTrade = new Date(tr.time);
    document.getElementById("last-price").textContent = window.fmtPrice(tr.price);
    el.dataset.lastTrade = tr.time;
    const pc = data.latest && data.latest.prev_close;
    if (pc) {
      const ch = window.fmtChange(tr.price - pc, (tr.price - pc) / pc * 100);
      const c = document.getElementById("last-change");
      c.textContent = ch.text;
      c.className = "change " + ch.cls;
    }
    if (at > last && at - data.tick_seconds <= last) price.update({ time: at, value: tr.price });
  });
  state();
})();
