// The tinyact run viewer: plain ES modules over the agent API (no build step).
// Data: GET /v1/viewer, GET /v1/runs, GET /v1/runs/{id}, GET /v1/runs/{id}/events (SSE, read
// with fetch so the bearer key travels), POST /v1/runs (background) to start a run.
import hljs from "./vendor/highlight-core.min.js";
import python from "./vendor/highlight-python.min.js";

hljs.registerLanguage("python", python);

const $ = (sel) => document.querySelector(sel);
const state = { key: localStorage.getItem("tinyact-key") || "", info: null, current: null, follow: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("data")) node.setAttribute(k.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase()), v);
    else node[k] = v;
  }
  for (const child of children.flat()) if (child != null) node.append(child);
  return node;
}

function code(text) {
  const block = el("code", { class: "language-python" });
  block.innerHTML = hljs.highlight(text || "", { language: "python" }).value;
  return el("pre", { class: "code" }, block);
}

const text = (v) => (v == null ? "" : typeof v === "string" ? v : JSON.stringify(v));
const secs = (s) => (s == null ? "-" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`);

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  if (options.body) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { ...options, headers });
  if (resp.status === 401) {
    $("#key-form").hidden = false;
    throw new Error("this server needs an API key");
  }
  if (!resp.ok) {
    const body = await resp.json().catch(() => ({}));
    throw new Error(body.error?.message || `${resp.status} ${resp.statusText}`);
  }
  return resp;
}

function notice(message) {
  $("#notice").hidden = !message;
  $("#notice").textContent = message || "";
}

// ------------------------------------------------------------------ the run list

async function loadRuns() {
  const { data } = await (await api("v1/runs?limit=100")).json();
  const list = $("#runs");
  list.replaceChildren(...data.map((r) => el("li", { dataRunId: r.id, class: r.id === state.current ? "selected" : "",
      onclick: () => openRun(r.id) },
    el("span", { class: "task", title: r.task }, r.task),
    el("span", { class: "meta" }, el("span", { class: `badge ${r.status}` }, r.status), ` ${r.steps} step(s)`,
      r.answer != null ? ` · answer ${text(r.answer).slice(0, 40)}` : ""))));
}

// ------------------------------------------------------------------ one run

function candidateCard(c, labels, k) {
  const label = c.outcome_key == null ? "filtered out" : `group ${labels.get(c.outcome_key)} · ${c.group_size}/${k} votes`;
  const r = c.result || {};
  const out = r.error ? `${r.error.type}: ${r.error.message}` : r.called_final_answer ? `final_answer(${text(r.final_answer)})`
    : (r.stdout || "") + (r.value != null ? r.value : "");
  return el("div", { class: `candidate${c.chosen ? " chosen" : ""}${c.outcome_key == null ? " filtered" : ""}`,
      dataCandidate: String(c.index) },
    el("div", { class: "head" }, el("b", {}, `#${c.index}`),
      c.chosen ? el("span", { class: "badge chosen" }, "chosen") : null, el("span", {}, label)),
    c.action?.thought ? el("div", { class: "thought" }, c.action.thought) : null,
    code(c.action?.code || c.text),
    el("pre", { class: `observation${r.error || c.outcome_key == null ? " failed" : ""}` }, out.trim() || "(no output)"));
}

function voteLine(step) {
  const k = step.candidates.length;
  const groups = new Map();
  for (const c of step.candidates) if (c.outcome_key != null) groups.set(c.outcome_key, (groups.get(c.outcome_key) || 0) + 1);
  const labels = new Map([...groups.keys()].map((key, i) => [key, String.fromCharCode(65 + i)]));
  const chosen = step.candidates.find((c) => c.chosen);
  const summary = [...groups].map(([key, n]) => `${labels.get(key)}: ${n}`).join(", ") || "every candidate failed";
  const won = chosen && chosen.outcome_key != null ? `group ${labels.get(chosen.outcome_key)} wins with ${groups.get(chosen.outcome_key)} of ${k}`
    : `no group: candidate #${chosen ? chosen.index : 0} kept`;
  return { labels, node: el("div", { class: "vote" }, `vote over ${k} candidates (${summary}): ${won}`) };
}

