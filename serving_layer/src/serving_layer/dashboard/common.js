// Shared by the dashboard and the reconciliation page: the token, API calls, exact money and
// small DOM helpers. One place for each, so both pages treat tokens and amounts the same way.
// Token: taken once from the URL fragment (#token=...; fragments never reach the server or its
// logs) or from a login form, then kept in this tab's sessionStorage and sent as a bearer token.
// Money: amounts arrive as decimal strings and are shown as they arrive; sums are BigInt cents.
// Floats are used only for chart geometry.
"use strict";

const TOKEN_KEY = "lambda.api.token";
const $ = (id) => document.getElementById(id);

function takeTokenFromFragment() {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    const rest = location.hash.replace(/(?:^#|&)token=[^&]+/, "").replace(/^&/, "");
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.error)) || "HTTP " + status);
    this.status = status;
    this.body = body;
    this.auth = status === 401;
  }
}

// GET a /v1 path as JSON; a 401 forgets the token; any non-2xx throws ApiError with the API's detail.
async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + token() }, cache: "no-store" });
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (res.status === 401) sessionStorage.removeItem(TOKEN_KEY);
  if (!res.ok) throw new ApiError(res.status, body);
  return body;
}

function cents(text) {
  if (text === null || text === undefined) return null;
  const neg = text.startsWith("-");
  const [i, f = ""] = (neg ? text.slice(1) : text).split(".");
  const v = BigInt(i) * 100n + BigInt((f + "00").slice(0, 2));
  return neg ? -v : v;
}

function centsText(c) {
  const neg = c < 0n; const a = neg ? -c : c;
  return (neg ? "-" : "") + (a / 100n).toString() + "." + (a % 100n).toString().padStart(2, "0");
}

// The hour label the API uses, from a Date on an hour boundary.
function iso(d) { return d.toISOString().slice(0, 13) + ":00:00Z"; }

// A datetime-local value read as UTC.
function fromLocalInput(v) {
  if (!v) return null;
  const d = new Date(v.length === 16 ? v + ":00Z" : v + "Z");
  return Number.isNaN(d.getTime()) ? null : d;
}
function toLocalInput(d) { return d.toISOString().slice(0, 16); }

// A DOM element with text content and attributes; never innerHTML for API data.
function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) node.append(c === null || c === undefined ? "" : c);
  return node;
}

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}
