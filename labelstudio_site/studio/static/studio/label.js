// The labeling page: fetches a task from the labeler API, plays and rates its variants, ranks them, submits or
// skips, then loads the next task. Keyboard first; see the legend in label.html for the keys.
(function () {
  "use strict";
  const app = document.getElementById("label-app");
  if (!app) return;

  const $ = (id) => document.getElementById(id);
  const el = (tag, attrs, children) => {
    const node = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v);
    });
    (children || []).forEach((c) => node.append(c));
    return node;
  };
  const AXES = ["musicality", "compatibility"];
  const COMPAT_LETTERS = { q: 1, w: 2, e: 3, r: 4, t: 5 };
  // A timeupdate gap larger than this is a seek or a stall, not playback (timeupdate fires every ~250 ms).
  const MAX_TICK_S = 1.0;

  let task = null; // the assignment JSON
  let items = []; // per variant: {key, audio, canvas, peaks, listened, last, heard, ratings, node, ...}
  let current = 0;
  let busy = false;

  function csrfToken() {
    const cookie = document.cookie.split("; ").find((c) => c.startsWith("csrftoken="));
    if (cookie) return decodeURIComponent(cookie.split("=")[1]);
    const input = app.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  async function api(method, url, body) {
    const options = {
      method,
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(url, options);
    let data = null;
    if (response.status !== 204) {
      try { data = await response.json(); } catch (e) { data = null; }
    }
    return { status: response.status, ok: response.ok, data };
  }

  // --- alert -------------------------------------------------------------------------------------------------

  function errorText(data, status) {
    if (!data) return "The server answered " + status + ".";
    if (typeof data.detail === "string") return data.detail;
    const parts = [];
    const walk = (value, path) => {
      if (Array.isArray(value) && value.every((v) => typeof v === "string")) parts.push((path ? path + ": " : "") + value.join(" "));
      else if (Array.isArray(value)) value.forEach((v, i) => walk(v, path + "[" + i + "]"));
      else if (value && typeof value === "object") Object.entries(value).forEach(([k, v]) => walk(v, path ? path + "." + k : k));
      else if (value !== undefined && value !== null) parts.push((path ? path + ": " : "") + value);
    };
    walk(data, "");
    return parts.join(" · ") || "The server answered " + status + ".";
  }

  function showAlert(text, offerNext) {
    $("alert-text").textContent = text;
    $("alert-next").hidden = !offerNext;
    $("alert").hidden = false;
  }
  function hideAlert() { $("alert").hidden = true; }
  $("alert-close").addEventListener("click", hideAlert);
  $("alert-next").addEventListener("click", () => { hideAlert(); loadNext(); });

  // --- progress ----------------------------------------------------------------------------------------------

  async function loadProgress() {
    try {
      const r = await api("GET", app.dataset.progressUrl);
      if (!r.ok) return showAlert(errorText(r.data, r.status));
      const p = r.data;
      $("progress-done").textContent = p.submitted + p.skipped;
      $("progress-assigned").textContent = p.submitted + p.skipped + p.open;
      $("progress-skipped").textContent = p.skipped ? " · " + p.skipped + " skipped" : "";
    } catch (e) {
      showAlert("Could not load your progress: " + e.message);
    }
  }

  // --- task --------------------------------------------------------------------------------------------------

  function stopAll() { items.forEach((it) => { it.audio.pause(); }); }

  async function loadNext() {
    stopAll();
    $("loading").hidden = false;
    try {
      const r = await api("POST", app.dataset.nextUrl);
      if (r.status === 204) {
        task = null;
        items = [];
        $("task").hidden = true;
        $("empty").hidden = false;
      } else if (!r.ok) {
        showAlert(errorText(r.data, r.status));
      } else {
        render(r.data);
      }
    } catch (e) {
      showAlert("Could not load the next task: " + e.message);
    } finally {
      $("loading").hidden = true;
    }
    loadProgress();
  }

  const fmt = (s) => {
    if (!isFinite(s) || s < 0) s = 0;
    const whole = Math.floor(s);
    return Math.floor(whole / 60) + ":" + String(whole % 60).padStart(2, "0");
  };

  function duration(it) {
    const d = it.audio.duration;
    return isFinite(d) && d > 0 ? d : it.duration || 0;
  }

  // Mirrors the server's rule: min_listen_s of playback, or (for a shorter clip) all of it but the last 0.25 s.
  function needed(it) {
    const d = duration(it);
    return d > 0 ? Math.min(task.min_listen_s, Math.max(d - 0.25, 0)) : task.min_listen_s;
  }

  function ratingGroup(it, axis) {
    const group = el("fieldset", { class: "lv-rate" }, [el("legend", { text: axis === "musicality" ? "Musicality" : "Compatibility" })]);
    const row = el("div", { class: "lv-scale" });
    for (let v = 1; v <= 5; v++) {
      const input = el("input", { type: "radio", name: axis + "-" + it.key, value: String(v), "aria-label": axis + " " + v + " for variant " + it.key });
      input.addEventListener("change", () => { it.ratings[axis] = v; setCurrent(items.indexOf(it), false); saveDraft(); update(); });
      row.append(el("label", { class: "lv-choice" }, [input, el("span", { text: String(v) })]));
    }
    group.append(row);
    return group;
  }

  function render(data) {
    hideAlert();
    task = data;
    current = 0;
    $("empty").hidden = true;
    $("cover").src = data.cover_url;
    const list = $("variants");
    list.replaceChildren();
    items = data.variants.map((v) => {
      const it = { key: v.key, duration: v.duration_s, peaks: v.peaks || [], listened: 0, last: 0, heard: false, ended: false, ratings: {} };
      it.audio = el("audio", { preload: "auto" });
      it.audio.src = v.audio_url;
      it.play = el("button", { type: "button", class: "lv-play", "aria-label": "Play variant " + v.key, text: "▶" });
      it.time = el("span", { class: "lv-time", text: "0:00 / " + fmt(v.duration_s) });
      it.heardMark = el("span", { class: "lv-heard", "aria-label": "not heard yet", text: "" });
      it.canvas = el("canvas", { class: "lv-wave", height: "56", role: "slider", "aria-label": "Seek in variant " + v.key, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": "0" });
      it.node = el("li", { class: "lv card", "data-key": v.key, tabindex: "-1", "aria-label": "Variant " + v.key }, [
        el("div", { class: "lv-head" }, [it.play, el("strong", { class: "lv-name", text: "Variant " + v.key }), it.time, it.heardMark]),
        it.canvas,
        el("div", { class: "lv-ratings" }, AXES.map((axis) => ratingGroup(it, axis))),
        it.audio,
      ]);
      wire(it);
      list.append(it.node);
      return it;
    });
    renderRanking(data.variants.map((v) => v.key));
    restoreDraft();
    $("task").hidden = false;
    setCurrent(0, false);
    items.forEach(draw);
    update();
  }

  function wire(it) {
    const a = it.audio;
    it.play.addEventListener("click", () => { setCurrent(items.indexOf(it), false); toggle(it); });
    it.node.addEventListener("focusin", () => setCurrent(items.indexOf(it), false));
    it.node.addEventListener("pointerdown", () => setCurrent(items.indexOf(it), false));
    a.addEventListener("play", () => {
      items.forEach((other) => { if (other !== it) other.audio.pause(); });
      it.last = a.currentTime;
      it.play.textContent = "❚❚";
      it.play.setAttribute("aria-label", "Pause variant " + it.key);
      it.node.classList.add("playing");
      animate(it);
    });
    a.addEventListener("pause", () => {
      it.play.textContent = "▶";
      it.play.setAttribute("aria-label", "Play variant " + it.key);
      it.node.classList.remove("playing");
      draw(it);
    });
    a.addEventListener("seeking", () => { it.last = a.currentTime; });
    a.addEventListener("seeked", () => { it.last = a.currentTime; draw(it); });
    a.addEventListener("timeupdate", () => { tick(it); });
    a.addEventListener("ended", () => { tick(it); it.ended = true; update(); });
    a.addEventListener("loadedmetadata", () => { draw(it); update(); });
    a.addEventListener("error", () => showAlert("Variant " + it.key + " could not be played. If it stays broken, skip the task (s) with “broken audio”."));
    it.canvas.addEventListener("click", (event) => {
      const rect = it.canvas.getBoundingClientRect();
      const d = duration(it);
      if (!d) return;
      a.currentTime = Math.max(0, Math.min(1, (event.clientX - rect.left) / rect.width)) * d;
      setCurrent(items.indexOf(it), false);
      draw(it);
    });
  }

  // Only real playback counts: the time advanced between two timeupdates while playing.
  function tick(it) {
    const a = it.audio;
    const delta = a.currentTime - it.last;
    if (!a.seeking && delta > 0 && delta < MAX_TICK_S) it.listened += delta;
    it.last = a.currentTime;
    draw(it);
    update();
  }

  function animate(it) {
    const step = () => { draw(it); if (!it.audio.paused) requestAnimationFrame(step); };
    requestAnimationFrame(step);
  }

  function draw(it) {
    const canvas = it.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    const height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    if (canvas.width !== width || canvas.height !== height) { canvas.width = width; canvas.height = height; }
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, width, height);
    const d = duration(it);
    const played = d ? Math.min(1, it.audio.currentTime / d) : 0;
    const peaks = it.peaks.length ? it.peaks : [0];
    const bar = width / peaks.length;
    const mid = height / 2;
    const styles = getComputedStyle(app);
    const playedColour = styles.getPropertyValue("--lv-played").trim() || "#5b3fd6";
    const restColour = styles.getPropertyValue("--lv-rest").trim() || "#c9c3e6";
    peaks.forEach((peak, i) => {
      // Peaks are not normalised (a quiet clip looks quiet); 1 px minimum so silence still shows a line.
      const h = Math.max(ratio, Math.min(1, peak) * (height - 2 * ratio));
      ctx.fillStyle = (i + 0.5) / peaks.length <= played ? playedColour : restColour;
      ctx.fillRect(i * bar, mid - h / 2, Math.max(ratio, bar - ratio), h);
    });
    ctx.fillStyle = playedColour;
    ctx.fillRect(Math.min(width - ratio, played * width), 0, ratio, height);
    canvas.setAttribute("aria-valuenow", String(Math.round(played * 100)));
    it.time.textContent = fmt(it.audio.currentTime) + " / " + fmt(d);
  }

  function toggle(it) {
    if (it.audio.paused) {
      if (it.audio.ended || (duration(it) && it.audio.currentTime >= duration(it))) it.audio.currentTime = 0;
      it.audio.play().catch((e) => showAlert("Variant " + it.key + " could not start: " + e.message));
    } else {
      it.audio.pause();
    }
  }

  function setCurrent(index, focus) {
    if (!items.length) return;
    current = Math.max(0, Math.min(items.length - 1, index));
    items.forEach((it, i) => {
      it.node.classList.toggle("current", i === current);
      it.node.setAttribute("aria-current", i === current ? "true" : "false");
    });
    if (focus) {
      items[current].node.focus({ preventScroll: true });
      items[current].node.scrollIntoView({ block: "nearest" });
    }
  }

  function rate(axis, value) {
    const it = items[current];
    if (!it) return;
    const input = it.node.querySelector('input[name="' + axis + "-" + it.key + '"][value="' + value + '"]');
    input.checked = true;
    it.ratings[axis] = value;
    saveDraft();
    update();
  }

  // --- drafts ------------------------------------------------------------------------------------------------
  // Unsent ratings and the ranking survive a reload: kept in localStorage under the assignment's id until the
  // task is submitted or skipped. Listening is not kept: the page measures it again.

  const DRAFT_PREFIX = "albumgen-label-draft-";
  const draftKey = () => DRAFT_PREFIX + task.assignment_id;

  function saveDraft() {
    if (!task) return;
    const ratings = {};
    items.forEach((it) => { if (Object.keys(it.ratings).length) ratings[it.key] = it.ratings; });
    try {
      localStorage.setItem(draftKey(), JSON.stringify({ ratings, ranking: ranking() }));
    } catch (e) { /* storage off or full: a draft is a convenience, the task still works */ }
  }

  function dropDraft(assignmentId) {
    try { localStorage.removeItem(DRAFT_PREFIX + assignmentId); } catch (e) { /* see saveDraft */ }
  }

  function restoreDraft() {
    let draft = null;
    try {
      // A labeler holds one open assignment at a time: drafts of any other are stale.
      Object.keys(localStorage)
        .filter((k) => k.startsWith(DRAFT_PREFIX) && k !== draftKey())
        .forEach((k) => localStorage.removeItem(k));
      draft = JSON.parse(localStorage.getItem(draftKey()) || "null");
    } catch (e) {
      draft = null;
    }
    if (!draft || typeof draft !== "object") return;
    items.forEach((it) => {
      const saved = (draft.ratings || {})[it.key] || {};
      AXES.forEach((axis) => {
        const v = saved[axis];
        if (!Number.isInteger(v) || v < 1 || v > 5) return;
        it.ratings[axis] = v;
        it.node.querySelector('input[name="' + axis + "-" + it.key + '"][value="' + v + '"]').checked = true;
      });
    });
    const keys = items.map((it) => it.key);
    const saved = draft.ranking;
    if (Array.isArray(saved) && saved.length === keys.length && keys.every((k) => saved.includes(k))) renderRanking(saved);
  }

  // --- ranking -----------------------------------------------------------------------------------------------

  function ranking() { return Array.from($("ranking").children).map((li) => li.dataset.key); }

  function renderRanking(keys) {
    const list = $("ranking");
    list.replaceChildren();
    keys.forEach((key) => {
      const li = el("li", { class: "rank-item", draggable: "true", tabindex: "0", "data-key": key, "aria-label": "Variant " + key }, [
        el("span", { class: "rank-grip", "aria-hidden": "true", text: "⠿" }),
        el("span", { class: "rank-pos" }),
        el("span", { text: "Variant " + key }),
      ]);
      li.addEventListener("dragstart", (event) => {
        event.dataTransfer.effectAllowed = "move";
        event.dataTransfer.setData("text/plain", key);
        li.classList.add("dragging");
      });
      li.addEventListener("dragend", () => { li.classList.remove("dragging"); rankingChanged(key); });
      li.addEventListener("keydown", (event) => {
        const up = (event.altKey && event.key === "ArrowUp") || (!event.altKey && !event.ctrlKey && !event.metaKey && event.key === "u");
        const down = (event.altKey && event.key === "ArrowDown") || (!event.altKey && !event.ctrlKey && !event.metaKey && event.key === "d");
        if (!up && !down) return;
        event.preventDefault();
        event.stopPropagation();
        move(li, up ? -1 : 1);
      });
      list.append(li);
    });
    numberRanking();
  }

  $("ranking").addEventListener("dragover", (event) => {
    const dragging = $("ranking").querySelector(".dragging");
    if (!dragging) return;
    event.preventDefault();
    const after = Array.from($("ranking").children).find((li) => {
      if (li === dragging) return false;
      const box = li.getBoundingClientRect();
      return event.clientY < box.top + box.height / 2;
    });
    if (after) $("ranking").insertBefore(dragging, after);
    else $("ranking").append(dragging);
    numberRanking();
  });
  $("ranking").addEventListener("drop", (event) => event.preventDefault());

  function move(li, by) {
    const list = $("ranking");
    if (by < 0 && li.previousElementSibling) list.insertBefore(li, li.previousElementSibling);
    else if (by > 0 && li.nextElementSibling) list.insertBefore(li.nextElementSibling, li);
    li.focus();
    rankingChanged(li.dataset.key);
  }

  function numberRanking() {
    Array.from($("ranking").children).forEach((li, i) => { li.querySelector(".rank-pos").textContent = i + 1 + "."; });
  }

  function rankingChanged(key) {
    numberRanking();
    saveDraft();
    const position = ranking().indexOf(key) + 1;
    $("ranking-live").textContent = "Variant " + key + " is now number " + position + ". Order: " + ranking().join(", ") + ".";
    update();
  }

  // --- submit rule -------------------------------------------------------------------------------------------

  function problems() {
    const out = [];
    items.forEach((it) => {
      const need = needed(it);
      if (!it.heard && (it.listened >= need - 1e-3 || (it.ended && it.listened >= need - 0.05))) it.heard = true;
      if (!it.heard) out.push("listen to " + it.key + " (" + Math.max(1, Math.ceil(need - it.listened)) + " s left)");
    });
    items.forEach((it) => {
      const missing = AXES.filter((axis) => !it.ratings[axis]);
      if (missing.length) out.push("rate " + missing.join(" and ") + " of " + it.key);
    });
    const keys = ranking();
    const complete = keys.length === items.length && items.every((it) => keys.includes(it.key));
    if (!complete) out.push("rank every variant");
    return out;
  }

  function update() {
    if (!task) return;
    const out = problems();
    items.forEach((it) => {
      it.node.classList.toggle("heard", it.heard);
      it.heardMark.textContent = it.heard ? "✓ heard" : "";
      it.heardMark.setAttribute("aria-label", it.heard ? "heard" : "not heard yet");
    });
    $("submit").disabled = busy || out.length > 0;
    $("submit-why").textContent = out.length ? "To submit: " + out.join(" · ") : busy ? "Sending…" : "Ready: press Enter to submit.";
  }

  async function submit() {
    if (!task || busy || problems().length) return;
    busy = true;
    update();
    const ratings = {};
    items.forEach((it) => {
      // Round up to the millisecond: the server compares with its own threshold.
      ratings[it.key] = { musicality: it.ratings.musicality, compatibility: it.ratings.compatibility, listened_s: Math.ceil(it.listened * 1000) / 1000 };
    });
    const url = app.dataset.submitUrl.replace("/0/", "/" + task.assignment_id + "/");
    try {
      const r = await api("POST", url, { ratings, ranking: ranking() });
      if (!r.ok) {
        showAlert(errorText(r.data, r.status), r.status === 409);
      } else {
        dropDraft(task.assignment_id);
        await loadNext();
      }
    } catch (e) {
      showAlert("Could not submit: " + e.message);
    } finally {
      busy = false;
      update();
    }
  }
  $("submit").addEventListener("click", submit);

  // --- skip --------------------------------------------------------------------------------------------------

  const dialog = $("skip-dialog");
  function openSkip() {
    if (!task || busy) return;
    $("skip-error").hidden = true;
    stopAll();
    dialog.showModal();
    const checked = dialog.querySelector("input[name=skip-reason]:checked");
    (checked || dialog.querySelector("input[name=skip-reason]")).focus();
  }
  $("skip").addEventListener("click", openSkip);
  $("skip-cancel").addEventListener("click", () => dialog.close());
  $("skip-other").addEventListener("input", () => {
    dialog.querySelector('input[name=skip-reason][value="other"]').checked = true;
  });
  $("skip-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const choice = dialog.querySelector("input[name=skip-reason]:checked").value;
    const other = $("skip-other").value.trim();
    if (choice === "other" && !other) {
      $("skip-error").textContent = "Say why you skip.";
      $("skip-error").hidden = false;
      $("skip-other").focus();
      return;
    }
    const reason = choice === "other" ? other : choice;
    busy = true;
    try {
      const r = await api("POST", app.dataset.skipUrl.replace("/0/", "/" + task.assignment_id + "/"), { reason });
      dialog.close();
      $("skip-other").value = "";
      if (!r.ok) {
        showAlert(errorText(r.data, r.status), r.status === 409);
      } else {
        dropDraft(task.assignment_id);
        await loadNext();
      }
    } catch (e) {
      dialog.close();
      showAlert("Could not skip: " + e.message);
    } finally {
      busy = false;
      update();
    }
  });

  // --- keys --------------------------------------------------------------------------------------------------

  document.addEventListener("keydown", (event) => {
    if (!task || $("task").hidden || dialog.open) return;
    if (event.ctrlKey || event.metaKey || event.defaultPrevented) return;
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text") || target.isContentEditable)) return;
    const key = event.key;
    const code = event.code || "";
    const digit = /^(Digit|Numpad)([1-5])$/.exec(code);
    let handled = true;
    if (event.altKey) {
      handled = false;
    } else if (key === " " || code === "Space") {
      toggle(items[current]);
    } else if (key === "n" || key === "j") {
      setCurrent(current + 1, true);
    } else if (key === "p" || key === "k") {
      setCurrent(current - 1, true);
    } else if (digit) {
      rate(event.shiftKey ? "compatibility" : "musicality", Number(digit[2]));
    } else if (/^[1-5]$/.test(key)) {
      rate("musicality", Number(key));
    } else if (!event.shiftKey && COMPAT_LETTERS[key]) {
      rate("compatibility", COMPAT_LETTERS[key]);
    } else if (key === "Enter") {
      submit();
    } else if (key === "s") {
      openSkip();
    } else {
      handled = false;
    }
    if (handled) event.preventDefault();
  });

  window.addEventListener("resize", () => items.forEach(draw));
  $("check-again").addEventListener("click", loadNext);
  loadNext();
})();
