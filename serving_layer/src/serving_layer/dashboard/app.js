// The dashboard: revenue per hour on Apache ECharts (vendored, no CDN), with exact figures in the
// tooltip and the table, range presets and a custom range, group-by and filters, a drill-down from
// an hour to its keys and from a key to the events behind it, a freshness indicator and
// auto-refresh. Everything the chart shows is also in the table of hours, which the keyboard reaches.
"use strict";

const QUERY = new URLSearchParams(location.search);
// ?refresh=N (seconds, 1..3600) changes the auto-refresh period, e.g. for a wall screen or a test.
const REFRESH_MS = Math.min(Math.max(Number(QUERY.get("refresh")) || 5, 1), 3600) * 1000;
// Freshness thresholds of the speed layer, on max(watermark lag, heartbeat age) from /v1/status:
// green up to 60 s (the SpeedFreshnessLagHigh alert's threshold and /v1/status's heartbeat limit),
// amber up to the allowed lateness (serving.allowed_lateness_s, 300 s by default: past it, hours
// stop closing on time and arriving events count as late), red beyond it or when unreachable.
const FRESH_S = 60;
const EVENTS_PAGE = 50;
const COLORS = { final: "#2563eb", closed: "#f59e0b", open: "#fcd34d", missing: "#d1d5db" };
const PALETTE = ["#2563eb", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#65a30d", "#dc2626"];

const state = {
  hours: 48, custom: null, rows: [], currency: "USD", grouped: null,
  selected: null, pointed: null, shape: null, refreshes: 0, events: null, known: { region: new Set(), category: new Set() },
};
let chart = null;
let timer = null;
let seq = 0;

function showLogin(message) {
  $("board").hidden = true;
  $("login").hidden = false;
  if (message) $("login").querySelector("p").textContent = message;
}

// ---- range and query --------------------------------------------------------------------------
function range() {
  if (state.custom) return state.custom;
  const end = new Date();
  end.setUTCMinutes(0, 0, 0);
  const e = new Date(end.getTime() + 3600e3); // include the current hour
  return { start: new Date(e.getTime() - state.hours * 3600e3), end: e };
}

function query(start, end, extra) {
  const q = new URLSearchParams({ start: iso(start), end: iso(end), currency: $("currency").value || "USD" });
  for (const f of ["region", "category"]) {
    const v = $(f).value.replace(/\s+/g, "");
    if (v) q.set(f, v);
  }
  for (const [k, v] of Object.entries(extra || {})) q.set(k, v);
  return q.toString();
}

// ---- chart ------------------------------------------------------------------------------------
function num(text) { return text === null || text === undefined ? 0 : Number(text); } // geometry only

// A row's figures as text: an hour the speed view could not be read for (Redis down) has no numbers,
// which is said, never shown as zero; a null revenue elsewhere is a missing FX rate.
function revenueText(r, cur) {
  if (r.status === "unavailable") return "speed view unavailable";
  return r.revenue === null ? "no FX rate" : r.revenue + " " + cur;
}
function countText(v) { return v === null || v === undefined ? "–" : String(v); }

function barStyle(status) {
  if (status === "open") {
    return { color: COLORS.open, borderColor: "#b45309", borderType: "dashed", borderWidth: 1,
      decal: { symbol: "rect", color: "rgba(255,255,255,0.55)", dashArrayX: [1, 0], dashArrayY: [3, 5], rotation: -0.785 } };
  }
  return { color: COLORS[status] || COLORS.missing };
}

function tooltipHtml(i) {
  const r = state.rows[i];
  if (!r) return "";
  const cur = escapeHtml(state.currency);
  const parts = [
    `<div class="tip-hour">${escapeHtml(r.hour)}</div>`,
    `<div class="tip-revenue">${escapeHtml(revenueText(r, state.currency))}</div>`,
    `<div>orders <b class="tip-orders">${countText(r.orders)}</b> · refunds <b class="tip-refunds">${countText(r.refunds)}</b></div>`,
    `<div>status <b class="tip-status st-${escapeHtml(r.status)}">${escapeHtml(r.status)}</b>` +
      ` · source <b class="tip-source">${escapeHtml(r.source)}</b>${r.fx_stale ? " · FX stale" : ""}</div>`,
  ];
  if (state.grouped) {
    const field = state.grouped.field;
    for (const g of state.grouped.rows) {
      if (g.hour !== r.hour || g[field] === null || g.events === 0) continue;
      parts.push(`<div class="tip-group">${escapeHtml(g[field])}: ${g.revenue === null ? "no FX rate" : escapeHtml(g.revenue) + " " + cur}</div>`);
    }
  }
  return parts.join("");
}

function chartOption() {
  const rows = state.rows;
  const labels = rows.map((r) => r.hour);
  let series;
  if (!state.grouped) {
    series = [{ id: "revenue", name: "revenue", type: "bar", barCategoryGap: "12%",
      data: rows.map((r) => ({ value: num(r.revenue), itemStyle: barStyle(r.status) })) }];
  } else {
    const field = state.grouped.field;
    const byKey = new Map(state.grouped.rows.map((g) => [g.hour + "|" + g[field], g]));
    const values = [...new Set(state.grouped.rows.map((g) => g[field]).filter((v) => v !== null))].sort();
    series = values.map((v, n) => ({ id: "g-" + v, name: v, type: "bar", stack: "groups", barCategoryGap: "12%",
      itemStyle: { color: PALETTE[n % PALETTE.length] },
      data: labels.map((hr) => num((byKey.get(hr + "|" + v) || {}).revenue)) }));
    if (!series.length) series = [{ id: "revenue", name: "revenue", type: "bar", data: labels.map(() => 0) }];
  }
  // Hours that neither view has (grey), or whose speed view cannot be read now (red): a band over
  // the whole column, so a gap is seen, not hidden.
  const bands = { missing: "rgba(156,163,175,0.28)", unavailable: "rgba(248,113,113,0.22)" };
  series[0].markArea = { silent: true,
    data: rows.filter((r) => r.status in bands)
      .map((r) => [{ xAxis: r.hour, itemStyle: { color: bands[r.status] } }, { xAxis: r.hour }]) };
  return {
    animation: false,
    grid: { left: 72, right: 16, top: state.grouped ? 36 : 16, bottom: 48 },
    legend: state.grouped ? { top: 0, type: "scroll" } : { show: false },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true, className: "tip",
      formatter: (params) => tooltipHtml(params[0].dataIndex) },
    xAxis: { type: "category", data: labels,
      axisLabel: { formatter: (v) => (v.slice(11, 13) === "00" ? v.slice(5, 10) : v.slice(11, 13) + "h"), hideOverlap: true } },
    yAxis: { type: "value", name: state.currency, nameGap: 8 },
    series,
  };
}

