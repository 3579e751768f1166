// The candlelake dashboard: reads this API's own routes and draws them. No framework, no other host.
"use strict";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(window.location.search);
const state = { symbol: params.get("symbol"), interval: params.get("interval"), version: null, chart: null, markers: null };

// --- the API -----------------------------------------------------------------------------------

class ApiFailure extends Error {}

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { accept: "application/json" } });
  } catch (exc) {
    throw new ApiFailure(`the API cannot be reached (${exc.message}); is it running?`);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status} ${response.statusText}`;
    throw new ApiFailure(message);
  }
  return body;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// --- formatting --------------------------------------------------------------------------------

const pct = (x, digits = 2) => (x === null || x === undefined ? "–" : `${(100 * x).toFixed(digits)} %`);
const num = (x, digits = 4) => (x === null || x === undefined ? "–" : Number(x).toFixed(digits));
// gold's timestamps are UTC; a string without a zone designator is read as UTC, not local time
const seconds = (ts) => Math.floor(Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(ts) ? ts : `${ts}Z`) / 1000);
// a bar's time as a person reads it: the date for a daily bar, date and UTC time for an intraday one
function when(ts) {
  const iso = new Date(seconds(ts) * 1000).toISOString();
  return iso.endsWith("T00:00:00.000Z") ? iso.slice(0, 10) : `${iso.slice(0, 16).replace("T", " ")} UTC`;
}

function cell(row, text, tag = "td") {
  const el = document.createElement(tag);
  el.textContent = text;
  row.appendChild(el);
  return el;
}

// --- the chart ---------------------------------------------------------------------------------

function makeChart() {
  const lib = window.LightweightCharts;
  if (!lib) throw new ApiFailure("the chart library did not load (vendor/ is built by `make dashboard`)");
  const chart = lib.createChart($("chart"), {
    autoSize: true,
    layout: { background: { color: "#ffffff" }, textColor: "#1f2933" },
    grid: { vertLines: { color: "#eef1f4" }, horzLines: { color: "#eef1f4" } },
    timeScale: { timeVisible: true, secondsVisible: false },
  });
  const line = (color, width = 1) =>
    chart.addSeries(lib.LineSeries, { color, lineWidth: width, priceLineVisible: false, lastValueVisible: false });
  const series = {
    candles: chart.addSeries(lib.CandlestickSeries, {
      upColor: "#1a7f37", downColor: "#cf222e", borderVisible: false, wickUpColor: "#1a7f37", wickDownColor: "#cf222e",
    }),
    volume: chart.addSeries(lib.HistogramSeries, { priceFormat: { type: "volume" }, priceScaleId: "volume" }),
    sma_20: line("#0969da", 2),
    sma_50: line("#8250df", 2),
    bb_upper_20: line("#9a6700"),
    bb_mid_20: line("#d4a72c"),
    bb_lower_20: line("#9a6700"),
  };
  chart.priceScale("volume").applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  return { chart, series };
}

async function drawChart(symbol) {
  const data = await api(`/chart/${encodeURIComponent(symbol)}`);
  state.chart = state.chart || makeChart();
  const { chart, series } = state.chart;
  const bars = data.bars.filter((b) => [b.open, b.high, b.low, b.close].every((v) => v !== null));
  series.candles.setData(bars.map((b) => ({ time: seconds(b.ts), open: b.open, high: b.high, low: b.low, close: b.close })));
  series.volume.setData(
    bars.map((b) => ({ time: seconds(b.ts), value: b.volume || 0, color: b.close >= b.open ? "#1a7f3755" : "#cf222e55" })),
  );
  for (const name of ["sma_20", "sma_50", "bb_upper_20", "bb_mid_20", "bb_lower_20"]) {
    series[name].setData(bars.filter((b) => b[name] !== null).map((b) => ({ time: seconds(b.ts), value: b[name] })));
  }
  drawCalls(series.candles, data.calls || {});
  chart.timeScale().fitContent();
  const el = $("chart");
  el.dataset.symbol = symbol;
  el.dataset.candles = String(bars.length);
  el.setAttribute("aria-label", `${symbol}: ${bars.length} ${data.interval} candles with volume, SMA 20/50, Bollinger 20/2`);
  $("bars").textContent = `· ${bars.length} bars, ${data.interval}, last ${bars.length ? when(bars[bars.length - 1].ts) : "–"}`;
}

// The holdout calls on these bars: an arrow per call (up below the bar, down above), blue where the
// next bar went that way, orange where it did not; and the count beside the always-up baseline's.
function drawCalls(candles, calls) {
  const known = (calls.ts || []).map((ts, i) => ({ ts, p: calls.prob_up[i], up: calls.actual_up[i] }))
    .filter((c) => c.p !== null && c.up !== null);
  const markers = known.map((c) => {
    const saysUp = c.p >= 0.5;
    return {
      time: seconds(c.ts),
      position: saysUp ? "belowBar" : "aboveBar",
      shape: saysUp ? "arrowUp" : "arrowDown",
      color: saysUp === (c.up === 1) ? "#0969da" : "#bc4c00",
      size: 0.6,
    };
  });
  if (state.markers) state.markers.setMarkers(markers);
  else state.markers = window.LightweightCharts.createSeriesMarkers(candles, markers);
  const right = known.filter((c) => (c.p >= 0.5) === (c.up === 1)).length;
  const ups = known.filter((c) => c.up === 1).length;
  $("hits").textContent = known.length
    ? `Holdout calls on these bars: the direction model was right ${right} of ${known.length} times ` +
      `(${pct(right / known.length, 0)}); always-up was right ${ups} (${pct(ups / known.length, 0)}). ` +
      "Blue arrows: right; orange: wrong."
    : "No holdout call falls on these bars.";
  $("hits").dataset.calls = String(known.length);
}

// --- the latest call ---------------------------------------------------------------------------

async function drawCall(symbol) {
  const p = await api(`/predict/${encodeURIComponent(symbol)}`);
  const served = (task) => (p.served[task] === "baseline" ? "serving the baseline (no model beat it)" : p.served[task]);
  const items = [
    ["Symbol", `${p.symbol} (${p.interval})`],
    ["As of", `${when(p.asof)} · close ${num(p.close, 2)}`],
    ["Probability of up", pct(p.prob_up, 1)],
    ["Signal", p.signal],
    ["Expected next return", pct(p.predicted_return, 3)],
    ["Expected next close", num(p.predicted_close, 2)],
    ["Direction model", `${served("direction")} · baseline: up ${pct(p.baseline.prob_up, 1)} of the time`],
    ["Return model", `${served("return")} · baseline: no change`],
    ["Model version", p.model_version],
  ];
  const list = $("call");
  list.replaceChildren();
  for (const [term, value] of items) {
    const dt = document.createElement("dt");
    dt.textContent = term;
    const dd = document.createElement("dd");
    dd.textContent = value;
    if (term === "Signal") dd.className = `signal ${value}`;
    list.append(dt, dd);
  }
  list.dataset.symbol = p.symbol;
  list.dataset.probUp = String(p.prob_up);
  for (const note of p.notes || []) {
    const dd = document.createElement("dd");
    dd.className = "note";
    dd.textContent = note;
    list.append(dd);
  }
}

// --- the leaderboard ---------------------------------------------------------------------------

async function drawBoard(version) {
  const detail = await api(`/models/${encodeURIComponent(version)}`);
  const body = $("board").querySelector("tbody");
  body.replaceChildren();
  const rows = [...detail.registry].sort((a, b) => (a.task + a.algorithm).localeCompare(b.task + b.algorithm));
  for (const r of rows) {
    const tr = document.createElement("tr");
    const m = r.metrics || {};
    const b = r.baselines || {};
    cell(tr, r.task);
    cell(tr, r.algorithm, "th").scope = "row";
    cell(tr, r.key_metric);
    cell(tr, num(r.key_value));
    cell(tr, num(r.baseline_value));
    cell(tr, m.accuracy === undefined ? "–" : `${pct(m.accuracy, 1)} vs ${pct(b.accuracy, 1)}`);
    cell(tr, m.bt_sharpe === undefined ? "–" : `${num(m.bt_sharpe, 2)} vs ${num(b.bt_sharpe, 2)}`);
    cell(tr, r.promoted ? "served" : r.beats_baseline ? "beat its baseline" : "did not beat its baseline");
    tr.className = r.promoted ? "served" : r.beats_baseline ? "" : "lost";
    body.appendChild(tr);
  }
  const models = detail.manifest.models || {};
  $("verdict").textContent = Object.entries(models)
    .map(([task, doc]) => `${task}: ${doc.promoted ? "" : "serving the baseline — "}${doc.reason}`)
    .join(". ");
}

// --- data quality ------------------------------------------------------------------------------

async function drawQuality() {
  const meta = $("quality-meta");
  let q;
  try {
    q = await api("/quality");
  } catch (exc) {
    meta.textContent = exc.message; // a version without a report: said here, the rest of the page stands
    return;
  }
  const body = $("quality").querySelector("tbody");
  body.replaceChildren();
  const counts = (byTier) =>
    Object.entries(byTier).map(([tier, n]) => `${n} ${tier}`).join(", ") || "0";
  let failedHalt = 0;
  for (const layer of q.layers) {
    const tr = document.createElement("tr");
    cell(tr, layer.layer);
    cell(tr, layer.table, "th").scope = "row";
    cell(tr, counts(layer.passed));
    cell(tr, counts(layer.failed)).className = Object.keys(layer.failed).length ? "failed" : "";
    failedHalt += layer.failed.halt || 0;
    body.appendChild(tr);
  }
  meta.replaceChildren();
  meta.append(`run ${q.run_id}${q.started_at ? `, started ${when(q.started_at)}` : ""}: `);
  meta.append(failedHalt ? `${failedHalt} halt-tier expectation(s) failed. ` : "every halt-tier expectation passed. ");
  const link = document.createElement("a");
  link.href = q.report;
  link.textContent = "the full report";
  meta.append(link);
  $("quality").dataset.tables = String(q.layers.length);
}

// --- pipeline runs -----------------------------------------------------------------------------

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json" },
    body: JSON.stringify(body),
  }).catch((exc) => {
    throw new ApiFailure(`the API cannot be reached (${exc.message})`);
  });
  const answer = await response.json().catch(() => null);
  if (!response.ok) throw new ApiFailure(answer && answer.error ? answer.error.message : `${response.status}`);
  return answer;
}

async function drawRuns() {
  const listing = await api("/pipeline/runs?limit=10");
  const button = $("run");
  if (listing.starts === "nobody") {
    button.disabled = true;
    $("run-status").textContent = "runs start from the Step Functions console or the schedules here (no operator is configured)";
  } else if (listing.starts === "operators") {
    $("run-status").textContent = "only operators may start a run here (a signed request from an operator role)";
  }
  const body = $("runs").querySelector("tbody");
  body.replaceChildren();
  for (const run of listing.runs) {
    const tr = document.createElement("tr");
    const th = cell(tr, "", "th");
    th.scope = "row";
    const open = document.createElement("button");
    open.type = "button";
    open.className = "link";
    open.textContent = run.id;
    open.addEventListener("click", () => drawRun(run.id).catch((exc) => showError(exc.message)));
    th.appendChild(open);
    cell(tr, run.status).className = `status ${run.status}`;
    cell(tr, run.started_at ? when(run.started_at) : "–");
    cell(tr, run.error || "");
    body.appendChild(tr);
  }
  $("runs").dataset.runs = String(listing.runs.length);
}

async function drawRun(id) {
  const run = await api(`/pipeline/runs/${encodeURIComponent(id)}`);
  const box = $("run-detail");
  box.replaceChildren();
  const title = document.createElement("h3");
  title.textContent = `${run.id}: ${run.status}`;
  box.appendChild(title);
  if (run.error) {
    const p = document.createElement("p");
    p.className = "failed";
    p.textContent = `${run.error}${run.cause ? ` — ${run.cause.slice(0, 400)}` : ""}`;
    box.appendChild(p);
  }
  if (run.states && run.states.length) {
    const table = document.createElement("table");
    const head = document.createElement("tr");
    for (const h of ["state", "type", "status", "seconds", "attempts", "errors"]) cell(head, h, "th").scope = "col";
    table.createTHead().appendChild(head);
    const rows = table.createTBody();
    for (const s of run.states) {
      const tr = document.createElement("tr");
      cell(tr, s.state, "th").scope = "row";
      cell(tr, s.kind || "");
      cell(tr, s.status || "").className = `status ${s.status}`;
      cell(tr, s.seconds === null || s.seconds === undefined ? "" : Number(s.seconds).toFixed(1));
      cell(tr, s.attempts ? String(s.attempts) : "");
      cell(tr, (s.errors || []).join(", "));
      rows.appendChild(tr);
    }
    box.appendChild(table);
  } else if (run.mode === "aws") {
    const p = document.createElement("p");
    p.textContent = "the state-by-state history of an AWS run is in the Step Functions console";
    box.appendChild(p);
  }
  box.dataset.run = run.id;
  box.dataset.status = run.status;
  return run;
}

async function startRun() {
  const button = $("run");
  const status = $("run-status");
  button.disabled = true;
  try {
    const run = await post("/pipeline/runs", {});
    const started = Date.now();
    status.textContent = `run ${run.id} started`;
    let current = run;
    while (current.status === "RUNNING") {
      await new Promise((resolve) => setTimeout(resolve, 1500));
      current = await api(`/pipeline/runs/${encodeURIComponent(run.id)}`);
      status.textContent = `run ${run.id}: ${current.status}, ${Math.round((Date.now() - started) / 1000)} s`;
    }
    status.textContent = `run ${run.id} ended ${current.status}` +
      (current.status === "SUCCEEDED" ? ": reload the page to see what it published" : "");
    await drawRuns();
    await drawRun(run.id);
  } catch (exc) {
    status.textContent = exc.message; // 403 for a non-operator, 409 while another run is running
  } finally {
    button.disabled = false;
  }
}

// --- wiring ------------------------------------------------------------------------------------

async function show(symbol) {
  state.symbol = symbol;
  const url = new URL(window.location.href);
  url.searchParams.set("symbol", symbol);
  window.history.replaceState(null, "", url);
  showError("");
  const results = await Promise.allSettled([drawChart(symbol), drawCall(symbol)]);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) showError(failed.reason.message);
}

async function main() {
  let listing;
  try {
    listing = await api("/symbols");
  } catch (exc) {
    $("version").textContent = "no model is served";
    showError(exc.message);
    return;
  }
  state.version = listing.model_version;
  const interval = listing.symbols.length ? listing.symbols[0].interval : "";
  $("version").textContent = `model version ${listing.model_version} · ${interval} bars`;
  const picker = $("symbol");
  for (const s of listing.symbols) picker.add(new Option(s.symbol, s.symbol));
  const intervals = $("interval");
  intervals.add(new Option(interval, interval));
  intervals.disabled = true; // a published version serves one interval
  picker.addEventListener("change", () => show(picker.value));
  drawBoard(listing.model_version).catch((exc) => showError(exc.message));
  drawQuality().catch((exc) => showError(exc.message));
  $("run").addEventListener("click", () => startRun());
  drawRuns().catch((exc) => {
    $("run-status").textContent = exc.message;
  });
  if (state.interval && state.interval !== interval) {
    showError(`interval ${state.interval} is not served: model version ${listing.model_version} serves ${interval}`);
    return;
  }
  const wanted = state.symbol || (listing.symbols[0] || {}).symbol;
  if (!wanted) {
    showError(`model version ${listing.model_version} serves no symbol`);
    return;
  }
  if (listing.symbols.some((s) => s.symbol === wanted)) picker.value = wanted;
  await show(wanted); // an unknown symbol: the API's 404 says which symbols are served
}

document.addEventListener("DOMContentLoaded", () => {
  main().catch((exc) => showError(exc.message));
});
