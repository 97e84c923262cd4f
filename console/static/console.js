// Traffic Manager console: the only script. Forms marked data-confirm ask
// before they post (the rollback has its own confirmation page, which
// works without this script).
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) {
    ev.preventDefault();
  }
});
