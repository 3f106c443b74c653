// The header's search box: suggestions as you type (tracked tickers and company names); Enter opens
// the chart (the /search page answers a ticker with its chart, or offers to track it).
(function () {
  "use strict";
  const box = document.getElementById("search");
  const list = document.getElementById("search-hits");
  if (!box || !list) return;
  let asked = "";
  box.addEventListener("input", async () => {
    const q = box.value.trim();
    if (!q || q === asked) return;
    asked = q;
    try {
      const got = await (await fetch(`/api/search?q=${encodeURIComponent(q)}&limit=8`)).json();
      if (asked !== q) return;  // a newer keystroke answered first
      list.replaceChildren(...got.results.map((h) => {
        const o = document.createElement("option");
        o.value = h.ticker;
        o.label = h.name || h.ticker;
        return o;
      }));
    } catch (err) { /* suggestions are a nicety: Enter still works */ }
  });
})();
