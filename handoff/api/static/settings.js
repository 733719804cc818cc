// The "Human handoff" settings page: loads an account's settings from the API, edits them,
// saves them with PUT, and shows each error the API names next to its field.
"use strict";

(function () {
  const $ = (selector) => document.querySelector(selector);
  const $$ = (selector) => Array.from(document.querySelectorAll(selector));
  const form = $("#settings");
  let options = { inboxes: [], users: [], teams: [], workflows: [] };
  // The ETag of the settings the form was loaded from: a save is based on them (If-Match).
  let loadedTag = null;

  function account() { return $("#account").value.trim(); }

  async function call(method, tail, body, extra, path) {
    const token = $("#token").value.trim();
    const headers = Object.assign({ Accept: "application/json" }, extra || {});
    if (token) headers.Authorization = "Bearer " + token;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const url = path || "/accounts/" + encodeURIComponent(account()) + "/handoff-settings" + tail;
    let answer;
    try {
      answer = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      return { status: 0, body: { error: "the worker did not answer: " + err.message, errors: [] } };
    }
    let doc = null;
    try { doc = await answer.json(); } catch (err) { doc = { error: answer.statusText, errors: [] }; }
    return { status: answer.status, body: doc, etag: answer.headers.get("ETag") };
  }

  // -- errors next to fields ----------------------------------------------------------------

  function clearErrors() {
    $$("[data-error-for]").forEach((el) => { el.textContent = ""; });
    $$("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
  }

  function slotFor(field) {
    // The most precise slot that exists: "routing.assignees[0].type" -> "routing.assignees[0]"
    // -> "routing.assignees" -> "routing" -> "" (the form's own).
    const mode = currentMode();
    let path = field || "";
    // A slot in a hidden part of the form is passed over, so that an error about a field the
    // editor cannot see now still shows (naming the field) instead of vanishing.
    for (;;) {
      const slots = $$("[data-error-for]").filter((el) => el.dataset.errorFor === path
        && (!el.dataset.mode || el.dataset.mode === mode) && !el.closest("[hidden]"));
      if (slots.length) return slots[0];
      if (!path) return null;
      const cut = Math.max(path.lastIndexOf("."), path.lastIndexOf("["));
      path = cut > 0 ? path.slice(0, cut) : "";
    }
  }

  function showErrors(doc, fallback) {
    const errors = (doc && doc.errors && doc.errors.length) ? doc.errors : [{ field: fallback, message: doc.error }];
    errors.forEach((e) => {
      const slot = slotFor(e.field);
      if (!slot) return;
      const exact = slot.dataset.errorFor === (e.field || "");
      const text = exact || !e.field ? e.message : e.field + ": " + e.message;
      slot.textContent = slot.textContent ? slot.textContent + " " + text : text;
      const input = slot.previousElementSibling && slot.previousElementSibling.querySelector("input, select, textarea");
      if (input) input.setAttribute("aria-invalid", "true");
    });
  }

  // -- the form -----------------------------------------------------------------------------

  function currentMode() {
    const checked = form.querySelector("input[name=mode]:checked");
    return checked ? checked.value : "direct";
  }

  function currentProcess() {
    const checked = form.querySelector("input[name=process]:checked");
    return checked ? checked.value : "live";
  }

  function refreshVisibility() {
    const process = currentProcess();
    const mode = currentMode();
    const shown = {
      handoff: process !== "none",
      direct: mode === "direct",
      workflow: mode === "workflow",
      "live-workflow": process === "live" && mode === "workflow",
      live: process === "live",
      "tell-position": $("#tell-position").checked,
      "prefer-language": $("#prefer-language").checked,
    };
    $$("[data-show]").forEach((el) => { el.hidden = !shown[el.dataset.show]; });
  }

  function addTrigger(text) {
    const item = document.createElement("li");
    item.className = "trigger";
    const row = document.createElement("div");
    row.className = "row";
    const input = document.createElement("input");
    input.type = "text";
    input.value = text;
    input.maxLength = 200;
    input.setAttribute("aria-label", "Trigger word or phrase");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "delete";
    remove.append(trashIcon());
    remove.title = "Delete trigger";
    remove.setAttribute("aria-label", "Delete trigger");
    remove.addEventListener("click", () => { item.remove(); renumberTriggers(); });
    row.append(input, remove);
    const error = document.createElement("p");
    error.className = "error";
    item.append(row, error);
    $("#trigger-list").append(item);
    renumberTriggers();
    return input;
  }

  function trashIcon() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 16 16");
    svg.setAttribute("width", "16");
    svg.setAttribute("height", "16");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(ns, "path");
    path.setAttribute("d", "M6 1h4l1 1h3v2H2V2h3zM3 5h10l-1 10H4zm3 2v6h1V7zm3 0v6h1V7z");
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  function renumberTriggers() {
    $$("#trigger-list li").forEach((item, index) => {
      item.querySelector(".error").dataset.errorFor = "custom_triggers[" + index + "]";
    });
  }

  function fillSelect(select, entries, value, empty) {
    select.replaceChildren();
    if (empty) select.append(new Option(empty, ""));
    entries.forEach(([id, label]) => select.append(new Option(label, id)));
    if (value && !entries.some(([id]) => id === value)) {
      select.append(new Option(value + " (not in the directory)", value));
    }
    select.value = value || "";
  }

  function render(settings, etag) {
    const config = settings.config;
    loadedTag = etag || '"' + settings.version + '"';
    $("#conflict").hidden = true;
    $("#trigger-list").replaceChildren();
    config.custom_triggers.forEach((t) => addTrigger(t));
    form.querySelector("input[name=process][value=" + config.process + "]").checked = true;
    const routing = config.routing;
    form.querySelector("input[name=mode][value=" + routing.mode + "]").checked = true;
    const kind = (i) => i.name + (i.type === "help_desk" ? " (help desk)" : " (inbox)");
    fillSelect($("#destination"), options.inboxes.map((i) => [i.id, kind(i)]),
      routing.mode === "direct" ? routing.destination : "", "The account's first inbox");
    // Without a choice the ticket goes to the account's help desk when it has exactly one
    // (contract v1.1); with none or several the API names the help desks to choose from.
    const desks = options.inboxes.filter((i) => i.type === "help_desk");
    fillSelect($("#helpdesk"), desks.map((i) => [i.id, i.name]),
      routing.mode === "workflow" ? routing.destination : "",
      desks.length === 1 ? "The account's help desk (" + desks[0].name + ")" : "Choose a help desk");
    fillSelect($("#workflow"), options.workflows.map((w) => [w.workflow_id, w.name]),
      routing.mode === "workflow" ? routing.workflow_id : "", "Choose a workflow");
    const chosen = new Set((routing.assignees || []).map((a) => a.type + ":" + a.id));
    const list = $("#assignee-list");
    list.replaceChildren();
    const people = [...options.teams.map((t) => ["team", t]), ...options.users.map((u) => ["user", u])];
    (routing.assignees || []).forEach((a) => {
      const known = a.type === "team" ? options.teams : options.users;
      if (!known.some((k) => k.id === a.id)) people.push([a.type, { id: a.id, name: a.id + " (not in the directory)" }]);
    });
    people.forEach(([type, who]) => {
      const label = document.createElement("label");
      label.className = "choice";
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "assignee";
      box.value = type + ":" + who.id;
      box.checked = chosen.has(box.value);
      const speaks = who.languages && who.languages.length ? " (speaks " + who.languages.join(", ") + ")" : "";
      label.append(box, document.createTextNode(" " + who.name + (type === "team" ? " (team)" : speaks)));
      list.append(label);
    });
    $("#msg-available").value = config.messages.available;
    $("#msg-unavailable").value = config.messages.unavailable;
    $("#msg-unassigned").value = config.messages.unassigned;
    form.querySelector("input[name=unassigned_chat][value=" + config.unassigned_chat + "]").checked = true;
    renderQueue(config);
    $("#version").textContent = settings.version
      ? "Version " + settings.version + ", saved by " + settings.actor + " at " + settings.updated_at
      : "Version 0: the defaults (never saved)";
    refreshVisibility();
  }

  // -- queue and timers (contract v1.1) ----------------------------------------------------

  function renderQueue(config) {
    const shown = (value) => (value === null || value === undefined ? "" : String(value));
    $("#pickup-timeout").value = shown(config.pickup_timeout_s);
    $("#assign-when-available").checked = Boolean(config.assign_when_available);
    const text = config.messages.queue_position;
    $("#tell-position").checked = text !== null && text !== undefined;
    $("#msg-queue-position").value = shown(text);
    $("#queue-update").value = shown(config.queue_update_s);
    const language = config.language_routing;
    $("#prefer-language").checked = Boolean(language && language.prefer);
    $("#language-fallback").value = shown(language && language.fallback_after_s);
    showQueueExample();
  }

  // A number of seconds as typed: empty is absent; anything but digits goes to the API as
  // typed, so that its 422 names the field and says what it wants, like every other refusal.
  function seconds(selector) {
    const typed = $(selector).value.trim();
    if (!typed) return null;
    return /^\d+$/.test(typed) ? Number(typed) : typed;
  }

  function collectQueue() {
    const out = {
      pickup_timeout_s: seconds("#pickup-timeout"),
      assign_when_available: $("#assign-when-available").checked,
    };
    // Left out when empty, so that the default (120 s) applies.
    const every = seconds("#queue-update");
    if (every !== null) out.queue_update_s = every;
    if ($("#prefer-language").checked) {
      const after = seconds("#language-fallback");
      out.language_routing = after === null ? { prefer: true } : { prefer: true, fallback_after_s: after };
    } else {
      out.language_routing = null;
    }
    return out;
  }

  // The message as the third in line would read it with a 6-minute estimate. Only the plain
  // substitution is shown here: what is left out without an estimate is the core's to decide.
  function showQueueExample() {
    const text = $("#msg-queue-position").value;
    $("#queue-example").textContent = text.includes("{position}")
      ? "Example, third in line with an estimate of 6 minutes: \u201c"
        + text.split("{position}").join("3").split("{wait_minutes}").join("6") + "\u201d"
      : "";
  }

  function offerQueueText() {
    // Ticking the box with no text yet starts from a sentence that uses both placeholders.
    const box = $("#msg-queue-position");
    if ($("#tell-position").checked && !box.value.trim()) {
      box.value = "You are number {position} in line (about {wait_minutes} minutes).";
      showQueueExample();
    }
  }

  function collect() {
    const mode = currentMode();
    const routing = mode === "workflow"
      ? Object.assign({ mode, workflow_id: $("#workflow").value },
        $("#helpdesk").value ? { destination: $("#helpdesk").value } : {})
      : {
        mode,
        destination: $("#destination").value || null,
        assignees: $$("input[name=assignee]:checked").map((box) => {
          const [type, ...rest] = box.value.split(":");
          return { type, id: rest.join(":") };
        }),
      };
    return {
      custom_triggers: $$("#trigger-list input").map((input) => input.value),
      process: currentProcess(),
      routing,
      messages: {
        available: $("#msg-available").value,
        unavailable: $("#msg-unavailable").value,
        unassigned: $("#msg-unassigned").value,
        // null: no place-in-line messages are sent.
        queue_position: $("#tell-position").checked ? $("#msg-queue-position").value : null,
      },
      unassigned_chat: form.querySelector("input[name=unassigned_chat]:checked").value,
      ...collectQueue(),
    };
  }

  // -- actions ------------------------------------------------------------------------------

  async function load() {
    clearErrors();
    $("#status").textContent = "";
    if (!account()) { showErrors({ error: "Enter the account ID." }, "connection"); return; }
    sessionStorage.setItem("handoff-token", $("#token").value.trim());
    const url = new URL(window.location.href);
    url.searchParams.set("account", account());
    window.history.replaceState(null, "", url);
    const [opts, current] = await Promise.all([call("GET", "/options"), call("GET", "")]);
    const failed = [opts, current].find((r) => r.status !== 200);
    if (failed) {
      form.hidden = true;
      showErrors({ error: failed.body.error, errors: [] }, "connection");
      return;
    }
    options = opts.body;
    render(current.body, current.etag);
    form.hidden = false;
  }

  async function save(event) {
    event.preventDefault();
    clearErrors();
    $("#status").textContent = "Saving…";
    $("#save").disabled = true;
    try {
      const result = await call("PUT", "", collect(), loadedTag ? { "If-Match": loadedTag } : {});
      if (result.status === 200) {
        render(result.body, result.etag);
        $("#status").textContent = "Saved: version " + result.body.version;
      } else if (result.status === 412) {
        // Someone else saved since this form was loaded: say who and when, offer a reload.
        const doc = result.body;
        $("#status").textContent = "Not saved (412)";
        $("#conflict-text").textContent = "Changed by " + (doc.actor || "someone") + " at "
          + (doc.updated_at || "an unknown time") + " since you loaded it (now version "
          + doc.version + "). Your changes were not saved.";
        $("#conflict").hidden = false;
      } else {
        $("#status").textContent = "Not saved (" + result.status + ")";
        showErrors(result.body, result.status === 422 ? "" : "connection");
      }
    } finally {
      $("#save").disabled = false;
    }
  }

  // -- impact preview -----------------------------------------------------------------------

  const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

  function assigneeName(id) {
    const who = options.users.find((u) => u.id === id) || options.teams.find((t) => t.id === id);
    return who && who.name !== id ? who.name + " (" + id + ")" : id;
  }

  function impactRows(doc) {
    const r = doc.recorded;
    const p = doc.proposed;
    const rows = [
      { label: "Handoffs", a: r.handoffs, b: p.handoffs, chart: true },
      { label: "Left unassigned", a: r.unassigned, b: p.unassigned, chart: true },
      { label: "Tickets created", a: r.tickets, b: p.tickets, chart: true },
    ];
    const groups = [["By trigger", "by_trigger", (k) => k.replace(/_/g, " ")],
      ["By assignee", "by_assignee", assigneeName]];
    groups.forEach(([title, key, name]) => {
      const keys = Array.from(new Set([...Object.keys(r[key]), ...Object.keys(p[key])])).sort();
      if (!keys.length) return;
      rows.push({ group: title });
      keys.forEach((k) => rows.push({ label: name(k), a: r[key][k] || 0, b: p[key][k] || 0,
        indent: true, chart: key === "by_trigger" }));
    });
    return rows;
  }

  function renderImpact(doc) {
    $("#impact-range").textContent = "Recorded traffic from " + doc.range.from + " to "
      + doc.range.to + " (" + doc.range.records + " records of the account).";
    $("#impact-changed").textContent = "Conversations whose outcome changes: "
      + doc.changed_conversations;
    const body = $("#impact-table tbody");
    body.replaceChildren();
    const rows = impactRows(doc);
    rows.forEach((row) => {
      const tr = document.createElement("tr");
      if (row.group) {
        tr.className = "group";
        const td = document.createElement("td");
        td.colSpan = 4;
        td.textContent = row.group;
        tr.append(td);
      } else {
        const change = row.b - row.a;
        [row.label, row.a, row.b, change > 0 ? "+" + change : String(change)].forEach((v, i) => {
          const td = document.createElement("td");
          td.textContent = v;
          if (i === 0 && row.indent) td.className = "indent";
          if (i === 3 && change) td.className = change > 0 ? "up" : "down";
          tr.append(td);
        });
      }
      body.append(tr);
    });
    // A bar chart of the same counts: recorded (grey) above proposed (orange).
    const ns = "http://www.w3.org/2000/svg";
    const chart = $("#impact-chart");
    chart.replaceChildren();
    const bars = rows.filter((row) => row.chart);
    const most = Math.max(1, ...bars.flatMap((row) => [row.a, row.b]));
    const left = 170;
    const span = 640 - left - 50;
    bars.forEach((row, i) => {
      const y = 6 + i * 40;
      const label = document.createElementNS(ns, "text");
      label.setAttribute("x", "0");
      label.setAttribute("y", String(y + 19));
      label.textContent = row.label;
      chart.append(label);
      [["recorded", row.a, 0], ["proposed", row.b, 16]].forEach(([kind, value, dy]) => {
        const rect = document.createElementNS(ns, "rect");
        rect.setAttribute("class", kind);
        rect.setAttribute("x", String(left));
        rect.setAttribute("y", String(y + dy));
        rect.setAttribute("height", "14");
        rect.setAttribute("width", String(Math.max(value ? 2 : 0, Math.round(span * value / most))));
        const tip = document.createElementNS(ns, "title");
        tip.textContent = row.label + ", " + kind + ": " + value;
        rect.append(tip);
        const count = document.createElementNS(ns, "text");
        count.setAttribute("x", String(left + Math.round(span * value / most) + 6));
        count.setAttribute("y", String(y + dy + 12));
        count.textContent = String(value);
        chart.append(rect, count);
      });
    });
    chart.setAttribute("height", String(12 + bars.length * 40));
    $("#impact").hidden = false;
  }

  async function preview() {
    clearErrors();
    $("#status").textContent = "Previewing…";
    $("#preview").disabled = true;
    try {
      let result = await call("POST", "/preview", { config: collect() });
      while (result.status === 202) {
        $("#status").textContent = "Previewing… (a long range: still running)";
        await sleep(1000);
        result = await call("GET", "", undefined, {}, result.body.poll);
      }
      if (result.status === 200) {
        renderImpact(result.body);
        $("#status").textContent = "Preview ready: nothing was saved";
      } else {
        $("#status").textContent = "No preview (" + result.status + ")";
        const doc = result.body || { error: "no answer", errors: [] };
        const errors = (doc.errors || []).map((e) => ({
          field: e.field.startsWith("config.") ? e.field.slice(7) : (e.field === "config" ? "" : e.field),
          message: e.message }));
        showErrors({ error: doc.error, errors }, result.status === 422 ? "" : "connection");
      }
    } finally {
      $("#preview").disabled = false;
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const params = new URLSearchParams(window.location.search);
    $("#account").value = params.get("account") || "";
    $("#token").value = sessionStorage.getItem("handoff-token") || "";
    $("#load").addEventListener("click", load);
    $("#add-trigger").addEventListener("click", () => addTrigger("").focus());
    $("#reload").addEventListener("click", load);
    $("#preview").addEventListener("click", preview);
    form.addEventListener("change", refreshVisibility);
    $("#tell-position").addEventListener("change", offerQueueText);
    $("#msg-queue-position").addEventListener("input", showQueueExample);
    form.addEventListener("submit", save);
    if (account() && $("#token").value) load();
  });
})();