function drawChart() {
  if (!chart) {
    chart = echarts.init($("chart"), null, { renderer: "canvas" });
    chart.getZr().on("click", (e) => {
      const i = indexAt(e.offsetX, e.offsetY);
      if (i !== null) { select(i); openHour(i); }
    });
    // the hour under the pointer (mouse or keys), to keep its tooltip through a refresh
    chart.on("updateAxisPointer", (e) => {
      const info = e.axesInfo && e.axesInfo[0];
      state.pointed = info ? info.value : null;
    });
    chart.getZr().on("globalout", () => { state.pointed = null; });
    window.addEventListener("resize", () => chart.resize());
  }
  const pointed = state.pointed;
  const option = chartOption();
  // Same series as before: merge, so the tooltip stays; other series (group-by changed): start
  // afresh, since ECharts' tooltip would refresh against series that no longer exist.
  const shape = option.series.map((x) => x.id).join("|") + "#" + state.rows.length;
  chart.setOption(option, shape === state.shape ? { replaceMerge: ["series"] } : { notMerge: true });
  state.shape = shape;
  if (pointed !== null && pointed !== undefined && pointed < state.rows.length) {
    chart.dispatchAction({ type: "showTip", seriesIndex: 0, dataIndex: pointed });
  }
  $("chart").dataset.bars = String(state.rows.length);
  if (state.selected !== null && state.selected >= state.rows.length) state.selected = null;
}

