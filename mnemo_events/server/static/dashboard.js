// The mnemo-events dashboard: live events (fetch + ReadableStream, so the key travels as a
// header), events per second per type on a canvas, webhook health and deliveries, and the
// operator's buttons. Plain browser JavaScript: no build step, nothing from another origin.
"use strict";

(() => {
  const { call, el, headers, apiKey, setApiKey } = Mnemo;
  const $ = (id) => document.getElementById(id);

  const MAX_ROWS = 200;
  const WINDOW_SECONDS = 60;
  const POLL_MS = 2000;
  const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777",
    "#65a30d", "#ea580c", "#4f46e5", "#0d9488", "#9333ea", "#ca8a04", "#e11d48", "#475569"];

  const state = {
    pattern: ">",
    paused: false,
    received: 0,
    lastEventId: null,
    retryMs: 3000,
    controller: null,
    buckets: new Map(), // second -> Map(type -> count)
    colors: new Map(),
    openWebhook: null,
    openDelivery: null,
    pollTimer: null,
  };

  // -- messages -------------------------------------------------------------------------------
  let toastTimer = null;
  function say(text, isError) {
    const node = $("message");
    node.textContent = text;
    node.className = "toast " + (isError ? "error" : "ok");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { node.textContent = ""; node.className = "toast"; }, 6000);
  }

  function connection(text, on) {
    const node = $("connection");
    node.textContent = text;
    node.className = "badge " + (on ? "on" : "off");
  }

  // -- the live stream ------------------------------------------------------------------------
  function parseBlock(block) {
    const message = { event: "message", data: [], id: null, retry: null };
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const at = line.indexOf(":");
      const field = at < 0 ? line : line.slice(0, at);
      let value = at < 0 ? "" : line.slice(at + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") message.data.push(value);
      else if (field === "event") message.event = value;
      else if (field === "id") message.id = value;
      else if (field === "retry" && /^\d+$/.test(value)) message.retry = Number(value);
    }
    return message;
  }

  async function stream() {
    const controller = new AbortController();
    state.controller = controller;
    let resumeNow = false;
    try {
      const extra = { Accept: "text/event-stream" };
      if (state.lastEventId) extra["Last-Event-ID"] = state.lastEventId;
      const url = "/events/stream?pattern=" + encodeURIComponent(state.pattern);
      const response = await fetch(url, { headers: headers(extra), signal: controller.signal,
        cache: "no-store" });
      if (response.status === 401) {
        logout("the service refused the key (401)");
        return;
      }
      if (!response.ok) throw new Error(`GET /events/stream: ${response.status}`);
      connection("live: " + state.pattern, true);
      $("stream-note").textContent = "";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const message = parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (message.retry !== null) state.retryMs = message.retry;
          if (message.event === "mnemo:resume") {
            resumeNow = true;
            $("stream-note").textContent = "fell behind; resumed from the history";
          } else if (message.event === "mnemo:gap") {
            $("stream-note").textContent = "some events were too old to replay";
          } else if (message.data.length) {
            onEvent(JSON.parse(message.data.join("\n")));
          }
        }
      }
    } catch (err) {
      if (controller.signal.aborted) return;
      $("stream-note").textContent = String(err.message || err);
    }
    if (controller.signal.aborted || state.controller !== controller) return;
    connection("reconnecting…", false);
    setTimeout(() => { if (state.controller === controller) stream(); },
      resumeNow ? 0 : state.retryMs);
  }

  function restartStream() {
    if (state.controller) state.controller.abort();
    state.lastEventId = null; // a new pattern starts from now
    $("events").tBodies[0].replaceChildren();
    stream();
  }

  function onEvent(event) {
    state.lastEventId = event.id;
    state.received += 1;
    $("event-count").textContent = state.received + " received";
    const second = Math.floor(Date.now() / 1000);
    let counts = state.buckets.get(second);
    if (!counts) state.buckets.set(second, (counts = new Map()));
    counts.set(event.type, (counts.get(event.type) || 0) + 1);
    if (state.paused) return;
    const body = $("events").tBodies[0];
    const time = String(event.published_at || "").replace("T", " ").slice(11, 23);
    body.prepend(el("tr", { dataset: { id: event.id, type: event.type } },
      el("td", {}, time),
      el("td", {}, el("span", { class: "type" }, event.type)),
      el("td", {}, el("code", {}, event.id)),
      el("td", {}, el("code", {}, JSON.stringify(event.data)))));
    while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  }

  // -- the chart ------------------------------------------------------------------------------
  function colorOf(type) {
    if (!state.colors.has(type)) state.colors.set(type, COLORS[state.colors.size % COLORS.length]);
    return state.colors.get(type);
  }

  function drawChart() {
    const canvas = $("chart");
    const ctx = canvas.getContext("2d");
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth || canvas.width;
    const height = canvas.clientHeight || canvas.height;
    if (canvas.width !== width * ratio) { canvas.width = width * ratio; canvas.height = height * ratio; }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);
    const now = Math.floor(Date.now() / 1000);
    for (const second of state.buckets.keys()) {
      if (second < now - WINDOW_SECONDS) state.buckets.delete(second);
    }
    const types = [...new Set([...state.buckets.values()].flatMap((m) => [...m.keys()]))].sort();
    let peak = 4;
    for (const counts of state.buckets.values()) for (const n of counts.values()) peak = Math.max(peak, n);
    peak = Math.ceil(peak / 4) * 4; // four whole-number grid steps
    const left = 44, right = 8, top = 10, bottom = 22;
    const plotW = width - left - right, plotH = height - top - bottom;
    ctx.strokeStyle = "#cbd5e1";
    ctx.fillStyle = "#475569";
    ctx.font = "11px system-ui, sans-serif";
    ctx.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + plotW, y); ctx.stroke();
      ctx.fillText(String(Math.round((peak * i) / 4)), 4, y + 4);
    }
    ctx.fillText(`-${WINDOW_SECONDS}s`, left, height - 6);
    ctx.fillText("now", left + plotW - 22, height - 6);
    ctx.lineWidth = 2;
    for (const type of types) {
      ctx.strokeStyle = colorOf(type);
      ctx.beginPath();
      for (let i = 0; i <= WINDOW_SECONDS; i++) {
        const second = now - WINDOW_SECONDS + i;
        const counts = state.buckets.get(second);
        const n = (counts && counts.get(type)) || 0;
        const x = left + (plotW * i) / WINDOW_SECONDS;
        const y = top + plotH - (plotH * n) / peak;
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      }
      ctx.stroke();
    }
    const legend = $("legend");
    legend.replaceChildren(...types.map((type) => {
      const last = state.buckets.get(now - 1);
      const swatch = el("span", { class: "swatch" });
      swatch.style.backgroundColor = colorOf(type); // CSSOM: allowed by the page's CSP
      return el("li", {}, swatch, `${type} ${(last && last.get(type)) || 0}/s`);
    }));
  }

  // -- webhooks -------------------------------------------------------------------------------
  function percent(rate) {
    return rate === null || rate === undefined ? "–" : (rate * 100).toFixed(1) + " %";
  }

  // The pattern grammar of the service: `*` is one segment, `>` one or more trailing ones.
  function matches(pattern, type) {
    const want = pattern.split("."), have = type.split(".");
    for (let i = 0; i < want.length; i++) {
      if (want[i] === ">") return have.length > i;
      if (i >= have.length || (want[i] !== "*" && want[i] !== have[i])) return false;
    }
    return want.length === have.length;
  }

  let eventTypes = null;
  async function testType(hook) {
    if (eventTypes === null) {
      const doc = await call("GET", "/openapi.json");
      eventTypes = Object.keys(doc.webhooks || {}).sort();
    }
    const preferred = ["memory.created", ...eventTypes];
    return preferred.find((type) => (hook.events || []).some((p) => matches(p, type)));
  }

  async function sendTest(hook) {
    const type = await testType(hook);
    const body = type ? { event_type: type } : {};
    const sent = await call("POST", `/webhooks/${encodeURIComponent(hook.id)}/test`, body);
    return `test ${sent.event_type || type || "event"} sent to ${hook.id} (${sent.delivery_id || "queued"})`;
  }

  function button(label, action, attrs) {
    return el("button", Object.assign({ type: "button", onclick: action }, attrs || {}), label);
  }

  async function act(what, promise) {
    try {
      const result = await promise;
      say(what(result));
      await refresh();
    } catch (err) {
      say(err.message, true);
    }
  }

  async function refreshWebhooks() {
    const listed = await call("GET", "/webhooks");
    const details = await Promise.all(listed.webhooks.map((w) =>
      call("GET", "/webhooks/" + encodeURIComponent(w.id)).catch(() => w)));
    $("webhook-count").textContent = `(${listed.count})`;
    const body = $("webhook-table").tBodies[0];
    body.replaceChildren(...details.map((hook) => {
      const status = hook.status || {};
      const counts = status.deliveries || {};
      const id = hook.id;
      const path = "/webhooks/" + encodeURIComponent(id);
      const failing = (status.consecutive_failures || 0) > 0;
      return el("tr", { dataset: { webhook: id }, class: hook.enabled ? (failing ? "failing" : "") : "disabled" },
        el("td", {}, el("code", {}, id)),
        el("td", { class: "url" }, hook.url),
        el("td", {}, (hook.events || []).join(", ")),
        el("td", { class: "state" }, hook.enabled ? "enabled" : "disabled",
          hook.disabled_reason ? el("div", { class: "reason" }, hook.disabled_reason) : null),
        el("td", { class: "rate" }, percent(status.success_rate)),
        el("td", { class: "failures" }, String(status.consecutive_failures ?? "–")),
        el("td", { class: "counts" },
          `${counts.success || 0} ok · ${counts.failed || 0} failed · ` +
          `${(counts.pending || 0) + (counts.retrying || 0)} pending`),
        el("td", { class: "actions" },
          button("Deliveries", () => openDeliveries(id), { "data-action": "deliveries" }),
          button("Replay failed", () => act((r) => `${r.replayed} failed deliveries queued again`,
            call("POST", path + "/replay-failed")), { "data-action": "replay" }),
          button("Send test", () => act((text) => text, sendTest(hook)),
            { "data-action": "test" }),
          hook.enabled
            ? button("Disable", () => act(() => `${id} disabled`,
              call("PATCH", path, { enabled: false })), { "data-action": "disable" })
            : button("Enable", () => act(() => `${id} enabled`,
              call("PATCH", path, { enabled: true })), { "data-action": "enable" })));
    }));
  }

  function openDeliveries(id) {
    state.openWebhook = id;
    state.openDelivery = null;
    $("deliveries").hidden = false;
    $("attempts").hidden = true;
    $("deliveries-of").textContent = id;
    refreshDeliveries().catch((err) => say(err.message, true));
  }

  async function refreshDeliveries() {
    const id = state.openWebhook;
    if (!id) return;
    const found = await call("GET", `/webhooks/${encodeURIComponent(id)}/deliveries?limit=50`);
    const body = $("delivery-table").tBodies[0];
    body.replaceChildren(...found.deliveries.map((d) => {
      const finished = d.status === "success" || d.status === "failed";
      return el("tr", { dataset: { delivery: d.id, status: d.status } },
        el("td", {}, el("code", {}, d.id)),
        el("td", {}, d.event_type),
        el("td", {}, el("span", { class: "status " + d.status }, d.status)),
        el("td", {}, String(d.attempts)),
        el("td", {}, d.last_status_code ?? "–"),
        el("td", {}, d.last_latency_ms === null ? "–" : d.last_latency_ms.toFixed(1) + " ms"),
        el("td", { class: "error" }, d.last_error || ""),
        el("td", {}, String(d.updated_at).replace("T", " ").slice(0, 19)),
        el("td", { class: "actions" },
          button("Attempts", () => openAttempts(d.id), { "data-action": "attempts" }),
          button("Redeliver", () => act((r) => `${r.delivery_id} queued again`,
            call("POST", `/deliveries/${encodeURIComponent(d.id)}/redeliver`)),
          { "data-action": "redeliver", disabled: !finished })));
    }));
    if (state.openDelivery) await refreshAttempts();
  }

  function openAttempts(id) {
    state.openDelivery = id;
    $("attempts").hidden = false;
    $("attempts-of").textContent = id;
    refreshAttempts().catch((err) => say(err.message, true));
  }

  async function refreshAttempts() {
    const delivery = await call("GET", "/deliveries/" + encodeURIComponent(state.openDelivery));
    $("attempt-table").tBodies[0].replaceChildren(...delivery.attempt_log.map((a) =>
      el("tr", { dataset: { attempt: a.number, outcome: a.outcome } },
        el("td", {}, String(a.number)),
        el("td", {}, String(a.started_at).replace("T", " ").slice(0, 23)),
        el("td", {}, el("span", { class: "status " + a.outcome }, a.outcome)),
        el("td", { class: "code" }, a.status_code ?? "–"),
        el("td", {}, a.latency_ms === null ? "–" : a.latency_ms.toFixed(1) + " ms"),
        el("td", { class: "error" }, a.error || ""),
        el("td", {}, el("code", {}, (a.response_body || "").slice(0, 120))))));
  }

  async function refresh() {
    try {
      await refreshWebhooks();
      await refreshDeliveries();
    } catch (err) {
      if (err.status === 401) logout("the service refused the key (401)");
      else say(err.message, true);
    }
  }

  // -- start and stop -------------------------------------------------------------------------
  async function start() {
    try {
      await call("GET", "/webhooks?enabled_only=false");
    } catch (err) {
      const refused = err.status === 401;
      logout(refused && !apiKey() ? "" : refused ? "the service refused this key" : err.message);
      return;
    }
    $("login").hidden = true;
    $("app").hidden = false;
    $("forget").hidden = false;
    stream();
    refresh();
    state.pollTimer = setInterval(refresh, POLL_MS);
  }

  function logout(reason) {
    setApiKey(null);
    if (state.controller) state.controller.abort();
    state.controller = null;
    clearInterval(state.pollTimer);
    $("app").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = reason || "";
    connection("not connected", false);
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("login").addEventListener("submit", (e) => {
      e.preventDefault();
      const input = $("key");
      setApiKey(input.value.trim());
      input.value = "";
      start();
    });
    $("forget").addEventListener("click", () => logout(""));
    $("filter").addEventListener("submit", (e) => {
      e.preventDefault();
      state.pattern = $("pattern").value.trim() || ">";
      restartStream();
    });
    $("pause").addEventListener("click", () => {
      state.paused = !state.paused;
      $("pause").textContent = state.paused ? "Resume" : "Pause";
    });
    $("close-deliveries").addEventListener("click", () => {
      state.openWebhook = null;
      $("deliveries").hidden = true;
    });
    setInterval(drawChart, 1000);
    drawChart();
    start(); // with no key stored this shows the form, unless the service needs none
  });
})();
