// The Lab's live view: retry countdowns, and the one live region's announcements. The page works without it;
// htmx's responseHandling (base.html) shows 400/429 fragments and puts a 503 banner in #lab-banner-slot.
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

  // Each announcement is said once: the server repeats what is true, the page remembers what it said.
  var region = document.getElementById("lab-flash");
  var said = new Set(((region && region.dataset.said) || "").split(" ").filter(Boolean));
  document.body.addEventListener("lab-announce", function (event) {
    var fresh = (event.detail.items || []).filter(function (item) { return !said.has(item.key); });
    if (!fresh.length || !region) return;
    fresh.forEach(function (item) { said.add(item.key); });
    region.className = "msg msg-success";
    region.textContent = fresh.map(function (item) { return item.text; }).join(" ");
  });
})();