function indexAt(x, y) {
  if (!chart.containPixel("grid", [x, y])) return null;
  const i = Math.round(chart.convertFromPixel({ gridIndex: 0 }, [x, y])[0]);
  return i >= 0 && i < state.rows.length ? i : null;
}

// ---- selection (mouse, chart keys, table keys) ------------------------------------------------
function select(i) {
  state.selected = i;
  $("chart").dataset.selected = state.rows[i].hour;
  chart.dispatchAction({ type: "showTip", seriesIndex: 0, dataIndex: i });
  for (const tr of $("hours-table").tBodies[0].rows) tr.setAttribute("aria-selected", String(tr.dataset.index === String(i)));
}

function onChartKey(e) {
  if (!state.rows.length) return;
  const last = state.rows.length - 1;
  const cur = state.selected === null ? last : state.selected;
  const moves = { ArrowLeft: cur - 1, ArrowRight: cur + 1, Home: 0, End: last, PageUp: cur - 24, PageDown: cur + 24 };
  if (e.key in moves) {
    select(Math.min(Math.max(moves[e.key], 0), last));
    e.preventDefault();
  } else if (e.key === "Enter" || e.key === " ") {
    select(cur);
    openHour(cur);
    e.preventDefault();
  } else if (e.key === "Escape") {
    chart.dispatchAction({ type: "hideTip" });
  }
}

// ---- table of hours ---------------------------------------------------------------------------
function drawTable() {
  const body = $("hours-table").tBodies[0];
  const rows = state.rows;
  const same = body.rows.length === rows.length && rows.length && body.rows[0].dataset.hour === rows[0].hour;
  if (!same) {
    body.textContent = "";
    rows.forEach((r, i) => {
      body.append(h("tr", { "data-index": i, "data-hour": r.hour, "aria-selected": "false" },
        h("th", { scope: "row" }, h("button", { type: "button", class: "hour", "data-index": i,
          title: "open the breakdown of this hour" }, r.hour)),
        h("td", { class: "num rev" }), h("td", { class: "num" }), h("td", { class: "num" }), h("td"), h("td")));
    });
  }
  rows.forEach((r, i) => {
    const c = body.rows[i].cells;
    c[1].textContent = revenueText(r, state.currency);
    c[2].textContent = countText(r.orders);
    c[3].textContent = countText(r.refunds);
    c[4].textContent = r.status;
    c[4].className = "st st-" + r.status;
    c[5].textContent = r.source + (r.fx_stale ? " · FX stale" : "");
  });
}

function onTableClick(e) {
  const b = e.target.closest("button.hour");
  if (!b) return;
  const i = Number(b.dataset.index);
  select(i);
  openHour(i);
}

function onTableKey(e) {
  const b = e.target.closest("button.hour");
  if (!b) return;
  const buttons = $("hours-table").tBodies[0].querySelectorAll("button.hour");
  const i = Number(b.dataset.index);
  const to = { ArrowUp: i - 1, ArrowDown: i + 1, Home: 0, End: buttons.length - 1 }[e.key];
  if (to === undefined) return;
  const j = Math.min(Math.max(to, 0), buttons.length - 1);
  buttons[j].focus();
  select(j);
  e.preventDefault();
}

