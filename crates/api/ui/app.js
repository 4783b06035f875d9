// ALUSKORT web UI: a dependency-free single page over the /v1 API, served by the binary itself.
//
// Every value that comes from an alert is untrusted (attackers write alert text): the page is
// built with DOM nodes and textContent only, never parsed as markup, and links are built only from
// values checked against a strict pattern (ATT&CK/ATLAS technique ids, our own ids).
"use strict";

const store = window.sessionStorage;
const state = { page: null, streamAbort: null, live: false, queueRows: new Map() };

// ---------- DOM helpers ----------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const main = () => document.getElementById("main");

function render(...children) {
  const root = main();
  root.replaceChildren();
  append(root, children);
}

function fmtTime(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

const pct = (value) => (typeof value === "number" ? `${Math.round(value * 100)}%` : "");

function pill(text, cls) {
  return h("span", { class: `pill ${cls || ""}` }, text);
}

function classification(value) {
  return value ? pill(value.replace(/_/g, " "), `cls-${value}`) : h("span", { class: "muted" }, "—");
}

function severity(value) {
  return h("span", { class: `sev-${value}` }, value || "");
}

// ATT&CK and ATLAS technique links, only for well-formed ids.
function techniqueLink(id) {
  const attack = /^T(\d{4})(?:\.(\d{3}))?$/.exec(id);
  if (attack) {
    const href = `https://attack.mitre.org/techniques/T${attack[1]}/${attack[2] ? `${attack[2]}/` : ""}`;
    return h("a", { href, target: "_blank", rel: "noopener noreferrer", class: "pill" }, id);
  }
  if (/^AML\.T\d{4}(?:\.\d{3})?$/.test(id)) {
    return h("a", { href: `https://atlas.mitre.org/techniques/${id}`, target: "_blank", rel: "noopener noreferrer", class: "pill" }, id);
  }
  return pill(id);
}

function showMessage(text, ok) {
  const box = document.getElementById("message");
  box.textContent = text;
  box.className = ok ? "message ok" : "message";
  box.hidden = !text;
}

function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map((title) => h("th", {}, title)))), h("tbody", {}, rows));
}

function facts(pairs) {
  return h("dl", { class: "facts" }, pairs.filter(([, value]) => value !== undefined && value !== null && value !== "").map(([key, value]) => [h("dt", {}, key), h("dd", {}, value)]));
}

// ---------- API ----------

function headers(extra) {
  const result = Object.assign({ Accept: "application/json" }, extra || {});
  const credential = store.getItem("aluskort.credential");
  if (credential) result.Authorization = `Bearer ${credential}`;
  return result;
}

class ApiError extends Error {
  constructor(status, body) {
    const reason = body && (body.reason || body.error) ? `${body.field ? `${body.field}: ` : ""}${body.reason || body.error}` : `HTTP ${status}`;
    super(reason);
    this.status = status;
  }
}

async function api(path, options) {
  const init = Object.assign({}, options || {});
  init.headers = headers(init.body !== undefined ? { "Content-Type": "application/json" } : {});
  const response = await fetch(path, init);
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = { reason: text };
  }
  if (response.status === 401) {
    openSignIn(`Not signed in: ${body && body.reason ? body.reason : "credentials required"}`);
  }
  if (!response.ok && !(response.status === 503 && path === "/ready")) throw new ApiError(response.status, body);
  return body;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined && value !== null && value !== "") search.set(key, value);
  const text = search.toString();
  return text ? `?${text}` : "";
}

// ---------- sign-in ----------

function openSignIn(reason) {
  const dialog = document.getElementById("sign-in");
  if (reason) showMessage(reason);
  if (!dialog.open) dialog.showModal();
}

function setupSignIn() {
  const dialog = document.getElementById("sign-in");
  document.getElementById("sign-in-button").addEventListener("click", () => {
    document.getElementById("actor-name").value = store.getItem("aluskort.actor") || "";
    dialog.showModal();
  });
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") {
      const credential = document.getElementById("credential").value.trim();
      if (credential) store.setItem("aluskort.credential", credential);
      const actor = document.getElementById("actor-name").value.trim();
      if (actor) store.setItem("aluskort.actor", actor);
      document.getElementById("credential").value = "";
      showMessage("");
      startStream();
      route();
      refreshDegradation();
      refreshApprovalCount();
    } else if (dialog.returnValue === "clear") {
      store.removeItem("aluskort.credential");
      store.removeItem("aluskort.actor");
      stopStream();
      route();
    }
    updateSignInButton();
  });
  updateSignInButton();
}

function updateSignInButton() {
  document.getElementById("sign-in-button").textContent = store.getItem("aluskort.credential") ? "Signed in" : "Sign in";
}

