// Drills: a count-up timer while answering and per-phase countdowns in mock interviews.
// Progressive enhancement only: every form works without this file.
(function () {
  "use strict";

  function clock(totalSeconds) {
    var s = Math.max(0, Math.floor(totalSeconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function startTimers(root) {
    root.querySelectorAll("[data-timer]").forEach(function (el) {
      if (el.dataset.bound) return;
      el.dataset.bound = "1";
      el.hidden = false;
      var started = Date.now();
      var out = el.querySelector("[data-timer-value]");
      var id = setInterval(function () {
        if (!el.isConnected) { clearInterval(id); return; }
        out.textContent = clock((Date.now() - started) / 1000);
      }, 1000);
    });
  }

  // Ask the server for the next curveball once its time has come; it decides, so an early clock gets
  // "not yet" back and asks again a few seconds later.
  var CURVEBALL_RETRY_MS = 3000;
  var curveballsAskedAt = 0;

  function revealCurveballs(elapsed) {
    var pending = document.querySelector("[data-curveball-next]");
    if (!pending || !window.htmx || elapsed < Number(pending.dataset.curveballNext)) return;
    if (Date.now() - curveballsAskedAt < CURVEBALL_RETRY_MS) return;
    curveballsAskedAt = Date.now();
    window.htmx.trigger(pending, "curveball-due");
  }

  // A curveball interrupts politely: it takes focus only from someone who is not typing, so the answer in
  // progress keeps its caret; the live region says it aloud instead, and Escape acknowledges it ("Later").
  var popupShown = "";
  var popupReturn = null;

  function isTyping(el) {
    return !!el && (el.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName));
  }

  function showPopup() {
    var popup = document.querySelector("[data-curveball-popup]");
    if (!popup) { popupShown = ""; return; }
    if (popupShown === popup.dataset.curveballPopup) return;
    popupShown = popup.dataset.curveballPopup;
    popupReturn = document.activeElement;
    if (!isTyping(popupReturn)) {
      var first = popup.querySelector("button");
      (first || popup).focus();
    }
  }

  function focusAnswer(root) {
    var asked = root.querySelector ? root.querySelector("[data-focus]") : null;
    if (!asked && root.dataset && root.dataset.focus) asked = root;
    if (!asked) return;
    var field = document.getElementById(asked.dataset.focus);
    asked.removeAttribute("data-focus");
    if (field) { field.focus(); field.scrollIntoView({ block: "center" }); }
  }

  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") return;
    var later = document.querySelector("[data-curveball-popup] [data-popup-later]");
    if (!later) return;
    event.preventDefault();
    var back = document.activeElement;
    var inPopup = back && back.closest && back.closest("[data-curveball-popup]");
    later.click();
    // Focus stays where the learner was typing; from inside the pop-up it goes back to where it came from.
    if (inPopup && popupReturn && popupReturn.isConnected) popupReturn.focus();
  });

  function startMockClock(root) {
    root.querySelectorAll("[data-mock-clock]").forEach(function (el) {
      if (el.dataset.bound) return;
      el.dataset.bound = "1";
      el.hidden = false;
      // Elapsed time as the server measured it at render, counted on from here by this page's own clock.
      var started = Date.now() - Number(el.dataset.elapsedS) * 1000;
      var length = Number(el.dataset.length);
      var elapsedOut = el.querySelector("[data-elapsed]");
      var currentOut = el.querySelector("[data-current-phase]");
      var phases = Array.prototype.slice.call(document.querySelectorAll("[data-phase]"));
      function tick() {
        var elapsed = (Date.now() - started) / 1000;
        elapsedOut.textContent = clock(Math.min(elapsed, length)) + (elapsed > length ? " (over time)" : "");
        var current = "";
        phases.forEach(function (phase) {
          var offset = Number(phase.dataset.offset);
          var budget = Number(phase.dataset.budget);
          var out = phase.querySelector("[data-countdown]");
          phase.classList.remove("current", "over");
          if (elapsed < offset) {
            out.textContent = "starts in " + clock(offset - elapsed);
          } else if (elapsed < offset + budget) {
            out.textContent = clock(offset + budget - elapsed) + " left";
            phase.classList.add("current");
            current = "Now: " + phase.querySelector("h2").textContent;
          } else {
            out.textContent = "time's up";
            phase.classList.add("over");
          }
        });
        currentOut.textContent = current || (elapsed >= length ? "Time is up: assess yourself below." : "");
        revealCurveballs(elapsed);
      }
      tick();
      if (!el.hasAttribute("data-paused")) setInterval(tick, 1000);  // a paused clock stands still
    });
  }

  // The plan's "today" is the learner's own day: send the browser's time zone with the plan form.
  function fillTimeZone(root) {
    var zone = "";
    try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
    root.querySelectorAll("input[name=time_zone]").forEach(function (input) {
      if (!input.value) input.value = zone;
    });
  }

  // Times the server wrote in UTC (<time data-local datetime="...">) shown in the reader's zone.
  function localTimes(root) {
    root.querySelectorAll("time[data-local]").forEach(function (el) {
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      el.textContent = when.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
    });
  }

  // The sketch: drag a box with the mouse (or a finger) and the server saves where it was dropped. The forms
  // under the drawing do everything else, with or without this.
  function csrfHeaders() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}"); } catch (e) { return {}; }
  }

  function bindSketches(root) {
    var sketches = Array.prototype.slice.call(root.querySelectorAll("[data-sketch]"));
    if (root.matches && root.matches("[data-sketch]")) sketches.push(root);  // htmx swapped this one in
    sketches.forEach(function (sketch) {
      if (sketch.dataset.bound) return;
      sketch.dataset.bound = "1";
      var svg = sketch.querySelector("svg[data-sketch-svg]");
      if (!svg || !window.htmx) return;
      var drag = null;
      function point(event) {
        var p = svg.createSVGPoint();
        p.x = event.clientX; p.y = event.clientY;
        return p.matrixTransform(svg.getScreenCTM().inverse());
      }
      svg.addEventListener("pointerdown", function (event) {
        var box = event.target.closest(".sketch-box");
        if (!box || event.button !== 0) return;
        var at = point(event);
        drag = { box: box, dx: at.x - Number(box.dataset.x), dy: at.y - Number(box.dataset.y), x: Number(box.dataset.x), y: Number(box.dataset.y), moved: false };
        svg.setPointerCapture(event.pointerId);
        box.classList.add("dragging");
        event.preventDefault();
      });
      svg.addEventListener("pointermove", function (event) {
        if (!drag) return;
        var at = point(event);
        drag.x = Math.round(at.x - drag.dx); drag.y = Math.round(at.y - drag.dy);
        drag.moved = true;
        drag.box.setAttribute("transform", "translate(" + drag.x + " " + drag.y + ")");
      });
      function drop() {
        if (!drag) return;
        var done = drag;
        drag = null;
        done.box.classList.remove("dragging");
        if (!done.moved) return;
        window.htmx.ajax("POST", sketch.dataset.sketchUrl, {
          source: sketch, target: "#" + sketch.id, swap: "outerHTML", headers: csrfHeaders(),
          values: { phase: sketch.dataset.phaseKey, action: "move", box: done.box.dataset.box, x: Math.max(0, done.x), y: Math.max(0, done.y) }
        });
      }
      svg.addEventListener("pointerup", drop);
      svg.addEventListener("pointercancel", drop);
    });
  }

  function init(root) {
    startTimers(root);
    startMockClock(root);
    showPopup();
    focusAnswer(root);
    bindSketches(root);
    fillTimeZone(root);
    localTimes(root);
  }

  // Keys 1-4 press the rating buttons (as in Anki), unless the reader is typing in a field.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (!/^[1-4]$/.test(event.key)) return;
    var target = event.target;
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
    var button = document.querySelector("button.rate[data-key='" + event.key + "']");
    if (!button || button.disabled) return;
    event.preventDefault();
    button.click();
  });

  init(document);
  document.addEventListener("htmx:load", function (event) { init(event.target); });
  document.addEventListener("htmx:afterSettle", function () { showPopup(); });
})();
