// parafka web dashboard: polls api/stats once a second and draws small canvas charts.
// Hand-written, no dependencies. Every chart canvas carries data-samples (points drawn)
// and data-last (the newest value of its first series), which the browser test reads.
"use strict";

const POLL_MS = 1000;
const MIN_SPAN = 60; // seconds shown at least on the time axis
const MAX_BARS = 15; // partitions drawn in the per-partition chart
const STUCK_AGE = 30; // seconds: an oldest unfinished record older than this is shown in red

const PARTS = [
  ["not_fetched", "not fetched", "#adb5bd"],
  ["queued", "queued", "#4dabf7"],
  ["in_flight", "in flight", "#f59f00"],
  ["done_not_committed", "done, not committed", "#37b24d"],
];

const state = { seq: -1, keep: 300, samples: [], partitions: [], letters: null, control: null, advice: [] };
const TOKEN_KEY = "parafka.control-token"; // sessionStorage: gone when the tab closes
let controlToken = window.sessionStorage.getItem(TOKEN_KEY) || "";
const selectedLetters = new Set(); // "topic/partition/offset" of the dead letters ticked

function byId(id) {
  return document.getElementById(id);
}

function fmt(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "–";
  const abs = Math.abs(value);
  if (abs >= 1e9) return (value / 1e9).toFixed(1) + "G";
  if (abs >= 1e6) return (value / 1e6).toFixed(1) + "M";
  if (abs >= 1e4) return (value / 1e3).toFixed(1) + "k";
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

function niceCeiling(value) {
  if (!(value > 0)) return 1;
  const power = Math.pow(10, Math.floor(Math.log10(value)));
  const m = value / power;
  const step = m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10;
  return step * power;
}

// Size the canvas backing store to its CSS box (sharp on high-DPI screens); clear it.
function prepare(canvas, cssHeight) {
  if (cssHeight) canvas.style.height = cssHeight + "px";
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  return { ctx, width, height };
}

function legend(ctx, series, x, y) {
  for (const s of series) {
    const last = s.values.length ? s.values[s.values.length - 1] : null;
    const text = `${s.label} ${fmt(last)}`;
    ctx.fillStyle = s.color;
    ctx.fillRect(x, y - 4, 8, 8);
    ctx.fillStyle = "#1f2933";
    ctx.textAlign = "left";
    ctx.fillText(text, x + 12, y);
    x += ctx.measureText(text).width + 26;
  }
}

// Time-series chart. series: [{label, color, values}], values aligned with times (seconds).
// stacked: each series is drawn on top of the previous ones, as filled areas.
function timeChart(canvas, times, series, stacked) {
  const { ctx, width, height } = prepare(canvas);
  const pad = { left: 52, right: 10, top: 22, bottom: 20 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const n = times.length;
  const now = n ? times[n - 1] : 0;
  const span = Math.min(state.keep, Math.max(MIN_SPAN, n ? now - times[0] : 0));
  const tops = series.map(() => new Array(n).fill(0));
  let highest = 0;
  for (let i = 0; i < n; i++) {
    let base = 0;
    series.forEach((s, k) => {
      const v = Math.max(0, s.values[i] || 0);
      tops[k][i] = stacked ? base + v : v;
      base = stacked ? base + v : 0;
      highest = Math.max(highest, tops[k][i]);
    });
  }
  const top = Math.max(4, niceCeiling(highest)); // at least 4: whole numbers on the axis
  const x = (t) => pad.left + plotW * (1 - (now - t) / span);
  const y = (v) => pad.top + plotH * (1 - v / top);

  ctx.strokeStyle = "#e9ecef";
  ctx.fillStyle = "#6b7785";
  ctx.lineWidth = 1;
  ctx.textAlign = "right";
  for (let g = 0; g <= 4; g++) {
    const v = (top * g) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.left, y(v));
    ctx.lineTo(width - pad.right, y(v));
    ctx.stroke();
    ctx.fillText(fmt(v), pad.left - 6, y(v));
  }
  ctx.textAlign = "center";
  const tick = span > 180 ? 60 : span > 90 ? 30 : 15;
  for (let ago = 0; ago <= span; ago += tick) {
    const label = ago === 0 ? "now" : ago % 60 === 0 ? `-${ago / 60}m` : `-${ago}s`;
    ctx.fillText(label, x(now - ago), height - pad.bottom / 2);
  }

  if (n) {
    for (let k = series.length - 1; k >= 0; k--) {
      const s = series[k];
      ctx.beginPath();
      for (let i = 0; i < n; i++) {
        const px = x(times[i]);
        const py = y(tops[k][i]);
        if (i === 0) ctx.moveTo(px, py);
        else ctx.lineTo(px, py);
      }
      ctx.strokeStyle = s.color;
      ctx.lineWidth = 1.5;
      ctx.stroke();
      if (stacked) {
        for (let i = n - 1; i >= 0; i--) {
          ctx.lineTo(x(times[i]), y(k > 0 ? tops[k - 1][i] : 0));
        }
        ctx.closePath();
        ctx.globalAlpha = 0.35;
        ctx.fillStyle = s.color;
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    }
  }
  legend(ctx, series, pad.left, 9);
  const first = series.length ? series[0].values : [];
  canvas.dataset.samples = String(n);
  canvas.dataset.last = first.length ? String(first[first.length - 1]) : "";
}

// Horizontal bars, one per partition, split in the lag parts when the stats carry them.
function partitionChart(canvas, partitions) {
  const rows = partitions.slice(0, MAX_BARS);
  const rowH = 18;
  const { ctx, width } = prepare(canvas, Math.max(60, 30 + rows.length * rowH));
  const labelW = 110;
  const valueW = 110;
  const plotW = Math.max(10, width - labelW - valueW);
  const withParts = rows.some((p) => p.parts);
  const highest = niceCeiling(Math.max(0, ...rows.map((p) => p.lag || 0)));
  if (withParts) {
    legend(ctx, PARTS.map(([key, label, color]) => ({
      label, color, values: [rows.reduce((sum, p) => sum + (p.parts ? p.parts[key] : 0), 0)],
    })), 4, 9);
  }
  if (!rows.length) {
    ctx.fillStyle = "#6b7785";
    ctx.textAlign = "left";
    ctx.fillText("no partition assigned yet", 4, 30);
  }
  rows.forEach((p, i) => {
    const cy = 30 + i * rowH;
    ctx.fillStyle = "#1f2933";
    ctx.textAlign = "left";
    ctx.fillText(`${p.topic}[${p.partition}]`, 4, cy, labelW - 8);
    let x0 = labelW;
    const pieces = p.parts
      ? PARTS.map(([key, , color]) => [p.parts[key], color])
      : [[p.lag || 0, "#4dabf7"]];
    for (const [value, color] of pieces) {
      const w = (plotW * (value || 0)) / highest;
      ctx.fillStyle = color;
      ctx.fillRect(x0, cy - 6, w, 12);
      x0 += w;
    }
    let waits = p.oldest_age >= 1 ? ` · oldest ${p.oldest_age.toFixed(0)}s` : "";
    if (p.behind_retry > 0) waits += ` · ${fmt(p.behind_retry)} behind a retry`;
    if (p.metadata_throttled) waits += " · metadata over cap";
    const alarm = p.oldest_age >= STUCK_AGE || p.metadata_throttled;
    ctx.fillStyle = alarm ? "#c92a2a" : "#1f2933";
    ctx.textAlign = "right";
    ctx.fillText(fmt(p.lag) + waits, width - 4, cy);
  });
  canvas.dataset.samples = String(rows.length);
  canvas.dataset.last = rows.length ? String(rows[0].lag) : "";
}

function column(name) {
  return state.samples.map((s) => s[name]);
}

function drawCharts() {
  const times = column("t");
  timeChart(byId("chart-throughput"), times, [
    { label: "records/s", color: "#1c7ed6", values: column("rate") },
  ], false);

  const withParts = state.samples.length && state.samples[state.samples.length - 1].lag_parts;
  if (withParts) {
    byId("lag-kind").textContent = "(stacked parts)";
    timeChart(byId("chart-lag"), times, PARTS.map(([key, label, color]) => ({
      label, color, values: state.samples.map((s) => (s.lag_parts ? s.lag_parts[key] : 0)),
    })), true);
  } else {
    byId("lag-kind").textContent = "(log end − committed)";
    timeChart(byId("chart-lag"), times, [
      { label: "lag", color: "#7048e8", values: column("lag") },
    ], false);
  }

  partitionChart(byId("chart-partitions"), state.partitions);

  timeChart(byId("chart-held"), times, [
    { label: "in flight", color: "#f59f00", values: column("in_flight") },
    { label: "concurrency limit", color: "#212529", values: column("concurrency_limit") },
    { label: "queued", color: "#4dabf7", values: column("queued") },
    { label: "waiting retry", color: "#e64980", values: column("waiting_retry") },
  ], false);

  timeChart(byId("chart-errors"), times, [
    { label: "failed", color: "#c92a2a", values: column("failed") },
    { label: "retried", color: "#f59f00", values: column("retried") },
    { label: "dead-lettered", color: "#862e9c", values: column("dead_lettered") },
    { label: "skipped", color: "#868e96", values: column("skipped_after_failure") },
  ], false);
}

function drawTiles() {
  const last = state.samples[state.samples.length - 1];
  if (!last) return;
  for (const name of ["rate", "processed", "in_flight", "concurrency_limit", "queued", "lag", "failed", "retried",
    "dead_lettered", "paused_partitions"]) {
    const tile = byId(`tile-${name}`);
    tile.textContent = name === "rate" ? fmt(Math.round(last[name])) : String(last[name]);
    const bad = ["failed", "dead_lettered"].includes(name) && last[name] > 0;
    tile.classList.toggle("bad", bad);
  }
}

function drawLetters() {
  const body = byId("letters").tBodies[0];
  const note = byId("letters-note");
  const last = state.samples[state.samples.length - 1];
  const total = last ? last.dead_lettered : 0;
  if (state.letters === null) {
    note.textContent = `${total} dead-lettered (this consumer does not list them)`;
    body.replaceChildren();
    return;
  }
  note.textContent = state.letters.length
    ? `${total} dead-lettered since start; the last ${state.letters.length}, newest first:`
    : "none yet";
  body.replaceChildren(...state.letters.map((e) => {
    const row = document.createElement("tr");
    const id = `${e.topic}/${e.partition}/${e.offset}`;
    const pick = document.createElement("td");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.dataset.letter = id;
    box.checked = selectedLetters.has(id);
    box.addEventListener("change", () => {
      if (box.checked) selectedLetters.add(id);
      else selectedLetters.delete(id);
    });
    pick.appendChild(box);
    row.appendChild(pick);
    const cells = [
      new Date(e.t * 1000).toLocaleTimeString(),
      `${e.topic}[${e.partition}]`,
      String(e.offset),
      e.key === null ? "(null)" : e.key,
      String(e.attempts),
      e.error,
    ];
    cells.forEach((text, i) => {
      const cell = document.createElement("td");
      cell.textContent = text; // record data: never parsed as HTML
      if (i === cells.length - 1) {
        cell.className = "error";
        const headers = Object.entries(e.headers || {});
        if (headers.length) {
          const details = document.createElement("details");
          details.className = "provenance";
          const summary = document.createElement("summary");
          summary.textContent = "provenance headers";
          const pre = document.createElement("pre");
          pre.textContent = headers.map(([k, v]) => `${k}: ${v}`).join("\n");
          details.append(summary, pre);
          cell.appendChild(details);
        }
      }
      row.appendChild(cell);
    });
    return row;
  }));
}

// -- the control plane: buttons post JSON with the token in a header, never in a URL --------

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function button(label, action, body) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.dataset.action = action;
  b.dataset.body = JSON.stringify(body);
  return b;
}

function drawControl() {
  const control = state.control;
  const section = byId("control");
  const enabled = Boolean(control && control.enabled);
  section.classList.toggle("off", !enabled);
  byId("control-state").textContent = enabled
    ? "(actions on: each one needs the control token)"
    : "(actions are off: start the consumer with --control-token or PARAFKA_CONTROL_TOKEN)";
  byId("token-form").hidden = !enabled;
  byId("record-form").hidden = !enabled;
  byId("replay-selected").parentElement.hidden = !enabled;
  byId("token-note").textContent = controlToken ? "token set for this tab" : "no token yet";
  const paused = new Set((control ? control.paused : []).map((p) => `${p.topic}/${p.partition}`));
  const rows = state.partitions.slice().sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  byId("control-partitions").tBodies[0].replaceChildren(...rows.map((p) => {
    const row = document.createElement("tr");
    const isPaused = paused.has(`${p.topic}/${p.partition}`);
    row.dataset.partition = `${p.topic}[${p.partition}]`;
    row.append(
      cell(`${p.topic}[${p.partition}]`),
      cell(fmt(p.lag)),
      cell(p.oldest_unfinished === null ? "–" : String(p.oldest_unfinished)),
      cell(p.oldest_age === null ? "–" : `${p.oldest_age.toFixed(0)} s`),
      cell(isPaused ? "paused" : "fetching", isPaused ? "paused state" : "state"),
    );
    const actions = document.createElement("td");
    const where = { topic: p.topic, partition: p.partition };
    actions.append(isPaused ? button("resume", "resume", where) : button("pause", "pause", where));
    if (p.oldest_unfinished !== null) {
      const record = { ...where, offset: p.oldest_unfinished };
      actions.append(button("skip oldest", "skip", record), button("park oldest", "park", record));
    }
    row.appendChild(actions);
    return row;
  }));
  const actions = control ? control.actions : [];
  byId("actions").tBodies[0].replaceChildren(...actions.map((a) => {
    const row = document.createElement("tr");
    row.append(
      cell(new Date(a.t * 1000).toLocaleTimeString()),
      cell(a.action),
      cell(a.target),
      cell(a.result, a.result),
      cell(a.message),
    );
    return row;
  }));
}

function showAnswer(text, kind) {
  const status = byId("control-status");
  status.textContent = text;
  status.className = `answer ${kind}`;
}

async function act(action, body, source) {
  if (!controlToken) {
    showAnswer("enter the control token first", "refused");
    return;
  }
  showAnswer(`${action} ${describe(body)}: in progress…`, "pending");
  if (source) source.classList.add("busy");
  let answer;
  try {
    const response = await fetch(`api/control/${action}`, {
      method: "POST",
      cache: "no-store",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${controlToken}` },
      body: JSON.stringify(body),
    });
    answer = await response.json();
  } catch (error) {
    answer = { result: "failed", message: `no answer (${error.message})` };
  }
  if (source) source.classList.remove("busy");
  showAnswer(`${action} ${describe(body)}: ${answer.result}: ${answer.message}`, answer.result);
  window.setTimeout(refresh, 0); // show the new state at once
}

function describe(body) {
  if (body.records) return body.records.map(describe).join(", ");
  return `${body.topic}[${body.partition}]` + (body.offset === undefined ? "" : `@${body.offset}`);
}

function setupControl() {
  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = byId("control-token");
    controlToken = input.value.trim();
    input.value = ""; // kept in memory and this tab's sessionStorage only
    if (controlToken) window.sessionStorage.setItem(TOKEN_KEY, controlToken);
    drawControl();
  });
  byId("token-forget").addEventListener("click", () => {
    controlToken = "";
    window.sessionStorage.removeItem(TOKEN_KEY);
    drawControl();
  });
  byId("control-partitions").addEventListener("click", (event) => {
    const target = event.target.closest("button[data-action]");
    if (target) act(target.dataset.action, JSON.parse(target.dataset.body), target);
  });
  byId("record-form").addEventListener("click", (event) => {
    const target = event.target.closest("button[data-record-action]");
    if (!target) return;
    const partition = Number.parseInt(byId("record-partition").value, 10);
    const offset = Number.parseInt(byId("record-offset").value, 10);
    const topic = byId("record-topic").value.trim();
    if (!topic || Number.isNaN(partition) || Number.isNaN(offset)) {
      showAnswer("name the record: topic, partition and offset", "refused");
      return;
    }
    act(target.dataset.recordAction, { topic, partition, offset }, target);
  });
  byId("replay-selected").addEventListener("click", (event) => {
    const records = Array.from(selectedLetters, (id) => {
      const [offset, partition, ...topic] = id.split("/").reverse();
      return { topic: topic.reverse().join("/"), partition: Number(partition), offset: Number(offset) };
    });
    if (!records.length) {
      showAnswer("tick the dead letters to replay first", "refused");
      return;
    }
    selectedLetters.clear();
    act("replay", { records }, event.target);
  });
}

// Settings that would help, as the consumer's log said them once (observe/advice.py).
function drawAdvice() {
  const lines = state.advice;
  byId("advice").hidden = !lines.length;
  byId("advice-lines").replaceChildren(...lines.map((line) => {
    const item = document.createElement("li");
    item.textContent = line;
    return item;
  }));
}

function draw() {
  drawAdvice();
  drawTiles();
  drawCharts();
  drawLetters();
  drawControl();
}

function merge(data) {
  if (data.latest_seq < state.seq) {
    state.samples = []; // the server restarted: start over
  }
  state.keep = data.keep;
  state.samples.push(...data.samples.filter((s) => s.seq > state.seq)); // a refresh may overlap a poll
  if (state.samples.length) {
    const newest = state.samples[state.samples.length - 1];
    state.seq = newest.seq;
    state.samples = state.samples.filter((s) => s.t >= newest.t - state.keep);
  } else {
    state.seq = data.latest_seq;
  }
  state.partitions = data.partitions;
  state.letters = data.dead_letters;
  state.control = data.control || null;
  state.advice = data.advice || []; // absent from consumers before it was served
  byId("title").textContent = data.title;
  document.title = `${data.title} · parafka`;
}

function setStatus(text, live) {
  const status = byId("status");
  status.textContent = text;
  status.classList.toggle("live", live);
  status.classList.toggle("down", !live);
}

// Only the request is guarded: a drawing bug must surface in the console, not as "no answer".
async function poll() {
  await refresh();
  window.setTimeout(poll, POLL_MS);
}

async function refresh() {
  let data = null;
  try {
    const response = await fetch(`api/stats?since=${state.seq}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    data = await response.json();
  } catch (error) {
    setStatus(`no answer (${error.message}): the consumer may have stopped`, false);
  }
  if (data !== null) {
    merge(data);
    draw();
    setStatus("live", true);
  }
}

window.addEventListener("resize", () => drawCharts());
setupControl();
poll();