function stepCard(step) {
  const u = step.usage || {};
  const card = el("article", { class: "step", dataStep: String(step.index) },
    el("div", { class: "step-head" }, el("h3", {}, `Step ${step.index}`),
      el("span", { class: "muted timings" },
        `model ${secs(step.model_seconds)} · exec ${secs(step.exec_seconds)} · tokens ${u.prompt_tokens ?? 0} in, ${u.completion_tokens ?? 0} out`)));
  if (step.candidates && step.candidates.length > 1) {
    const { labels, node } = voteLine(step);
    card.append(node, el("div", { class: "candidates" }, step.candidates.map((c) => candidateCard(c, labels, step.candidates.length))));
  } else {
    if (step.action?.thought) card.append(el("div", { class: "thought" }, step.action.thought));
    card.append(code(step.action?.code || step.model_output));
  }
  if (step.error) card.append(el("div", { class: "error" }, step.error));
  card.append(el("pre", { class: `observation${step.error ? " failed" : ""}` }, step.observation));
  return card;
}

function renderRun(run) {
  const t = run.trajectory;
  const head = el("div", { class: "run-head" },
    el("h2", {}, run.task),
    el("div", { class: "muted" }, el("span", { class: `badge ${run.status}`, id: "run-status" }, run.status),
      state.info?.mode === "live" && (run.status === "queued" || run.status === "running")
        ? el("button", { id: "cancel", class: "cancel", onclick: () => cancelRun(run.id) }, "Cancel") : null,
      ` ${run.id} · ${run.model}`, run.end_reason ? ` · ${run.end_reason}` : "",
      t ? ` · ${secs(t.seconds)} · ${t.usage.prompt_tokens + t.usage.completion_tokens} tokens · k=${t.samples}` : ""),
    el("div", { class: "answer", id: "answer" }, run.answer != null ? `Answer: ${text(run.answer)}` : run.error ? run.error : ""));
  $("#run").replaceChildren(head, el("div", { id: "steps" }, run.steps.map(stepCard)));
}

async function openRun(id) {
  if (state.follow) state.follow.abort();
  state.current = id;
  document.querySelectorAll("#runs li").forEach((li) => li.classList.toggle("selected", li.dataset.runId === id));
  const run = await (await api(`v1/runs/${id}`)).json();
  renderRun(run);
  if (run.status === "queued" || run.status === "running") follow(id);
}

// ------------------------------------------------------------------ live updates

async function* sse(path, signal) {
  const resp = await api(path, { signal });
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = "message", data = "";
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data += line.slice(5).trim();
      }
      if (data) yield [event, JSON.parse(data)];
    }
  }
}

async function follow(id) {
  const controller = new AbortController();
  state.follow = controller;
  const steps = () => $("#steps");
  let live = null;
  try {
    for await (const [kind, data] of sse(`v1/runs/${id}/events`, controller.signal)) {
      if (state.current !== id) return;
      if (kind === "token") {
        if (!live || live.dataset.liveStep !== String(data.step)) {
          live?.remove();
          const note = data.of > 1 ? ` (candidate ${data.candidate} of ${data.of}; the vote may pick another)` : "";
          live = el("article", { class: "step live", dataLiveStep: String(data.step) },
            el("h3", {}, `Step ${data.step}: generating${note}`), el("pre", { class: "tokens" }));
          steps().append(live);
        }
        live.querySelector("pre").textContent += data.text;
      } else if (kind === "step") {
        live?.remove();
        live = null;
        if (!steps().querySelector(`[data-step="${data.index}"]`)) steps().append(stepCard(data));
        $("#run-status").textContent = "running";
      } else if (kind === "final" || kind === "error") {
        live?.remove();
        await openRun(id);
        await loadRuns();
        return;
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") notice(e.message);
  }
}

async function cancelRun(id) {
  try {
    await api(`v1/runs/${id}`, { method: "DELETE" });  // its sandbox is killed; the final event follows
  } catch (e) {
    notice(e.message);
  }
}

// ------------------------------------------------------------------ start a run

async function startRun(event) {
  event.preventDefault();
  notice("");
  const body = { task: $("#task").value, samples: Number($("#samples").value), max_steps: Number($("#max-steps").value),
    background: true, tokens: true };
  try {
    const run = await (await api("v1/runs", { method: "POST", body: JSON.stringify(body) })).json();
    await loadRuns();
    await openRun(run.id);
  } catch (e) {
    notice(e.message);
  }
}

async function main() {
  try {
    state.info = await (await api("v1/viewer")).json();
    $("#source").textContent = state.info.mode === "file" ? `saved runs: ${state.info.source}` : `live: ${state.info.model}`;
    $("#new-run").hidden = state.info.mode === "file";
    $("#samples").max = state.info.max_samples || 32;
    await loadRuns();
    const wanted = new URLSearchParams(location.search).get("run");
    if (wanted) await openRun(wanted);
  } catch (e) {
    notice(e.message);
  }
}

$("#new-run").addEventListener("submit", startRun);
$("#key-form").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("#key").value.trim();
  localStorage.setItem("tinyact-key", state.key);
  $("#key-form").hidden = true;
  notice("");
  main();
});
main();
