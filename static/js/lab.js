// The Lab's small enhancements: 503 banners during polling, and retry countdowns. Works without it.
(function () {
  "use strict";

  // htmx does not swap 4xx/5xx. Show a 503 (Redis down) in the banner slot and keep polling, and let
  // the start form show its 400/429 re-render in place.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 503) {
      var slot = document.getElementById("lab-banner-slot");
      if (slot) {
        event.detail.shouldSwap = true;
        event.detail.isError = false;
        event.detail.target = slot;
        event.detail.swapOverride = "innerHTML";
      }
    }
  });

  function tick() {
    var now = Date.now() / 1000;
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var left = Math.max(0, Math.ceil(parseFloat(el.dataset.until) - now));
      el.textContent = left > 0 ? "retry in " + left + " s" : "retry due now";
    });
  }
  setInterval(tick, 500);
})();
