// Parts of a page that follow the database without a websocket (A/B results as judgements arrive):
// each [data-poll-url] box is re-fetched as server-rendered HTML every data-poll-seconds while the
// page is visible. A box someone has started typing or ticking in is left alone, so a form being
// filled is never replaced under their hands. Without this script the page shows the truth as of
// its last load.

const DEFAULT_SECONDS = 5;

function followBox(box) {
  const seconds = Math.max(1, Number(box.dataset.pollSeconds || DEFAULT_SECONDS));
  let touched = false;
  box.addEventListener("input", () => {
    touched = true;
  });

  async function refresh() {
    if (touched) return;
    if (!document.hidden) {
      try {
        const response = await fetch(box.dataset.pollUrl, { headers: { Accept: "text/html" }, credentials: "same-origin" });
        // A redirect to the sign-in page (the session ended) is not the fragment: keep what is shown.
        if (response.ok && !response.redirected && !touched) box.innerHTML = await response.text();
      } catch {
        // The next round tries again.
      }
    }
    setTimeout(refresh, seconds * 1000);
  }

  setTimeout(refresh, seconds * 1000);
}

document.querySelectorAll("[data-poll-url]").forEach(followBox);
