// Polls the round's progress while it runs; reloads once when it finishes so the variants show their results.
(function () {
  "use strict";
  const root = document.getElementById("round");
  if (!root || root.dataset.finished === "true") return;
  const url = root.dataset.progressUrl;
  const intervalMs = 2000;
  const set = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };

  function show(p) {
    set("round-status", p.status);
    document.getElementById("round-status").className = "status status-" + p.status;
    ["done", "failed", "running", "queued", "total"].forEach((k) => set("count-" + k, p[k]));
    set("percent-done", p.percent_done + "%");
    set("per-minute", p.per_minute === null ? "–" : p.per_minute);
    document.getElementById("bar-done").style.width = p.percent_done + "%";
    document.getElementById("bar-failed").style.width = p.percent_failed + "%";
    p.covers.forEach((c) => {
      const row = document.querySelector('tr[data-cover="' + c.cover_id + '"]');
      if (!row) return;
      ["done", "failed", "running", "queued", "total"].forEach((k) => {
        const cell = row.querySelector('[data-count="' + k + '"]');
        if (cell) cell.textContent = c[k];
      });
    });
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.ok) {
        const progress = await response.json();
        show(progress);
        if (progress.finished) {
          window.location.reload();
          return;
        }
      }
    } catch (err) {
      set("poll-note", "Connection lost; retrying…");
    }
    window.setTimeout(poll, intervalMs);
  }
  window.setTimeout(poll, intervalMs);
})();
