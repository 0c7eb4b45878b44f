// The reconciliation page of a date: GET /v1/reconciliation/{date} drawn as speed against batch per
// hour (ECharts) and a table of the causes that explain each difference. The date comes from
// #date=YYYY-MM-DD (the dashboard links here with it) or the form; the token from common.js.
"use strict";

const CAUSES = ["late", "speed_gap", "open", "duplicates", "malformed"];
let reconChart = null;

function dateFromFragment() {
  const m = /(?:^#|&)date=(\d{4}-\d{2}-\d{2})/.exec(location.hash);
  if (m) return m[1];
  return new Date(Date.now() - 86400e3).toISOString().slice(0, 10); // yesterday: the batch's default
}

async function show(day) {
  const main = $("recon");
  main.dataset.state = "loading";
  main.dataset.date = day;
  $("recon-message").textContent = "";
  if (!token()) {
    $("recon-message").replaceChildren("No API token in this tab: open the ", h("a", { href: "/" }, "dashboard"), " first.");
    main.dataset.state = "error";
    return;
  }
  try {
    draw(await api(`/v1/reconciliation/${encodeURIComponent(day)}`));
    main.dataset.state = "loaded";
  } catch (err) {
    for (const id of ["recon-summary", "recon-chart-box", "recon-hours-box"]) $(id).hidden = true;
    $("recon-message").textContent = err.status === 404
      ? `No report for ${day}: ${err.message}`
      : `The report could not be loaded (HTTP ${err.status || "error"}): ${err.message}`;
    main.dataset.state = "error";
  }
}

function draw(doc) {
  const t = doc.totals;
  for (const id of ["recon-summary", "recon-chart-box", "recon-hours-box"]) $(id).hidden = false;
  $("recon-title").textContent = `Summary of ${doc.date}`;
  $("verdict").textContent = t.verdict;
  $("verdict").className = "big verdict-" + t.verdict;
  $("totals").textContent = `speed ${t.speed_events} events · batch ${t.batch_events} events · late ${t.late_events} ` +
    `(${t.late_revenue_usd} USD) · duplicates ${t.duplicate_events} · malformed ${t.malformed_events} · ` +
    `speed gap ${t.speed_gap_events} · open ${t.open_events} · residual ${t.residual_events} events, ` +
    `${t.residual_revenue_usd} USD`;
  const body = $("recon-hours").tBodies[0];
  body.textContent = "";
  for (const hr of doc.hours) {
    body.append(h("tr", { "data-hour": hr.hour },
      h("th", { scope: "row" }, hr.hour), h("td", {}, hr.speed_status), h("td", {}, hr.computed ? "yes" : "no"),
      h("td", { class: "num" }, hr.speed_usd), h("td", { class: "num" }, hr.batch_usd),
      h("td", { class: "num" }, String(hr.speed.events)), h("td", { class: "num" }, String(hr.batch.events)),
      ...CAUSES.map((c) => h("td", { class: "num" }, String(hr.explained[c].events))),
      h("td", { class: "num" + (hr.residual_events ? " bad" : "") }, String(hr.residual_events)),
      h("td", { class: "num" }, hr.residual_usd)));
  }
  if (!reconChart) {
    reconChart = echarts.init($("recon-chart"));
    window.addEventListener("resize", () => reconChart.resize());
  }
  const hours = doc.hours;
  reconChart.setOption({
    animation: false,
    grid: { left: 72, right: 16, top: 36, bottom: 40 },
    legend: { top: 0 },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" }, confine: true, className: "tip",
      formatter: (params) => {
        const hr = hours[params[0].dataIndex];
        return `<div class="tip-hour">${escapeHtml(hr.hour)}</div>` +
          `<div>speed <b>${escapeHtml(hr.speed_usd)}</b> USD · batch <b>${escapeHtml(hr.batch_usd)}</b> USD</div>` +
          CAUSES.filter((c) => hr.explained[c].events).map((c) => `<div>${c}: ${hr.explained[c].events} events</div>`).join("") +
          `<div>residual ${hr.residual_events} events, ${escapeHtml(hr.residual_usd)} USD</div>`;
      } },
    xAxis: { type: "category", data: hours.map((hr) => hr.hour.slice(11, 13) + "h") },
    yAxis: { type: "value", name: "USD" },
    series: [
      { name: "speed", type: "bar", itemStyle: { color: "#f59e0b" }, data: hours.map((hr) => Number(hr.speed_usd)) },
      { name: "batch", type: "bar", itemStyle: { color: "#2563eb" }, data: hours.map((hr) => Number(hr.batch_usd)) },
    ],
  }, { notMerge: true });
  $("recon-title").focus();
}

takeTokenFromFragment();
$("date").value = dateFromFragment();
$("recon-form").addEventListener("submit", (e) => {
  e.preventDefault();
  history.replaceState(null, "", "#date=" + $("date").value);
  show($("date").value);
});
show($("date").value);
