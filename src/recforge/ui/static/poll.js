// Pages with a background job reload themselves when the job leaves queued/running.
(function () {
  "use strict";
  const box = document.getElementById("job");
  if (!box || !["queued", "running"].includes(box.dataset.state)) return;
  const key = box.dataset.key;
  async function tick() {
    try {
      const r = await fetch("/api/job?key=" + encodeURIComponent(key));
      const j = await r.json();
      if (j.state !== "queued" && j.state !== "running") { window.location.reload(); return; }
    } catch (e) { /* try again */ }
    setTimeout(tick, 1500);
  }
  setTimeout(tick, 1000);
})();
