// vision-to-tag dashboard: every number comes from the API (relative URLs, so it works
// under a function URL prefix too); nothing here is trusted into innerHTML (textContent
// only). It asks without a token first and shows the token box only on a 401.
// Refreshes every 5 s; the 24 h charts every 30 s.
"use strict";

const TOKEN_KEY = "vtt_token";
const REFRESH_MS = 5000;
const CHARTS_EVERY = 6;  // refreshes between two reads of the 24 h charts
const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function authHeaders() { return token() ? { Authorization: `Bearer ${token()}` } : {}; }

async function api(path, method = "GET") {
  const response = await fetch(path, { method, headers: authHeaders() });
  let body = null;
  try { body = await response.json(); } catch (e) { body = { message: response.statusText }; }
  if (!response.ok) {
    const error = new Error(body.message || `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return body.data;
}

function text(id, value) { $(id).textContent = value === undefined || value === null ? "–" : String(value); }

function clearData() {
  for (const dd of document.querySelectorAll("dd")) dd.textContent = "–";
  for (const id of ["h-completed", "h-failed", "pool-left-today", "pool-left-minute",
                    "use-hour", "cost-hour", "use-today", "cost-today"]) text(id, null);
  for (const body of document.querySelectorAll("tbody")) body.replaceChildren();
  for (const id of Object.keys(charts)) { charts[id].destroy(); delete charts[id]; }
  $("task-detail").hidden = true;
  $("tagger").textContent = "";
  showWarnings([]);
}

function banner(message) {
  $("banner").hidden = !message;
  $("banner").textContent = message || "";
}

function showWarnings(warnings) {
  // what keeps the deployment from tagging although it runs (no Gemini key): the API says
  // it and the command that fixes it; kept apart from the error banner, which refreshes clear
  const box = $("warnings");
  box.replaceChildren();
  for (const warning of warnings || []) {
    const line = document.createElement("p");
    line.dataset.code = warning.code;
    line.append(`${warning.message} `);
    if (warning.command) {
      const command = document.createElement("code");
      command.textContent = warning.command;
      line.append("Run: ", command);
    }
    box.append(line);
  }
  box.hidden = !box.childElementCount;
}

function labelCells(table) {
  // each cell carries its column's name: on a phone the rows are shown as cards, each
  // value under its name (style.css), so no column hides behind a sideways scroll
  const names = [...table.tHead.rows[0].cells].map((th) => th.textContent);
  for (const row of table.tBodies[0].rows) {
    for (const [index, td] of [...row.cells].entries()) td.dataset.label = names[index] ?? "";
  }
}

function cell(row, value, className) {
  const td = document.createElement("td");
  if (value instanceof Node) td.append(value); else td.textContent = value;
  if (className) td.className = className;
  row.append(td);
  return td;
}

function bar(used, limit) {
  const wrap = document.createElement("div");
  wrap.className = "bar" + (limit && used >= limit ? " full" : "");
  const fill = document.createElement("span");
  fill.style.width = `${limit ? Math.min(100, (100 * used) / limit) : 0}%`;
  const label = document.createElement("em");
  label.textContent = `${used} / ${limit}`;
  wrap.append(fill, label);
  return wrap;
}

function showRetention(retention) {
  // the oldest task kept (its day), and how long finished tasks are kept
  if (!retention) return;
  const oldest = retention.oldest_task_at ? retention.oldest_task_at.slice(0, 10) : "none";
  const kept = retention.days ? `kept ${retention.days} d` : "kept for ever";
  text("t-oldest", `${oldest} (${kept})`);
}

function showStats(stats) {
  const queue = stats.queue || {};
  text("q-pending", queue.pending); text("q-delayed", queue.delayed);
  text("q-inflight", queue.in_flight); text("q-failed", queue.failed);
  for (const status of ["pending", "processing", "completed", "failed"]) text(`t-${status}`, stats.tasks[status]);
  showRetention(stats.retention);
  text("h-completed", stats.last_hour.completed); text("h-failed", stats.last_hour.failed);
  text("pool-left-today", stats.pool.capacity_left_today);
  for (const [window, suffix] of [["last_hour", "hour"], ["today", "today"]]) {
    const usage = (stats.usage || {})[window];
    if (!usage) continue;
    text(`use-${suffix}`, usage.prompt_tokens + usage.output_tokens + usage.thinking_tokens);
    text(`cost-${suffix}`, usage.cost_usd.toFixed(4));
  }
  text("pool-left-minute", stats.pool.capacity_left_this_minute);
  const body = $("stages").tBodies[0];
  body.replaceChildren();
  for (const [stage, row] of Object.entries(stats.last_hour.stages)) {
    const tr = document.createElement("tr");
    cell(tr, stage); cell(tr, row.count); cell(tr, row.p50_ms); cell(tr, row.p95_ms);
    body.append(tr);
  }
  $("search").hidden = !stats.search_enabled;
  showTagger(stats.tagger);
  showWarnings(stats.warnings);
}

function showTagger(tagger) {
  if (!tagger) return;
  const fallbacks = tagger.fallback_models.length ? `, then ${tagger.fallback_models.join(", ")}` : "";
  $("tagger").textContent = `tagger: ${tagger.name} · model ${tagger.model}${fallbacks}`;
  $("pool-capacity").hidden = !tagger.needs_keys;
  $("pool-offline").hidden = tagger.needs_keys;
  $("pool-offline").textContent = tagger.needs_keys ? "" :
    `The offline tagger (${tagger.model}) runs and needs no keys; the key pool is unused while TAGGER=${tagger.name}.`;
  // the Gemini-only sections (keys, pool charts, batch jobs) take no room (style.css)
  document.body.classList.toggle("offline", !tagger.needs_keys);
}

function offline() { return document.body.classList.contains("offline"); }

function showKeys(pool) {
  const body = $("keys").tBodies[0];
  body.replaceChildren();
  for (const key of pool.accounts) {
    const tr = document.createElement("tr");
    tr.dataset.keyId = key.key_id;
    cell(tr, key.key); cell(tr, key.status, `status-${key.status}`);
    cell(tr, bar(key.used_today, key.quota_daily));
    const minute = cell(tr, bar(key.used_this_minute, key.effective_minute_limit ?? key.minute_limit));
    if (key.today && key.today.cost_usd) {
      const spent = document.createElement("small");
      spent.className = "learned";
      spent.textContent = `today ${key.today.input_tokens + key.today.output_tokens} tokens, ≈ $${key.today.cost_usd.toFixed(4)}`;
      minute.append(spent);
    }
    if (key.tpm_limit) {
      const tokens = document.createElement("small");
      tokens.className = "learned";
      tokens.textContent = `tokens ${key.tokens_this_minute} / ${key.tpm_limit}`;
      minute.append(tokens);
    }
    if (key.effective_minute_limit !== undefined && key.effective_minute_limit < key.minute_limit) {
      const learned = document.createElement("small");
      learned.className = "learned";
      learned.textContent = `learned ${key.effective_minute_limit} (configured ${key.minute_limit})`;
      minute.append(learned);
    }
    cell(tr, key.cooldown_left_s ? `${key.cooldown_left_s} s` : "");
    cell(tr, key.problem || key.disabled_reason || key.last_error || "", "wide");
    cell(tr, keyButton(key));
    body.append(tr);
  }
  labelCells($("keys"));
}

function showProjects(pool) {
  // every key of a project shares its quotas, one per model: the limits that bind
  const body = $("projects").tBodies[0];
  body.replaceChildren();
  for (const project of pool.projects || []) {
    for (const [model, use] of Object.entries(project.models)) {
      const tr = document.createElement("tr");
      cell(tr, project.project ?? "(key alone)");
      cell(tr, String(project.keys.length));
      cell(tr, model);
      cell(tr, bar(use.used_today, use.daily_limit));
      const minute = cell(tr, bar(use.used_this_minute, use.effective_minute_limit));
      if (use.tpm_limit) {
        const tokens = document.createElement("small");
        tokens.className = "learned";
        tokens.textContent = `tokens ${use.tokens_this_minute} / ${use.tpm_limit}`;
        minute.append(tokens);
      }
      if (use.effective_minute_limit < use.minute_limit) {
        const learned = document.createElement("small");
        learned.className = "learned";
        learned.textContent = `learned ${use.effective_minute_limit} (configured ${use.minute_limit})`;
        minute.append(learned);
      }
      cell(tr, use.cooldown_left_s ? `${use.cooldown_left_s} s` : "");
      body.append(tr);
    }
  }
  labelCells($("projects"));
}

function keyButton(key) {
  const action = key.status === "disabled" ? "enable" : "disable";
  const button = document.createElement("button");
  button.type = "button";
  button.className = `key-${action}`;
  button.textContent = action;
  button.addEventListener("click", () => setKey(key, action));
  return button;
}

async function setKey(key, action) {
  if (!window.confirm(`${action} key ${key.key}?`)) return;
  try {
    await api(`api/v1/accounts/${encodeURIComponent(key.key_id)}/${action}`, "POST");
    banner("");
    await refresh();
  } catch (error) { failed(error); }
}

function shortUrl(url) {
  // host, the end of the path and the whole query string (signed or parameterised URLs
  // differ only there); the full URL on hover and in the task's detail
  try {
    const parsed = new URL(url);
    const path = parsed.pathname.length > 24 ? `…${parsed.pathname.slice(-23)}` : parsed.pathname;
    return parsed.host + path + parsed.search + parsed.hash;
  } catch (e) { return url; }
}

function totalMs(task) {
  return task.timings ? Object.values(task.timings).reduce((a, b) => a + b, 0) : "";
}

function showTasks(page) {
  const body = $("tasks").tBodies[0];
  body.replaceChildren();
  for (const task of page.tasks) {
    const tr = document.createElement("tr");
    tr.dataset.taskId = task.task_id;
    cell(tr, task.task_id.slice(0, 12)).title = task.task_id;
    const url = document.createElement("span");
    url.textContent = shortUrl(task.url);
    cell(tr, url, "url wide").title = task.url;
    cell(tr, task.status, `status-${task.status}`);
    cell(tr, task.stage || "");
    cell(tr, task.error_code || "", "error-code").title = task.message || "";
    cell(tr, totalMs(task));
    cell(tr, new Date(task.created_at).toLocaleString());
    tr.addEventListener("click", () => showTask(task.task_id));
    body.append(tr);
  }
  labelCells($("tasks"));
  $("tasks-empty").hidden = page.tasks.length > 0;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function exportLink(batch, format) {
  // a plain link works without API_TOKENS; with a token the file is fetched with it
  const link = document.createElement("a");
  link.href = `api/v1/batches/${encodeURIComponent(batch.batch_id)}/results?format=${format}`;
  link.textContent = format.toUpperCase();
  link.className = "export";
  link.addEventListener("click", async (event) => {
    if (!token()) return;
    event.preventDefault();
    try {
      const response = await fetch(link.href, { headers: authHeaders() });
      if (!response.ok) throw new Error(`export: HTTP ${response.status}`);
      const file = URL.createObjectURL(await response.blob());
      const save = document.createElement("a");
      save.href = file;
      save.download = `batch-${batch.batch_id}.${format}`;
      document.body.append(save); save.click(); save.remove();
      setTimeout(() => URL.revokeObjectURL(file), 10000);
    } catch (error) { banner(error.message); }
  });
  return link;
}

function batchBar(batch) {
  // completed in the progress colour, failed in red; never the warning colour a key's
  // spent quota gets: a batch that finished without a failure is good news
  const { completed, failed } = batch.counts;
  const total = batch.progress.total;
  const share = (n) => `${total ? Math.min(100, (100 * n) / total) : 0}%`;
  const wrap = document.createElement("div");
  const allDone = total > 0 && batch.progress.finished >= total;
  wrap.className = "bar batch" + (allDone && !failed ? " done" : "");
  const done = document.createElement("span");
  done.style.width = share(completed);
  wrap.append(done);
  if (failed) {
    const bad = document.createElement("span");
    bad.className = "failed";
    bad.style.left = share(completed);
    bad.style.width = share(failed);
    wrap.append(bad);
  }
  const label = document.createElement("em");
  label.textContent = `${batch.progress.finished} / ${total}`;
  wrap.append(label);
  return wrap;
}

function showBatches(page) {
  const body = $("batches").tBodies[0];
  body.replaceChildren();
  for (const batch of page.batches) {
    const tr = document.createElement("tr");
    tr.dataset.batchId = batch.batch_id;
    cell(tr, batch.name).title = batch.batch_id;
    cell(tr, batchBar(batch));
    cell(tr, batch.counts.completed, "status-completed");
    cell(tr, batch.counts.failed, batch.counts.failed ? "status-failed" : "");
    cell(tr, batch.rejected);
    cell(tr, batch.finished_at ? "done" : duration(batch.eta_s));
    cell(tr, new Date(batch.created_at).toLocaleString());
    const links = document.createElement("span");
    links.append(exportLink(batch, "csv"), " ", exportLink(batch, "jsonl"));
    cell(tr, links);
    body.append(tr);
  }
  labelCells($("batches"));
  $("batches-empty").hidden = page.batches.length > 0;
}

let shownTask = null;  // the id the task detail shows

async function showTask(taskId, { scroll = true, note = "" } = {}) {
  try {
    const task = await api(`api/v1/task/${encodeURIComponent(taskId)}`);
    shownTask = taskId;
    $("detail-id").textContent = taskId;
    $("detail-url").textContent = task.url;
    $("detail-url").href = task.url;
    $("detail-summary").textContent = task.result ? task.result.summary :
      `no result: ${task.status}${task.error_code ? ` · ${task.error_code}` : ""}${task.message ? ` · ${task.message}` : ""}`;
    showRetry(task, note);
    showTags(task.result ? task.result.tags : []);
    // no headings over nothing: a task without a result has no moments or frames
    $("detail-moments-box").hidden = !task.result;
    showMoments(task.result);
    const frames = task.result ? task.result.frames : [];
    $("detail-frames-box").hidden = !frames.length;
    showFrames(taskId, frames);
    $("task-detail").hidden = false;
    // the detail sits under the list (or far above the search box): bring it to the reader
    if (scroll) $("task-detail").scrollIntoView({ block: "start", behavior: scrollBehavior() });
  } catch (error) { failed(error); }
}

function scrollBehavior() {
  return window.matchMedia("(prefers-reduced-motion: reduce)").matches ? "auto" : "smooth";
}

function showRetry(task, note) {
  $("detail-retry").hidden = task.status !== "failed" && !note;
  $("retry").hidden = task.status !== "failed";
  $("retry").disabled = $("retry-force").disabled = false;
  $("retry-force").hidden = true;
  $("retry-status").textContent = note;
}

async function retryTask(force) {
  const taskId = shownTask;
  $("retry").disabled = $("retry-force").disabled = true;
  $("retry-status").textContent = force ? "retrying anyway…" : "retrying…";
  try {
    await api(`api/v1/task/${encodeURIComponent(taskId)}/retry${force ? "?force=true" : ""}`, "POST");
    if (shownTask !== taskId) return;
    await showTask(taskId, { scroll: false, note: force ? "re-queued (forced)" : "re-queued" });
    refresh();
  } catch (error) {
    if (shownTask !== taskId) return;
    if (error.status === 401 || error.status === 403) { failed(error); return; }
    // 409: the API refuses a task that failed for a reason about the video itself (too
    // long, unsupported format): its message says why, and the operator may still insist
    $("retry-status").textContent = error.message;
    $("retry-force").hidden = force || error.status !== 409;
    $("retry").disabled = $("retry-force").disabled = false;
  }
}

function showTags(tags) {
  const list = $("detail-tags");
  list.replaceChildren();
  for (const tag of tags) {
    const li = document.createElement("li");
    li.textContent = tag;
    list.append(li);
  }
}

function showMoments(result) {
  // key moments as spans of a bar as long as the video; frames as ticks on it
  const line = $("detail-timeline");
  const list = $("detail-moments");
  line.replaceChildren(); list.replaceChildren();
  const length = result ? result.technical.duration_s : 0;
  line.hidden = !length;
  if (!length) return;
  const at = (seconds) => `${Math.min(100, (100 * seconds) / length)}%`;
  for (const [index, moment] of result.key_moments.entries()) {
    const span = document.createElement("span");
    span.className = "moment";
    span.style.left = at(moment.start_s);
    span.style.width = `calc(${at(moment.end_s - moment.start_s)} + 2px)`;
    span.title = `${moment.start_s}–${moment.end_s} s: ${moment.description}`;
    span.textContent = String(index + 1);
    line.append(span);
    const li = document.createElement("li");
    li.textContent = `${moment.start_s}–${moment.end_s} s · ${moment.description}${moment.tags.length ? ` (${moment.tags.join(", ")})` : ""}`;
    list.append(li);
  }
  if (!result.key_moments.length) {
    const none = document.createElement("li");
    none.className = "empty";
    none.textContent = "no key moments in this result";
    list.append(none);
  }
  for (const frame of result.frames) {
    const tick = document.createElement("i");
    tick.className = "frame-tick";
    tick.style.left = at(frame.t_s);
    tick.title = `frame at ${frame.t_s} s`;
    line.append(tick);
  }
}

let frameUrls = [];

function showFrames(taskId, frames) {
  // an <img> cannot send the token: each frame is fetched with it and shown as a blob URL
  for (const url of frameUrls) URL.revokeObjectURL(url);
  frameUrls = [];
  const box = $("detail-frames");
  box.replaceChildren();
  for (const [index, frame] of frames.entries()) {
    const figure = document.createElement("figure");
    const img = document.createElement("img");
    img.alt = `frame at ${frame.t_s} s`;
    const caption = document.createElement("figcaption");
    caption.textContent = `${frame.t_s} s`;
    figure.append(img, caption);
    box.append(figure);
    loadFrame(img, `api/v1/task/${encodeURIComponent(taskId)}/frames/${index}`);
  }
}

async function loadFrame(img, path) {
  try {
    const response = await fetch(path, { headers: authHeaders() });
    if (!response.ok) throw new Error(`frame: HTTP ${response.status}`);
    const url = URL.createObjectURL(await response.blob());
    frameUrls.push(url);
    img.src = url;
  } catch (error) { img.replaceWith(document.createTextNode(error.message)); }
}

function geminiTrouble(gemini) {
  // Gemini's own condition (overloaded model, refused region, dead endpoint), said plainly
  if (!gemini) return "";
  const troubles = [];
  for (const [model, state] of Object.entries(gemini.models || {})) {
    if (state.status !== "ok") troubles.push(`${model}: ${state.advice}`);
  }
  for (const endpoint of gemini.endpoints || []) {
    if (endpoint.status !== "ok") troubles.push(`${endpoint.endpoint}: ${endpoint.advice}`);
  }
  return troubles.join(" · ");
}

// --- the pool's charts (uPlot, vendored under dashboard/vendor/) ----------------------

const charts = {};

function chartWidth(id) { return Math.max(240, $(id).clientWidth || 800); }

const measure = document.createElement("canvas").getContext("2d");

function textWidth(axis, value) {
  // CSS pixels of a tick label in the axis font (uPlot keeps it scaled to the canvas);
  // a separate canvas: uPlot caches the font it set on its own
  measure.font = axis.font[0];
  const lines = String(value).split("\n");
  return Math.max(...lines.map((line) => measure.measureText(line).width)) /
    (window.devicePixelRatio || 1);
}

function axisSize(u, values, axisIndex, cycle) {
  // a vertical axis as wide as its widest label (uPlot's fixed 50 px cut "10,000" to "0,000").
  // uPlot asks again while sizes change (the new plot height may bring other ticks): from
  // the second round on the size only grows, so it settles
  const axis = u.axes[axisIndex];
  const widest = Math.max(0, ...(values || []).map((value) => textWidth(axis, value)));
  const size = Math.ceil(axis.ticks.size + axis.gap + widest + 4);
  return cycle > 1 ? Math.max(size, axis._size || 0) : size;
}

// tick steps for things counted whole (tasks, requests): no "0.25 tasks"
const COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5,
  5e5, 1e6];

function fitText(axis, text, maxPx) {
  // the label cut with "…" to fit maxPx; the full one is in the legend on hover
  if (textWidth(axis, text) <= maxPx) return text;
  let cut = [...text];
  while (cut.length > 1 && textWidth(axis, `${cut.join("")}…`) > maxPx) cut.pop();
  return `${cut.join("")}…`;
}

const compact = new Intl.NumberFormat("en", { notation: "compact", maximumFractionDigits: 1 });

function ms(value) {
  // a duration tick with its unit: "500 ms", "12 s"
  if (value === null || value === undefined) return "–";
  if (value === 0) return "0";
  return Math.abs(value) < 1000 ? `${value} ms` : `${+(value / 1000).toFixed(1)} s`;
}

function dropChart(id) {
  if (charts[id]) { charts[id].destroy(); delete charts[id]; }
}

function drawChart(id, options, data) {
  if (typeof uPlot === "undefined") return;  // the library failed to load: numbers only
  if (charts[id]) { charts[id].setData(data); return; }
  charts[id] = new uPlot({ width: chartWidth(id), height: 220, ...options }, data, $(id));
}

function showPoolHistory(history) {
  if (offline()) { dropChart("chart-days"); dropChart("chart-hour"); return; }  // hidden
  const days = history.days;
  const dayX = days.map((d) => Date.parse(`${d.day}T12:00:00Z`) / 1000);
  drawChart("chart-days", {
    scales: { x: { time: true }, n: {}, tok: {}, usd: {} },
    series: [
      { label: "day", value: (u, v) => v === null ? "–" : new Date(v * 1000).toISOString().slice(0, 10) },
      { label: "requests", scale: "n", stroke: "#3d7bfd", width: 2, fill: "#3d7bfd22" },
      { label: "tokens", scale: "tok", stroke: "#1e7f3d", width: 2 },
      { label: "cost USD", scale: "usd", stroke: "#d9822b", width: 2, dash: [6, 4],
        value: (u, v) => v === null ? "–" : `$${v.toFixed(4)}` },
    ],
    axes: [{}, { scale: "n", label: "requests", size: axisSize, incrs: COUNTS },
           { scale: "tok", side: 1, label: "tokens", grid: { show: false }, size: axisSize,
             values: (u, splits) => splits.map((v) => compact.format(v)) }],
  }, [dayX, days.map((d) => d.requests), days.map((d) => d.input_tokens + d.output_tokens),
      days.map((d) => d.cost_usd)]);
  const minutes = history.last_hour;
  drawChart("chart-hour", {
    scales: { x: { time: true } },
    series: [
      { label: "minute" },
      { label: "requests", stroke: "#3d7bfd", fill: "#3d7bfd55",
        paths: uPlot.paths.bars({ size: [0.8, 24] }) },
      { label: "429s", stroke: "#b3261e", width: 2 },
      { label: "capacity", stroke: "#1d2330", width: 2, dash: [4, 3], spanGaps: true,
        paths: uPlot.paths.stepped({ align: 1 }) },
    ],
    axes: [{}, { label: "requests / minute", size: axisSize, incrs: COUNTS }],
  }, [minutes.map((m) => Date.parse(m.minute) / 1000), minutes.map((m) => m.requests),
      minutes.map((m) => m["429s"]), minutes.map((m) => m.capacity)]);
}

function showThroughput(throughput) {
  const start = Date.parse(throughput.start) / 1000;
  const x = throughput.completed.map((_, i) => start + i * throughput.step_s);
  drawChart("chart-throughput", {
    scales: { x: { time: true } },
    series: [
      { label: "minute" },
      { label: "completed", stroke: "#1e7f3d", fill: "#1e7f3d33", width: 1 },
      { label: "failed", stroke: "#b3261e", fill: "#b3261e33", width: 1 },
    ],
    axes: [{}, { label: "tasks / minute", size: axisSize, incrs: COUNTS }],
  }, [x, throughput.completed, throughput.failed]);
}

function categoryChart(id, what, labels, series, data, { rowPx = 24, valueAxis = {} } = {}) {
  // horizontal bars over named categories, one row each, the names written out on the
  // left (uPlot has numbers on x: the names come from the index). Upright names read at
  // any width; at 390 px twenty slanted ones piled up.
  dropChart(id);
  if (typeof uPlot === "undefined" || !labels.length) return;
  const width = chartWidth(id);
  const name = (i) => labels[Math.round(i)] ?? "";
  const room = Math.min(240, Math.round(width * 0.4) - 20);  // the names' width, at most
  charts[id] = new uPlot({
    width, height: labels.length * rowPx + 90,  // + the value axis and its name
    scales: { x: { time: false, ori: 1, dir: -1, range: [-0.5, labels.length - 0.5] },
              y: { ori: 0, range: (u, min, max) => [0, max > 0 ? max * 1.08 : 1] } },
    series: [{ label: what, value: (u, v) => v === null ? "–" : name(v) }, ...series],
    axes: [
      { side: 3, splits: () => labels.map((_, i) => i), size: axisSize, grid: { show: false },
        values: (u, splits) => splits.map((i) => fitText(u.axes[0], name(i), room)) },
      { side: 2, space: 70, ...valueAxis },
    ],
  }, [labels.map((_, i) => i), ...data], $(id));
}

function showStageLatency(stages) {
  const names = Object.keys(stages);
  $("stages-empty").hidden = names.length > 0;
  const value = (u, v) => v === null ? "–" : `${v.toLocaleString("en")} ms`;
  categoryChart("chart-stages", "stage", names, [
    { label: "p95", stroke: "#d9822b", fill: "#d9822b66", paths: uPlotBars(0.7), value },
    { label: "p50", stroke: "#3d7bfd", fill: "#3d7bfdaa", paths: uPlotBars(0.4), value },
  ], [names.map((n) => stages[n].p95_ms), names.map((n) => stages[n].p50_ms)],
  { rowPx: 32, valueAxis: { label: "duration", values: (u, splits) => splits.map(ms) } });
}

function showTopTags(tags) {
  $("tags-empty").hidden = tags.length > 0;
  categoryChart("chart-tags", "tag", tags.map((t) => t.tag), [
    { label: "tasks", stroke: "#3d7bfd", fill: "#3d7bfd88", paths: uPlotBars(0.7) },
  ], [tags.map((t) => t.count)], { valueAxis: { label: "tasks", incrs: COUNTS } });
}

function uPlotBars(size) {
  // the narrower p50 bar stays inside the p95 one at any width
  return typeof uPlot === "undefined" ? undefined : uPlot.paths.bars({ size: [size, 100 * size] });
}

let refreshes = 0;

async function refreshCharts() {
  const data = await api("api/v1/stats/charts");
  showThroughput(data.throughput); showStageLatency(data.stages); showTopTags(data.top_tags);
}

function failed(error) {
  if (error.status === 401 || error.status === 403) {
    caller = null;
    clearData();
    $("login").hidden = false;
    // 401: no key or a wrong/revoked one; 403: a team's key without the admin scope
    $("auth-status").textContent = error.status === 403 ? "this key lacks the read scope"
      : token() ? "token rejected" : "a token is required";
  } else {
    banner(error.status === 503 ? `A backing service is down: ${error.message}` : error.message);
  }
}

let caller = null;  // who the key is (GET /api/v1/me), asked once per token

function showTeamUsage(usage) {
  const body = $("team-days").tBodies[0];
  body.replaceChildren();
  for (const day of usage.days.slice(-7).reverse()) {
    const tr = document.createElement("tr");
    cell(tr, day.day); cell(tr, day.tasks); cell(tr, day.requests);
    cell(tr, day.prompt_tokens + day.output_tokens + day.thinking_tokens);
    cell(tr, day.cost_usd.toFixed(4));
    body.append(tr);
  }
  labelCells($("team-days"));
  text("team-total-tasks", usage.total.tasks);
  text("team-total-cost", usage.total.cost_usd.toFixed(4));
}

async function refreshTeam() {
  // a team's key: its own tasks, batches and usage; the pool and the stats of all are an
  // admin's (their sections take no room: style.css)
  const [page, batches, usage] = await Promise.all([
    api("api/v1/tasks?limit=15"), api("api/v1/batches?limit=10"),
    api(`api/v1/teams/${encodeURIComponent(caller.team)}/usage?days=30`)]);
  showTasks(page); showBatches(batches); showTeamUsage(usage);
}

async function refresh() {
  try {
    caller = caller || await api("api/v1/me");
    document.body.classList.toggle("team-view", !caller.admin);
    $("team-name").textContent = caller.admin ? "" : `team ${caller.team}`;
    if (!caller.admin) {
      await refreshTeam();
      $("auth-status").textContent = "";
      $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
      return;
    }
    const [stats, pool, page, batches, history] = await Promise.all([
      api("api/v1/stats"), api("api/v1/accounts"), api("api/v1/tasks?limit=15"),
      api("api/v1/batches?limit=10"), api("api/v1/accounts/history?days=30")]);
    banner(geminiTrouble(stats.gemini)); $("auth-status").textContent = "";
    showStats(stats); showProjects(pool); showKeys(pool); showTasks(page); showBatches(batches);
    showPoolHistory(history);
    if (refreshes++ % CHARTS_EVERY === 0 || !charts["chart-throughput"]) await refreshCharts();
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.dispatchEvent(new Event("dashboard-refreshed"));  // self-contained sections
  } catch (error) { failed(error); }
}

async function search(event) {
  event.preventDefault();
  const list = $("search-results");
  const query = $("search-q").value;
  list.replaceChildren();
  $("search-empty").hidden = true;
  try {
    const page = await api(`api/v1/search?q=${encodeURIComponent(query)}&limit=20`);
    for (const hit of page.hits) {
      const li = document.createElement("li");
      li.textContent = `${hit.task_id.slice(0, 12)} · ${hit.tags.join(", ")}`;
      li.addEventListener("click", () => showTask(hit.task_id));
      list.append(li);
    }
    // an empty list looks like a search that did not run: say there was no hit
    $("search-empty").textContent = query.trim() ?
      `no completed task matches “${query.trim()}”` : "no completed task to show";
    $("search-empty").hidden = page.hits.length > 0;
  } catch (error) { failed(error); }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = token();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
    caller = null;  // another key: ask again who it is
    refresh();
  });
  $("search-form").addEventListener("submit", search);
  $("retry").addEventListener("click", () => retryTask(false));
  $("retry-force").addEventListener("click", () => retryTask(true));
  refresh();
  setInterval(refresh, REFRESH_MS);
});
