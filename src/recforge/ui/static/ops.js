// Operations: refresh each service's request count and rate every 5 s from /api/ops.
(function () {
  "use strict";
  const box = document.getElementById("ops");
  if (!box) return;
  async function tick() {
    try {
      const r = await fetch("/api/ops");
      const body = await r.json();
      for (const s of body.services) {
        const sec = document.querySelector('[data-service="' + s.slug + '"]');
        if (!sec) continue;
        sec.querySelector('[data-field="requests"]').textContent = String(s.requests);
        sec.querySelector('[data-field="rate"]').textContent = s.rate_per_s === null ? "measuring" : s.rate_per_s.toFixed(2) + "/s";
      }
    } catch (e) { /* keep the last numbers */ }
    setTimeout(tick, 5000);
  }
  setTimeout(tick, 5000);
  const btn = document.getElementById("reload");
  if (btn) btn.addEventListener("click", () => window.location.reload());
})();
