// The reviewer workspace: shows one task at a time, keyboard first, and never loses work.
//
// - Tasks come from the API; the next one is always fetched ahead, so submit -> next is instant.
// - Answers name responses by id. Positions on screen are only for display and keys.
// - Drafts live in localStorage until the server confirms the submission; a submission is
//   queued in localStorage before it is sent and re-sent (same client id) after a failure or
//   a reload, so a flaky network never loses or doubles an answer.
// - Response and prompt HTML arrives sanitized from the server (labeling/rendering.py).

const config = JSON.parse(document.getElementById("workspace-config").textContent);
const questions = config.campaign.questions;
const csrfToken = document.querySelector('meta[name="csrf-token"]').content;
const PENDING_KEY = `rlhf-pending-${config.campaign.id}`;
const draftKey = (assignmentId) => `rlhf-draft-${assignmentId}`;
const LETTERS = "ABCDEFGHIJKLMNOP";
const PRELOAD = 2; // tasks held at once: the one shown and the next one

const $ = (id) => document.getElementById(id);
const ui = {
  root: $("workspace"),
  task: $("ws-task"),
  done: $("ws-done"),
  prompt: $("ws-prompt"),
  responses: $("ws-responses"),
  questions: $("ws-questions"),
  errors: $("ws-errors"),
  status: $("ws-status"),
  doneToday: $("done-today"),
  left: $("left-in-campaign"),
  guidelines: $("guidelines"),
  help: $("help"),
  skip: $("skip-dialog"),
};

const state = {
  queue: [], // payloads waiting to be shown, current first
  current: null,
  answers: null,
  rankingTouched: false,
  selectedRank: 0,
  shownAt: 0,
  visibleMs: 0,
  fetching: false,
  exhausted: false,
  saving: null, // the submission being sent, if any
};

// --- API ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    super((body && body.detail) || `Request failed (${status})`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken, Accept: "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const urlFor = (template, id) => template.replace("{id}", String(id));

// --- status line ---------------------------------------------------------------------------

let statusTimer = null;
function say(message, kind = "info", sticky = false) {
  ui.status.textContent = message;
  ui.status.dataset.kind = kind;
  clearTimeout(statusTimer);
  if (!sticky) statusTimer = setTimeout(() => (ui.status.textContent = ""), 5000);
}

// --- task flow -----------------------------------------------------------------------------

async function fillQueue() {
  if (state.fetching || state.exhausted) return;
  state.fetching = true;
  try {
    while (state.queue.length + (state.current ? 1 : 0) < PRELOAD) {
      const payload = await api("POST", config.api.next);
      if (payload === null) {
        state.exhausted = true;
        break;
      }
      state.queue.push(payload);
      if (!state.current) showNext();
    }
  } catch (error) {
    say(error.message, "error", true);
  } finally {
    state.fetching = false;
  }
  if (!state.current && !state.queue.length) showDone();
}

function showDone() {
  ui.task.hidden = true;
  ui.done.hidden = false;
  ui.root.dataset.state = "done";
}

function showNext() {
  state.current = state.queue.shift() || null;
  if (!state.current) {
    if (state.exhausted) showDone();
    else fillQueue();
    return;
  }
  renderTask(state.current);
}

function restoreDraft(payload) {
  const saved = localStorage.getItem(draftKey(payload.assignment_id));
  if (saved) {
    try {
      const draft = JSON.parse(saved);
      return { answers: draft.answers || {}, rankingTouched: !!draft.rankingTouched };
    } catch {
      localStorage.removeItem(draftKey(payload.assignment_id));
    }
  }
  const previous = payload.previous_answers;
  return { answers: previous ? structuredClone(previous) : {}, rankingTouched: !!previous };
}

function saveDraft() {
  if (!state.current) return;
  const draft = { answers: state.answers, rankingTouched: state.rankingTouched };
  localStorage.setItem(draftKey(state.current.assignment_id), JSON.stringify(draft));
}