// With a key, the server records the key's caller; without authentication (`serve --no-auth`)
// it needs a name: `null` (and the sign-in dialog asking for one) until there is one.
function actorField() {
  if (store.getItem("aluskort.credential")) return {};
  const actor = store.getItem("aluskort.actor");
  if (actor) return { actor };
  openSignIn("Who is acting? Sign in with a key, or (server without authentication) enter your name.");
  return null;
}

// ---------- live updates (server-sent events over fetch, so the key travels in a header) ----------

function setLive(on) {
  state.live = on;
  const badge = document.getElementById("live");
  badge.textContent = on ? "live" : "offline";
  badge.className = on ? "live on" : "live";
}

function stopStream() {
  if (state.streamAbort) state.streamAbort.abort();
  state.streamAbort = null;
  setLive(false);
}

async function startStream() {
  stopStream();
  const controller = new AbortController();
  state.streamAbort = controller;
  try {
    const response = await fetch("/v1/stream", { headers: headers({ Accept: "text/event-stream" }), signal: controller.signal });
    if (response.status === 401 || response.status === 403) {
      // Not signed in (or not allowed): signing in starts the stream again; no retry loop.
      setLive(false);
      return;
    }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    setLive(true);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const chunk = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of chunk.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        onStreamEvent(event, data.join("\n"));
      }
    }
  } catch (error) {
    if (controller.signal.aborted) return;
  }
  setLive(false);
  if (!controller.signal.aborted) setTimeout(() => state.streamAbort === controller && startStream(), 3000);
}

function onStreamEvent(event, data) {
  if (event !== "investigation") return;
  let summary;
  try {
    summary = JSON.parse(data);
  } catch (_) {
    return;
  }
  const row = state.queueRows.get(summary.investigation_id);
  if (row) {
    row.querySelector(".c-state").textContent = summary.state;
    row.querySelector(".c-cls").replaceChildren(classification(summary.classification));
    row.querySelector(".c-conf").textContent = pct(summary.confidence);
    row.classList.remove("flash");
    void row.offsetWidth;
    row.classList.add("flash");
  } else if (state.page === "queue") {
    const note = document.getElementById("queue-new");
    if (note) {
      note.dataset.count = String(Number(note.dataset.count || 0) + 1);
      note.textContent = `${note.dataset.count} new or changed — reload`;
      note.hidden = false;
    }
  }
  if (summary.state === "awaiting_human") {
    refreshApprovalCount();
    approvalsChanged();
  }
}

// The approvals inbox follows new gates: an empty inbox reloads itself; one with rows (where an
// approver may be typing a comment) offers a reload instead.
let approvalsReload = null;
function approvalsChanged() {
  if (state.page !== "approvals" || approvalsReload) return;
  approvalsReload = setTimeout(() => {
    approvalsReload = null;
    if (state.page !== "approvals") return;
    if (document.querySelector("tr[data-approval]")) {
      const note = document.getElementById("approvals-new");
      if (note) note.hidden = false;
    } else {
      approvalsPage();
    }
  }, 500);
}

// ---------- shell ----------

async function refreshDegradation() {
  const banner = document.getElementById("degradation");
  try {
    const body = await api("/v1/degradation");
    const serious = (body.degradations || []).filter((d) => d.level !== "full");
    banner.hidden = serious.length === 0;
    banner.replaceChildren(
      h("strong", {}, `Degradation: ${body.degradation_level}. `),
      serious.map((d) => `${d.level}: ${d.reason}. `),
    );
  } catch (_) {
    banner.hidden = true;
  }
}

async function refreshApprovalCount() {
  const badge = document.getElementById("approval-count");
  try {
    const body = await api(`/v1/approvals${query({ status: "pending", limit: 1000 })}`);
    badge.textContent = String(body.count);
    badge.hidden = body.count === 0;
  } catch (_) {
    badge.hidden = true;
  }
}

// A paged listing: renders rows, then a "Load more" button while the API has a next cursor.
function pager(container, fetchPage, renderRows) {
  let cursor = null;
  const button = h("button", { class: "plain more", type: "button" }, "Load more");
  const status = h("span", { class: "muted" });
  async function load() {
    button.disabled = true;
    try {
      const body = await fetchPage(cursor);
      renderRows(body);
      cursor = body.next_cursor;
      button.hidden = !cursor;
      status.textContent = cursor ? "" : " end of list";
    } catch (error) {
      showMessage(error.message);
    } finally {
      button.disabled = false;
    }
  }
  button.addEventListener("click", load);
  append(container, [h("div", { class: "actions" }, button, status)]);
  return load();
}

