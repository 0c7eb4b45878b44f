// Dashboard for the serving layer: plain JS + SVG, no dependencies, no CDN.
// Token: taken once from the URL fragment (#token=...; fragments never reach the server or its
// logs) or from the login form, then kept in this tab's sessionStorage and sent as a bearer token.
// Money: amounts arrive as decimal strings and are summed as BigInt cents; floats are used only
// for pixel geometry.
"use strict";

const REFRESH_MS = 5000;
const TOKEN_KEY = "lambda.api.token";
const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";

let timer = null;

function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

function showLogin(message) {
  $("board").hidden = true;
  $("login").hidden = false;
  if (message) $("login").querySelector("p").textContent = message;
}

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  if (res.status === 401) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw Object.assign(new Error("the token was refused (401)"), { auth: true });
  }
  const body = await res.json();
  if (!res.ok) throw new Error(body.detail || res.statusText);
  return body;
}

// ---- exact money as BigInt cents --------------------------------------------------------------
function cents(text) {
  if (text === null || text === undefined) return null;
  const neg = text.startsWith("-");
  const [i, f = ""] = (neg ? text.slice(1) : text).split(".");
  const v = BigInt(i) * 100n + BigInt((f + "00").slice(0, 2));
  return neg ? -v : v;
}
function money(c, currency) {
  const neg = c < 0n; const a = neg ? -c : c;
  const units = (a / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (neg ? "-" : "") + units + "." + (a % 100n).toString().padStart(2, "0") + " " + currency;
}

// ---- time range -------------------------------------------------------------------------------
function iso(d) { return d.toISOString().slice(0, 13) + ":00:00Z"; }
function range() {
  const hours = Number($("hours").value);
  let end;
  if ($("end").value) {
    const v = $("end").value; // a datetime-local value, read as UTC
    end = new Date(v.length === 16 ? v + ":00Z" : v + "Z");
    end.setUTCMinutes(0, 0, 0);
  } else {
    end = new Date();
    end.setUTCMinutes(0, 0, 0);
    end = new Date(end.getTime() + 3600e3); // include the current hour
  }
  return { start: new Date(end.getTime() - hours * 3600e3), end };
}

// ---- rendering --------------------------------------------------------------------------------
function el(name, attrs, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function hatch(defs, id, color) {
  const p = el("pattern", { id, width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" }, defs);
  el("rect", { width: 6, height: 6, fill: "#fff" }, p);
  el("rect", { width: 3, height: 6, fill: color }, p);
}

function drawChart(rows, currency) {
  const box = $("chart");
  box.textContent = "";
  const W = Math.max(box.clientWidth, 600), H = 300, L = 70, R = 10, T = 10, B = 40;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" }, box);
  const defs = el("defs", {}, svg);
  hatch(defs, "hatch-open", "#fbbf24");
  hatch(defs, "hatch-missing", "#d1d5db");
  const values = rows.map((r) => (r.revenue === null ? 0 : Number(r.revenue)));
  const max = Math.max(0, ...values), min = Math.min(0, ...values);
  const span = max - min || 1;
  const y = (v) => T + (H - T - B) * (1 - (v - min) / span);
  const bw = (W - L - R) / Math.max(rows.length, 1);
  el("line", { class: "axis", x1: L, x2: W - R, y1: y(0), y2: y(0) }, svg);
  el("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }, svg);
  const top = el("text", { x: L - 6, y: T + 10, "text-anchor": "end" }, svg);
  top.textContent = max.toLocaleString(undefined, { maximumFractionDigits: 0 });
  const zero = el("text", { x: L - 6, y: y(0) + 4, "text-anchor": "end" }, svg);
  zero.textContent = "0 " + currency;
  const every = Math.ceil(rows.length / 12);
  let lastDay = null;
  rows.forEach((r, i) => {
    const v = values[i];
    const gap = r.status === "missing" || r.status === "future";
    const y0 = gap ? T : y(Math.max(v, 0));
    const h = gap ? H - T - B : Math.max(Math.abs(y(v) - y(0)), v === 0 ? 0 : 1);
    const bar = el("rect", {
      class: "bar " + r.status, x: L + i * bw + 1, y: y0, width: Math.max(bw - 2, 1), height: h,
      "data-hour": r.hour, "data-status": r.status, "data-source": r.source,
    }, svg);
    bar.addEventListener("mousemove", (e) => tooltip(e, r, currency));
    bar.addEventListener("mouseleave", () => { $("tooltip").hidden = true; });
    if (i % every === 0) {
      const t = el("text", { x: L + i * bw + bw / 2, y: H - B + 14, "text-anchor": "middle" }, svg);
      t.textContent = r.hour.slice(11, 13) + "h";
      if (r.hour.slice(0, 10) !== lastDay) {
        const d = el("text", { x: L + i * bw + bw / 2, y: H - B + 28, "text-anchor": "middle" }, svg);
        d.textContent = r.hour.slice(5, 10);
        lastDay = r.hour.slice(0, 10);
      }
    }
  });
  box.dataset.bars = String(rows.length);
}

function tooltip(e, r, currency) {
  const t = $("tooltip");
  t.textContent = `${r.hour}\n${r.revenue === null ? "no FX rate" : r.revenue + " " + currency}` +
    `\norders ${r.orders} · refunds ${r.refunds}\n${r.source} / ${r.status}${r.fx_stale ? " · FX stale" : ""}`;
  t.style.left = e.clientX + 12 + "px";
  t.style.top = e.clientY + 12 + "px";
  t.hidden = false;
}

function drawBreakdown(target, rows, field, currency) {
  const sums = new Map();
  for (const r of rows) {
    if (r[field] === null || r.revenue === null) continue;
    sums.set(r[field], (sums.get(r[field]) || 0n) + cents(r.revenue));
  }
  const items = [...sums.entries()].sort((a, b) => (b[1] > a[1] ? 1 : b[1] < a[1] ? -1 : 0));
  const max = items.reduce((m, [, v]) => (v > m ? v : m < -v ? -v : m), 1n);
  const box = $(target);
  box.textContent = "";
  for (const [name, v] of items) {
    const row = document.createElement("div"); row.className = "row";
    const label = document.createElement("span"); label.textContent = name;
    const track = document.createElement("div"); track.className = "track";
    const fill = document.createElement("div"); fill.className = "fill" + (v < 0n ? " neg" : "");
    fill.style.width = (Number((v < 0n ? -v : v) * 1000n / max) / 10) + "%";
    track.appendChild(fill);
    const num = document.createElement("span"); num.className = "num"; num.textContent = money(v, currency);
    row.append(label, track, num);
    box.appendChild(row);
  }
  if (!items.length) box.textContent = "no data in range";
}

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.abs(seconds);
  if (s < 120) return Math.round(seconds) + " s";
  if (s < 7200) return Math.round(seconds / 60) + " min";
  if (s < 172800) return Math.round(seconds / 3600) + " h";
  return Math.round(seconds / 86400) + " d";
}

function drawStatus(st, hourly) {
  const sp = st.speed, b = st.batch;
  $("speed-state").textContent = !sp.reachable ? "unreachable" : sp.healthy ? "healthy" : "stale";
  $("speed-state").className = "big " + (!sp.reachable ? "bad" : sp.healthy ? "ok" : "warn");
  $("speed-sub").textContent = sp.watermark
    ? `watermark ${sp.watermark.slice(0, 19)}Z (lag ${ago(sp.watermark_lag_s)}) · ${sp.open_hours} open hours`
    : "no watermark yet";
  $("batch-state").textContent = b.available ? "through " + (b.complete_through || "–").slice(5, 13).replace("T", " ") + "h" : "no run yet";
  $("batch-state").className = "big " + (b.error ? "bad" : b.available ? "ok" : "warn");
  $("batch-sub").textContent = b.last_run
    ? `last run ${b.last_run.computed_at.slice(0, 16)}Z · ${b.last_run.dates.join(", ")}`
    : (b.error || "serving from the speed view");
  const c = hourly.rows.filter((r) => r.revenue !== null).reduce((a, r) => a + cents(r.revenue), 0n);
  const provisional = hourly.rows.filter((r) => r.source === "speed").length;
  const missing = hourly.rows.filter((r) => r.status === "missing").length;
  $("total").textContent = money(c, hourly.currency);
  $("total-sub").textContent = `${hourly.rows.length} h · ${provisional} provisional · ${missing} missing`;
}

async function refresh() {
  clearTimeout(timer);
  const { start, end } = range();
  const currency = $("currency").value || "USD";
  const q = `start=${iso(start)}&end=${iso(end)}&currency=${currency}`;
  try {
    const [hourly, regions, categories, st] = await Promise.all([
      api(`/v1/revenue/hourly?${q}`),
      api(`/v1/revenue/hourly?${q}&group_by=region`),
      api(`/v1/revenue/hourly?${q}&group_by=category`),
      api("/v1/status"),
    ]);
    if (!$("currency").options.length) {
      for (const c of st.serving.fx_currencies) $("currency").add(new Option(c, c, c === "USD", c === "USD"));
    }
    drawChart(hourly.rows, hourly.currency);
    drawBreakdown("by-region", regions.rows, "region", hourly.currency);
    drawBreakdown("by-category", categories.rows, "category", hourly.currency);
    drawStatus(st, hourly);
    $("updated").textContent = new Date().toISOString().slice(11, 19) + "Z";
    $("error").textContent = "";
    $("board").dataset.state = "loaded";
  } catch (err) {
    if (err.auth) { showLogin("The token was refused. Enter a valid API token."); return; }
    $("error").textContent = "refresh failed: " + err.message;
    $("board").dataset.state = "error";
  }
  timer = setTimeout(refresh, REFRESH_MS);
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
for (const id of ["hours", "currency", "end"]) $(id).addEventListener("change", refresh);
start();