function renderTask(payload) {
  ui.done.hidden = true;
  ui.task.hidden = false;
  ui.root.dataset.state = "task";
  ui.errors.textContent = "";
  ({ answers: state.answers, rankingTouched: state.rankingTouched } = restoreDraft(payload));
  state.selectedRank = 0;
  state.shownAt = performance.now();
  state.visibleMs = 0;

  ui.prompt.replaceChildren(
    ...payload.prompt.map((message) => {
      const bubble = document.createElement("div");
      bubble.className = `message message-${message.role}`;
      const role = document.createElement("div");
      role.className = "message-role";
      role.textContent = message.role;
      const body = document.createElement("div");
      body.className = "markdown";
      body.innerHTML = message.html; // sanitized on the server
      bubble.append(role, body);
      return bubble;
    }),
  );
  renderResponses();
  renderQuestions();
  window.scrollTo({ top: 0 });
}

function responseLabel(index) {
  return `Response ${LETTERS[index]}`;
}

function rankingQuestion() {
  return questions.find((q) => q.type === "ranking");
}

function currentRanking() {
  const q = rankingQuestion();
  if (!q) return null;
  if (!state.answers[q.id]) state.answers[q.id] = { order: state.current.responses.map((r) => [r.id]) };
  return state.answers[q.id].order;
}

function renderResponses() {
  const responses = state.current.responses;
  const ranking = currentRanking();
  ui.responses.className = `ws-responses ${responses.length === 2 && !ranking ? "side-by-side" : "stacked"}`;
  const byId = new Map(responses.map((r, index) => [r.id, { response: r, index }]));
  const cards = [];
  const ordered = ranking ? ranking.flat() : responses.map((r) => r.id);
  ordered.forEach((id, position) => {
    const { response, index } = byId.get(id);
    const card = document.createElement("article");
    card.className = "response-card";
    card.dataset.responseId = String(id);
    const head = document.createElement("header");
    const title = document.createElement("span");
    title.className = "response-label";
    title.textContent = responseLabel(index);
    head.append(title);
    if (ranking) {
      const groupIndex = ranking.findIndex((group) => group.includes(id));
      const tiedWithAbove = groupIndex === ranking.findIndex((group) => group.includes(ordered[position - 1]));
      const rank = document.createElement("span");
      rank.className = "rank-badge";
      rank.textContent = `#${groupIndex + 1}${tiedWithAbove && position > 0 ? " (tie)" : ""}`;
      head.prepend(rank);
      card.draggable = true;
      card.tabIndex = 0;
      card.classList.toggle("selected", position === state.selectedRank);
      card.classList.toggle("tied", tiedWithAbove && position > 0);
      card.setAttribute("aria-label", `${responseLabel(index)}, rank ${groupIndex + 1}`);
      attachDrag(card);
      card.addEventListener("click", () => {
        state.selectedRank = position;
        markSelected();
      });
    }
    const body = document.createElement("div");
    body.className = "markdown";
    body.innerHTML = response.html; // sanitized on the server
    card.append(head, body);
    cards.push(card);
  });
  ui.responses.replaceChildren(...cards);
}

function markSelected() {
  [...ui.responses.children].forEach((card, position) =>
    card.classList.toggle("selected", position === state.selectedRank),
  );
}

// --- ranking edits ---------------------------------------------------------------------------

function setRankingOrder(ids, ties) {
  // ids: flat order; ties: Set of ids tied with the one above them
  const q = rankingQuestion();
  const groups = [];
  ids.forEach((id, position) => {
    if (position > 0 && ties.has(id) && q.allow_ties) groups[groups.length - 1].push(id);
    else groups.push([id]);
  });
  state.answers[q.id] = { order: groups };
  state.rankingTouched = true;
  saveDraft();
  renderResponses();
  renderQuestions();
}

