// Live training pages: progress and log tails over a websocket, charts re-fetched as server-rendered
// HTML when new metric points arrive. Without this script the pages still show the truth as of their
// last load.

const REFRESH_MS = 2000; // at most one fragment fetch per interval
const FINAL = new Set(["succeeded", "failed", "cancelled", "interrupted"]);
const CLOSED_ON_PURPOSE = { 4403: "You are not allowed to follow this run.", 4404: "This run no longer exists." };

function formatSeconds(seconds) {
  if (seconds == null) return "";
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `ETA ${s} s`;
  if (s < 5400) return `ETA ${Math.round(s / 60)} min`;
  return `ETA ${(s / 3600).toFixed(1)} h`;
}

function updateRun(run) {
  document.querySelectorAll(`.run-progress[data-run-id="${run.id}"]`).forEach((box) => {
    const badge = box.querySelector('[data-field="status"]');
    if (badge) {
      badge.textContent = run.status_display;
      badge.className = `badge badge-run-${run.status}`;
    }
    const bar = box.querySelector('[data-field="bar"]');
    if (bar) {
      bar.setAttribute("aria-valuenow", String(run.step));
      bar.setAttribute("aria-valuemax", String(run.total_steps));
      const fill = bar.querySelector(".progress-fill");
      const fraction = run.status === "succeeded" ? 1 : run.progress || 0;
      if (fill) fill.setAttribute("width", `${(fraction * 100).toFixed(1)}%`);
    }
    const steps = box.querySelector('[data-field="steps"]');
    if (steps) steps.textContent = `${run.step} / ${run.total_steps || "?"}`;
    const eta = box.querySelector('[data-field="eta"]');
    if (eta) eta.textContent = run.status === "running" ? formatSeconds(run.eta_s) : "";
  });
}

// A run's log tail, as text (never as HTML: it is whatever the training process printed).
function updateLog(runId, text) {
  document.querySelectorAll(`[data-log-tail="${runId}"]`).forEach((pre) => {
    pre.textContent = text;
    pre.hidden = !text;
  });
  document.querySelectorAll(`[data-log-empty="${runId}"]`).forEach((empty) => {
    empty.hidden = Boolean(text);
  });
}

// The round's own status badge, in the page header (outside the re-fetched fragment).
function updateRound(round) {
  document.querySelectorAll("[data-round-status]").forEach((badge) => {
    badge.textContent = round.status_display;
    badge.className = `badge badge-run-${round.status}`;
    badge.dataset.roundStatus = round.status;
  });
}

function initLivePage(root) {
  const fragment = document.querySelector("[data-live-fragment]");
  const connection = root.querySelector("[data-connection]");
  const statuses = new Map();
  // As the page was rendered, so a change before the socket opened also refreshes the fragment.
  let roundStatus = document.querySelector("[data-round-status]")?.dataset.roundStatus ?? null;
  // Points up to this id were drawn when the page loaded; the socket asks for the ones after the
  // newest it has had, so a reconnect misses none.
  const renderedPoint = Number(root.dataset.lastPoint || 0);
  let lastPoint = renderedPoint;
  // Ids of points had since the page loaded: one brought twice redraws nothing, while one that comes
  // late (after a newer one) still does.
  const seenPoints = new Set();
  // The newest log tail each run's messages brought. A re-fetched fragment may have been rendered
  // from the database before that log was stored, so the log is put back after each fetch.
  const logs = new Map();
  let refreshTimer = null;
  let lastRefresh = 0;
  let retryMs = 1000;

  const say = (text) => {
    if (connection) connection.textContent = text;
  };

  async function refresh() {
    refreshTimer = null;
    lastRefresh = Date.now();
    if (!fragment || !root.dataset.liveUrl) return;
    try {
      const response = await fetch(root.dataset.liveUrl, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (response.ok) {
        fragment.innerHTML = await response.text();
        for (const [runId, text] of logs) updateLog(runId, text);
      }
    } catch {
      // The next update tries again.
    }
  }

  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(refresh, Math.max(0, REFRESH_MS - (Date.now() - lastRefresh)));
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${window.location.host}${root.dataset.wsUrl}?after=${lastPoint}`);
    socket.addEventListener("open", () => {
      retryMs = 1000;
      say("Live: updates arrive as the run reports them.");
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.type === "runs") {
        for (const run of message.runs) {
          const before = statuses.get(run.id);
          statuses.set(run.id, run.status);
          updateRun(run);
          if (before !== undefined && before !== run.status) scheduleRefresh();
        }
      } else if (message.type === "round") {
        updateRound(message.round);
        if (roundStatus !== null && roundStatus !== message.round.status) scheduleRefresh();
        roundStatus = message.round.status;
      } else if (message.type === "points") {
        const fresh = message.points.filter((point) => point.id > renderedPoint && !seenPoints.has(point.id));
        for (const point of fresh) seenPoints.add(point.id);
        if (fresh.length) {
          lastPoint = Math.max(lastPoint, ...fresh.map((point) => point.id));
          scheduleRefresh();
        }
      } else if (message.type === "log") {
        logs.set(message.run_id, message.text);
        updateLog(message.run_id, message.text);
      }
    });
    socket.addEventListener("close", (event) => {
      if (CLOSED_ON_PURPOSE[event.code]) {
        say(CLOSED_ON_PURPOSE[event.code]);
        return;
      }
      const allDone = statuses.size > 0 && [...statuses.values()].every((status) => FINAL.has(status));
      say(allDone ? "" : `Connection lost; retrying in ${Math.round(retryMs / 1000)} s.`);
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 30000);
    });
  }

  connect();
}

document.querySelectorAll("[data-live]").forEach(initLivePage);
