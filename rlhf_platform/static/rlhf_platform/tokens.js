// Token pages: ask before revoking or rotating (both stop a key at once), and copy a new key.
document.querySelectorAll("form[data-confirm]").forEach((form) => {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
});

document.querySelectorAll("[data-copy]").forEach((button) => {
  button.addEventListener("click", async () => {
    const text = document.querySelector(button.dataset.copy).textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch {
      // Clipboard access needs a secure context and permission; selecting lets the user copy by hand.
      window.getSelection().selectAllChildren(document.querySelector(button.dataset.copy));
      button.textContent = "Selected: press Ctrl+C";
    }
  });
});