function rankingTies() {
  const ties = new Set();
  currentRanking().forEach((group) => group.slice(1).forEach((id) => ties.add(id)));
  return ties;
}

function moveRanked(from, to) {
  const ids = currentRanking().flat();
  if (to < 0 || to >= ids.length || from === to) return;
  const ties = rankingTies();
  const [moved] = ids.splice(from, 1);
  ties.delete(moved);
  ids.splice(to, 0, moved);
  state.selectedRank = to;
  setRankingOrder(ids, ties);
}

function toggleTieWithAbove() {
  const q = rankingQuestion();
  if (!q.allow_ties || state.selectedRank === 0) {
    if (!q.allow_ties) say("This question does not allow ties.");
    return;
  }
  const ids = currentRanking().flat();
  const ties = rankingTies();
  const id = ids[state.selectedRank];
  if (ties.has(id)) ties.delete(id);
  else ties.add(id);
  setRankingOrder(ids, ties);
}

let dragFrom = null;
function attachDrag(card) {
  card.addEventListener("dragstart", (event) => {
    dragFrom = [...ui.responses.children].indexOf(card);
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.responseId);
    card.classList.add("dragging");
  });
  card.addEventListener("dragend", () => card.classList.remove("dragging"));
  card.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
  });
  card.addEventListener("drop", (event) => {
    event.preventDefault();
    const to = [...ui.responses.children].indexOf(card);
    if (dragFrom !== null) moveRanked(dragFrom, to);
    dragFrom = null;
  });
}

// --- questions -------------------------------------------------------------------------------

function pairwiseScale(q) {
  // Positions left to right: A much better ... A better, [tie], B better ... B much better.
  const levels = q.strength_labels.length;
  const scale = [];
  for (let s = levels; s >= 1; s--) scale.push({ winner: 0, strength: s, label: `A ${q.strength_labels[s - 1]}` });
  if (q.allow_tie) scale.push({ winner: null, strength: 0, label: "Tie" });
  for (let s = 1; s <= levels; s++) scale.push({ winner: 1, strength: s, label: `B ${q.strength_labels[s - 1]}` });
  return scale;
}

function field(tag, attributes = {}, text = "") {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, value);
  if (text) element.textContent = text;
  return element;
}

function renderQuestions() {
  const blocks = questions.map((q) => {
    const block = field("fieldset", { class: `question question-${q.type}`, "data-question": q.id });
    block.append(field("legend", {}, q.label + (q.required ? "" : " (optional)")));
    RENDERERS[q.type](q, block);
    block.append(field("div", { class: "field-error", "data-error-for": q.id }));
    return block;
  });
  ui.questions.replaceChildren(...blocks);
}

