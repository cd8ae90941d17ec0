// Draws the run's curves (one small SVG chart per metric) and polls its progress until it finishes.
(function () {
  "use strict";
  const root = document.getElementById("run");
  if (!root) return;
  const url = root.dataset.progressUrl;
  const intervalMs = 2000;
  const set = (id, value) => { const el = document.getElementById(id); if (el) el.textContent = value; };
  const svgNS = "http://www.w3.org/2000/svg";

  function chart(name, points) {
    const width = 420, height = 140, pad = 28;
    const xs = points.map((p) => p[0]), ys = points.map((p) => p[1]);
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y0 === y1) { y0 -= 1; y1 += 1; }
    const sx = (x) => pad + (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0)) * (width - 2 * pad);
    const sy = (y) => height - pad - ((y - y0) / (y1 - y0)) * (height - 2 * pad);
    const figure = document.createElement("figure");
    figure.className = "curve";
    figure.dataset.metric = name;
    const svg = document.createElementNS(svgNS, "svg");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", `${name} by step`);
    const line = document.createElementNS(svgNS, "polyline");
    line.setAttribute("points", points.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "currentColor");
    line.setAttribute("stroke-width", "2");
    svg.appendChild(line);
    [[y1, pad], [y0, height - pad]].forEach(([value, y]) => {
      const label = document.createElementNS(svgNS, "text");
      label.setAttribute("x", 2);
      label.setAttribute("y", y + 4);
      label.setAttribute("font-size", "10");
      label.textContent = Number(value.toPrecision(4));
      svg.appendChild(label);
    });
    const caption = document.createElement("figcaption");
    const last = points[points.length - 1];
    caption.textContent = `${name}: ${Number(last[1].toPrecision(4))} at step ${last[0]} (${points.length} points)`;
    figure.append(svg, caption);
    return figure;
  }

  function drawCurves(curves) {
    const box = document.getElementById("curves");
    const names = Object.keys(curves).filter((n) => curves[n].length > 0);
    if (names.length === 0) return;
    box.replaceChildren(...names.map((n) => chart(n, curves[n])));
  }

  function show(p) {
    set("run-status", p.status);
    document.getElementById("run-status").className = "status status-" + p.status;
    set("run-step", p.step);
    set("run-total", p.total_steps || "?");
    set("run-elapsed", p.elapsed_s === null ? "–" : p.elapsed_s);
    set("run-eta", p.eta_s === null ? "–" : p.eta_s);
    document.getElementById("bar-step").style.width = p.percent + "%";
    const failure = document.getElementById("run-failure");
    failure.textContent = p.failure_reason;
    failure.hidden = !p.failure_reason;
    set("run-log", p.log.length ? p.log.join("\n") : "(no log yet)");
    drawCurves(p.curves);
  }

  drawCurves(JSON.parse(document.getElementById("curves-data").textContent));
  if (root.dataset.finished === "true") return;

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
        set("poll-note", "Updating live…");
      }
    } catch (err) {
      set("poll-note", "Connection lost; retrying…");
    }
    setTimeout(poll, intervalMs);
  }
  setTimeout(poll, intervalMs);
})();
