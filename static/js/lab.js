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

  // Any poll that succeeds (a 204 "nothing new" included) means Redis is back: clear its banner.
  document.body.addEventListener("htmx:afterRequest", function (event) {
    var slot = document.getElementById("lab-banner-slot");
    if (slot && event.detail.xhr && event.detail.xhr.status < 300) slot.innerHTML = "";
  });

  // An answer whose element left the page while it was on the way would be swapped inside that detached element:
  // htmx finds none of its panels there and reports each as an error. Two cases, one extension (hx-ext="lab-live"):
  // a poll whose poller a newer answer replaced is stale, and dropped; an action whose button a poll's morph removed
  // (a Stop as the run ends) carries news (its confirmation, its result), and is swapped into the page itself.
  if (window.htmx) {
    htmx.defineExtension("lab-live", {
      onEvent: function (name, event) {
        var elt = event.detail.elt;
        if (name !== "htmx:beforeSwap" || !elt || elt.isConnected || !event.detail.shouldSwap) return;
        event.detail.shouldSwap = false;
        if (elt.id !== "poller" && event.detail.serverResponse) {
          htmx.swap(document.body, event.detail.serverResponse, { swapStyle: "none" });
        }
      },
    });
    // htmx reads an element's extensions from it and its ancestors when its answer arrives, and a detached element
    // has none: each live-view request carries the extension on its own element (the poller has it in the page).
    document.body.addEventListener("htmx:beforeRequest", function (event) {
      var elt = event.detail.elt;
      var ext = (elt && elt.getAttribute && elt.getAttribute("hx-ext")) || "";
      if (elt && elt.closest && elt.closest(".live-view") && ext.indexOf("lab-live") < 0) {
        elt.setAttribute("hx-ext", ext ? ext + ",lab-live" : "lab-live");
      }
    });
  }

  // A panel's morph must not close what the learner opened (the job list under the time axis).
  if (window.Idiomorph) {
    Idiomorph.defaults.callbacks.beforeAttributeUpdated = function (name, element) {
      return !(name === "open" && element.tagName === "DETAILS");
    };
  }

  // A morph can remove the element that had focus (a killed consumer's button, a finished job's): put focus
  // on that panel's heading instead of dropping it to the top of the page.
  var focusedPanel = null;
  document.body.addEventListener("htmx:oobBeforeSwap", function (event) {
    var panel = event.detail.target;
    if (panel && panel.classList && panel.classList.contains("panel") && panel.contains(document.activeElement)) {
      focusedPanel = panel.id;
    }
  });
  document.body.addEventListener("htmx:oobAfterSwap", function (event) {
    var panel = event.detail.target;
    if (!panel || panel.id !== focusedPanel) return;
    focusedPanel = null;
    if (document.activeElement && document.activeElement !== document.body && document.contains(document.activeElement)) return;
    var heading = panel.querySelector("h2");
    if (heading) {
      if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
      heading.focus();
    }
  });

  // Each announcement is said once: the counters panel carries what is true now (data-announce), the page
  // remembers what it already said, and by whom. (Read after the swap: an event on the poller could be lost
  // when a newer response has already replaced it.) An action's message repeats the outcome unless the page
  // or a poll said it first; htmx may report one swap twice, so the action's own keys never strike its text.
  var region = document.getElementById("lab-flash");
  var said = new Map();
  ((region && region.dataset.said) || "").split(" ").filter(Boolean).forEach(function (key) { said.set(key, "page"); });
  document.body.addEventListener("htmx:oobAfterSwap", function (event) {
    var panel = event.detail.target;
    if (panel && panel.id === "lab-flash") {
      panel.querySelectorAll("[data-announced]").forEach(function (part) {
        var by = said.get(part.dataset.announced);
        if (by && by !== "action") part.remove();
      });
      (panel.dataset.said || "").split(" ").filter(Boolean).forEach(function (key) {
        if (!said.has(key)) said.set(key, "action");
      });
      return;
    }
    if (!panel || panel.id !== "panel-counters" || !region) return;
    var items = [];
    try { items = JSON.parse(panel.dataset.announce || "[]"); } catch (e) { return; }
    var fresh = items.filter(function (item) { return !said.has(item.key); });
    if (!fresh.length) return;
    fresh.forEach(function (item) { said.set(item.key, "poll"); });
    region.className = "msg msg-success";
    region.textContent = fresh.map(function (item) { return item.text; }).join(" ");
  });
})();