const RENDERERS = {
  pairwise(q, block) {
    const responses = state.current.responses;
    const answer = state.answers[q.id];
    const row = field("div", { class: "scale", role: "radiogroup", "aria-label": q.label });
    pairwiseScale(q).forEach((option, index) => {
      const winnerId = option.winner === null ? null : responses[option.winner].id;
      const pressed = answer && answer.winner === winnerId && answer.strength === option.strength;
      const button = field("button", { type: "button", class: "scale-option", "aria-pressed": String(!!pressed) });
      button.append(field("kbd", {}, String(index + 1)), document.createTextNode(` ${option.label}`));
      button.addEventListener("click", () => choosePairwise(q, index));
      row.append(button);
    });
    block.append(row);
    if (q.allow_both_bad) {
      const label = field("label", { class: "inline" });
      const box = field("input", { type: "checkbox", "data-both-bad": q.id });
      box.checked = !!(answer && answer.both_bad);
      box.addEventListener("change", () => toggleBothBad(q, box.checked));
      label.append(box, document.createTextNode(" Both responses are bad "), field("kbd", {}, "B"));
      block.append(label);
    }
  },
  ranking(q, block) {
    const hint = field(
      "p",
      { class: "hint" },
      state.rankingTouched
        ? "Order recorded. Drag cards or use Shift+↑/↓ to change it."
        : "Drag the responses into order (best first), or use ↑/↓ and Shift+↑/↓. Press O to keep the shown order.",
    );
    block.append(hint);
  },
  likert(q, block) {
    const table = field("table", { class: "likert" });
    const head = field("tr");
    head.append(field("th", {}, ""));
    state.current.responses.forEach((_, index) => head.append(field("th", {}, responseLabel(index))));
    table.append(head);
    const scaleLabels = q.scale.labels || {};
    q.aspects.forEach((aspect) => {
      const row = field("tr");
      row.append(field("th", { scope: "row" }, aspect.label));
      state.current.responses.forEach((response, index) => {
        const cell = field("td");
        const select = field("select", {
          "aria-label": `${aspect.label}, ${responseLabel(index)}`,
          "data-likert": `${q.id}:${response.id}:${aspect.id}`,
        });
        select.append(field("option", { value: "" }, "–"));
        for (let point = q.scale.min; point <= q.scale.max; point++) {
          const label = scaleLabels[String(point)] ? `${point} · ${scaleLabels[String(point)]}` : String(point);
          select.append(field("option", { value: String(point) }, label));
        }
        const current = state.answers[q.id]?.[String(response.id)]?.[aspect.id];
        select.value = current === undefined ? "" : String(current);
        select.addEventListener("change", () => {
          const answer = (state.answers[q.id] ||= {});
          const scores = (answer[String(response.id)] ||= {});
          if (select.value === "") delete scores[aspect.id];
          else scores[aspect.id] = Number(select.value);
          saveDraft();
        });
        cell.append(select);
        row.append(cell);
      });
      table.append(row);
    });
    block.append(table);
  },
  text(q, block) {
    const area = field("textarea", { rows: "3", maxlength: String(q.max_length), "data-text": q.id });
    area.value = state.answers[q.id] || "";
    area.addEventListener("input", () => {
      state.answers[q.id] = area.value;
      saveDraft();
    });
    block.append(area);
  },
  rewrite(q, block) {
    const responses = state.current.responses;
    const answer = state.answers[q.id];
    const select = field("select", { "aria-label": "Response to rewrite", "data-rewrite-of": q.id });
    select.append(field("option", { value: "" }, "Choose a response to rewrite…"));
    responses.forEach((response, index) => select.append(field("option", { value: String(response.id) }, responseLabel(index))));
    const area = field("textarea", { rows: "6", maxlength: String(q.max_length), "data-rewrite": q.id });
    select.value = answer ? String(answer.response) : "";
    area.value = answer ? answer.text : "";
    area.disabled = !answer;
    select.addEventListener("change", () => {
      const response = responses.find((r) => String(r.id) === select.value);
      area.disabled = !response;
      area.value = response ? response.text : "";
      if (response) state.answers[q.id] = { response: response.id, text: response.text };
      else delete state.answers[q.id];
      saveDraft();
    });
    area.addEventListener("input", () => {
      state.answers[q.id] = { response: Number(select.value), text: area.value };
      saveDraft();
    });
    block.append(select, area);
  },
  flags(q, block) {
    const grid = field("div", { class: "flags" });
    state.current.responses.forEach((response, index) => {
      const column = field("div", { class: "flag-column" });
      column.append(field("strong", {}, responseLabel(index)));
      q.options.forEach((option) => {
        const label = field("label", { class: "inline" });
        const box = field("input", { type: "checkbox", "data-flag": `${q.id}:${response.id}:${option.id}` });
        box.checked = (state.answers[q.id]?.[String(response.id)] || []).includes(option.id);
        box.addEventListener("change", () => {
          const answer = (state.answers[q.id] ||= {});
          const flags = new Set(answer[String(response.id)] || []);
          if (box.checked) flags.add(option.id);
          else flags.delete(option.id);
          answer[String(response.id)] = [...flags];
          saveDraft();
        });
        label.append(box, document.createTextNode(` ${option.label}`));
        column.append(label);
      });
      grid.append(column);
    });
    block.append(grid);
  },
};