// ---- breakdown and events ---------------------------------------------------------------------
async function openHour(i) {
  const r = state.rows[i];
  const start = new Date(r.hour);
  $("detail").hidden = false;
  $("events").hidden = true;
  $("detail").dataset.hour = r.hour;
  $("detail").dataset.state = "loading";
  $("detail-title").textContent = `Breakdown of ${r.hour} · ${r.status} (${r.source})`;
  const day = r.hour.slice(0, 10);
  $("detail-sub").replaceChildren("Per key, in ", state.currency, " and in the key's own currency. ",
    h("a", { href: "/reconciliation#date=" + day, id: "detail-recon" }, `Reconciliation of ${day}`));
  const body = $("detail-table").tBodies[0];
  body.textContent = "";
  $("detail-title").focus();
  try {
    const res = await api(`/v1/revenue/hourly?${query(start, new Date(start.getTime() + 3600e3), { group_by: "region,category,currency" })}`);
    if ($("detail").dataset.hour !== r.hour) return;
    const keys = res.rows.filter((k) => k.region !== null);
    for (const k of keys) {
      remember(k);
      const label = `${k.region} ${k.category} ${k.currency} at ${k.hour}`;
      body.append(h("tr", { "data-key": `${k.region}|${k.category}|${k.currency}` },
        h("td", {}, k.region), h("td", {}, k.category), h("td", {}, k.currency),
        h("td", { class: "num" }, k.revenue === null ? "no FX rate" : `${k.revenue} ${res.currency}`),
        h("td", { class: "num" }, `${k.revenue_native} ${k.currency}`),
        h("td", { class: "num" }, String(k.orders)), h("td", { class: "num" }, String(k.refunds)),
        h("td", { class: "num" }, String(k.events)),
        h("td", {}, h("button", { type: "button", class: "events-btn", "aria-label": "events of " + label,
          onclick: () => loadEvents({ hour: k.hour, region: k.region, category: k.category, currency: k.currency }, null) }, "events"))));
    }
    if (!keys.length) {
      const why = r.status === "unavailable"
        ? "the speed view cannot be read now (Redis is down): this hour's figures come back with it"
        : "no events in this hour";
      body.append(h("tr", {}, h("td", { colspan: 9 }, why)));
    }
    $("detail").dataset.state = "loaded";
  } catch (err) {
    if (err.auth) { showLogin("The token was refused. Enter a valid API token."); return; }
    body.append(h("tr", {}, h("td", { colspan: 9, class: "bad" }, "breakdown failed: " + err.message)));
    $("detail").dataset.state = "error";
  }
}

function eventsMessage(err) {
  const detail = err.message;
  if (err.status === 404 && detail === "Not Found") {
    return "This server has no events route: GET /v1/revenue/events answered 404, so the events behind a number cannot be listed here.";
  }
  if (err.status === 404) return "No events to show for this hour and key (404): " + detail;
  if (err.status === 503) return "The events cannot be read right now (503): " + detail;
  return `The events could not be loaded (HTTP ${err.status || "error"}): ${detail}`;
}

async function loadEvents(key, cursor) {
  const q = new URLSearchParams({ hour: key.hour, region: key.region, category: key.category,
    currency: key.currency, limit: String(EVENTS_PAGE) });
  if (cursor) q.set("cursor", cursor);
  const box = $("events");
  const body = $("events-table").tBodies[0];
  box.hidden = false;
  box.dataset.state = "loading";
  if (!cursor) {
    body.textContent = "";
    $("events-totals").textContent = "";
    $("events-message").textContent = "";
    $("events-title").textContent = `Events of ${key.region} · ${key.category} · ${key.currency} at ${key.hour}`;
    $("events-title").focus();
  }
  $("events-more").hidden = true;
  state.events = { key, cursor: null };
  try {
    const res = await api(`/v1/revenue/events?${q}`);
    for (const ev of res.events) {
      body.append(h("tr", { class: ev.counted ? "counted" : "not-counted" },
        h("td", { class: "mono" }, ev.event_id), h("td", {}, ev.event_time), h("td", {}, ev.event_type),
        h("td", { class: "num" }, `${ev.amount} ${res.currency}`), h("td", { class: "num" }, String(ev.kafka_partition)),
        h("td", { class: "num" }, String(ev.kafka_offset)), h("td", {}, ev.counted ? "yes" : "no"),
        h("td", {}, ev.reason === null ? "–" : ev.reason)));
    }
    const t = res.totals;
    $("events-totals").textContent = `${res.status} · counted events ${t.events}: revenue ${t.revenue} ${res.currency}, ` +
      `orders ${t.orders}, refunds ${t.refunds}` + (res.next_cursor ? " · more events follow" : "");
    state.events.cursor = res.next_cursor;
    $("events-more").hidden = !res.next_cursor;
    box.dataset.state = "loaded";
  } catch (err) {
    if (err.auth) { showLogin("The token was refused. Enter a valid API token."); return; }
    $("events-message").textContent = eventsMessage(err);
    box.dataset.state = "error";
    box.dataset.status = String(err.status || "");
  }
}

