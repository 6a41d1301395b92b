// Manager pages: schema presets, upload and import progress for imports, confirmations.
// Every page works without this script; it only makes them quicker to use.

function initSchemaEditor(editor) {
  const textarea = editor.querySelector("textarea");
  const status = editor.querySelector("[data-json-status]");
  const presetsElement = document.getElementById("schema-presets");
  if (!textarea || !presetsElement) return;
  const presets = JSON.parse(presetsElement.textContent);
  const presetTexts = new Set(Object.values(presets).map((preset) => JSON.stringify(preset, null, 2)));

  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("error", isError);
  };

  editor.querySelectorAll("[data-preset]").forEach((button) => {
    button.addEventListener("click", () => {
      const current = textarea.value.trim();
      // Ask before throwing away a schema the manager wrote by hand.
      if (current && !presetTexts.has(current) && !window.confirm("Replace the current schema with this preset?")) {
        return;
      }
      textarea.value = JSON.stringify(presets[button.dataset.preset], null, 2);
      textarea.focus();
      say(`Inserted the “${button.dataset.preset}” preset.`);
    });
  });

  const formatButton = editor.querySelector("[data-format-json]");
  formatButton?.addEventListener("click", () => {
    try {
      textarea.value = JSON.stringify(JSON.parse(textarea.value), null, 2);
      say("The JSON is well formed. The questions are checked when you save.");
    } catch (error) {
      say(`Not valid JSON: ${error.message}`, true);
    }
  });
}

function formatBytes(bytes) {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KiB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
}

function element(tag, attributes = {}, text = "") {
  const node = document.createElement(tag);
  Object.entries(attributes).forEach(([name, value]) => node.setAttribute(name, value));
  // textContent only: row reasons can quote the uploaded file.
  if (text !== "") node.textContent = text;
  return node;
}

function showImported(container, counts) {
  const box = element("div", { class: "result-ok" });
  const heading = element("p");
  heading.append(element("strong", {}, "Imported."));
  const list = element("ul", { class: "counts" });
  for (const [key, label] of [
    ["created", "created"],
    ["skipped_duplicates", "skipped duplicates"],
    ["prompt_only", "prompt-only"],
  ]) {
    const item = element("li");
    item.append(element("span", { class: "count-value", "data-count": key }, String(counts[key])), ` ${label}`);
    list.append(item);
  }
  box.append(heading, list);
  if (container.dataset.campaignUrl) {
    const back = element("p");
    back.append(element("a", { href: container.dataset.campaignUrl }, "Back to the campaign"));
    box.append(back);
  }
  container.replaceChildren(box);
}

// errors: the API's error shape, {"line 3": "reason", ...} for an import.
function showRejected(container, detail, errors) {
  const rowErrors = Object.entries(errors).map(([where, reason]) => ({ line: where.replace(/^line /, ""), reason }));
  const box = element("div", { class: "result-error", role: "alert" });
  const heading = element("p");
  heading.append(element("strong", {}, detail));
  box.append(heading);
  if (rowErrors.length) {
    const table = element("table", { class: "data row-errors" });
    const head = element("thead");
    const headRow = element("tr");
    headRow.append(element("th", { scope: "col", class: "num" }, "Line"), element("th", { scope: "col" }, "Problem"));
    head.append(headRow);
    const body = element("tbody");
    for (const row of rowErrors) {
      const tr = element("tr");
      tr.append(element("td", { class: "num" }, String(row.line)), element("td", {}, row.reason));
      body.append(tr);
    }
    table.append(head, body);
    box.append(table);
  }
  box.append(element("p", { class: "muted" }, "Fix the file and upload it again."));
  container.replaceChildren(box);
}

const JOB_POLL_MS = 500;

// Follows an import job through the API until it ends: the bar shows the share of the file checked.
function followJob(accepted, { progress, progressText, result, finish }) {
  const jobLink = () => {
    const paragraph = element("p", { class: "muted" });
    paragraph.append(element("a", { href: accepted.page }, "The import's page"));
    return paragraph;
  };
  let failures = 0;
  async function look() {
    let job = null;
    try {
      const response = await fetch(accepted.url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (response.ok && !response.redirected) job = await response.json();
    } catch {
      job = null;
    }
    if (job === null) {
      failures += 1;
      if (failures >= 20) {
        finish();
        showRejected(result, "Lost track of the import (the server does not answer). Its page tells how it ends.", {});
        result.append(jobLink());
        return;
      }
    } else if (job.status === "succeeded") {
      finish();
      showImported(result, job.result);
      return;
    } else if (job.status === "failed") {
      finish();
      showRejected(result, job.detail, job.errors || {});
      return;
    } else if (job.status === "running") {
      failures = 0;
      progress.value = job.progress.percent;
      progressText.textContent = `Importing: ${job.progress.rows} rows checked, ${formatBytes(job.progress.done)} of ${formatBytes(job.progress.total)}`;
    } else {
      failures = 0;
      progressText.textContent = "Uploaded; waiting for the worker…";
    }
    setTimeout(look, JOB_POLL_MS);
  }
  look();
}

function initImportForm(form) {
  const result = document.querySelector("[data-import-result]");
  const progressBox = form.querySelector("[data-upload-progress]");
  const progress = progressBox.querySelector("progress");
  const progressText = progressBox.querySelector("[data-upload-text]");
  const submit = form.querySelector("[data-import-submit]");

  form.addEventListener("submit", (event) => {
    const file = form.elements.file.files[0];
    if (!file) return; // the browser's own "required" message shows
    event.preventDefault();

    const request = new XMLHttpRequest();
    request.open("POST", form.action || window.location.href);
    request.setRequestHeader("Accept", "application/json");
    request.setRequestHeader("X-CSRFToken", form.elements.csrfmiddlewaretoken.value);

    progressBox.hidden = false;
    progress.value = 0;
    progressText.textContent = `Uploading ${file.name}…`;
    submit.disabled = true;
    result.replaceChildren();

    request.upload.addEventListener("progress", (progressEvent) => {
      if (!progressEvent.lengthComputable) return;
      progress.value = (100 * progressEvent.loaded) / progressEvent.total;
      progressText.textContent = `${formatBytes(progressEvent.loaded)} of ${formatBytes(progressEvent.total)}`;
    });
    request.upload.addEventListener("load", () => {
      progress.value = 0;
      progressText.textContent = "Uploaded; waiting for the worker…";
    });
    const finish = () => {
      submit.disabled = false;
      progressBox.hidden = true;
    };
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null;
      }
      if (request.status === 202 && body && body.url) {
        form.reset();
        followJob(body, { progress, progressText, result, finish });
      } else {
        finish();
        if (body && body.detail) {
          showRejected(result, body.detail, body.errors || {});
        } else {
          // A login page or a proxy error instead of our JSON: the session may have ended.
          showRejected(result, `Unexpected answer from the server (${request.status}). Reload the page to check you are still signed in, then try again.`, {});
        }
      }
    });
    request.addEventListener("error", () => {
      submit.disabled = false;
      progressBox.hidden = true;
      showRejected(result, "The upload failed: the connection was lost.", {});
    });
    request.send(new FormData(form));
  });
}

function initConfirmations() {
  document.querySelectorAll("form[data-confirm]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

document.querySelectorAll("[data-schema-editor]").forEach(initSchemaEditor);
document.querySelectorAll("[data-import-form]").forEach(initImportForm);
initConfirmations();
