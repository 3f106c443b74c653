// Alert rules page: the form (with a replay count as you type), the rules, their live events, webhooks.
// Reads and writes go to /api/rules and /api/webhooks as the signed-in user (the session, with the page's
// CSRF token on writes), or with a token the user pasted (session storage only).
(function () {
  "use strict";
  const $ = (sel, root = document) => root.querySelector(sel);
  const form = $("#rule-form");
  const KEY = "tracker-api-token";
  const FIELDS = ["open", "high", "low", "close", "volume"];
  const METRICS = ["change_pct", "gap_pct", "vwap", "vwap_distance_pct", "rvol", "day_volume", "prev_close",
                   "day_high", "day_low", "prior_day_high", "prior_day_low"];
  const STUDIES = ["rsi", "bb_upper", "bb_middle", "bb_lower", "macd", "macd_signal", "macd_histogram"];
  const PAIR = ["crossing", "crossing_up", "crossing_down", "greater_than", "less_than"];
  const CHANNEL = ["entering_channel", "exiting_channel", "inside_channel", "outside_channel"];
  const SIGNALS = ["new_high_of_day", "new_low_of_day", "volume_spike", "halted", "resumed"];
  window.__rules = { replays: 0, events: 0, notified: 0 };

  const token = () => sessionStorage.getItem(KEY) || "";
  function showToken() {
    $("#token-state").textContent = token() ? "token set: changes allowed, as its owner"
      : window.csrfToken() ? "signed in: changes allowed, as you"
      : "no token and not signed in: read only (the built-in rule)";
  }
  $("#save-token").addEventListener("click", () => {
    sessionStorage.setItem(KEY, $("#token").value.trim());
    $("#token").value = "";
    showToken();
    socket.disconnect().connect();  // follow the feed again, as the token's owner
    loadRules();
    loadHooks();
  });

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json" };
    if (token()) headers.Authorization = "Bearer " + token();
    else if (window.csrfToken()) headers["X-CSRFToken"] = window.csrfToken();
    const resp = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined,
                                     cache: "no-store" });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error((data.error && data.error.message) || `HTTP ${resp.status}`);
    return data;
  }

  function operand(text, where) {
    const t = String(text || "").trim().toLowerCase();
    if (t !== "" && !Number.isNaN(Number(t))) return { const: Number(t) };
    if (t === "price") return { price: true };
    if (FIELDS.includes(t)) return { field: t };
    if (METRICS.includes(t)) return { metric: t };
    const m = /^(sma|ema)\((\d+)\)$/.exec(t);
    if (m) return { [m[1]]: Number(m[2]) };
    const s = /^([a-z_]+)(?:\(([\d.,\s]*)\))?$/.exec(t);  // rsi(14), bb_upper(20,2), macd_signal
    if (s && STUDIES.includes(s[1])) {
      const args = (s[2] || "").split(",").map((x) => x.trim()).filter(Boolean).map(Number);
      return { [s[1]]: args.length === 0 ? (s[1] === "rsi" ? 14 : s[1].startsWith("bb") ? 20 : 12)
                                         : args.length === 1 ? args[0] : args };
    }
    throw new Error(`${where}: "${text}" is not an operand (price, close, sma(20), rsi(14), bb_upper(20,2), `
                    + `macd_signal(12,26,9), rvol, 101.5 …)`);
  }

  const signal = (op, k) => op === "volume_spike" ? { op, k: Number(k) } : { op };
  function rule() {
    const f = form.elements;
    const op = f.op.value;
    let condition;
    if (SIGNALS.includes(op)) condition = signal(op, f.k.value);
    else {
      condition = { op, a: operand(f.a.value, "when") };
      if (PAIR.includes(op)) condition.b = operand(f.b.value, "than / with");
      else if (CHANNEL.includes(op)) {
        condition.lower = operand(f.lower.value, "lower");
        condition.upper = operand(f.upper.value, "upper");
      } else {
        condition[f.over.value] = Number(f.bars.value);
        condition.value = Number(f.value.value);
      }
    }
    if (f.also.value) condition = { op: "all", of: [condition, signal(f.also.value, f.also_k.value)] };
    const kind = form.querySelector("input[name=scope]:checked").value;
    const scope = kind === "all" ? { all: true } : kind === "scan" ? { scan: f.scan.value }
      : { tickers: f.tickers.value.split(/[\s,]+/).filter(Boolean) };
    const channels = [];
    if (f.browser.checked) channels.push("browser");
    if (f.webhook.value) channels.push("webhook:" + f.webhook.value);
    return { name: f.name.value.trim(), condition, scope, frequency: f.frequency.value,
             cooldown_seconds: Number(f.cooldown.value), channels };
  }

  const showFrequency = () => {  // what the chosen frequency does on real-time data, in one line
    $("#frequency-line").textContent = form.elements.frequency.selectedOptions[0].dataset.line || "";
  };
  form.elements.frequency.addEventListener("change", showFrequency);

  function showParts() {
    const op = form.elements.op.value;
    const sig = SIGNALS.includes(op);
    form.querySelector("[data-for=operand]").hidden = sig;
    form.querySelector("[data-for=pair]").hidden = !PAIR.includes(op);
    form.querySelector("[data-for=channel]").hidden = !CHANNEL.includes(op);
    form.querySelector("[data-for=moving]").hidden = sig || PAIR.includes(op) || CHANNEL.includes(op);
    form.querySelector("[data-for=spike]").hidden = op !== "volume_spike";
    form.querySelector("[data-for=also-spike]").hidden = form.elements.also.value !== "volume_spike";
  }

  function formError(text) {
    const el = $("#form-error");
    el.textContent = text || "";
    el.hidden = !text;
  }

  let pending = 0;
  async function replay() {
    const mine = ++pending;
    let body;
    try { body = rule(); } catch (e) { formError(e.message); $("#replay").textContent = ""; return; }
    formError("");
    $("#replay").textContent = "replaying the last 5 sessions…";
    try {
      const got = await api("POST", "/api/rules/replay", { rule: body });
      if (mine !== pending) return;
      window.__rules.replays += 1;
      const stopped = got.stopped_too_often.length ? `; the storm breaker would stop ${got.stopped_too_often.join(", ")}` : "";
      $("#replay").textContent = (got.unreplayable || []).length
        ? `no preview: ${got.unreplayable.join(", ")} ${got.unreplayable.length === 1 ? "is" : "are"} not stored per minute, so the last 5 sessions cannot be replayed for this rule (it is judged live)`
        : `would have fired ${got.count} time${got.count === 1 ? "" : "s"} in the last 5 sessions (${got.bars} bars)${stopped}`;
    } catch (e) {
      if (mine === pending) { $("#replay").textContent = ""; formError(e.message); }
    }
  }
  let timer = 0;
  form.addEventListener("input", () => { showParts(); clearTimeout(timer); timer = setTimeout(replay, 350); });
  // Editing: the form takes the rule's values; "Save" replaces it (PUT: a new version)
  let editing = null;
  function edit(r) {
    const f = form.elements;
    const joined = r.condition.op === "all";
    const c = joined ? r.condition.of[0] : r.condition;
    const also = joined ? r.condition.of[1] : null;
    f.name.value = r.name;
    if (c.a) f.a.value = describe(c.a);
    f.op.value = c.op;
    if (c.k) f.k.value = c.k;
    f.also.value = also ? also.op : "";
    if (also && also.k) f.also_k.value = also.k;
    if (c.b) f.b.value = describe(c.b);
    if (c.lower) { f.lower.value = describe(c.lower); f.upper.value = describe(c.upper); }
    if (c.bars || c.seconds) {
      f.bars.value = c.bars || c.seconds; f.over.value = c.bars ? "bars" : "seconds"; f.value.value = c.value;
    }
    const kind = r.scope.all ? "all" : r.scope.scan ? "scan" : "tickers";
    form.querySelector(`input[name=scope][value=${kind}]`).checked = true;
    if (r.scope.scan) f.scan.value = r.scope.scan;
    f.tickers.value = (r.scope.tickers || []).join(", ");
    f.frequency.value = r.frequency;
    showFrequency();
    f.cooldown.value = r.cooldown_seconds;
    f.browser.checked = r.channels.includes("browser");
    const hook = r.channels.find((ch) => ch.startsWith("webhook:"));
    f.webhook.value = hook ? hook.slice(8) : "";
    editing = r.id;
    $("#rule-submit").textContent = `Save rule ${r.id}`;
    $("#rule-cancel").hidden = false;
    showParts();
    form.scrollIntoView({ block: "start" });
    replay();
  }
  function stopEditing() {
    editing = null;
    $("#rule-submit").textContent = "Create rule";
    $("#rule-cancel").hidden = true;
  }
  $("#rule-cancel").addEventListener("click", stopEditing);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await (editing ? api("PUT", `/api/rules/${editing}`, rule()) : api("POST", "/api/rules", rule()));
      formError("");
      stopEditing();
      loadRules();
    } catch (e) { formError(e.message); }
  });

  function cell(tr, content) {
    const td = document.createElement("td");
    if (content instanceof Node) td.append(content); else td.textContent = content;
    tr.append(td);
    return td;
  }
  function button(label, onClick, cls) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", onClick);
    return b;
  }
  const describe = (o) => {
    if (o.price) return "price";
    if (o.field || o.metric) return o.field || o.metric;
    if ("const" in o) return String(o.const);
    const [kind, arg] = Object.entries(o)[0];
    return `${kind}(${[].concat(arg).join(",")})`;  // sma(20), bb_upper(20,2)
  };
  function conditionText(c) {
    if (c.op === "all") return c.of.map(conditionText).join(" and ");
    if (SIGNALS.includes(c.op)) return c.op.replace(/_/g, " ") + (c.k ? ` ≥ ${c.k}×` : "");
    if (c.seconds) return `${describe(c.a)} ${c.op.replace(/_/g, " ")} ${c.value} within ${c.seconds} s`;
    if (c.b) return `${describe(c.a)} ${c.op.replace(/_/g, " ")} ${describe(c.b)}`;
    if (c.lower) return `${describe(c.a)} ${c.op.replace(/_/g, " ")} ${describe(c.lower)}–${describe(c.upper)}`;
    return `${describe(c.a)} ${c.op.replace(/_/g, " ")} ${c.value} within ${c.bars} bars`;
  }

  async function loadRules() {
    const body = $("#rules").tBodies[0];
    let got;
    try { got = await api("GET", "/api/rules"); } catch (e) { body.innerHTML = ""; cell(body.insertRow(), e.message); return; }
    body.innerHTML = "";
    if (!got.rules.length) { const tr = body.insertRow(); tr.className = "none"; cell(tr, "No rules yet.").colSpan = 6; }
    for (const r of got.rules) {
      const tr = body.insertRow();
      tr.dataset.rule = r.id;
      const name = cell(tr, `${r.name} (v${r.version})`);
      if (r.builtin) {
        const tag = document.createElement("span");
        tag.className = "builtin";
        tag.textContent = "built in";
        tag.title = "The SMA crossover every ticker gets (the alert event). Mute it here; it cannot be changed or deleted.";
        name.append(" ", tag);
      }
      cell(tr, conditionText(r.condition));
      cell(tr, r.scope.all ? "all tracked" : r.scope.scan ? `list: ${r.scope.scan}` : r.scope.tickers.join(", "));
      cell(tr, `${r.frequency.replace(/_/g, " ")}, cooldown ${r.cooldown_seconds} s`);
      const judged = cell(tr, r.judged || "–");  // on each trade (the evaluate process) or each minute
      judged.title = r.judged_why || "";
      judged.className = "judged";
      const status = cell(tr, r.status === "paused" ? "muted (paused)" : "active");
      status.className = "status-" + r.status;
      if (r.stopped_too_often.length) {
        const note = document.createElement("div");
        note.className = "stopped";
        note.textContent = `stopped_too_often: ${r.stopped_too_often.join(", ")} (fired more than 15 times in 3 minutes)`;
        status.append(note);
      }
      const actions = cell(tr, "");
      const resume = r.status === "paused" || r.stopped_too_often.length;
      actions.append(button(resume ? "Re-enable" : "Mute", () => setStatus(r.id, resume ? "active" : "paused")));
      if (!r.builtin) {
        actions.append(" ", button("Edit", () => edit(r)), " ", button("Delete", async () => {
          try { await api("DELETE", `/api/rules/${r.id}`); } catch (e) { formError(e.message); }
          loadRules();
        }));
      }
    }
  }
  async function setStatus(id, status) {
    try { await api("PATCH", `/api/rules/${id}`, { status }); } catch (e) { formError(e.message); }
    loadRules();
  }

  // ---- events: live, with the gap after a reconnect, sound and notifications ----
  const events = $("#events");
  const seen = new Set([...events.tBodies[0].rows].map((r) => r.dataset.id).filter(Boolean));
  let last = Number(events.dataset.last) || 0;
  function addEvent(e, live) {
    if (seen.has(String(e.id))) return;
    seen.add(String(e.id));
    last = Math.max(last, e.id);
    window.__rules.events += 1;
    const body = events.tBodies[0];
    body.querySelector("tr.none")?.remove();
    const tr = document.createElement("tr");
    tr.dataset.id = e.id;
    tr.dataset.rule = e.rule_id;
    tr.className = "flash";
    cell(tr, window.fmtTime(e.trade_time || e.bar_time));  // a fire on the print: its trade's time
    cell(tr, e.rule_name || `rule ${e.rule_id}`);
    const link = document.createElement("a");
    link.href = `/stocks/${encodeURIComponent(e.ticker)}?range=all&at=${encodeURIComponent(e.bar_time)}`;
    link.textContent = e.ticker;
    cell(tr, link);
    cell(tr, e.explanation + (e.stale ? " (data was stale)" : "") + window.printLatency(e, live)).className = "why";
    const mute = button("Mute rule", () => {}, "mute");
    mute.dataset.rule = e.rule_id;
    cell(tr, mute);
    body.prepend(tr);
    if (live && $("#notify").checked) {
      window.alertBeep();  // toasts.js
      window.__rules.notified += 1;
      if (window.Notification && Notification.permission === "granted") {
        new Notification(`${e.ticker}: ${e.rule_name || "rule " + e.rule_id}`, { body: e.explanation });
      }
    }
  }
  events.addEventListener("click", (ev) => {
    const b = ev.target.closest("button.mute");
    if (b) setStatus(Number(b.dataset.rule), "paused");
  });
  // remembered per user (their settings), and used by every page's toasts (toasts.js)
  const prefs = JSON.parse(document.body.dataset.alerts || "null");
  if (prefs) $("#notify").checked = !!(prefs.sound || prefs.notify);
  $("#notify").addEventListener("change", (ev) => {
    const on = ev.target.checked;
    if (on && window.Notification && Notification.permission === "default") Notification.requestPermission();
    if (prefs) api("PATCH", "/api/me/settings", { alert_sound: on, alert_notify: on }).catch(() => {});
  });
  window.liveAuth = () => (token() ? { token: token() } : {});  // the feed as the token's owner
  const socket = window.connectLive((s) => {
    s.emit("follow_alerts", { on: true, after: last }, (reply) => {
      window.ack("alerts")(reply);
      (reply && reply.missed || []).forEach((e) => addEvent(e, false));
    });
  });
  socket.on("alert_event", (e) => {
    addEvent(e, true);
    // a rule made elsewhere (the API, another tab) fires: list it without a reload
    if (!document.querySelector(`#rules tr[data-rule="${e.rule_id}"]`)) loadRules();
  });
  // and rules made or changed elsewhere show when the page is looked at again
  document.addEventListener("visibilitychange", () => { if (!document.hidden) loadRules(); });
  setInterval(() => { if (!document.hidden && !editing) loadRules(); }, 30000);

  // ---- webhooks ----
  async function loadHooks() {
    const body = $("#hooks").tBodies[0];
    const select = form.elements.webhook;
    body.innerHTML = "";
    if (!token() && !window.csrfToken()) { cell(body.insertRow(), "Sign in or paste a token to see and add webhook endpoints.").colSpan = 3; return; }
    let got;
    try { got = await api("GET", "/api/webhooks"); } catch (e) { cell(body.insertRow(), e.message).colSpan = 3; return; }
    select.length = 1;
    for (const h of got.endpoints) {
      select.add(new Option(`${h.id}: ${h.url}`, h.id));
      const tr = body.insertRow();
      tr.dataset.endpoint = h.id;
      cell(tr, `${h.url}${h.description ? " — " + h.description : ""}`);
      cell(tr, h.status === "disabled" ? `disabled: ${h.disabled_reason}` : h.failing_since ? `failing since ${window.fmtTime(h.failing_since)}` : "active");
      const actions = cell(tr, "");
      actions.append(button("Deliveries", () => showDeliveries(h.id, h.url)), " ",
                     button("Rotate secret", async () => showSecret(await api("POST", `/api/webhooks/${h.id}/rotate`), true)),
                     " ", button(h.status === "disabled" ? "Enable" : "Disable", async () => {
                       await api("PATCH", `/api/webhooks/${h.id}`, { status: h.status === "disabled" ? "active" : "disabled" });
                       loadHooks();
                     }),
                     " ", button("Delete", async () => {
                       if (!window.confirm(`Delete the endpoint ${h.url}? Its delivery log goes with it.`)) return;
                       try { await api("DELETE", `/api/webhooks/${h.id}`); } catch (e) { $("#hook-error").textContent = e.message; $("#hook-error").hidden = false; }
                       loadHooks();
                     }));
    }
  }
  function showSecret(h, rotated) {
    const el = $("#hook-secret");
    el.hidden = false;
    el.textContent = `Secret for endpoint ${h.id}, shown only now: ${h.secret}` +
      (rotated ? " (the old secret also signs for 24 hours)" : "");
    loadHooks();
  }
  $("#hook-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const err = $("#hook-error");
    try {
      const f = ev.target.elements;
      showSecret(await api("POST", "/api/webhooks", { url: f.url.value.trim(), description: f.description.value.trim() }));
      err.hidden = true;
    } catch (e) { err.textContent = e.message; err.hidden = false; }
  });
  async function showDeliveries(id, url) {
    const box = $("#deliveries");
    box.hidden = false;
    $("#deliveries-title").textContent = `Deliveries to ${url}`;
    const body = box.querySelector("tbody");
    body.innerHTML = "";
    const got = await api("GET", `/api/webhooks/${id}`);
    if (!got.deliveries.length) cell(body.insertRow(), "Nothing sent yet.").colSpan = 4;
    for (const d of got.deliveries) {
      const tr = body.insertRow();
      tr.dataset.delivery = d.id;
      cell(tr, `evt_${d.event_id}`);
      cell(tr, d.status + (d.next_attempt_at ? ` (next ${window.fmtTime(d.next_attempt_at)})` : ""));
      const log = document.createElement("ol");
      log.className = "attempts";
      for (const a of d.log) {
        const li = document.createElement("li");
        li.textContent = `${window.fmtTime(a.at)} · ${a.status_code ?? "no answer"} · ${a.error_class || "ok"} · ${a.duration_ms} ms` +
          `${a.trigger === "manual" ? " · manual" : ""}${a.response ? " · " + a.response.slice(0, 200) : ""}${a.error ? " · " + a.error : ""}`;
        log.append(li);
      }
      cell(tr, log);
      cell(tr, button("Redeliver", async () => { await api("POST", `/api/deliveries/${d.id}/redeliver`); showDeliveries(id, url); }));
    }
  }

  showParts();
  showToken();
  loadRules();
  loadHooks();
  replay();
})();