function remember(row) {
  for (const f of ["region", "category"]) {
    const v = row[f];
    if (v && !state.known[f].has(v)) {
      state.known[f].add(v);
      $(f === "region" ? "regions" : "categories").append(h("option", { value: v }));
    }
  }
}

// ---- status and freshness ---------------------------------------------------------------------
function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.abs(seconds);
  if (s < 120) return Math.round(seconds) + " s";
  if (s < 7200) return Math.round(seconds / 60) + " min";
  if (s < 172800) return Math.round(seconds / 3600) + " h";
  return Math.round(seconds / 86400) + " d";
}

function freshness(st) {
  const sp = st.speed;
  if (!sp.reachable) return ["stalled", "speed layer unreachable"];
  if (sp.watermark_lag_s === null || sp.watermark_lag_s === undefined || sp.heartbeat_age_s === null) {
    return ["stalled", "speed layer: no watermark yet"];
  }
  const behind = Math.max(sp.watermark_lag_s, sp.heartbeat_age_s);
  const text = `speed layer ${ago(sp.watermark_lag_s)} behind · heartbeat ${ago(sp.heartbeat_age_s)} ago`;
  if (behind > st.serving.allowed_lateness_s) return ["stalled", text];
  if (behind > FRESH_S) return ["behind", text];
  return ["fresh", text];
}

function drawStatus(st, hourly) {
  const [level, text] = freshness(st);
  $("freshness").className = "fresh-" + level;
  $("freshness").dataset.level = level;
  $("freshness-text").textContent = text;
  $("freshness").title = `green: at most ${FRESH_S} s behind; amber: up to the allowed lateness ` +
    `(${st.serving.allowed_lateness_s} s); red: beyond it, no watermark or unreachable`;
  const sp = st.speed, b = st.batch;
  $("speed-state").textContent = !sp.reachable ? "unreachable" : { fresh: "fresh", behind: "behind", stalled: "stalled" }[level];
  $("speed-state").className = "big " + { fresh: "ok", behind: "warn", stalled: "bad" }[level];
  $("speed-sub").textContent = sp.watermark
    ? `watermark ${sp.watermark.slice(0, 19)}Z · ${sp.open_hours} open hours`
    : "no watermark yet";
  $("batch-state").textContent = b.available ? "through " + (b.complete_through || "–").slice(5, 13).replace("T", " ") + "h" : "no run yet";
  $("batch-state").className = "big " + (b.error ? "bad" : b.available ? "ok" : "warn");
  $("batch-sub").textContent = b.last_run
    ? `last run ${b.last_run.computed_at.slice(0, 16)}Z · ${b.last_run.dates.join(", ")}`
    : (b.error || "serving from the speed view");
  const total = hourly.rows.filter((r) => r.revenue !== null).reduce((a, r) => a + cents(r.revenue), 0n);
  const provisional = hourly.rows.filter((r) => r.source === "speed").length;
  const missing = hourly.rows.filter((r) => r.status === "missing").length;
  const unavailable = hourly.rows.filter((r) => r.status === "unavailable").length;
  $("total").textContent = centsText(total) + " " + hourly.currency;
  $("total-sub").textContent = `${hourly.rows.length} h · ${provisional} provisional · ${missing} missing` +
    (unavailable ? ` · ${unavailable} unavailable (speed view down)` : "");
}

