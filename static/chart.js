// Chart page: candles, volume and the indicator lines the server computed (embedded in the
// HTML, then from /api/stocks/<t>/chart when the timeframe changes or a socket reconnects);
// the last candle moves with each live quote and streamed trade. The browser computes no
// indicator: webapp/core/indicator_series.py does, so a line here is a rule's operand there.
(function () {
  "use strict";
  let data = JSON.parse(document.getElementById("chart-data").textContent);
  const focus = JSON.parse(document.getElementById("chart-focus").textContent);
  const el = document.getElementById("chart");
  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  const css = getComputedStyle(document.documentElement);
  const colour = (name) => css.getPropertyValue(name).trim();
  const LC = window.LightweightCharts;
  const hhmm = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", hour: "2-digit",
                                                  minute: "2-digit", hour12: false });
  const day = new Intl.DateTimeFormat("en-US", { timeZone: "America/New_York", month: "short", day: "numeric" });
  const up = dark ? "#3fb96b" : "#0a7d32", down = dark ? "#ff6b6b" : "#c0262d";
  const PALETTE = [colour("--sma-line"), "#7b3fe4", "#d0402b", "#118a8a", "#c2185b", "#5d7c16"];

  const chart = LC.createChart(el, {
    autoSize: true,
    layout: { background: { color: "transparent" }, textColor: dark ? "#d0d4da" : "#222", attributionLogo: true },
    grid: { vertLines: { color: dark ? "#2a2f36" : "#eee" }, horzLines: { color: dark ? "#2a2f36" : "#eee" } },
    timeScale: {
      timeVisible: true, secondsVisible: false,
      // times are UTC epochs; label them in exchange time, whatever the browser's zone
      tickMarkFormatter: (t, type) => (type <= 2 ? day : hhmm).format(new Date(t * 1000)),
    },
    localization: { timeFormatter: (t) => window.nyTime.format(new Date(t * 1000)) },
  });
  const candles = chart.addSeries(LC.CandlestickSeries, { upColor: up, downColor: down, borderVisible: false,
                                                           wickUpColor: up, wickDownColor: down,
                                                           title: data.ticker });
  const volume = chart.addSeries(LC.HistogramSeries, { priceScaleId: "", priceFormat: { type: "volume" },
                                                        lastValueVisible: false, priceLineVisible: false });
  volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  const markers = LC.createSeriesMarkers(candles, []);
  let studySeries = [];  // [{key, name, series}]
  let markerList = [];
  let bars = [];

  const volBar = (b) => ({ time: b.time, value: b.volume || 0,
                           color: (b.close >= b.open ? up : down) + "66" });
  const focusAt = focus ? new Date(focus).getTime() : null;  // an alert link's moment: its marker stands out
  const smaMarker = (a) => ({
    id: `sma-${a.iso}`, time: a.time, kind: a.kind, focus: new Date(a.iso).getTime() === focusAt,
    why: `${a.kind} SMA ${data.sma_period} cross: price ${window.fmtPrice(a.price)} vs SMA ${window.fmtPrice(a.sma)}`,
  });
  const bucketOf = (sec) => data.interval === "1d"
    ? (sec >= data.today_start ? data.today_start : null)
    : Math.floor(sec / data.bucket_seconds) * data.bucket_seconds;
  const eventMarker = (e) => ({ id: `evt-${e.id}`, time: bucketOf(new Date(e.bar_time).getTime() / 1000),
                                kind: "rule", focus: false,
                                why: `${e.rule_name || "rule " + e.rule_id}: ${e.explanation}` });
  // Markers that share a bar and a kind are drawn as one, with their count, so a busy stretch
  // never piles into a band; the legend lists what each hovered bar's markers say.
  const LOOK = { bullish: ["belowBar", up, "arrowUp", "▲"], bearish: ["aboveBar", down, "arrowDown", "▼"],
                 rule: ["inBar", colour("--sma-line"), "circle", "●"] };
  function drawMarkers() {
    const groups = new Map();
    markerList.forEach((m) => {
      const key = `${m.time}/${m.kind}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(m);
    });
    const shown = [...groups.values()].map((ms) => {
      const [position, color, shape, sign] = LOOK[ms[0].kind];
      const focused = ms.some((m) => m.focus);
      return { id: ms[0].id, time: ms[0].time, position, shape, size: focused ? 2 : 1,
               color: focused ? (dark ? "#ffd400" : "#7a00cc") : color,
               text: ms.length > 1 ? `${sign}×${ms.length}` : sign };
    }).sort((x, y) => x.time - y.time);
    markers.setMarkers(shown);
    el.dataset.markerGroups = String(shown.length);
  }

  function state() {
    el.dataset.points = String(bars.length);
    el.dataset.markers = String(markerList.length);
    el.dataset.interval = data.interval;
    el.dataset.studies = studySeries.map((s) => `${s.key}/${s.name}`).join(",");
  }

  function drawStudies() {
    studySeries.forEach((s) => chart.removeSeries(s.series));
    studySeries = [];
    const panes = {};  // rsi/macd get their own pane below the price
    data.studies.forEach((st, n) => {
      const pane = st.pane === "price" ? 0 : (panes[st.pane] = panes[st.pane] || 1 + Object.keys(panes).length);
      Object.entries(st.lines).forEach(([name, points], k) => {
        const kind = name === "histogram" ? LC.HistogramSeries : LC.LineSeries;
        // on the price pane the legend names the lines: their own axis labels would pile over the price's
        const own = pane > 0;
        const series = chart.addSeries(kind, { color: PALETTE[(n + k) % PALETTE.length], lineWidth: 1,
                                               priceLineVisible: false, lastValueVisible: own,
                                               title: !own ? "" : name === "value" ? st.key : `${st.key} ${name}` },
                                       pane);
        series.setData(points);
        if (st.kind === "rsi") {  // the overbought and oversold levels a trader reads RSI against
          for (const level of [70, 30]) {
            series.createPriceLine({ price: level, color: "#888", lineWidth: 1, lineStyle: LC.LineStyle.Dashed,
                                     axisLabelVisible: true, title: String(level) });
          }
          el.dataset.rsiLevels = "70,30";
        }
        studySeries.push({ key: st.key, name, series });
      });
    });
    sizePanes(Object.keys(panes).length);
  }

  // Each pane below the price (RSI, MACD) adds its own height, so the price pane keeps its size
  // however many are drawn; the price pane stretches three times as much as each of them
  const SUB_PANE_PX = 130;
  function sizePanes(below) {
    el.style.height = below ? `calc(max(60vh, 280px) + ${below * SUB_PANE_PX}px)` : "";
    const panes = chart.panes();
    panes.forEach((p, i) => p.setStretchFactor(i === 0 ? 3 : 1));
    requestAnimationFrame(() => {
      el.dataset.paneHeights = chart.panes().map((p) => p.getHeight()).join(",");
    });
  }

  function draw(next) {
    data = next;
    bars = data.bars.slice();
    candles.setData(bars);
    volume.setData(bars.map(volBar));
    drawStudies();
    markerList = data.alerts.map(smaMarker).filter((m) => m.time !== null);
    drawMarkers();
    legend(null);
    document.getElementById("no-bars").hidden = bars.length > 0;
    if (!data.latest && bars.length) {  // no live reading yet: the header shows the last bar's close
      document.getElementById("last-price").textContent = window.fmtPrice(bars[bars.length - 1].close);
    }
    state();
  }

  // The legend: the hovered bar's OHLCV and indicator values, or the last bar's.
  const fmt = (v) => (v === undefined || v === null ? "–" : window.fmtPrice(v));
  function legend(param) {
    const at = param && param.time !== undefined ? param.time : (bars.length ? bars[bars.length - 1].time : null);
    const b = bars.find((x) => x.time === at);
    document.getElementById("legend-ohlc").textContent = b
      ? `O ${fmt(b.open)} H ${fmt(b.high)} L ${fmt(b.low)} C ${fmt(b.close)} V ${(b.volume || 0).toLocaleString("en-US")}`
      : "";
    document.getElementById("legend-studies").textContent = studySeries.map((s) => {
      const p = s.series.data().find((x) => x.time === at);
      return `${s.name === "value" ? s.key : s.key + " " + s.name} ${p ? p.value.toFixed(2) : "–"}`;
    }).join(" · ");
    const here = markerList.filter((m) => m.time === at).map((m) => m.why);
    document.getElementById("legend-alerts").textContent = here.join(" · ");
    el.dataset.legendTime = at === null ? "" : String(at);
  }
  chart.subscribeCrosshairMove((param) => legend(param && param.time !== undefined ? param : null));

  draw(data);
  if (focus) {
    const t = Math.floor(new Date(focus).getTime() / 1000);
    chart.timeScale().setVisibleRange({ from: t - 30 * data.bucket_seconds, to: t + 30 * data.bucket_seconds });
  } else {
    chart.timeScale().fitContent();
  }

  // what the page shows, as its URL says (a timeframe switch pushes its own); no interval: the server's pick
  const query = () => {
    const p = new URLSearchParams(location.search);
    p.set("range", data.range);
    p.delete("at");
    return p.toString();
  };
  async function load(q) {
    const resp = await fetch(`/api/stocks/${encodeURIComponent(data.ticker)}/chart?${q}`, { cache: "no-store" });
    if (!resp.ok) throw new Error((await resp.json()).error.message);
    return resp.json();
  }
  // A timeframe link fetches that timeframe's bars instead of reloading the page.
  document.querySelectorAll(".intervals a").forEach((a) => a.addEventListener("click", async (ev) => {
    ev.preventDefault();
    const q = new URL(a.href).search.slice(1);
    try {
      draw(await load(q));
      chart.timeScale().fitContent();
      history.pushState(null, "", `?${q}`);
      document.querySelectorAll(".intervals a").forEach((x) => x.toggleAttribute("aria-current", x === a));
      document.querySelector('.studies input[name="interval"]').value = data.interval;
    } catch (err) { location.href = a.href; }
  }));

  // The indicators' newest values come from the server once a bar closes (jittered, so pages
  // do not all ask at once).
  let refresh = null;
  function refreshStudiesSoon() {
    if (refresh) return;
    refresh = setTimeout(async () => {
      refresh = null;
      try {
        const got = await load(query());
        data.studies = got.studies;
        drawStudies();
        legend(null);
        state();
      } catch (err) { /* the next bar asks again */ }
    }, 1000 + Math.random() * 4000);
  }

  // The last candle follows live prices: a reading (with its minute's volume) or a trade.
  function tick(sec, price, vol) {
    const t = bucketOf(sec);
    if (t === null) return;
    const last = bars[bars.length - 1];
    if (last && t < last.time) return;  // older news
    let b;
    if (last && t === last.time) {
      b = { ...last, high: Math.max(last.high, price), low: Math.min(last.low, price), close: price,
            volume: (last.volume || 0) + vol };
      bars[bars.length - 1] = b;
    } else {
      // a new bar opens where the last one closed (history.bars draws readings the same way)
      const open = last && day.format(new Date(last.time * 1000)) === day.format(new Date(t * 1000))
        ? last.close : price;
      b = { time: t, open, high: Math.max(open, price), low: Math.min(open, price), close: price, volume: vol };
      bars.push(b);
      if (last) refreshStudiesSoon();
    }
    candles.update(b);
    volume.update(volBar(b));
    legend(null);
    state();
  }

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
  let lastQuote = data.latest ? data.latest.time : null;
  function showHeader(price, change, pct) {
    document.getElementById("last-price").textContent = window.fmtPrice(price);
    const ch = window.fmtChange(change, pct);
    const c = document.getElementById("last-change");
    c.textContent = ch.text;
    c.className = "change " + ch.cls;
  }
  function addQuote(q) {
    if (q.time === lastQuote) return;  // drawn already (the embedded reading, or a repeat)
    if (older(q)) return;  // a reconnect's snapshot may answer after a newer live quote
    lastQuote = q.time;
    tick(new Date(q.time).getTime() / 1000, q.price, q.volume || 0);
    showWindow(q);
    data.latest = q;
    if (lastTrade === null || new Date(q.time) > lastTrade) showHeader(q.price, q.change, q.change_pct);
  }
  function addMarker(m) {
    if (m.time === null || markerList.some((x) => x.id === m.id)) return;
    markerList.push(m);
    drawMarkers();
    state();
  }
  const addAlert = (a) => addMarker(smaMarker({ ...a, time: bucketOf(new Date(a.time).getTime() / 1000),
                                                iso: a.time }));
  const addEvent = (e) => { if (e.ticker === data.ticker) addMarker(eventMarker(e)); };

  // After a (re)connect: the whole chart again at this timeframe, then the rules' fires.
  async function fill() {
    const t = encodeURIComponent(data.ticker);
    try {
      const events = markerList.filter((m) => m.id.startsWith("evt-"));
      draw(await load(query()));
      events.forEach(addMarker);
      const got = await (await fetch(`/api/alert-events?ticker=${t}&limit=500`, { cache: "no-store" })).json();
      got.events.forEach(addEvent);
    } catch (err) { /* the next quote will come over the socket */ }
  }

  // A symbol tracked moments ago: its history is being fetched (an RQ job); show how far, and draw
  // it when it is in.
  const BUSY = ["queued", "running", "waiting"];
  async function watchBackfill() {
    const box = document.getElementById("backfill");
    const bar = document.getElementById("backfill-progress");
    let status = data.backfill;
    while (status && BUSY.includes(status.state)) {
      box.hidden = false;
      box.firstChild.textContent = status.state === "waiting"
        ? `Loading this symbol's history: ${status.message} `
        : `Loading this symbol's history (${status.done || 0} of ${status.total || "?"} steps)… `;
      bar.max = status.total || 1;
      bar.value = status.done || 0;
      await new Promise((r) => setTimeout(r, 1000));
      try {
        status = await (await fetch(`/api/backfill/${encodeURIComponent(data.ticker)}`, { cache: "no-store" })).json();
      } catch (err) { /* try again */ }
    }
    if (status && status.state === "done" && BUSY.includes(data.backfill.state)) {
      box.hidden = true;
      draw(await load(query()));
      chart.timeScale().fitContent();
    } else if (status && ["unavailable", "failed"].includes(status.state)) {
      box.hidden = false;
      box.firstChild.textContent = (status.state === "failed" ? "History backfill stopped: " : "") + status.message + " ";
      bar.hidden = true;
    }
    el.dataset.backfill = status ? status.state : "none";  // after the history is drawn
  }
  watchBackfill();

  // Drawn levels: horizontal lines a user places by clicking (kept in this browser per ticker), each
  // with "alert me when price crosses this line", which creates that rule (signed in).
  const LEVELS_KEY = `stock-tracker.levels.${data.ticker}`;
  const drawButton = document.getElementById("draw-level");
  const levelList = document.getElementById("levels");
  let levels = JSON.parse(localStorage.getItem(LEVELS_KEY) || "[]");
  let lines = [];
  function showLevels() {
    lines.forEach((l) => candles.removePriceLine(l));
    lines = levels.map((p) => candles.createPriceLine({ price: p, color: colour("--sma-line"), lineWidth: 1,
                                                        lineStyle: 2, axisLabelVisible: true, title: "level" }));
    levelList.replaceChildren(...levels.map((p, i) => {
      const li = document.createElement("li");
      li.dataset.price = String(p);
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "remove";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `remove the level at ${window.fmtPrice(p)}`);
      remove.addEventListener("click", () => { levels.splice(i, 1); saveLevels(); });
      const alertMe = document.createElement("button");
      alertMe.type = "button";
      alertMe.className = "alert-me";
      alertMe.textContent = "Alert me when price crosses this line";
      alertMe.addEventListener("click", () => alertAt(p, li));
      li.append(`${window.fmtPrice(p)} `, alertMe, " ", remove);
      return li;
    }));
    el.dataset.levels = String(levels.length);
  }
  function saveLevels() {
    localStorage.setItem(LEVELS_KEY, JSON.stringify(levels));
    showLevels();
  }
  async function alertAt(price, li) {
    const say = (text) => { li.querySelector(".said")?.remove(); const s = document.createElement("span");
                            s.className = "said"; s.textContent = ` ${text}`; li.append(s); };
    if (!window.csrfToken()) { say("sign in to create alerts"); return; }
    const rule = { name: `${data.ticker} crosses ${window.fmtPrice(price)}`, scope: { tickers: [data.ticker] },
                   condition: { op: "crossing", a: { price: true }, b: { const: price } },
                   frequency: "once_per_bar", channels: ["browser"] };
    try {
      const got = await window.sendJson("POST", "/api/rules", rule);
      say(`alert rule ${got.id} created (see Rules)`);
      li.dataset.rule = String(got.id);
    } catch (err) { say(`not created: ${err.message}`); }
  }
  drawButton.addEventListener("click", () => {
    drawButton.setAttribute("aria-pressed", String(drawButton.getAttribute("aria-pressed") !== "true"));
  });
  chart.subscribeClick((param) => {
    if (drawButton.getAttribute("aria-pressed") !== "true" || !param.point) return;
    const price = candles.coordinateToPrice(param.point.y);
    if (price === null) return;
    levels.push(Math.round(price * 100) / 100);
    drawButton.setAttribute("aria-pressed", "false");
    saveLevels();
  });
  showLevels();

  const socket = window.connectLive((s) => {
    s.emit("subscribe", { tickers: [data.ticker] }, window.ack("subscribe"));
    s.emit("follow_alerts", { on: true }, window.ack("alerts"));  // rules' fires (alert_event) come there
    fill();
  });
  socket.on("quote", (q) => { if (q.ticker === data.ticker) addQuote(q); });
  socket.on("alert", (a) => { if (a.ticker === data.ticker) addAlert(a); });
  socket.on("alert_event", addEvent);
  socket.on("trade", (tr) => {
    if (tr.ticker !== data.ticker) return;
    if (lastTrade !== null && new Date(tr.time) < lastTrade) return;
    lastTrade = new Date(tr.time);
    el.dataset.lastTrade = tr.time;
    // a trade belongs with the reading stamped at the next boundary (which then lands on it);
    // its volume comes with that reading
    const sec = lastTrade.getTime() / 1000;
    tick(Math.ceil((sec + 0.001) / data.tick_seconds) * data.tick_seconds, tr.price, 0);
    const pc = data.latest && data.latest.prev_close;
    if (pc) showHeader(tr.price, tr.price - pc, (tr.price - pc) / pc * 100);
    else document.getElementById("last-price").textContent = window.fmtPrice(tr.price);
  });
  state();

  // The indicator picker: choosing one adds it to the list and applies it; a chip's × removes one.
  // The text box stays for periods the menu does not offer (sma:13, bb:20:2.5).
  (function picker() {
    const form = document.querySelector("form.studies");
    const input = document.getElementById("indicators");
    const menu = document.getElementById("add-study");
    const chips = document.getElementById("study-chips");
    if (!form || !input || !menu || !chips) return;
    const keys = () => input.value.split(",").map((k) => k.trim()).filter((k) => k && k !== "none");
    const apply = (list) => { input.value = list.length ? list.join(",") : "none"; form.requestSubmit(); };
    menu.addEventListener("change", () => {
      const chosen = menu.value;
      menu.value = "";
      if (chosen && !keys().includes(chosen)) apply([...keys(), chosen]);
    });
    keys().forEach((key) => {
      const chip = document.createElement("button");
      chip.type = "button";
      chip.className = "chip";
      chip.textContent = `${key} ×`;
      chip.setAttribute("aria-label", `remove ${key}`);
      chip.addEventListener("click", () => apply(keys().filter((k) => k !== key)));
      chips.append(chip);
    });
  })();
})();
