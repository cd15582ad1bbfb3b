// Buttons marked data-print print the page: an event handler from this file rather than an inline onclick,
// which the Content-Security-Policy refuses (scripts come only from this site's files).
document.addEventListener("click", (event) => {
  const button = event.target.closest("[data-print]");
  if (button) {
    window.print();
  }
});