// ---- refresh loop -----------------------------------------------------------------------------
async function refresh() {
  clearTimeout(timer);
  const my = ++seq;
  const { start, end } = range();
  const field = $("group-by").value;
  $("board").dataset.state = "loading";
  try {
    const calls = [api(`/v1/revenue/hourly?${query(start, end)}`), api("/v1/status")];
    if (field) calls.push(api(`/v1/revenue/hourly?${query(start, end, { group_by: field })}`));
    const [hourly, st, grouped] = await Promise.all(calls);
    if (my !== seq) return; // a newer refresh (a changed control) superseded this one
    if (!$("currency").options.length) {
      for (const c of st.serving.fx_currencies) $("currency").add(new Option(c, c, c === hourly.currency, c === hourly.currency));
    }
    state.rows = hourly.rows;
    state.currency = hourly.currency;
    state.grouped = grouped ? { field, rows: grouped.rows } : null;
    if (grouped) for (const g of grouped.rows) remember(g);
    drawChart();
    drawTable();
    drawStatus(st, hourly);
    $("updated").textContent = new Date().toISOString().slice(11, 19) + "Z";
    $("error").textContent = "";
    state.refreshes += 1;
    $("board").dataset.refreshes = String(state.refreshes);
    $("board").dataset.state = "loaded";
  } catch (err) {
    if (my !== seq) return;
    if (err.auth) { showLogin("The token was refused. Enter a valid API token."); return; }
    $("error").textContent = "refresh failed: " + err.message;
    $("board").dataset.state = "error";
  }
  timer = setTimeout(refresh, REFRESH_MS);
}

// ---- controls ---------------------------------------------------------------------------------
function setPreset(hours) {
  state.hours = hours;
  state.custom = null;
  for (const b of $("presets").querySelectorAll("button")) b.setAttribute("aria-pressed", String(Number(b.dataset.hours) === hours));
  refresh();
}

function applyCustom() {
  const start = fromLocalInput($("start").value), end = fromLocalInput($("end").value);
  if (!start || !end) { $("error").textContent = "custom range: give both From and To"; return; }
  if (end <= start) { $("error").textContent = "custom range: To must be after From"; return; }
  start.setUTCMinutes(0, 0, 0);
  end.setUTCMinutes(0, 0, 0);
  state.custom = { start, end };
  for (const b of $("presets").querySelectorAll("button")) b.setAttribute("aria-pressed", "false");
  refresh();
}

function start() {
  takeTokenFromFragment();
  if (!token()) { showLogin(); return; }
  $("login").hidden = true;
  $("board").hidden = false;
  refresh();
}

$("token-form").addEventListener("submit", (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  start();
});
$("signout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); clearTimeout(timer); showLogin(); });
$("presets").addEventListener("click", (e) => {
  const b = e.target.closest("button[data-hours]");
  if (b) setPreset(Number(b.dataset.hours));
});
$("controls").addEventListener("submit", (e) => {
  e.preventDefault();
  if ($("start").value || $("end").value) applyCustom(); else refresh();
});
for (const id of ["group-by", "currency", "region", "category"]) $(id).addEventListener("change", refresh);
$("chart").addEventListener("keydown", onChartKey);
$("hours-table").addEventListener("click", onTableClick);
$("hours-table").addEventListener("keydown", onTableKey);
$("events-more").addEventListener("click", () => { if (state.events) loadEvents(state.events.key, state.events.cursor); });
start();