function choosePairwise(q, index) {
  const option = pairwiseScale(q)[index];
  if (!option) return;
  const previous = state.answers[q.id] || {};
  state.answers[q.id] = {
    winner: option.winner === null ? null : state.current.responses[option.winner].id,
    strength: option.strength,
    both_bad: !!previous.both_bad,
  };
  saveDraft();
  renderQuestions();
}

function toggleBothBad(q, value) {
  const answer = state.answers[q.id] || { winner: undefined, strength: undefined };
  answer.both_bad = value ?? !answer.both_bad;
  state.answers[q.id] = answer;
  saveDraft();
  renderQuestions();
}

// --- submit, skip, undo ------------------------------------------------------------------------

function missingAnswers() {
  const missing = {};
  for (const q of questions) {
    const answer = state.answers[q.id];
    if (q.type === "ranking" && !state.rankingTouched) missing[q.id] = "Put the responses in order (O keeps the shown order).";
    else if (q.type === "pairwise" && answer && answer.strength === undefined && q.required)
      missing[q.id] = "Choose which response is better.";
    else if (q.required && (answer === undefined || answer === "" || (typeof answer === "object" && !Object.keys(answer).length)))
      missing[q.id] = "This question needs an answer.";
    else if (q.type === "likert" && q.required) {
      for (const response of state.current.responses)
        for (const aspect of q.aspects)
          if (answer?.[String(response.id)]?.[aspect.id] === undefined) missing[q.id] = "Score every response on every aspect.";
    }
  }
  return missing;
}

function showErrors(errors, message) {
  ui.errors.textContent = message || "";
  ui.questions.querySelectorAll("[data-error-for]").forEach((element) => (element.textContent = ""));
  for (const [path, text] of Object.entries(errors || {})) {
    const questionId = path.split(".")[0];
    const target = ui.questions.querySelector(`[data-error-for="${CSS.escape(questionId)}"]`);
    if (target) target.textContent = target.textContent ? `${target.textContent} ${text}` : text;
  }
}

function cleanedAnswers() {
  const answers = structuredClone(state.answers);
  for (const q of questions) {
    const answer = answers[q.id];
    if (answer === undefined) continue;
    if (q.type === "pairwise" && answer.strength === undefined) delete answers[q.id];
    if (q.type === "text" && !answer.trim()) delete answers[q.id];
    if (q.type === "rewrite" && (!answer.text || !answer.text.trim())) delete answers[q.id];
  }
  return answers;
}

function pendingSubmissions() {
  try {
    return JSON.parse(localStorage.getItem(PENDING_KEY) || "[]");
  } catch {
    return [];
  }
}

function setPending(list) {
  localStorage.setItem(PENDING_KEY, JSON.stringify(list));
}

function dropPending(item) {
  setPending(pendingSubmissions().filter((p) => p.body.client_submission_id !== item.body.client_submission_id));
}

// With claimNext the server also holds the next task and returns it (one round trip per task).
async function sendSubmission(item, claimNext = false) {
  const body = claimNext ? { ...item.body, claim_next: true } : item.body;
  for (let attempt = 0; ; attempt++) {
    try {
      const saved = await api("POST", urlFor(config.api.submit, item.assignment_id), body);
      dropPending(item);
      localStorage.removeItem(draftKey(item.assignment_id));
      return { ok: true, next: saved?.next ?? null };
    } catch (error) {
      if (error instanceof ApiError) {
        // The server answered: retrying the same request would get the same answer.
        dropPending(item);
        return { ok: false, error };
      }
      // Network trouble: the same submission id makes the retry safe.
      say(`Saving your answer… retrying (${attempt + 1})`, "warning", true);
      await new Promise((resolve) => setTimeout(resolve, Math.min(30000, 500 * 2 ** attempt)));
    }
  }
}

