// The launch form's learning-rate field names the default each stage of the round will train with.
// The server renders every hint (by preset, stage and adapter) into #learning-rate-hints; this only
// shows the one that matches the current choice, so the numbers come from the engine's own table.

function initLearningRateHint(form) {
  const hintsElement = document.getElementById("learning-rate-hints");
  const field = form.querySelector("#id_learning_rate");
  const help = form.querySelector("#id_learning_rate_helptext");
  if (!hintsElement || !field || !help) return;
  const hints = JSON.parse(hintsElement.textContent);
  const preset = form.querySelector("#id_preset");
  const stage = form.querySelector("#id_stage");
  const adapter = form.querySelector("#id_adapter");

  const show = () => {
    const byStage = hints[preset.value] || {};
    // Presets of several stages have one entry (""); the one-stage preset has one per stage.
    const byAdapter = byStage[stage.value] || byStage[""] || {};
    const hint = byAdapter[adapter.value];
    if (!hint) return;
    field.placeholder = hint.placeholder;
    help.textContent = hint.help;
  };
  [preset, stage, adapter].forEach((select) => select.addEventListener("change", show));
  show();
}

document.querySelectorAll("[data-round-launch]").forEach(initLearningRateHint);
