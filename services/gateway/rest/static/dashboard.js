// The MPCSFaaS dashboard: reads /ui/events (server-sent events, one JSON snapshot a second)
// with fetch(), so that a keyed gateway's API key goes in an Authorization header, never a URL,
// and redraws the page in place. Plain JavaScript, no library, nothing from another origin.
"use strict";

(function () {
  const KEY_STORE = "faas-api-key";
  const state = { snapshots: 0, connects: 0, selected: null, last: null, running: false, retry: true };
  window.faasDashboard = state; // for people (and tests) looking at the page from the console

  const $ = (id) => document.getElementById(id);

  function apiKey() { return sessionStorage.getItem(KEY_STORE); }
  function authHeaders() {
    const key = apiKey();
    return key ? { Authorization: "Bearer " + key } : {};
  }

  function setConn(stateName, text) {
    const conn = $("conn");
    conn.dataset.state = stateName;
    conn.textContent = text;
  }

  // --- formatting ------------------------------------------------------------------------

  function seconds(value) {
    if (value === null || value === undefined) return "—";
    if (value < 1) return Math.round(value * 1000) + " ms";
    if (value < 60) return value.toFixed(value < 10 ? 2 : 1) + " s";
    if (value < 3600) return Math.floor(value / 60) + " min " + Math.floor(value % 60) + " s";
    return Math.floor(value / 3600) + " h " + Math.floor((value % 3600) / 60) + " min";
  }

  function short(id) { return id && id.length > 13 ? id.slice(0, 8) + "…" : id || ""; }

  function cell(row, index, text, className) {
    while (row.cells.length <= index) row.insertCell();
    const td = row.cells[index];
    if (td.textContent !== String(text)) td.textContent = text;
    if (className !== undefined && td.className !== className) td.className = className;
    return td;
  }

  // Rows keyed by id, kept across snapshots (so a row changes in place), in the snapshot's order.
  function syncRows(body, items, idOf, fill, emptyText, columns) {
    const existing = new Map();
    for (const row of Array.from(body.rows)) {
      if (row.dataset.id) existing.set(row.dataset.id, row); else row.remove();
    }
    let previous = null;
    for (const item of items) {
      const id = idOf(item);
      let row = existing.get(id);
      if (row) existing.delete(id);
      else { row = document.createElement("tr"); row.dataset.id = id; }
      fill(row, item);
      const want = previous ? previous.nextSibling : body.firstChild;
      if (want !== row) body.insertBefore(row, want);
      previous = row;
    }
    for (const row of existing.values()) row.remove();
    if (items.length === 0) {
      const row = body.insertRow();
      row.className = "empty";
      const td = row.insertCell();
      td.colSpan = columns;
      td.textContent = emptyText;
    }
  }

  function missing(id, text) {
    const note = $(id);
    note.hidden = !text;
    note.textContent = text || "";
  }

  // --- drawing ---------------------------------------------------------------------------

  function drawWorkers(snapshot) {
    const workers = snapshot.workers;
    missing("workers-missing", snapshot.missing.workers);
    $("mode").textContent = snapshot.mode ? snapshot.mode + " mode" : "";
    if (workers === null) return;
    $("worker-count").textContent = workers.length;
    let capacity = 0, inFlight = 0;
    for (const w of workers) { capacity += w.capacity; inFlight += w.in_flight; }
    $("load").textContent = inFlight + " / " + capacity;
    syncRows($("workers-body"), workers, (w) => w.worker_id, (row, w) => {
      row.dataset.workerId = w.worker_id;
      cell(row, 0, w.worker_id + (w.draining ? " (draining)" : ""), "id");
      cell(row, 1, w.host + (w.pid ? ":" + w.pid : ""));
      cell(row, 2, w.mode);
      cell(row, 3, w.capacity, "num");
      cell(row, 4, w.in_flight, "num");
      cell(row, 5, w.completed, "num");
      cell(row, 6, w.failed, "num");
      const late = w.heartbeat_age !== null && w.heartbeat_age > 10;
      cell(row, 7, w.heartbeat_age === null ? "—" : seconds(w.heartbeat_age) + " ago",
        late ? "num late" : "num");
      cell(row, 8, w.connected_age === null ? "—" : seconds(w.connected_age) + " ago", "num");
    }, "no worker is connected", 9);
  }

  function drawQueue(snapshot) {
    const queue = snapshot.queue;
    $("queue-depth").textContent = queue.depth;
    const oldest = $("queue-oldest");
    if (queue.oldest_age === null) oldest.textContent = queue.oldest_exact ? "—" : "n/a";
    else oldest.textContent = (queue.oldest_exact ? "" : "≥ ") + seconds(queue.oldest_age);
  }

  function why(task) {
    if (task.status === "FAILED") return task.cause + (task.message ? ": " + task.message : "");
    if (task.wait_message || task.wait_reason) {
      const since = task.wait_for === null ? "" : " (" + seconds(task.wait_for) + ")";
      return (task.wait_message || task.wait_reason) + since;
    }
    return "";
  }

  function drawTasks(snapshot) {
    missing("tasks-missing", snapshot.missing.tasks
      ? snapshot.missing.tasks + ": recent tasks appear once the gateway can list them" : "");
    if (snapshot.tasks === null) return;
    syncRows($("tasks-body"), snapshot.tasks, (t) => t.task_id, (row, t) => {
      row.dataset.taskId = t.task_id;
      row.dataset.status = t.status;
      row.className = "task" + (state.selected === t.task_id ? " selected" : "");
      cell(row, 0, t.task_id, "id");
      cell(row, 1, t.function || short(t.function_id));
      cell(row, 2, t.status, "status status-" + t.status);
      cell(row, 3, seconds(t.queue_wait), "num");
      cell(row, 4, seconds(t.run_time), "num");
      cell(row, 5, seconds(t.total), "num");
      cell(row, 6, t.worker_id, "id");
      cell(row, 7, why(t), "why");
    }, "no task yet", 8);
  }

  function drawFunctions(snapshot) {
    missing("functions-missing", snapshot.missing.functions);
    if (snapshot.functions === null) return;
    syncRows($("functions-body"), snapshot.functions, (f) => f.function_id, (row, f) => {
      row.dataset.functionId = f.function_id;
      cell(row, 0, f.name);
      cell(row, 1, f.function_id, "id");
      cell(row, 2, f.submitted, "num");
      cell(row, 3, f.completed, "num");
      cell(row, 4, f.failed, f.failed ? "num late" : "num");
      cell(row, 5, f.in_progress, "num");
      cell(row, 6, f.age === null ? "—" : seconds(f.age) + " ago", "num");
    }, "no function registered", 7);
  }

  const SVG = "http://www.w3.org/2000/svg";
  function svg(name, attributes, text) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function drawChart(snapshot) {
    const series = snapshot.throughput;
    $("last-minute").textContent = series.last_minute;
    const chart = $("chart");
    const width = Math.max(300, Math.round(chart.clientWidth || 720));
    const height = 160, left = 40, bottom = 18, top = 8;
    chart.setAttribute("viewBox", "0 0 " + width + " " + height);
    const rates = series.rates;
    const peak = Math.max(1, ...rates);
    const scale = (height - bottom - top) / peak;
    const barWidth = (width - left) / rates.length;
    const nodes = [
      svg("line", { class: "axis", x1: left, y1: height - bottom, x2: width, y2: height - bottom }),
      svg("text", { x: 4, y: top + 10 }, peak.toFixed(peak < 10 ? 1 : 0) + "/s"),
      svg("text", { x: 4, y: height - bottom }, "0"),
      svg("text", { x: left, y: height - 4 }, "−" + Math.round(rates.length * series.bucket_seconds / 60) + " min"),
      svg("text", { x: width - 28, y: height - 4 }, "now"),
    ];
    rates.forEach((rate, i) => {
      if (rate <= 0) return;
      const h = Math.max(1, rate * scale);
      const bar = svg("rect", {
        class: "bar", x: (left + i * barWidth + 1).toFixed(1), y: (height - bottom - h).toFixed(1),
        width: Math.max(1, barWidth - 2).toFixed(1), height: h.toFixed(1),
      });
      bar.appendChild(svg("title", {}, rate + " tasks/s"));
      nodes.push(bar);
    });
    chart.replaceChildren(...nodes);
  }

  function draw(snapshot) {
    state.snapshots += 1;
    state.last = snapshot;
    drawQueue(snapshot);
    drawWorkers(snapshot);
    drawTasks(snapshot);
    drawFunctions(snapshot);
    drawChart(snapshot);
    $("updated").textContent = "updated " + new Date(snapshot.now * 1000).toLocaleTimeString();
  }

  // --- task details ----------------------------------------------------------------------

  async function showTask(taskId) {
    state.selected = taskId;
    for (const row of $("tasks-body").rows) row.classList.toggle("selected", row.dataset.id === taskId);
    $("detail").hidden = false;
    $("detail-title").textContent = "task " + taskId;
    $("detail-summary").textContent = "loading…";
    const traceback = $("detail-traceback"), output = $("detail-output");
    traceback.hidden = true;
    output.hidden = true;
    try {
      const reply = await fetch("result/" + encodeURIComponent(taskId), { headers: authHeaders() });
      const body = await reply.json();
      if (!reply.ok) { $("detail-summary").textContent = body.detail || reply.statusText; return; }
      let summary = body.status;
      if (body.error) {
        summary += ": " + body.error.cause + (body.error.message ? ": " + body.error.message : "");
        if (body.error.traceback) { traceback.textContent = body.error.traceback; traceback.hidden = false; }
      }
      $("detail-summary").textContent = summary;
    } catch (error) {
      $("detail-summary").textContent = String(error);
      return;
    }
    try { // what the function printed, where the gateway keeps it (GET /logs)
      const reply = await fetch("logs/" + encodeURIComponent(taskId), { headers: authHeaders() });
      if (!reply.ok) return;
      const body = await reply.json();
      if (body.output) {
        output.textContent = body.output + (body.truncated ? "\n[cut at the worker's limit]" : "");
        output.hidden = false;
      }
    } catch (error) { /* no output to show */ }
  }

  // --- the event stream ------------------------------------------------------------------

  function handle(event, data) {
    if (event === "snapshot") { draw(JSON.parse(data)); setConn("live", "live"); }
    else if (event === "refused") {
      const body = JSON.parse(data);
      if (body.status === 401) askKey(body.detail);
      else setConn("error", body.detail + "; retrying");
      state.retry = body.status !== 401; // a refused key waits for another; the rest retry
      return false;
    }
    return true;
  }

  function askKey(detail) {
    setConn("key", "API key needed");
    $("key-form").hidden = false;
    $("key-error").textContent = apiKey() ? detail : "";
  }

  async function stream() {
    state.connects += 1;
    const reply = await fetch("ui/events", { headers: authHeaders(), cache: "no-store" });
    if (reply.status === 401) {
      const body = await reply.json().catch(() => ({}));
      askKey(body.detail || "the gateway refused the key");
      return false;
    }
    if (!reply.ok || !reply.body) {
      const body = await reply.json().catch(() => ({}));
      setConn("error", (body.detail || reply.statusText) + "; retrying");
      return true;
    }
    $("key-form").hidden = true;
    const reader = reply.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return true;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message", data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) event = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data && !handle(event, data)) { reader.cancel(); return state.retry; }
      }
    }
  }

  async function run() {
    if (state.running) return; // one stream at a time
    state.running = true;
    for (;;) {
      let again = true;
      try { again = await stream(); }
      catch (error) { setConn("reconnecting", "reconnecting…"); }
      if (!again) { state.running = false; return; }
      if ($("conn").dataset.state === "live") setConn("reconnecting", "reconnecting…");
      await new Promise((resolve) => setTimeout(resolve, 2000));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("tasks-body").addEventListener("click", (event) => {
      const row = event.target.closest("tr.task");
      if (row) showTask(row.dataset.id);
    });
    $("detail-close").addEventListener("click", () => {
      $("detail").hidden = true;
      state.selected = null;
      for (const row of $("tasks-body").rows) row.classList.remove("selected");
    });
    $("key-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const key = $("key-input").value.trim();
      if (!key) return;
      sessionStorage.setItem(KEY_STORE, key);
      $("key-input").value = "";
      $("key-form").hidden = true;
      setConn("connecting", "connecting…");
      run();
    });
    run();
  });
})();
