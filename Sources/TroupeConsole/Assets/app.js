// The Troupe console: one page, three views (#/ runs, #/runs/RUN, #/runs/RUN/agents/AGENT), all read from /api.
"use strict";

const state = { readOnly: true, source: null, timers: [], selected: new Set() };

const esc = (value) => String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const $ = (selector) => document.querySelector(selector);
const enc = encodeURIComponent;

function age(time) {
  if (!time) return "-";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(time)) / 1000));
  if (seconds < 120) return seconds + "s";
  if (seconds < 7200) return Math.floor(seconds / 60) + "m";
  if (seconds < 172800) return Math.floor(seconds / 3600) + "h";
  return Math.floor(seconds / 86400) + "d";
}

async function api(path) {
  const response = await fetch("/api/" + path, { headers: { Accept: "application/json" } });
  if (response.status === 401) { location.href = "/login"; throw new Error("log in first"); }
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// Actions go through the control queue; the answer (applied, queued, refused) is shown.
async function act(path, label) {
  try {
    const response = await fetch("/api/" + path, { method: "POST", headers: { "X-Troupe": "action" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    const said = body.result || body.outcome || body.status || (body.run && body.from ? "forked as " + body.run : "") ||
      (body.purged !== undefined ? body.purged + " purged" : "") || (body.requeued !== undefined ? body.requeued + " requeued" : "") || "done";
    notice(label + ": " + said + (body.status === "queued" ? " (queued)" : ""), body.outcome && body.outcome !== "applied");
    return body;
  } catch (error) {
    notice(label + ": " + error.message, true);
    throw error;
  }
}

function notice(text, bad) {
  const box = $("#notice");
  box.textContent = text;
  box.className = bad ? "bad" : "";
  box.hidden = false;
}

function stop() {
  if (state.source) { state.source.close(); state.source = null; }
  state.timers.forEach(clearInterval);
  state.timers = [];
}

function crumbs(parts) {
  $("#crumbs").innerHTML = parts.map(([text, href]) => href ? `<a href="${href}">${esc(text)}</a>` : esc(text)).join(" / ");
}

function actions(buttons) {
  if (state.readOnly) return "";
  return `<div class="bar actions">${buttons.map(([name, text, danger]) =>
    `<button data-action="${esc(name)}"${danger ? ' class="danger"' : ""}>${esc(text)}</button>`).join("")}</div>`;
}

// ---------------------------------------------------------------- runs

async function runsView() {
  crumbs([["runs"]]);
  $("#view").innerHTML = `
    <h1>Runs</h1>
    <div class="bar">
      <label>Status <select id="filter-status"><option value="">any</option>${["pending", "running", "paused", "stopped", "completed", "cancelled", "failed", "crashed"].map((s) => `<option>${s}</option>`).join("")}</select></label>
      <label>Blueprint <input id="filter-blueprint" size="14"></label>
      ${state.readOnly ? "" : `<button id="bulk-cancel" class="danger">Cancel selected</button><button id="bulk-resume">Resume selected</button>`}
    </div>
    <table id="runs"><thead><tr>${state.readOnly ? "" : "<th></th>"}<th>RUN</th><th>BLUEPRINT</th><th>STATUS</th><th>AGE</th><th>OWNER</th><th>AGENTS</th><th>RESTARTS</th><th>LEASE</th></tr></thead><tbody></tbody></table>`;
  const refresh = async () => {
    const status = $("#filter-status").value;
    const blueprint = $("#filter-blueprint").value.trim();
    const query = [status && "status=" + enc(status), blueprint && "blueprint=" + enc(blueprint)].filter(Boolean).join("&");
    const runs = await api("runs" + (query ? "?" + query : ""));
    $("#runs tbody").innerHTML = runs.map((run) => `
      <tr data-run="${esc(run.id)}" data-status="${esc(run.status)}">
        ${state.readOnly ? "" : `<td><input type="checkbox" ${state.selected.has(run.id) ? "checked" : ""}></td>`}
        <td><a class="mono" href="#/runs/${enc(run.id)}">${esc(run.id)}</a></td><td>${esc(run.blueprint)}</td>
        <td class="status s-${esc(run.status)}">${esc(run.status)}</td><td>${age(run.createdAt)}</td>
        <td>${run.owner && run.owner.alive ? esc((run.owner.worker ? "worker " + run.owner.worker + ", " : "") + "pid " + run.owner.pid + " on " + run.owner.host) : "-"}</td>
        <td>${run.agents}</td><td>${run.restarts}</td><td>${run.lease ?? "-"}</td></tr>`).join("") ||
      `<tr><td colspan="9" class="muted">No runs${query ? " match" : " yet: start one with <code>troupe run BLUEPRINT --detach</code>"}.</td></tr>`;
    $("#runs tbody").querySelectorAll("input[type=checkbox]").forEach((box) => box.addEventListener("change", () => {
      const run = box.closest("tr").dataset.run;
      box.checked ? state.selected.add(run) : state.selected.delete(run);
    }));
  };
  $("#filter-status").addEventListener("change", refresh);
  $("#filter-blueprint").addEventListener("input", refresh);
  const bulk = async (verb) => {
    for (const run of [...state.selected]) await act(`runs/${enc(run)}/${verb}`, `${verb} ${run}`).catch(() => {});
    state.selected.clear();
    refresh();
  };
  if (!state.readOnly) {
    $("#bulk-cancel").addEventListener("click", () => bulk("cancel"));
    $("#bulk-resume").addEventListener("click", () => bulk("resume"));
  }
  await refresh();
  state.timers.push(setInterval(() => refresh().catch(() => {}), 2000));
}

// ---------------------------------------------------------------- one run

async function runView(run) {
  crumbs([["runs", "#/"], [run]]);
  $("#view").innerHTML = `
    <h1>Run <span class="mono" id="run-id">${esc(run)}</span> <span id="run-status" class="status"></span></h1>
    <div id="summary" class="grid"></div>
    ${actions([["cancel", "Cancel run", true], ["pause", "Pause"], ["unpause", "Unpause"], ["resume", "Resume"]])}
    <div class="bar"><span class="spark">checkpoints/s <span id="spark-checkpoints"></span></span><span class="spark">restarts <span id="spark-restarts"></span></span></div>
    <h2>Supervision tree</h2>
    <div class="node muted"><span>AGENT</span><span>STATUS</span><span>INCARN.</span><span>RESTARTS</span><span>MAILBOX</span><span>LAST ERROR</span></div>
    <div id="tree"></div>
    <h2>Timeline</h2>
    <div class="timeline" id="timeline"></div>
    <h2>Event log</h2>
    <div class="bar">
      <label>Agent <select id="event-agent"><option value="">any</option></select></label>
      <label>Event <select id="event-kind"><option value="">any but log lines</option><option value="*">any</option></select></label>
      <label><input type="checkbox" id="event-live" checked> live tail</label>
    </div>
    <table id="events"><thead><tr><th>SEQ</th><th>TIME</th><th>AGENT</th><th>#</th><th>EVENT</th><th>DETAIL</th></tr></thead><tbody></tbody></table>`;
  document.querySelectorAll(".actions button").forEach((button) => button.addEventListener("click", async () => {
    await act(`runs/${enc(run)}/${button.dataset.action}`, button.textContent).catch(() => {});
  }));
  const events = [];
  // Checkpoints per second, live: the growth of the agents' checkpoint numbers between two updates.
  const samples = [];
  const rates = [];
  const renderEvents = () => {
    const agent = $("#event-agent").value;
    const kind = $("#event-kind").value;
    const shown = events.filter((e) => (!agent || e.agent === agent) && (kind === "*" || (kind ? e.event === kind : e.event !== "log")));
    $("#events tbody").innerHTML = shown.slice(-200).reverse().map((e) => `
      <tr data-event="${esc(e.event)}"><td>${e.sequence ?? ""}</td><td class="mono">${esc(e.time)}</td><td>${esc(e.agent)}</td>
      <td>${e.incarnation}</td><td class="status s-${esc(e.event)}">${esc(e.event)}</td><td>${esc(e.detail)}</td></tr>`).join("");
  };
  $("#event-agent").addEventListener("change", renderEvents);
  $("#event-kind").addEventListener("change", renderEvents);
  let timelinePending = false;
  const refreshTimeline = async () => {
    if (timelinePending) return;
    timelinePending = true;
    setTimeout(async () => {
      timelinePending = false;
      try { drawTimeline(await api(`runs/${enc(run)}/timeline`)); } catch (error) { /* the next event retries */ }
    }, 500);
  };
  const initial = await api(`runs/${enc(run)}/events?tail=1&limit=500`);
  events.push(...initial);
  const since = initial.length ? initial[initial.length - 1].sequence : 0;
  renderSummary(await api(`runs/${enc(run)}`));
  drawTree(run, await api(`runs/${enc(run)}/tree`), events);
  drawTimeline(await api(`runs/${enc(run)}/timeline`));
  renderEvents();
  const source = new EventSource(`/api/runs/${enc(run)}/stream?since=${since}`);
  state.source = source;
  let latestTree = null;
  source.addEventListener("run", (message) => renderSummary(JSON.parse(message.data)));
  source.addEventListener("tree", (message) => { latestTree = JSON.parse(message.data); drawTree(run, latestTree, events); });
  source.addEventListener("events", (message) => {
    const batch = JSON.parse(message.data);
    events.push(...batch);
    if (events.length > 5000) events.splice(0, events.length - 5000);
    if ($("#event-live").checked) renderEvents();
    if (latestTree) drawTree(run, latestTree, events);
    if (batch.some((e) => e.event !== "checkpointed")) refreshTimeline();
    else if (Math.random() < 0.2) refreshTimeline();
  });
  function renderSummary(report) {
    const summary = report.run;
    const total = report.agents.reduce((sum, a) => sum + (a.lastCheckpoint || 0), 0);
    const now = Date.now();
    const previous = samples[samples.length - 1];
    samples.push({ now, total });
    if (previous && now > previous.now) rates.push(Math.max(0, (total - previous.total) / ((now - previous.now) / 1000)));
    if (rates.length > 60) rates.shift();
    if (samples.length > 2) samples.shift();
    sparkline("#spark-checkpoints", rates.length ? rates : [0], (rates.length ? rates[rates.length - 1] : 0).toFixed(1));
    $("#run-status").textContent = summary.status;
    $("#run-status").className = "status s-" + summary.status;
    $("#summary").innerHTML = [
      ["blueprint", summary.blueprint], ["created", age(summary.createdAt) + " ago"], ["ended", summary.endedAt ? age(summary.endedAt) + " ago" : "-"],
      ["owner", summary.owner && summary.owner.alive ? `pid ${summary.owner.pid} on ${summary.owner.host}` : "none"],
      ["lease", summary.lease ?? "-"], ["agents", summary.agents], ["restarts", summary.restarts], ["dead letters", report.deadLetters],
      ["parameters", Object.entries(summary.parameters).map(([k, v]) => k + "=" + v).join(" ") || "none"],
    ].map(([k, v]) => `<div><span class="muted">${esc(k)}</span> <span id="summary-${esc(k.replace(" ", "-"))}">${esc(v)}</span></div>`).join("");
    const agents = report.agents.map((a) => a.name).sort();
    const select = $("#event-agent");
    const chosen = select.value;
    select.innerHTML = `<option value="">any</option>` + agents.map((a) => `<option${a === chosen ? " selected" : ""}>${esc(a)}</option>`).join("");
    const kindSelect = $("#event-kind");
    if (kindSelect.options.length === 2) {
      kindSelect.innerHTML += ["started", "crashed", "restarting", "exited", "stopped", "cancelled", "killed", "escalated", "dead-lettered", "quarantined", "process-lost", "resumed", "command", "log"]
        .map((k) => `<option>${k}</option>`).join("");
    }
  }
}

function drawTree(run, nodes, events) {
  const lastCrash = {};
  for (const e of events) if (e.event === "crashed" || e.event === "quarantined" || e.event === "escalated") lastCrash[e.agent] = e.time;
  const render = (list) => `<ul class="tree">${list.map((node) => `
    <li data-agent="${esc(node.name)}" data-status="${esc(node.status)}" data-restarts="${node.restarts}" data-incarnation="${node.incarnation}">
      <div class="node">
        <span>${node.type === "Supervisor" ? esc(node.name) : `<a href="#/runs/${enc(run)}/agents/${enc(node.name)}">${esc(node.name)}</a>`} <span class="muted">${esc(node.type)}</span></span>
        <span class="status s-${esc(node.status)}">${esc(node.status)}${node.passivated ? ' <span class="s-passivated">(passivated)</span>' : ""}</span>
        <span>#${node.incarnation}</span><span class="restarts">${node.restarts}</span>
        <span>${node.mailboxDepth}${node.storedMessages !== undefined && node.storedMessages !== null ? ` <span class="muted">(${node.storedMessages} stored)</span>` : ""}</span>
        <span class="error" title="${esc(node.lastError)}">${node.lastError ? esc(node.lastError.slice(0, 90)) + (lastCrash[node.name] ? ` <span class="muted">(${age(lastCrash[node.name])} ago)</span>` : "") : ""}</span>
      </div>
      ${node.children && node.children.length ? render(node.children) : ""}
    </li>`).join("")}</ul>`;
  $("#tree").innerHTML = nodes.length ? render(nodes) : `<p class="muted">No tree yet.</p>`;
}

function drawTimeline(timeline) {
  const lanes = timeline.lanes.filter((lane) => lane.spans.length || lane.marks.length);
  const width = 1000, left = 150, lane = 22, top = 18;
  const from = Date.parse(timeline.from), to = Math.max(Date.parse(timeline.to), from + 1000);
  const x = (time) => left + (Date.parse(time) - from) / (to - from) * (width - left - 10);
  const height = top + lanes.length * lane + 8;
  const parts = [`<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)"><rect width="3" height="6" fill="#e0b0a8"/></pattern></defs>`];
  parts.push(`<text x="${left}" y="12" font-size="10" fill="#6b6b70">${esc(new Date(from).toISOString())}</text>`);
  parts.push(`<text x="${width - 10}" y="12" font-size="10" fill="#6b6b70" text-anchor="end">${esc(new Date(to).toISOString())}</text>`);
  for (const gap of timeline.gaps) {
    parts.push(`<rect class="gap" x="${x(gap.from)}" y="${top}" width="${Math.max(2, x(gap.to) - x(gap.from))}" height="${lanes.length * lane}"><title>no process from ${esc(gap.from)} to ${esc(gap.to)}</title></rect>`);
  }
  lanes.forEach((l, index) => {
    const y = top + index * lane;
    parts.push(`<text x="4" y="${y + 15}" font-size="12">${esc(l.agent)}</text>`);
    for (const span of l.spans) {
      const end = span.to || timeline.to;
      const title = `#${span.incarnation} ${span.from} → ${span.to || "now"}${span.ended ? " " + span.ended : " running"}${span.detail ? ": " + span.detail : ""}`;
      parts.push(`<rect class="span ended-${esc(span.ended || "running")}" data-agent="${esc(l.agent)}" data-ended="${esc(span.ended || "")}" x="${x(span.from)}" y="${y + 3}" width="${Math.max(2, x(end) - x(span.from))}" height="${lane - 6}"><title>${esc(title)}</title></rect>`);
      if (span.ended === "crashed") parts.push(`<circle class="crash" cx="${x(end)}" cy="${y + lane / 2}" r="4"><title>${esc(title)}</title></circle>`);
    }
    for (const mark of l.marks) {
      parts.push(`<line class="mark" data-event="${esc(mark.event)}" x1="${x(mark.time)}" x2="${x(mark.time)}" y1="${y + 2}" y2="${y + lane - 2}"><title>${esc(mark.event + " " + mark.detail + " at " + mark.time)}</title></line>`);
    }
  });
  $("#timeline").innerHTML = lanes.length
    ? `<svg viewBox="0 0 ${width} ${height}" height="${height}">${parts.join("")}</svg>${timeline.truncated ? '<p class="muted">The oldest events are left out.</p>' : ""}`
    : `<p class="muted">No events yet.</p>`;
  const total = timeline.series.restarts.reduce((a, b) => a + b, 0);
  sparkline("#spark-restarts", timeline.series.restarts, `${total} in ${Math.round(timeline.series.bucketSeconds * 60)}s`);
}

// A small line of `values` (oldest first), with a caption.
function sparkline(selector, values, caption) {
  const target = $(selector);
  if (!target) return;
  const max = Math.max(1, ...values);
  const step = values.length > 1 ? 118 / (values.length - 1) : 0;
  const points = values.map((v, i) => `${(1 + i * step).toFixed(1)},${(20 - (v / max) * 18).toFixed(1)}`).join(" ");
  target.innerHTML = `<svg width="120" height="22" viewBox="0 0 120 22"><polyline fill="none" stroke="#175cd3" stroke-width="1.5" points="${points}"/></svg> <span class="mono">${esc(caption)}</span>`;
}

// ---------------------------------------------------------------- one agent

async function agentView(run, agent) {
  crumbs([["runs", "#/"], [run, `#/runs/${enc(run)}`], [agent]]);
  const [report, checkpoints, letters, logs] = await Promise.all([
    api(`runs/${enc(run)}/agents/${enc(agent)}?history=50`),
    api(`runs/${enc(run)}/agents/${enc(agent)}/checkpoints`).catch(() => []),
    api(`runs/${enc(run)}/dead-letters`),
    api(`runs/${enc(run)}/events?agent=${enc(agent)}&kind=log&tail=1&limit=200`),
  ]);
  const mine = letters.filter((l) => l.agent === agent);
  $("#view").innerHTML = `
    <h1>Agent ${esc(agent)} <span class="status s-${esc(report.status)}" id="agent-status">${esc(report.status)}</span></h1>
    <div class="grid">${[
      ["type", report.type], ["durability", report.durability], ["since", report.since ? age(report.since) + " ago" : "-"],
      ["incarnation", report.incarnation !== undefined && report.incarnation !== null ? "#" + report.incarnation : "-"], ["epoch", report.epoch], ["restarts", report.restarts],
      ["mailbox", (report.mailbox ?? "-") + " waiting, " + report.storedMessages + " durable stored"],
      ["checkpoint", report.checkpoint ? "#" + report.checkpoint + " (" + age(report.checkpointAt) + " ago)" : "none"],
    ].map(([k, v]) => `<div><span class="muted">${esc(k)}</span> ${esc(v)}</div>`).join("")}</div>
    ${actions([["restart", "Restart from checkpoint"], ["restart-fresh", "Restart fresh", true], ["stop", "Stop", true]])}
    <h2>Last error</h2>
    ${report.lastError ? `<pre class="error" id="last-error">${esc(report.lastError)}</pre><p class="muted">${report.lastErrorAt ? esc(report.lastErrorAt) + " (" + age(report.lastErrorAt) + " ago)" : ""}</p>` : `<p class="muted" id="last-error">none</p>`}
    <h2>Checkpoints <span class="muted">(newest first; pick two to compare)</span></h2>
    <div class="scroll"><table id="checkpoints"><thead><tr><th>A</th><th>B</th><th>SEQ</th><th>TIME</th><th>EPOCH</th><th>VERSION</th><th>BYTES</th><th></th></tr></thead><tbody>
      ${checkpoints.slice().reverse().map((c, i) => `<tr data-sequence="${c.sequence}"><td><input type="radio" name="a" value="${c.sequence}" ${i === Math.min(1, checkpoints.length - 1) ? "checked" : ""}></td>
        <td><input type="radio" name="b" value="${c.sequence}" ${i === 0 ? "checked" : ""}></td>
        <td>#${c.sequence}</td><td class="mono">${esc(c.createdAt)}</td><td>${c.epoch}</td><td>${c.stateVersion}</td><td>${c.bytes}</td>
        <td>${state.readOnly ? "" : `<button data-fork="${c.sequence}">Fork from here</button>`}</td></tr>`).join("") || `<tr><td colspan="8" class="muted">No checkpoints.</td></tr>`}
    </tbody></table></div>
    <h2>Diff</h2><pre class="diff" id="diff"></pre>
    <h2>Dead letters</h2>
    ${state.readOnly || !mine.length ? "" : `<div class="bar"><button id="requeue">Requeue all</button><button id="purge" class="danger">Purge all</button></div>`}
    <table id="dead-letters"><thead><tr><th>ID</th><th>FAILURES</th><th>TIME</th><th>BYTES</th><th>ERROR</th></tr></thead><tbody>
      ${mine.map((l) => `<tr><td>${l.id}</td><td>${l.failures}</td><td class="mono">${esc(l.createdAt)}</td><td>${l.bytes}</td><td class="error">${esc(l.error)}</td></tr>`).join("") || `<tr><td colspan="5" class="muted">None.</td></tr>`}
    </tbody></table>
    <h2>Log lines</h2>
    <pre id="logs">${logs.length ? logs.map((l) => esc(`${l.time}  #${l.incarnation}  ${l.detail}`)).join("\n") : '<span class="muted">none (lines of context.logger at info and above appear here)</span>'}</pre>
    <h2>History</h2>
    <table><tbody>${report.history.slice().reverse().map((e) => `<tr><td class="mono">${esc(e.time)}</td><td>#${e.incarnation}</td><td class="status s-${esc(e.event)}">${esc(e.event)}</td><td>${esc(e.detail)}</td></tr>`).join("")}</tbody></table>
    <h2>State</h2><pre id="state">${esc(report.state ?? (report.stateBytes ? report.stateBytes + " bytes, not text" : "no checkpoint"))}</pre>`;
  const ids = mine.map((l) => "id=" + l.id).join("&");
  document.querySelectorAll(".actions button").forEach((button) => button.addEventListener("click", async () => {
    const name = button.dataset.action;
    const path = name === "restart-fresh" ? "restart?fresh=true" : name;
    await act(`runs/${enc(run)}/agents/${enc(agent)}/${path}`, button.textContent).catch(() => {});
  }));
  document.querySelectorAll("[data-fork]").forEach((button) => button.addEventListener("click", async () => {
    const body = await act(`runs/${enc(run)}/fork?agent=${enc(agent)}&sequence=${button.dataset.fork}`, "fork").catch(() => null);
    if (body && body.run) notice(`forked ${body.run} from #${body.sequence}: resume it from its page`);
  }));
  if ($("#requeue")) {
    $("#requeue").addEventListener("click", () => act(`runs/${enc(run)}/dead-letters/requeue?${ids}`, "requeue").then(() => route()).catch(() => {}));
    $("#purge").addEventListener("click", () => act(`runs/${enc(run)}/dead-letters/purge?${ids}`, "purge").then(() => route()).catch(() => {}));
  }
  const showDiff = async () => {
    const a = document.querySelector("input[name=a]:checked"), b = document.querySelector("input[name=b]:checked");
    if (!a || !b) { $("#diff").textContent = "No checkpoints to compare."; return; }
    const [left, right] = await Promise.all([a.value, b.value].map((s) => api(`runs/${enc(run)}/agents/${enc(agent)}/checkpoints/${s}`)));
    $("#diff").innerHTML = `<span class="muted">#${esc(left.sequence)} → #${esc(right.sequence)}</span>\n` + diffLines(left.state.split("\n"), right.state.split("\n"));
  };
  document.querySelectorAll("#checkpoints input[type=radio]").forEach((r) => r.addEventListener("change", showDiff));
  await showDiff();
}

// A line diff by longest common subsequence: "-" lines only in A, "+" lines only in B.
function diffLines(a, b) {
  if (a.length * b.length > 4_000_000) return esc("too large to compare here; use troupe checkpoints --show");
  const n = a.length, m = b.length;
  const table = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push("  " + esc(a[i])); i++; j++; }
    else if (i < n && (j === m || table[i + 1][j] >= table[i][j + 1])) { out.push(`<span class="del">- ${esc(a[i])}</span>`); i++; }
    else { out.push(`<span class="add">+ ${esc(b[j])}</span>`); j++; }
  }
  return out.join("\n");
}

// ---------------------------------------------------------------- routing

async function route() {
  stop();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "runs" && parts[2] === "agents" && parts[3]) await agentView(parts[1], parts[3]);
    else if (parts[0] === "runs" && parts[1]) await runView(parts[1]);
    else await runsView();
  } catch (error) {
    $("#view").innerHTML = `<p class="error" id="view-error">${esc(error.message)}</p><p><a href="#/">All runs</a></p>`;
  }
}

window.addEventListener("hashchange", route);
(async () => {
  try {
    const console = await api("console");
    state.readOnly = console.readOnly === "true";
    $("#mode").textContent = `${console.database}${state.readOnly ? " · read-only" : ""} · troupe ${console.version}`;
  } catch (error) { /* route() reports it */ }
  await route();
})();
