// A signed-in user's own rules' alerts on whatever page is open: a toast (and a sound or a browser
// notification when chosen on the Rules page, remembered per user in their settings).  Every page
// with a live connection follows the user's alert feed; the Rules page lists the events itself.
(function () {
  "use strict";
  window.__toasts = { shown: 0, beeps: 0, following: 0 };
  // the alert sound, for this feed and the Rules page's
  const beep = window.alertBeep = () => {
    try {
      const ctx = new AudioContext();
      const osc = ctx.createOscillator();
      osc.connect(ctx.destination);
      osc.frequency.value = 880;
      osc.start();
      osc.stop(ctx.currentTime + 0.15);
      window.__toasts.beeps += 1;
    } catch (e) { /* no audio here */ }
  };
  const prefs = JSON.parse(document.body.dataset.alerts || "null");
  if (!prefs) return;  // not signed in: no feed of one's own
  const builtin = Number(document.body.dataset.builtinRule || 0);
  const box = document.getElementById("toasts");
  const seen = new Set();
  function show(e) {
    if (e.rule_id === builtin || seen.has(e.id)) return;  // the built-in crossovers have their own page
    seen.add(e.id);
    const t = document.createElement("div");
    t.className = "toast";
    t.dataset.id = e.id;
    const link = document.createElement("a");
    link.href = `/stocks/${encodeURIComponent(e.ticker)}?range=all&at=${encodeURIComponent(e.bar_time)}`;
    link.textContent = `${e.ticker} · ${e.rule_name || "rule " + e.rule_id}`;
    const why = document.createElement("div");
    why.textContent = e.explanation + window.printLatency(e, true);
    const close = document.createElement("button");
    close.type = "button";
    close.className = "link";
    close.textContent = "×";
    close.setAttribute("aria-label", "dismiss");
    close.addEventListener("click", () => t.remove());
    t.append(link, close, why);
    box.prepend(t);
    while (box.children.length > 5) box.lastChild.remove();
    setTimeout(() => t.remove(), 15000);
    window.__toasts.shown += 1;
    if (prefs.sound) beep();
    if (prefs.notify && window.Notification && Notification.permission === "granted") {
      new Notification(link.textContent, { body: e.explanation });
    }
  }
  if (document.getElementById("events")) return;  // the Rules page: its own list, sound and notices
  window.onLiveConnect = (socket) => socket.emit("follow_alerts", { on: true }, (reply) => {
    if (reply && reply.ok) window.__toasts.following += 1;  // the server now sends this user's fires here
  });
  window.onLiveSocket = (socket) => socket.on("alert_event", show);
})();
