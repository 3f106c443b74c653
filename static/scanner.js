// Scanner: the lists arrive in the page; the subscribe acknowledgement gives each
// list as last announced (with its seq), and scan_update deltas keep it current.
// A missed delta (seq gap) or active filters refetch the list from the JSON API.
(function () {
  "use strict";
  const root = document.getElementById("scans");
  const filters = JSON.parse(root.dataset.filters || "{}");
  const filtered = Object.keys(filters).length > 0;
  const maxAge = Number(root.dataset.maxAge || 180) * 1000;
  const top = Number(root.dataset.top || 25);
  const asOf = document.getElementById("as-of");
  const held = {}; // list -> { seq, rows }
  window.__live.scan = 0;
  window.__live.scanLists = {};  // list -> updates received (browser tests)
  window.__live.scanFetches = 0;

  const dash = (x) => x === null || x === undefined;
  const fixed = (x, d) => (dash(x) ? "–" : Number(x).toFixed(d));
  const signed = (x) => (dash(x) ? "–" : (x >= 0 ? "+" : "") + Number(x).toFixed(2));
  const short = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
  const compact = (x) => (dash(x) ? "–" : short.format(x));  // 950, 12.3K, 3B (the title has it whole)

  function applyDelta(rows, change) {
    if (change.full) return change.rows.map((r) => ({ ...r }));
    const byTicker = new Map(rows.map((r) => [r.ticker, { ...r }]));
    change.remove.forEach((t) => byTicker.delete(t));
    change.add.forEach((r) => byTicker.set(r.ticker, { ...r }));
    change.update.forEach((u) => Object.assign(byTicker.get(u.ticker) || {}, u));
    const order = change.order || rows.map((r) => r.ticker).filter((t) => byTicker.has(t));
    return order.map((t) => byTicker.get(t));
  }

  function cell(text, cls) {
    const td = document.createElement("td");
    td.textContent = text;
    if (cls) td.className = cls;
    return td;
  }

  // Each list sorts by a column header (its own order, "#", by default); the choice is kept across
  // reloads, and a list that changes stays sorted
  const SORT_KEY = "stock-tracker.scan-sort";
  const sorts = (() => {
    try { return JSON.parse(localStorage.getItem(SORT_KEY)) || {}; } catch (e) { return {}; }
  })();
  function sorted(name, rows) {
    const ranked = rows.map((r, i) => ({ ...r, rank: i + 1 }));
    const s = sorts[name];
    if (!s || s.key === "rank") return s && s.dir < 0 ? ranked.reverse() : ranked;
    return ranked.sort((a, b) => {
      const x = a[s.key], y = b[s.key];
      if (dash(x) !== dash(y)) return dash(x) ? 1 : -1;  // blanks last, either way
      const cmp = s.key === "ticker" ? String(x).localeCompare(String(y)) : x - y;
      return cmp * s.dir || a.rank - b.rank;
    });
  }
  function showSort(name) {
    const s = sorts[name] || { key: "rank", dir: 1 };
    root.querySelectorAll(`section[data-list="${name}"] th[data-sort]`).forEach((th) => {
      th.setAttribute("aria-sort", th.dataset.sort !== s.key ? "none" : s.dir > 0 ? "ascending" : "descending");
    });
  }
  root.querySelectorAll("th[data-sort] button.sort").forEach((btn) => {
    const th = btn.closest("th");
    const name = th.closest("section.scan").dataset.list;
    btn.addEventListener("click", () => {
      const key = th.dataset.sort;
      const now = sorts[name] || { key: "rank", dir: 1 };
      // the first click on a number puts the largest first; again reverses it
      const first = key === "rank" || key === "ticker" ? 1 : -1;
      sorts[name] = { key, dir: now.key === key ? -now.dir : first };
      try { localStorage.setItem(SORT_KEY, JSON.stringify(sorts)); } catch (e) { /* private mode */ }
      if (held[name]) render(name, held[name].rows, new Set());
      else showSort(name);
    });
  });

  // The lists only the scanner every second makes: why each row is there, and how long ago
  const ago = (iso) => {
    const s = Math.max(0, Math.round((Date.now() - new Date(iso).getTime()) / 1000));
    return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : window.fmtShortTime(iso);
  };
  function showAges() {
    root.querySelectorAll("td.since[data-since]").forEach((td) => {
      if (td.dataset.since) { td.textContent = ago(td.dataset.since); td.title = window.fmtTime(td.dataset.since); }
    });
  }
  setInterval(showAges, 1000);
  // A row of any list: its ticker linked to the chart, flashed when it just entered
  function rowOf(r, entered) {
    const tr = document.createElement("tr");
    tr.dataset.ticker = r.ticker;
    if (entered.has(r.ticker)) tr.className = "flash entered";
    const link = document.createElement("a");
    link.href = `/stocks/${encodeURIComponent(r.ticker)}`;
    link.textContent = r.ticker;
    const t = cell("");
    t.append(link);
    return [tr, t];
  }
  function renderLive(body, name, rows, entered) {
    sorted(name, rows).forEach((r) => {
      const [tr, t] = rowOf(r, entered);
      const why = cell(r.why + (r.status === "halted" && r.reason ? ` (${r.reason})` : ""), "why");
      const since = cell("", "num since");
      since.dataset.since = r.since || "";
      tr.append(cell(String(r.rank), "num rank"), t, cell(window.fmtPrice(r.price), "num price"), why, since);
      body.append(tr);
    });
    showAges();
  }
  const mode = document.getElementById("scan-mode");
  function showMode(u) {
    const live = u.live === true;
    mode.textContent = live ? `live · every second${u.session ? " · " + u.session : ""}`
      : "each minute (stream not serving)";
    mode.classList.toggle("late", !live);
    const section = root.querySelector(`section[data-list="${u.list}"] .warming`);
    if (section) section.hidden = !u.warming_up;
    if (!live) {  // the minute tick announces again: the lists only the stream makes are not the market now
      root.querySelectorAll('section[data-kind="live"]').forEach((s) => {
        const warn = s.querySelector(".warming");
        warn.textContent = "stream not serving";
        warn.hidden = false;
        delete held[s.dataset.list];
        render(s.dataset.list, [], new Set());
      });
    }
  }

  function render(name, rows, entered) {
    const section = root.querySelector(`section[data-list="${name}"]`);
    const body = section.querySelector("tbody");
    const live = section.dataset.kind === "live";
    showSort(name);
    body.replaceChildren();
    if (!rows.length) {
      const tr = document.createElement("tr");
      tr.className = "none";
      const td = cell("Nothing in play here right now.");
      td.colSpan = live ? 5 : 9;
      tr.append(td);
      body.append(tr);
      return;
    }
    if (entered.size && section.querySelector("input.notify:checked")) window.alertBeep();  // toasts.js
    if (live) return void renderLive(body, name, rows, entered);
    sorted(name, rows).forEach((r) => {
      const [tr, t] = rowOf(r, entered);
      const chg = cell(signed(r.change_pct), "num chg " + (r.change_pct > 0 ? "up" : r.change_pct < 0 ? "down" : ""));
      const rvol = cell(dash(r.rvol) && r.rvol_sessions ? "n/m" : fixed(r.rvol, 2), "num rvol");
      rvol.title = r.rvol_note || `${r.rvol_sessions} earlier session(s)`;
      const flags = cell("", "flags");
      const flag = (text, cls) => {
        const s = document.createElement("span");
        s.className = "flag " + (cls || "");
        s.textContent = text;
        flags.append(s);
      };
      if (r.unusual) flag(`vol ×${r.vol_ratio >= 1000 ? compact(r.vol_ratio) : fixed(r.vol_ratio, 1)}`);
      if (r.new_high) flag("new high", "up");
      if (r.new_low) flag("new low", "down");
      const volume = cell(compact(r.day_volume), "num vol");
      if (!dash(r.day_volume)) volume.title = Math.round(r.day_volume).toLocaleString("en-US");
      tr.append(cell(String(r.rank), "num rank"), t, cell(window.fmtPrice(r.price), "num price"), chg,
                cell(signed(r.gap_pct), "num gap"), volume, rvol,
                cell(fixed(r.vwap, 2), "num vwap"), flags);
      body.append(tr);
    });
  }

  function showAsOf(iso, stale) {
    if (!iso) return;
    asOf.dataset.asOf = iso;
    const late = stale || Date.now() - new Date(iso).getTime() > maxAge;
    asOf.textContent = `as of ${window.fmtTime(iso)}` + (late ? " · ⚠ stale" : "");
    asOf.classList.toggle("late", late);
  }
  setInterval(() => showAsOf(asOf.dataset.asOf, false), 5000);

  function fetchList(name, seq) {
    window.__live.scanFetches += 1;
    const qs = new URLSearchParams({ ...filters, limit: String(top) });
    return fetch(`/api/scanner/${name}?${qs}`, { cache: "no-store" })
      .then((r) => r.json())
      .then((d) => {
        held[name] = { seq: seq === undefined ? null : seq, rows: d.rows };
        render(name, d.rows, new Set());
        showAsOf(d.as_of, d.stale);
      })
      .catch(() => {});
  }

  const names = [...root.querySelectorAll("section.scan")].map((s) => s.dataset.list);
  const socket = window.connectLive((s) => {
    s.emit("subscribe", { scans: ["*"] }, (reply) => {
      window.ack("scanner")(reply);
      if (!reply || !reply.ok) return;
      names.forEach((n) => {
        const base = reply.scans[n];
        const liveOnly = root.querySelector(`section[data-list="${n}"]`).dataset.kind === "live";
        if (!base && liveOnly) return;  // nothing announced yet: the page shows why
        if (filtered || !base) return void fetchList(n);
        held[n] = { seq: base.seq, rows: base.rows };
        render(n, base.rows, new Set());
        if (base.live) showMode({ ...base, list: n });
        showAsOf(base.time, false);
      });
    });
  });

  socket.on("scan_update", (u) => {
    window.__live.scan += 1;
    window.__live.scanLists[u.list] = (window.__live.scanLists[u.list] || 0) + 1;
    const mine = held[u.list];
    if (filtered || (!u.full && (!mine || mine.seq !== u.prev_seq))) return void fetchList(u.list, u.seq);
    const before = new Set((mine ? mine.rows : []).map((r) => r.ticker));
    const rows = applyDelta(mine ? mine.rows : [], u);
    held[u.list] = { seq: u.seq, rows };
    render(u.list, rows, new Set(rows.filter((r) => !before.has(r.ticker)).map((r) => r.ticker)));
    showMode(u);
    showAsOf(u.time, false);
  });
})();
