// Live dashboard: every row updates from stock_update (room "all"), or, with
// "watchlist only", the watched rows update from their ticker rooms.  Rows come
// and go with the tracked symbols, a row whose reading grows old is marked
// stale on the spot, and a sorted table stays sorted as values change.
(function () {
  "use strict";
  const table = document.getElementById("quotes");
  const tbody = table.tBodies[0];
  const fresh = document.getElementById("freshness");
  const rowTemplate = document.getElementById("row-template");
  const liveRegion = document.getElementById("alert-live");
  const tickSeconds = Number(fresh.dataset.tickSeconds) || 60;
  let maxAge = table.dataset.maxAge === "" ? null : Number(table.dataset.maxAge);
  const rows = new Map([...tbody.rows].map((r) => [r.dataset.ticker, r]));
  const MAX_ROOMS = (Number(table.dataset.maxSubscribe) || 100) - 1;  // "*" counts as one
  const KEY = "stock-tracker.watchlist";
  const ONLY_KEY = "stock-tracker.watchlist-only";
  const LIST_KEY = "stock-tracker.list";
  const TARGET_KEY = "stock-tracker.list-target";  // where the star adds while "All symbols" shows
  const COLS_KEY = "stock-tracker.columns";
  const SORT_KEY = "stock-tracker.sort";  // {key, dir}: the table's order, kept across a reload
  // Signed in: named lists kept on the server (the one picked narrows the table and its rooms).
  // Anonymous: one list in this browser, narrowing when "watchlist only" is ticked.
  const signedIn = table.dataset.signedIn === "1";
  let lists = JSON.parse(document.getElementById("watchlists").textContent);
  const pick = document.getElementById("list-pick");
  let watch = new Set(signedIn ? [] : JSON.parse(localStorage.getItem(KEY) || "[]"));
  const onlyBox = document.getElementById("watch-only") || { checked: false, addEventListener() {} };
  onlyBox.checked = localStorage.getItem(ONLY_KEY) === "1";
  let lastUpdate = fresh.dataset.last ? new Date(fresh.dataset.last) : null;
  let socket = null;
  let subscribed = [];
  const active = () => (signedIn && pick ? lists.find((w) => String(w.id) === pick.value) || null : null);
  // listening to the listed rooms only
  const narrowed = () => (signedIn ? active() !== null : onlyBox.checked && watch.size > 0);
  const send = window.sendJson;

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

  // The day's range with the last price on it (pages.range_bar draws the same on the server)
  function drawRange(row, low, high, price) {
    const cell = row.querySelector(".range");
    if (low == null || high == null) { cell.textContent = "–"; return; }
    const pos = high <= low ? 0.5 : Math.min(1, Math.max(0, (price - low) / (high - low)));
    row.dataset.range_pos = pos;
    const title = `low ${Number(low).toFixed(2)} · high ${Number(high).toFixed(2)}`;
    cell.innerHTML = `<svg class="range-bar" viewBox="0 0 64 10" width="64" height="10" role="img" aria-label="${title}">` +
      `<title>${title}</title><line x1="2" y1="5" x2="62" y2="5"/><circle cx="${(2 + pos * 60).toFixed(1)}" cy="5" r="3"/></svg>`;
  }

  function addRow(ticker) {
    const row = rowTemplate.content.firstElementChild.cloneNode(true);
    row.dataset.ticker = ticker;
    const link = row.querySelector("a");
    link.href = `/stocks/${encodeURIComponent(ticker)}`;
    link.textContent = ticker;
    row.querySelector(".spark svg").setAttribute("aria-label", `recent prices of ${ticker}`);
    tbody.appendChild(row);
    rows.set(ticker, row);
    showStar(ticker, row);
    return row;
  }

  function showStale(row, reason) {
    row.classList.toggle("stale", !!reason);
    const timeCell = row.querySelector(".time");
    let tag = timeCell.querySelector(".stale-tag");
    if (!reason) { if (tag) tag.remove(); return; }
    if (!tag) {
      tag = document.createElement("span");
      tag.className = "stale-tag";
      timeCell.append(" ", tag);
    }
    // short, so the row keeps its height; the reason is the tag's title and accessible name
    tag.title = reason;
    tag.setAttribute("aria-label", "stale: " + reason);
    tag.textContent = "⚠ stale";
  }

  function apply(s) {
    const row = rows.get(s.ticker) || addRow(s.ticker);
    const isNew = row.dataset.time !== s.time;
    const before = parseFloat(row.dataset.price);
    // a streamed trade newer than this reading already moved the row: keep its price
    const traded = row.dataset.trade && new Date(row.dataset.trade) >= new Date(s.time);
    const price = traded ? before : s.price;
    row.dataset.price = price;
    row.dataset.change_pct = s.change_pct ?? "";
    row.dataset.prevClose = s.prev_close ?? "";
    row.dataset.sma = s.sma ?? "";
    row.dataset.time = s.time;
    row.dataset.volume = s.volume ?? "";
    row.dataset.open = s.open ?? "";
    setText(row.querySelector(".volume"), s.volume == null ? "–" : Number(s.volume).toLocaleString("en-US"));
    setText(row.querySelector(".open"), window.fmtPrice(s.open));  // "–" when there is none
    setText(row.querySelector(".prev_close"), window.fmtPrice(s.prev_close));
    drawRange(row, s.low, s.high, price);
    const priceCell = row.querySelector(".price");
    setText(priceCell, window.fmtPrice(price), isNaN(before) ? 0 : Math.sign(price - before));
    priceCell.classList.toggle("up", price > before);
    priceCell.classList.toggle("down", price < before);
    const ch = window.fmtChange(s.change, s.change_pct);
    const changeCell = row.querySelector(".change");
    setText(changeCell, ch.text);
    changeCell.className = "num change " + ch.cls;
    setText(row.querySelector(".sma"), s.sma === null ? "filling…" : window.fmtPrice(s.sma));
    const alertCell = row.querySelector(".alert");
    alertCell.replaceChildren();
    if (s.last_alert) {
      row.dataset.alert = s.last_alert.time;
      const badge = document.createElement("span");
      badge.className = "badge " + s.last_alert.kind;
      badge.textContent = (s.last_alert.kind === "bullish" ? "▲ " : "▼ ") + s.last_alert.kind;
      alertCell.append(badge, " " + window.fmtShortTime(s.last_alert.time));
      alertCell.title = window.fmtTime(s.last_alert.time);
    }
    if (s.alert && isNew) {
      liveRegion.textContent = `${s.ticker} ${s.alert} cross at ${window.fmtPrice(s.price)}`;
    }
    window.setTime(row.querySelector(".time"), traded ? row.dataset.trade : s.time);
    showStale(row, s.stale ? (s.stale_reason || "stale") : null);
    if (isNew) drawSpark(row, s.price);
  }

  // A row whose reading is older than the server's limit is stale now, not at the next tick
  function markAged() {
    if (maxAge === null) return;
    const now = Date.now();
    for (const row of rows.values()) {
      if (!row.dataset.time) continue;
      const latest = Math.max(new Date(row.dataset.time).getTime(),  // a print since the reading counts
                              row.dataset.trade ? new Date(row.dataset.trade).getTime() : 0);
      const age = Math.round((now - latest) / 1000);
      const tag = row.querySelector(".stale-tag");
      // the server's own reason (a refused feed) stays; our ageing message is refreshed
      if (age > maxAge && (!tag || "aged" in tag.dataset)) {
        showStale(row, `no reading for ${age} s`);
        row.querySelector(".stale-tag").dataset.aged = "";
      }
    }
  }

  // The stream that feeds the prices is down: every row is stale now, not after the readings age
  // (a print clears its row again, as after any staleness)
  window.onStreamStalled = (why) => {
    for (const row of rows.values()) {
      const tag = row.querySelector(".stale-tag");
      if (!tag || "aged" in tag.dataset) {
        showStale(row, `${why}: prices are not updating`);
        row.querySelector(".stale-tag").dataset.aged = "";
      }
    }
  };

  const showMarket = window.showMarket;

  function tickAge() {
    markAged();
    if (!lastUpdate) return;
    const age = Math.max(0, Math.round((Date.now() - lastUpdate.getTime()) / 1000));
    const late = age > 2 * tickSeconds + 5;
    fresh.textContent = late ? `⚠ no update for ${age} s — data may be stale` : `last update ${age} s ago`;
    fresh.classList.toggle("late", late);
  }
  setInterval(tickAge, 1000);

  // Filter (within what is shown) and sort (kept as values change)
  const filter = document.getElementById("filter");
  function visible() {
    const q = filter.value.trim().toUpperCase();  // a ticker's letters, or part of its company's name
    for (const [t, row] of rows) {
      const hit = q === "" || t.includes(q) || (row.dataset.name || "").toUpperCase().includes(q);
      row.hidden = (narrowed() && !watch.has(t)) || !hit;
    }
  }
  filter.addEventListener("input", visible);
  let sortKey = null, sortDir = 1;
  function resort() {
    const list = active();
    if (!sortKey && list) {  // a list shows in its own order
      const order = [...list.tickers.filter((t) => rows.has(t)).map((t) => rows.get(t)),
                     ...[...rows.values()].filter((r) => !list.tickers.includes(r.dataset.ticker))];
      if (order.some((r, i) => tbody.rows[i] !== r)) order.forEach((r) => tbody.appendChild(r));
      return;
    }
    if (!sortKey) return;
    const val = (r) => (sortKey === "ticker" ? r.dataset.ticker : r.dataset[sortKey]);
    const sorted = [...rows.values()].sort((a, b) => {
      const x = val(a), y = val(b);
      const nx = parseFloat(x), ny = parseFloat(y);
      const cmp = !isNaN(nx) && !isNaN(ny) ? nx - ny : String(x).localeCompare(String(y));
      return cmp * sortDir || a.dataset.ticker.localeCompare(b.dataset.ticker);
    });
    if (sorted.some((r, i) => tbody.rows[i] !== r)) sorted.forEach((r) => tbody.appendChild(r));
  }
  const headers = [...table.tHead.rows[0].cells].filter((th) => th.dataset.sort);
  function sortBy(key, dir) {
    sortKey = key;
    sortDir = dir;
    for (const h of headers) {
      h.setAttribute("aria-sort", h.dataset.sort !== key ? "none" : dir > 0 ? "ascending" : "descending");
    }
    localStorage.setItem(SORT_KEY, JSON.stringify({ key, dir }));
    resort();
  }
  for (const th of headers) {
    th.querySelector("button.sort").addEventListener("click", () => {
      sortBy(th.dataset.sort, sortKey === th.dataset.sort ? -sortDir : 1);
    });
  }
  try {
    const kept = JSON.parse(localStorage.getItem(SORT_KEY) || "null");
    if (kept && headers.some((h) => h.dataset.sort === kept.key)) sortBy(kept.key, kept.dir > 0 ? 1 : -1);
  } catch (err) { localStorage.removeItem(SORT_KEY); }

  // Watchlists.  Anonymous: a set kept in localStorage; every row stays visible unless "watchlist
  // only" is on, and then only the watched rooms are joined.  Signed in: the picked server list
  // (its tickers, in its order, and only their rooms); the star adds to it (or to the first list).
  const info = document.getElementById("watch-info");
  const clear = document.getElementById("watch-clear");
  const target = () => active() || lists.find((w) => String(w.id) === localStorage.getItem(TARGET_KEY))
    || lists[0] || null;
  const addBox = document.getElementById("list-add");
  function showStar(t, row) {
    const star = row.querySelector(".star");
    const on = signedIn ? !!(target() && target().tickers.includes(t)) : watch.has(t);
    star.textContent = on ? "★" : "☆";
    star.setAttribute("aria-pressed", on);
    const where = signedIn ? (target() ? target().name : "a new list") : "watchlist";
    star.setAttribute("aria-label", (on ? `remove from ${where}: ` : `add to ${where}: `) + t);
    // ↑ and ↓ move a symbol one place in the picked list (not past either end)
    const order = signedIn && active() ? active().tickers : [];
    const at = order.indexOf(t);
    let after = star;
    for (const [dir, arrow, can] of [["up", "↑", at > 0], ["down", "↓", at >= 0 && at < order.length - 1]]) {
      let move = row.querySelector(`.move.${dir}`);
      if (can) {
        if (!move) {
          move = document.createElement("button");
          move.type = "button";
          move.className = `move ${dir}`;
          move.dataset.dir = dir;
          move.textContent = arrow;
          after.after(move);
        }
        move.setAttribute("aria-label", `move ${t} ${dir} in ${active().name}`);
        after = move;
      } else if (move) move.remove();
    }
  }
  function showWatch() {
    if (signedIn) {
      const list = active();
      watch = new Set(list ? list.tickers : []);
      info.textContent = list ? `${list.name}: ${list.tickers.length} symbol(s) · live for these only`
        : (target() ? `☆ adds to ${target().name}` : "");
      addBox.hidden = !list;
      document.getElementById("list-rename").hidden = !list;
      document.getElementById("list-delete").hidden = !list;
      [...pick.options].forEach((o) => {
        const w = lists.find((x) => String(x.id) === o.value);
        if (w) o.textContent = `${w.name} (${w.tickers.length})`;
      });
    } else {
      info.textContent = watch.size
        ? `Watchlist (${watch.size}): ${[...watch].join(", ")}` + (narrowed() ? " · live for these only" : "")
        : "☆ adds a symbol to your watchlist";
      clear.hidden = watch.size === 0;
    }
    for (const [t, row] of rows) showStar(t, row);
    visible();
    resort();
  }
  function subscribe() {
    if (!socket || !socket.connected) return;
    // the rows' own rooms too: the stream's trades move them between minutes
    // only the difference is sent: a reorder sends nothing, one ticker more sends one event
    const want = narrowed() ? [...watch] : ["*", ...[...rows.keys()].slice(0, MAX_ROOMS)];
    const had = new Set(subscribed), now = new Set(want);
    const gone = subscribed.filter((t) => !now.has(t)), added = want.filter((t) => !had.has(t));
    subscribed = want;
    if (gone.length) socket.emit("unsubscribe", { tickers: gone }, window.ack("unsubscribe"));
    if (added.length) socket.emit("subscribe", { tickers: added }, window.ack("subscribe"));
  }
  function saveWatch() {
    if (!signedIn) {
      localStorage.setItem(KEY, JSON.stringify([...watch]));
      localStorage.setItem(ONLY_KEY, onlyBox.checked ? "1" : "0");
    }
    showWatch();
    subscribe();
  }
  function keep(list) {  // the server's answer replaces our copy
    const i = lists.findIndex((w) => w.id === list.id);
    if (i >= 0) lists[i] = list; else lists.push(list);
  }
  async function listChange(call) {
    try { await call(); } catch (err) { info.textContent = `⚠ ${err.message}`; return; }
    saveWatch();
  }
  function addOption(list) {
    const o = document.createElement("option");
    o.value = String(list.id);
    o.textContent = list.name;
    pick.appendChild(o);
  }
  tbody.addEventListener("click", (e) => {
    const star = e.target.closest(".star");
    const move = e.target.closest(".move");
    if (!star && !move) return;
    const t = e.target.closest("tr").dataset.ticker;
    if (!signedIn) {
      if (watch.has(t)) watch.delete(t); else watch.add(t);
      saveWatch();
      return;
    }
    listChange(async () => {
      let list = target();
      if (!list) { list = await send("POST", "/api/watchlists", { name: "My watchlist" }); keep(list); addOption(list); }
      const base = `/api/watchlists/${list.id}/tickers`;
      if (move) {
        const order = list.tickers.slice();
        const i = order.indexOf(t), j = move.dataset.dir === "down" ? i + 1 : i - 1;
        [order[j], order[i]] = [order[i], order[j]];
        keep(await send("PATCH", `/api/watchlists/${list.id}`, { tickers: order }));
      } else if (list.tickers.includes(t)) keep(await send("DELETE", `${base}/${encodeURIComponent(t)}`));
      else keep(await send("POST", base, { ticker: t }));
    });
  });
  onlyBox.addEventListener("change", saveWatch);
  if (clear) clear.addEventListener("click", () => { watch = new Set(); saveWatch(); });
  if (signedIn && pick) {
    const remembered = localStorage.getItem(LIST_KEY);
    if (remembered && lists.some((w) => String(w.id) === remembered)) pick.value = remembered;
    const remember = () => {
      localStorage.setItem(LIST_KEY, pick.value);
      if (pick.value) localStorage.setItem(TARGET_KEY, pick.value);
    };
    pick.addEventListener("change", () => { remember(); saveWatch(); });
    addBox.addEventListener("keydown", (e) => {
      if (e.key !== "Enter" || !addBox.value.trim() || !active()) return;
      const list = active(), ticker = addBox.value.trim().toUpperCase();
      listChange(async () => {
        keep(await send("POST", `/api/watchlists/${list.id}/tickers`, { ticker }));
        addBox.value = "";
      });
    });
    document.getElementById("list-new").addEventListener("click", () => {
      const name = window.prompt("Name of the new list");
      if (!name) return;
      listChange(async () => {
        const list = await send("POST", "/api/watchlists", { name });
        keep(list);
        addOption(list);
        pick.value = String(list.id);
        remember();
      });
    });
    document.getElementById("list-rename").addEventListener("click", () => {
      const list = active();
      const name = list && window.prompt("New name", list.name);
      if (!name) return;
      listChange(async () => keep(await send("PATCH", `/api/watchlists/${list.id}`, { name })));
    });
    document.getElementById("list-delete").addEventListener("click", () => {
      const list = active();
      if (!list || !window.confirm(`Delete the list ${list.name}?`)) return;
      listChange(async () => {
        await send("DELETE", `/api/watchlists/${list.id}`);
        lists = lists.filter((w) => w.id !== list.id);
        pick.querySelector(`option[value="${list.id}"]`).remove();
        pick.value = "";
        localStorage.setItem(LIST_KEY, "");
      });
    });
  }
  showWatch();

  // Columns: the user's choice (kept on the server when signed in, else in this browser).
  const columnBoxes = [...document.querySelectorAll("#columns input[type=checkbox]")];
  function showColumns(chosen) {
    columnBoxes.forEach((b) => {
      b.checked = chosen.includes(b.value);
      table.classList.toggle(`hide-${b.value}`, !b.checked);
    });
  }
  if (!signedIn && localStorage.getItem(COLS_KEY)) showColumns(JSON.parse(localStorage.getItem(COLS_KEY)));
  columnBoxes.forEach((b) => b.addEventListener("change", async () => {
    const chosen = columnBoxes.filter((x) => x.checked).map((x) => x.value);
    showColumns(chosen);
    if (!signedIn) { localStorage.setItem(COLS_KEY, JSON.stringify(chosen)); return; }
    try { await send("PATCH", "/api/me/settings", { dashboard_columns: chosen }); }
    catch (err) { info.textContent = `⚠ columns not saved: ${err.message}`; }
  }));

  // The tracked symbols as the server has them now: add the new, drop the removed.
  // A tick's stock_update lists every tracked symbol that has a reading, so a
  // row with a reading that it no longer lists was removed; the snapshot also
  // names those still awaiting their first reading (``waiting``).
  function syncRows(stocks, waiting) {
    stocks.forEach(apply);
    const listed = new Set(stocks.map((s) => s.ticker));
    for (const [t, row] of rows) {
      const gone = waiting ? !listed.has(t) && !waiting.includes(t) : !listed.has(t) && row.dataset.time;
      if (gone) { row.remove(); rows.delete(t); }
    }
    (waiting || []).forEach((t) => { if (!rows.has(t)) addRow(t); });
    document.getElementById("symbol-count").textContent = String(rows.size);
    visible();
    resort();
    subscribe();  // rows came or went: follow their rooms
  }

  // Gap fill: after a (re)connect, take the latest snapshot from the JSON API.
  async function fill() {
    try {
      const snap = await (await fetch("/api/stocks", { cache: "no-store" })).json();
      maxAge = snap.max_age_seconds;
      syncRows(snap.stocks, snap.awaiting_first_reading);
      showMarket(snap.market);
      if (snap.last_tick) { lastUpdate = new Date(snap.last_tick.ran_at); tickAge(); }
    } catch (err) { /* the next tick will bring the data */ }
  }

  socket = window.connectLive(() => { subscribed = []; subscribe(); fill(); });
  socket.on("stock_update", (msg) => {
    if (narrowed()) return;  // not subscribed to "all" any more; ignore a late one
    lastUpdate = new Date();
    syncRows(msg.stocks, null);
    showMarket(msg.market);
    tickAge();
  });
  // A trade between minutes: the row's price and time move; the minute reading still follows.
  socket.on("trade", (tr) => {
    const row = rows.get(tr.ticker);
    if (!row) return;
    const before = parseFloat(row.dataset.price);
    row.dataset.price = tr.price;
    row.dataset.trade = tr.time;
    showStale(row, null);  // a fresh print: the feed is back for this row, whatever the last reading said
    const priceCell = row.querySelector(".price");
    setText(priceCell, window.fmtPrice(tr.price), isNaN(before) ? 0 : Math.sign(tr.price - before));
    priceCell.classList.toggle("up", tr.price > before);
    priceCell.classList.toggle("down", tr.price < before);
    window.setTime(row.querySelector(".time"), tr.time);
    const pc = parseFloat(row.dataset.prevClose);
    if (pc) {  // the change follows the trade, against the same previous close as the readings
      const ch = window.fmtChange(tr.price - pc, (tr.price - pc) / pc * 100);
      const changeCell = row.querySelector(".change");
      setText(changeCell, ch.text);
      changeCell.className = "num change " + ch.cls;
      row.dataset.change_pct = (tr.price - pc) / pc * 100;
    }
  });
  socket.on("quote", (q) => {
    if (!narrowed() || !watch.has(q.ticker)) return;
    lastUpdate = new Date();
    apply(q);
    resort();
    tickAge();
  });
})();