async function submit() {
  if (!state.current) return;
  const missing = missingAnswers();
  if (Object.keys(missing).length) {
    showErrors(missing, "Some answers are missing.");
    return;
  }
  const payload = state.current;
  const item = {
    assignment_id: payload.assignment_id,
    payload,
    answers: structuredClone(state.answers),
    body: {
      answers: cleanedAnswers(),
      client_submission_id: crypto.randomUUID(),
      time_spent_ms: Math.round(visibleTime()),
    },
  };
  setPending([...pendingSubmissions(), { assignment_id: item.assignment_id, body: item.body }]);
  // Show the next task at once; the answer is saved in the background, and the same request
  // holds the task to preload after it when the queue is short of one.
  state.current = null;
  showNext();
  const claimNext = !state.exhausted && !state.fetching && state.queue.length + (state.current ? 1 : 0) < PRELOAD;
  if (!claimNext) fillQueue();
  const saving = sendSubmission(item, claimNext);
  state.saving = saving;
  const result = await saving;
  if (state.saving === saving) state.saving = null;
  if (result.ok) {
    if (result.next) {
      state.queue.push(result.next);
      if (!state.current) showNext();
    } else if (claimNext) {
      fillQueue(); // nothing was held: next/ says whether anything is left
    }
    say("Saved.", "ok");
    refreshProgress();
    return;
  }
  if (claimNext) fillQueue();
  if (result.error.status === 400) {
    // Bring the task back with the server's field errors.
    localStorage.setItem(draftKey(item.assignment_id), JSON.stringify({ answers: item.answers, rankingTouched: true }));
    if (state.current) state.queue.unshift(state.current);
    state.current = null;
    state.queue.unshift(payload);
    showNext();
    showErrors(result.error.body.errors, result.error.message);
  } else {
    localStorage.removeItem(draftKey(item.assignment_id));
    say(result.error.message, "error", true);
  }
}

function visibleTime() {
  return state.visibleMs + (document.hidden ? 0 : performance.now() - state.shownAt);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) state.visibleMs += performance.now() - state.shownAt;
  else state.shownAt = performance.now();
});

async function skip(reason) {
  const payload = state.current;
  if (!payload) return;
  try {
    await api("POST", urlFor(config.api.skip, payload.assignment_id), { reason });
  } catch (error) {
    say(error.message, "error", true);
    return;
  }
  localStorage.removeItem(draftKey(payload.assignment_id));
  state.current = null;
  say("Skipped.");
  showNext();
  fillQueue();
}

async function undo() {
  // An undo right after a submit waits for that answer to be saved (and the next task held).
  if (state.saving) await state.saving;
  if (pendingSubmissions().length) {
    say("Your last answer is still being saved; try again in a moment.");
    return;
  }
  let payload;
  try {
    payload = await api("POST", config.api.undo);
  } catch (error) {
    say(error.message, "error");
    return;
  }
  if (state.current) state.queue.unshift(state.current);
  state.queue = state.queue.filter((p) => p.assignment_id !== payload.assignment_id);
  state.current = payload;
  renderTask(payload);
  say("Your last answer is back; change it and submit again.");
  refreshProgress();
}

async function refreshProgress() {
  try {
    const progress = await api("GET", config.api.progress);
    ui.doneToday.textContent = progress.done_today;
    ui.left.textContent = progress.left_in_campaign;
  } catch {
    // Progress is informative only; the next refresh will catch up.
  }
}

// --- panels --------------------------------------------------------------------------------

function toggle(panel, show = panel.hidden) {
  panel.hidden = !show;
  if (show) panel.querySelector("button, input")?.focus();
}

function openSkipDialog() {
  if (!state.current) return;
  ui.skip.querySelector("form").reset();
  toggle(ui.skip, true);
  ui.skip.querySelector('input[type="radio"]').focus();
}

