// Retry countdowns on the Lab's live view. The page works without it; htmx's responseHandling (base.html)
// shows 400/429 fragments and puts a 503 (Redis down) banner in #lab-banner-slot while polling goes on.
(function () {
  "use strict";

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var left = Math.max(0, Math.ceil(parseFloat(el.dataset.until) - now));
      el.textContent = left > 0 ? "retry in " + left + " s" : "retry due now";
    });
  }
  setInterval(tick, 500);
})();
