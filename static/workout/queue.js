// The queue's "select every case on this page" box (no inline script: the Content-Security-Policy refuses them).
document.addEventListener("change", (event) => {
  const all = event.target.closest("[data-pick-all]");
  if (!all) return;
  document.querySelectorAll("table.queue input[name=cases]").forEach((box) => { box.checked = all.checked; });
});