$("skip-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = event.target;
  const chosen = form.elements.reason.value;
  const reason = chosen === "other" ? form.elements.other.value.trim() : chosen;
  if (!reason) {
    say("Choose or write a reason.", "error");
    return;
  }
  toggle(ui.skip, false);
  skip(reason);
});

document.querySelectorAll("[data-close]").forEach((button) =>
  button.addEventListener("click", () => toggle(button.closest(".overlay, .drawer"), false)),
);
$("btn-submit").addEventListener("click", submit);
$("btn-skip").addEventListener("click", openSkipDialog);
$("btn-undo").addEventListener("click", undo);
$("btn-help").addEventListener("click", () => toggle(ui.help));
$("btn-guidelines").addEventListener("click", () => toggle(ui.guidelines));
$("guidelines-body").innerHTML = config.campaign.guidelines_html || "<p>No guidelines for this campaign.</p>";

// --- keyboard ------------------------------------------------------------------------------

function isTyping(target) {
  return target.matches("textarea, input[type=text], select") || target.isContentEditable;
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    if (ui.skip.hidden) submit();
    return;
  }
  if (event.key === "Escape") {
    const open = [ui.skip, ui.help, ui.guidelines].find((panel) => !panel.hidden);
    if (open) toggle(open, false);
    else if (isTyping(event.target)) event.target.blur();
    return;
  }
  if (!ui.skip.hidden) {
    if (/^[1-4]$/.test(event.key) && !isTyping(event.target)) {
      event.preventDefault();
      const radios = ui.skip.querySelectorAll('input[type="radio"]');
      radios[Number(event.key) - 1].checked = true;
      if (event.key === "4") $("skip-other").focus();
    }
    return;
  }
  if (isTyping(event.target) || event.altKey || event.ctrlKey || event.metaKey) return;
  const key = event.key;
  if (key === "?") return toggle(ui.help), event.preventDefault();
  if (key === "g" || key === "G") return toggle(ui.guidelines), event.preventDefault();
  if (!state.current) return;
  if (key === "s" || key === "S") return openSkipDialog(), event.preventDefault();
  if (key === "u" || key === "U") return undo(), event.preventDefault();

  const pairwise = questions.find((q) => q.type === "pairwise");
  const ranking = rankingQuestion();
  if (pairwise && /^[1-9]$/.test(key)) {
    event.preventDefault();
    choosePairwise(pairwise, Number(key) - 1);
  } else if (pairwise && pairwise.allow_both_bad && (key === "b" || key === "B")) {
    event.preventDefault();
    toggleBothBad(pairwise);
  } else if (ranking) {
    const count = state.current.responses.length;
    if (key === "ArrowDown" || key === "ArrowUp") {
      event.preventDefault();
      const step = key === "ArrowDown" ? 1 : -1;
      if (event.shiftKey) moveRanked(state.selectedRank, state.selectedRank + step);
      else {
        state.selectedRank = Math.max(0, Math.min(count - 1, state.selectedRank + step));
        markSelected();
      }
    } else if (/^[1-9]$/.test(key) && Number(key) <= count) {
      event.preventDefault();
      moveRanked(state.selectedRank, Number(key) - 1);
    } else if (key === "=") {
      event.preventDefault();
      toggleTieWithAbove();
    } else if (key === "o" || key === "O") {
      event.preventDefault();
      state.rankingTouched = true;
      saveDraft();
      renderQuestions();
    }
  }
});

// --- start ---------------------------------------------------------------------------------

async function start() {
  // Answers queued before a reload or a network failure go out first (same ids: no doubles).
  for (const item of pendingSubmissions()) {
    const result = await sendSubmission(item);
    if (!result.ok) say(result.error.message, "error", true);
  }
  try {
    state.queue = await api("GET", config.api.held);
  } catch (error) {
    say(error.message, "error", true);
    return;
  }
  showNext();
  await fillQueue();
  refreshProgress();
}

start();