// ---------- pages ----------

const STATES = ["", "received", "parsing", "enriching", "reasoning", "responding", "awaiting_human", "closed", "failed"];

function filterForm(fields, values, onSubmit) {
  const form = h("form", { class: "filters" });
  for (const field of fields) {
    const input = field.options
      ? h("select", { name: field.name }, field.options.map((option) => h("option", { value: option, selected: values[field.name] === option }, option || "any")))
      : h("input", { name: field.name, type: field.type || "text", placeholder: field.placeholder || "", value: values[field.name] || "" });
    form.append(h("label", {}, field.label, input));
  }
  form.append(h("button", { class: "primary", type: "submit" }, "Apply"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = {};
    for (const field of fields) next[field.name] = form.elements[field.name].value;
    onSubmit(next);
  });
  return form;
}

function params() {
  const hash = location.hash.replace(/^#/, "");
  const [, search] = hash.split("?");
  return Object.fromEntries(new URLSearchParams(search || ""));
}

function go(path, values) {
  location.hash = `#${path}${query(values || {})}`;
}

async function queuePage() {
  const values = params();
  state.queueRows = new Map();
  const tbody = h("tbody");
  const note = h("button", { id: "queue-new", class: "plain", type: "button", hidden: true, onclick: () => route() });
  render(
    h("h1", {}, "Investigation queue"),
    filterForm(
      [
        { name: "state", label: "State", options: STATES },
        { name: "tenant", label: "Tenant" },
        { name: "since", label: "Updated since (RFC 3339)", placeholder: "2026-01-01T00:00:00Z" },
      ],
      values,
      (next) => go("/queue", next),
    ),
    note,
    h("table", { id: "queue" },
      h("thead", {}, h("tr", {}, ["Updated", "Alert", "Severity", "State", "Verdict", "Confidence", "Incident", "Tenant"].map((t) => h("th", {}, t)))),
      tbody),
  );
  const container = main();
  await pager(container, (cursor) => api(`/v1/investigations${query({ state: values.state, tenant: values.tenant, since: values.since, cursor })}`), (body) => {
    for (const item of body.investigations) {
      const row = h("tr", { class: "row-link", dataset: { id: item.investigation_id }, onclick: () => go(`/investigation/${item.investigation_id}`) },
        h("td", { class: "mono" }, fmtTime(item.timestamp)),
        h("td", {}, h("a", { href: `#/investigation/${encodeURIComponent(item.investigation_id)}` }, item.title || item.alert_id)),
        h("td", {}, severity(item.severity)),
        h("td", { class: "c-state" }, item.state),
        h("td", { class: "c-cls" }, classification(item.classification)),
        h("td", { class: "c-conf" }, pct(item.confidence)),
        h("td", { class: "mono" }, item.incident_id ? h("a", { href: `#/incident/${encodeURIComponent(item.incident_id)}`, onclick: (e) => e.stopPropagation() }, `${item.incident_id.slice(0, 8)} (${item.incident_alert_count})`) : ""),
        h("td", {}, item.tenant_id));
      state.queueRows.set(item.investigation_id, row);
      tbody.append(row);
    }
  });
}

function entityList(entities) {
  const rows = [];
  for (const [kind, items] of Object.entries(entities || {})) {
    if (!Array.isArray(items) || items.length === 0 || kind === "parse_errors") continue;
    for (const item of items) {
      const text = typeof item === "object" && item !== null
        ? Object.entries(item).filter(([, v]) => v !== null && v !== "" && typeof v !== "object").map(([k, v]) => `${k}=${v}`).join("  ")
        : String(item);
      rows.push(h("tr", {}, h("td", {}, kind), h("td", { class: "mono" }, text)));
    }
  }
  return rows.length ? table(["Kind", "Entity"], rows) : h("p", { class: "muted" }, "No entities.");
}

async function investigationPage(id) {
  render(h("p", { class: "muted" }, "Loading investigation…"));
  const body = await api(`/v1/investigations/${encodeURIComponent(id)}`);
  const record = body.investigation || {};
  const graph = body.graph_state || {};
  const approvals = await api(`/v1/approvals${query({ status: "all", investigation_id: id })}`).catch(() => ({ approvals: [] }));
  const verdict = h("div", { class: "panel" },
    h("h2", {}, "Verdict"),
    facts([
      ["Classification", classification(record.classification)],
      ["Confidence", pct(record.confidence)],
      ["Severity", severity(record.severity)],
      ["Source severity", record.source_severity],
      ["State", record.state],
      ["Degradation", record.degradation_level],
      ["Model calls", `${record.llm_calls} ($${Number(record.llm_cost_usd || 0).toFixed(4)})`],
      ["Model issue", record.model_issue],
      ["Close reason", record.close_reason],
      ["Error", record.error],
    ]),
    h("h2", {}, "Why"),
    (record.reasoning || []).length ? h("ul", { id: "reasoning" }, record.reasoning.map((line) => h("li", {}, line))) : h("p", { class: "muted" }, "No reasoning recorded yet."));
  const alert = h("div", { class: "panel" },
    h("h2", {}, "Alert"),
    facts([
      ["Title", record.title],
      ["Alert id", h("span", { class: "mono" }, record.alert_id)],
      ["Tenant", record.tenant_id],
      ["Source", record.source],
      ["Time", fmtTime(record.timestamp)],
      ["Incident", record.incident_id ? h("a", { href: `#/incident/${encodeURIComponent(record.incident_id)}` }, `${record.incident_id} (${record.incident_alert_count} alerts)`) : "none"],
      ["Investigation", h("span", { class: "mono" }, id)],
    ]),
    h("h2", {}, "Techniques"),
    h("div", { id: "techniques" }, (record.techniques || []).map(techniqueLink), (record.tactics || []).map((t) => pill(t))),
    (record.suggested_techniques || []).length ? [h("h2", {}, "Suggested techniques"), h("div", {}, record.suggested_techniques.map((t) => [techniqueLink(String(t.id)), ` ${t.name || ""} `]))] : null);
  const decisionRows = (graph.decision_chain || []).map((entry) => h("li", {},
    h("strong", {}, `${entry.step}. ${entry.agent}: ${entry.action}`),
    entry.confidence !== undefined ? ` (${pct(entry.confidence)})` : "",
    h("div", {}, entry.reasoning),
    h("div", { class: "muted mono" }, fmtTime(entry.timestamp))));
  const historyRows = (graph.history || []).map((change) => h("tr", {}, h("td", { class: "mono" }, fmtTime(change.at)), h("td", {}, `${change.from} → ${change.to}`), h("td", {}, change.reason)));
  const actions = (record.recommended_actions || []).map((action) => h("tr", {},
    h("td", {}, typeof action.action === "string" ? action.action : JSON.stringify(action.action)),
    h("td", { class: "mono" }, action.target), h("td", {}, String(action.tier)), h("td", {}, action.requires_approval ? "yes" : "no"), h("td", {}, action.rationale)));
  const similar = (record.similar_incidents || []).map((item) => h("li", {}, typeof item === "object" ? Object.entries(item).filter(([, v]) => typeof v !== "object").map(([k, v]) => `${k}: ${v}`).join(", ") : String(item)));
  render(
    h("h1", {}, record.title || "Investigation"),
    h("div", { class: "grid" }, verdict, alert),
    h("div", { class: "panel" }, h("h2", {}, "Approvals"), approvalTable(approvals.approvals || [], () => investigationPage(id))),
    h("div", { class: "panel" }, h("h2", {}, "Recommended actions"), actions.length ? table(["Action", "Target", "Tier", "Approval", "Rationale"], actions) : h("p", { class: "muted" }, "None.")),
    h("div", { class: "grid" },
      h("div", { class: "panel" }, h("h2", {}, "Decision chain"), decisionRows.length ? h("ol", { class: "timeline" }, decisionRows) : h("p", { class: "muted" }, "Empty.")),
      h("div", { class: "panel" }, h("h2", {}, "Timeline"), historyRows.length ? table(["At", "Transition", "Reason"], historyRows) : h("p", { class: "muted" }, "No transitions."))),
    h("div", { class: "panel" }, h("h2", {}, "Entities"), entityList(record.entities),
      (record.iocs || []).length ? [h("h2", {}, "Indicators"), h("div", { class: "mono" }, record.iocs.map((ioc) => pill(typeof ioc === "object" ? `${ioc.kind || ioc.type || ""} ${ioc.value || JSON.stringify(ioc)}` : String(ioc))))] : null,
      (record.ioc_matches || []).length ? [h("h2", {}, "Threat-intel matches"), h("ul", {}, record.ioc_matches.map((m) => h("li", { class: "mono" }, JSON.stringify(m))))] : null),
    h("div", { class: "panel" }, h("h2", {}, "Similar incidents"), similar.length ? h("ul", {}, similar) : h("p", { class: "muted" }, "None found.")),
    feedbackForm(id),
    h("div", { class: "panel" }, h("h2", {}, "Evidence"),
      h("button", { class: "plain", type: "button", onclick: () => downloadEvidence(id) }, "Download evidence package"),
      " ", h("a", { href: `#/audit${query({ tenant: record.tenant_id, investigation_id: id })}` }, "Audit records")),
  );
}

async function downloadEvidence(id) {
  try {
    const body = await api(`/v1/audit/evidence-package/${encodeURIComponent(id)}`);
    const blob = new Blob([JSON.stringify(body, null, 2)], { type: "application/json" });
    const link = h("a", { href: URL.createObjectURL(blob), download: `evidence-${id}.json` });
    document.body.append(link);
    link.click();
    link.remove();
    showMessage("Evidence package verified by the server and downloaded.", true);
  } catch (error) {
    showMessage(`Evidence package: ${error.message}`);
  }
}

function feedbackForm(id) {
  const correct = h("select", { name: "correct" }, h("option", { value: "true" }, "correct"), h("option", { value: "false" }, "wrong"));
  const right = h("select", { name: "classification" }, ["", "true_positive", "false_positive", "benign_true_positive", "needs_investigation"].map((c) => h("option", { value: c }, c || "—")));
  const comment = h("input", { name: "comment", type: "text", placeholder: "comment" });
  const form = h("form", { class: "filters" }, h("label", {}, "Verdict was", correct), h("label", {}, "Right classification", right), h("label", {}, "Comment", comment), h("button", { class: "primary", type: "submit" }, "Send feedback"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const actor = actorField();
    if (actor === null) return;
    const body = Object.assign({ correct: correct.value === "true", comment: comment.value }, actor);
    if (right.value) body.classification = right.value;
    try {
      await api(`/v1/investigations/${encodeURIComponent(id)}/feedback`, { method: "POST", body: JSON.stringify(body) });
      showMessage("Feedback recorded.", true);
    } catch (error) {
      showMessage(`Feedback: ${error.message}`);
    }
  });
  return h("div", { class: "panel" }, h("h2", {}, "Feedback"), form);
}

function approvalTable(approvals, after) {
  if (!approvals.length) return h("p", { class: "muted" }, "No approvals.");
  return table(["Deadline", "Status", "Severity", "Actions", "Reason", "Investigation", ""], approvals.map((approval) => {
    const comment = h("input", { type: "text", placeholder: "comment", "aria-label": "comment" });
    const decide = async (verb) => {
      const actor = actorField();
      if (actor === null) return;
      try {
        await api(`/v1/approvals/${encodeURIComponent(approval.approval_id)}/${verb}`, { method: "POST", body: JSON.stringify(Object.assign({ comment: comment.value }, actor)) });
        showMessage(`Approval ${approval.approval_id}: ${verb === "approve" ? "approved" : "rejected"}.`, true);
        refreshApprovalCount();
        after();
      } catch (error) {
        showMessage(`${verb}: ${error.message}`);
      }
    };
    const pending = approval.status === "pending";
    return h("tr", { dataset: { approval: approval.approval_id } },
      h("td", { class: "mono" }, fmtTime(approval.deadline)),
      h("td", {}, approval.status),
      h("td", {}, severity(approval.severity)),
      h("td", {}, (approval.actions || []).map((a) => h("div", {}, `${a.action} → ${a.target}${a.destructive ? " (destructive)" : ""}`))),
      h("td", {}, approval.reason),
      h("td", { class: "mono" }, h("a", { href: `#/investigation/${encodeURIComponent(approval.investigation_id)}` }, approval.investigation_id.slice(0, 8))),
      h("td", {}, pending ? h("div", { class: "actions" }, comment,
        h("button", { class: "primary", type: "button", onclick: () => decide("approve") }, "Approve"),
        h("button", { class: "danger", type: "button", onclick: () => decide("reject") }, "Reject")) : (approval.decisions || []).map((d) => h("div", { class: "muted" }, `${d.decision} by ${d.actor}`))));
  }));
}

async function approvalsPage() {
  const values = params();
  const status = values.status || "pending";
  const holder = h("div");
  const note = h("button", { id: "approvals-new", class: "plain", type: "button", hidden: true, onclick: () => approvalsPage() }, "New approvals waiting — reload");
  render(h("h1", {}, "Approvals"), note,
    filterForm([{ name: "status", label: "Status", options: ["pending", "approved", "rejected", "timed_out", "all"] }, { name: "tenant", label: "Tenant" }], { status, tenant: values.tenant }, (next) => go("/approvals", next)),
    holder);
  const rows = [];
  await pager(main(), (cursor) => api(`/v1/approvals${query({ status, tenant: values.tenant, cursor })}`), (body) => {
    rows.push(...body.approvals);
    holder.replaceChildren(approvalTable(rows, () => approvalsPage()));
  });
}

async function incidentsPage() {
  const values = params();
  const tbody = h("tbody");
  render(h("h1", {}, "Incidents"),
    filterForm([{ name: "tenant", label: "Tenant" }, { name: "since", label: "Active since (RFC 3339)" }], values, (next) => go("/incidents", next)),
    h("table", {}, h("thead", {}, h("tr", {}, ["Last seen", "Title", "Severity", "Alerts", "First seen", "Tenant"].map((t) => h("th", {}, t)))), tbody));
  await pager(main(), (cursor) => api(`/v1/incidents${query({ tenant: values.tenant, since: values.since, cursor })}`), (body) => {
    for (const incident of body.incidents) {
      tbody.append(h("tr", { class: "row-link", onclick: () => go(`/incident/${incident.incident_id}`) },
        h("td", { class: "mono" }, fmtTime(incident.last_seen)),
        h("td", {}, h("a", { href: `#/incident/${encodeURIComponent(incident.incident_id)}` }, incident.title)),
        h("td", {}, severity(incident.severity)),
        h("td", {}, String((incident.alert_ids || []).length)),
        h("td", { class: "mono" }, fmtTime(incident.first_seen)),
        h("td", {}, incident.tenant_id)));
    }
  });
}

async function incidentPage(id) {
  const body = await api(`/v1/incidents/${encodeURIComponent(id)}`);
  const incident = body.incident;
  const alerts = await Promise.all((incident.alert_ids || []).slice(0, 200).map((alertId) =>
    api(`/v1/alerts/${encodeURIComponent(alertId)}${query({ tenant: incident.tenant_id })}`).then((b) => b.summary).catch(() => ({ alert_id: alertId }))));
  render(h("h1", {}, `Incident: ${incident.title}`),
    h("div", { class: "panel" }, facts([["Incident", h("span", { class: "mono" }, incident.incident_id)], ["Tenant", incident.tenant_id], ["Severity", severity(incident.severity)], ["First seen", fmtTime(incident.first_seen)], ["Last seen", fmtTime(incident.last_seen)], ["Merged into", incident.merged_into]])),
    h("h2", {}, "Member alerts"),
    table(["Time", "Alert", "Severity", "Verdict", "Techniques"], alerts.map((a) => h("tr", {},
      h("td", { class: "mono" }, fmtTime(a.timestamp)),
      h("td", {}, a.investigation_id ? h("a", { href: `#/investigation/${encodeURIComponent(a.investigation_id)}` }, a.title || a.alert_id) : a.alert_id),
      h("td", {}, severity(a.severity)), h("td", {}, a.state || ""), h("td", {}, (a.techniques || []).map(techniqueLink))))),
    h("h2", {}, "Why grouped"),
    (incident.links || []).length ? table(["Alert", "Joined", "Because"], incident.links.map((link) => h("tr", {},
      h("td", { class: "mono" }, link.alert_id || ""), h("td", { class: "mono" }, link.linked_to || link.to || link.incident_alert_id || ""),
      h("td", {}, link.reason || link.key || Object.entries(link).filter(([k, v]) => !["alert_id"].includes(k) && typeof v !== "object").map(([k, v]) => `${k}: ${v}`).join(", "))))) : h("p", { class: "muted" }, "A single alert: no links."));
}

async function alertsPage() {
  const values = params();
  const tbody = h("tbody");
  render(h("h1", {}, "Alerts"),
    filterForm([{ name: "tenant", label: "Tenant" }, { name: "severity", label: "Severity", options: ["", "informational", "low", "medium", "high", "critical"] }, { name: "source", label: "Source", options: ["", "sentinel", "elastic", "splunk", "webhook", "canonical"] }], values, (next) => go("/alerts", next)),
    h("table", {}, h("thead", {}, h("tr", {}, ["Time", "Title", "Severity", "Source", "State", "Techniques", "Tenant"].map((t) => h("th", {}, t)))), tbody));
  await pager(main(), (cursor) => api(`/v1/alerts${query({ tenant: values.tenant, severity: values.severity, source: values.source, cursor })}`), (body) => {
    for (const a of body.alerts) {
      tbody.append(h("tr", {},
        h("td", { class: "mono" }, fmtTime(a.timestamp)),
        h("td", {}, a.investigation_id ? h("a", { href: `#/investigation/${encodeURIComponent(a.investigation_id)}` }, a.title) : a.title),
        h("td", {}, severity(a.severity)), h("td", {}, a.source), h("td", {}, a.state || ""),
        h("td", {}, (a.techniques || []).map(techniqueLink)), h("td", {}, a.tenant_id)));
    }
  });
}

async function auditPage() {
  const values = params();
  const known = await api("/v1/tenants").then((body) => body.tenants).catch(() => []);
  const tenant = values.tenant || known[0] || "";
  const chain = h("div", { class: "panel", id: "chain-status" }, h("span", { class: "muted" }, "Verifying the chain…"));
  const tbody = h("tbody");
  render(h("h1", {}, "Audit trail"), chain,
    filterForm([{ name: "tenant", label: "Tenant", options: known.includes(tenant) || !tenant ? known : [tenant, ...known] }, { name: "investigation_id", label: "Investigation" }, { name: "since", label: "Since (RFC 3339)" }], Object.assign({}, values, { tenant }), (next) => go("/audit", next)),
    h("table", { id: "audit-events" }, h("thead", {}, h("tr", {}, ["#", "Time", "Event", "Actor", "Investigation", "Decision", "Hash"].map((t) => h("th", {}, t)))), tbody));
  api("/v1/audit/verify").then((report) => {
    chain.replaceChildren(report.valid
      ? h("span", { class: "chain-ok" }, `Chain valid: ${report.records} records across ${report.tenants} tenant(s).`)
      : h("span", { class: "chain-bad" }, `Chain BROKEN at ${report.first_break.tenant_id || ""} #${report.first_break.sequence_number}: ${report.first_break.reason}`));
  }).catch((error) => chain.replaceChildren(h("span", { class: "muted" }, `Chain status unavailable: ${error.message}`)));
  if (!tenant) {
    tbody.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No audit trail yet.")));
    return;
  }
  await pager(main(), (cursor) => api(`/v1/audit/events${query({ tenant, investigation_id: values.investigation_id, since: values.since, cursor })}`), (body) => {
    for (const record of body.events) {
      tbody.append(h("tr", {},
        h("td", {}, String(record.sequence_number)), h("td", { class: "mono" }, fmtTime(record.timestamp)), h("td", {}, record.event_type),
        h("td", {}, `${record.actor_type}:${record.actor_id}`),
        h("td", { class: "mono" }, record.investigation_id ? h("a", { href: `#/investigation/${encodeURIComponent(record.investigation_id)}` }, record.investigation_id.slice(0, 8)) : ""),
        h("td", { class: "mono" }, record.decision && Object.keys(record.decision).length ? JSON.stringify(record.decision).slice(0, 160) : ""),
        h("td", { class: "mono" }, (record.record_hash || "").slice(0, 16))));
    }
  });
}

async function fpPatternsPage() {
  const body = await api("/v1/fp-patterns");
  render(h("h1", {}, "False-positive patterns"),
    body.fp_patterns.length ? table(["Pattern", "Status", "Tenant", "Alert name", "Entities", "Approved by", "Expires"], body.fp_patterns.map((p) => h("tr", {},
      h("td", { class: "mono" }, p.pattern_id), h("td", {}, p.status), h("td", {}, p.tenant_id || "all"), h("td", {}, p.alert_name || p.title || ""),
      h("td", { class: "mono" }, JSON.stringify(p.entity_patterns || p.entities || [])), h("td", {}, (p.approved_by || []).join ? p.approved_by.join(", ") : p.approved_by || ""),
      h("td", { class: "mono" }, fmtTime(p.expires_at))))) : h("p", { class: "muted" }, "No patterns yet: they are proposed from analyst feedback."));
}

async function playbooksPage() {
  const body = await api("/v1/playbooks");
  render(h("h1", {}, "Playbooks"),
    body.response_enabled ? null : h("p", { class: "muted" }, "Response planning is off in this deployment."),
    table(["Playbook", "Version", "Enabled", "Matches", "Steps", "Source"], body.playbooks.map(({ playbook, source }) => h("tr", {},
      h("td", {}, h("strong", {}, playbook.playbook.name), h("div", { class: "muted" }, playbook.playbook.description)),
      h("td", {}, String(playbook.playbook.version)), h("td", {}, playbook.playbook.enabled ? "yes" : "no"),
      h("td", {}, (playbook.match.techniques || []).map(techniqueLink), (playbook.match.tactics || []).map((t) => pill(t))),
      h("td", {}, playbook.steps.map((s) => h("div", {}, `${s.action}${s.destructive ? " (destructive, approval)" : ""}`))),
      h("td", { class: "mono" }, source)))));
}

async function llmPage() {
  const [usage, ready] = await Promise.all([api("/v1/llm/usage"), api("/ready")]);
  const totals = usage.totals;
  const providers = (usage.providers && usage.providers.providers) || [];
  render(h("h1", {}, "LLM usage & health"),
    h("div", { class: "grid" },
      h("div", { class: "panel" }, h("h2", {}, "Last 30 days"), facts([["Calls", String(totals.calls)], ["Failures", String(totals.failures)], ["Input tokens", String(totals.input_tokens)], ["Output tokens", String(totals.output_tokens)], ["Cache-read tokens", String(totals.cache_read_tokens)], ["Cost", `$${Number(totals.cost_usd).toFixed(4)}`], ["Mean latency", totals.mean_latency_ms === null ? "—" : `${totals.mean_latency_ms} ms`]])),
      h("div", { class: "panel" }, h("h2", {}, "Health"), facts([["Ready", String(ready.ready)], ["Degradation", ready.degradation_level], ["Model layer", usage.providers.degradation_level]]),
        providers.length ? table(["Provider", "State"], providers.map((p) => h("tr", {}, h("td", {}, p.name || p.provider || ""), h("td", { class: "mono" }, JSON.stringify(p))))) : h("p", { class: "muted" }, "No model provider configured: deterministic reasoning."))),
    h("h2", {}, "By day, tier and task"),
    usage.rows.length ? table(["Day", "Tier", "Task", "Calls", "Failures", "Tokens in/out", "Cost"], usage.rows.map((r) => h("tr", {},
      h("td", {}, r.day), h("td", {}, r.tier), h("td", {}, r.task), h("td", {}, String(r.calls)), h("td", {}, String(r.failures)),
      h("td", {}, `${r.input_tokens}/${r.output_tokens}`), h("td", {}, `$${Number(r.cost_usd).toFixed(4)}`)))) : h("p", { class: "muted" }, "No model calls in the window."));
}

function submitPage() {
  const text = h("textarea", { id: "alerts-input", placeholder: "Paste alerts: one JSON object, an array, JSON Lines, a Log Analytics query response…", spellcheck: "false" });
  const file = h("input", { type: "file", accept: ".json,.jsonl,application/json" });
  file.addEventListener("change", async () => {
    if (file.files && file.files[0]) text.value = await file.files[0].text();
  });
  const result = h("div");
  const submit = async () => {
    try {
      const response = await fetch("/v1/alerts", { method: "POST", headers: headers({ "Content-Type": "application/json" }), body: text.value });
      const body = await response.json().catch(() => ({}));
      if (response.status === 401) openSignIn(body.reason);
      if (!response.ok && response.status !== 400) throw new ApiError(response.status, body);
      const accepted = body.accepted || [];
      const rejected = body.rejected || [];
      showMessage(`${accepted.length} accepted, ${rejected.length} rejected. Investigations appear in the queue as they finish.`, rejected.length === 0);
      result.replaceChildren(table(["Where", "Outcome", "Alert"], [...accepted, ...rejected].map((entry) => h("tr", {},
        h("td", { class: "mono" }, entry.location || ""), h("td", {}, entry.outcome || entry.status || (entry.error ? "rejected" : "")),
        h("td", { class: "mono" }, entry.alert_id || entry.error || "")))));
    } catch (error) {
      showMessage(`Submit: ${error.message}`);
    }
  };
  render(h("h1", {}, "Submit alerts"), h("div", { class: "panel" }, text, h("div", { class: "actions" }, file, h("button", { id: "submit-alerts", class: "primary", type: "button", onclick: submit }, "Triage"))), result);
}

const PAGES = [
  [/^\/queue$/, "queue", queuePage],
  [/^\/investigation\/([^/]+)$/, "queue", investigationPage],
  [/^\/incidents$/, "incidents", incidentsPage],
  [/^\/incident\/([^/]+)$/, "incidents", incidentPage],
  [/^\/alerts$/, "alerts", alertsPage],
  [/^\/approvals$/, "approvals", approvalsPage],
  [/^\/audit$/, "audit", auditPage],
  [/^\/fp-patterns$/, "fp-patterns", fpPatternsPage],
  [/^\/playbooks$/, "playbooks", playbooksPage],
  [/^\/llm$/, "llm", llmPage],
  [/^\/submit$/, "submit", submitPage],
];

async function route() {
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/queue";
  for (const [pattern, page, handler] of PAGES) {
    const match = pattern.exec(path);
    if (!match) continue;
    state.page = page;
    state.queueRows = new Map();
    for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.page === page);
    try {
      await handler(...match.slice(1).map(decodeURIComponent));
    } catch (error) {
      render(h("p", { class: "muted" }, `Could not load this page: ${error.message}`));
    }
    return;
  }
  go("/queue");
}

window.addEventListener("hashchange", () => {
  showMessage("");
  route();
});
window.addEventListener("DOMContentLoaded", () => {
  setupSignIn();
  route();
  refreshDegradation();
  refreshApprovalCount();
  startStream();
  setInterval(refreshDegradation, 30000);
});
