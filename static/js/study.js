// Study pages: forward old single-page anchors, fold the contents on phones, highlight search words.
(function () {
  "use strict";

  // The overview keeps every "#id" of the old single-page deep dive as a link to its chapter
  // (a[data-forward]); without JavaScript the reader lands on that link and can follow it.
  function forwardOldAnchor() {
    var id = decodeURIComponent(location.hash.slice(1));
    if (!id) return;
    var target = document.getElementById(id);
    if (target && target.matches("a[data-forward]")) location.replace(target.href);
  }

  // Long contents push the chapter off the first screen of a phone: start folded there.
  function foldContents() {
    if (!window.matchMedia("(max-width: 999px)").matches) return;
    document.querySelectorAll("details[data-collapse-narrow]").forEach(function (details) {
      details.open = false;
    });
    // Folding moved the text up: bring a linked heading or paragraph back into view.
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id && document.getElementById(id);
    if (target) target.scrollIntoView({ block: "start" });
  }

  // Search results link to "chapter/?highlight=word+word#block-id": mark those words in that block.
  var MAX_WORDS = 12;
  function escapeRegExp(text) {
    return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  function highlightWords() {
    var raw = new URLSearchParams(location.search).get("highlight");
    var id = decodeURIComponent(location.hash.slice(1));
    var block = id && document.getElementById(id);
    if (!raw || !block) return;
    var words = raw.slice(0, 200).toLowerCase().match(/[\p{L}\p{N}]+/gu) || [];
    words = words.filter(function (w) { return w.length > 1; }).slice(0, MAX_WORDS);
    if (!words.length) return;
    var pattern = new RegExp("(?<![\\p{L}\\p{N}])(" + words.map(escapeRegExp).join("|") + ")(?![\\p{L}\\p{N}])", "giu");
    var walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
    var nodes = [];
    while (walker.nextNode()) nodes.push(walker.currentNode);
    nodes.forEach(function (node) {
      if (node.parentNode.closest("svg")) return; // an HTML <mark> inside SVG text would hide the words
      var text = node.nodeValue;
      pattern.lastIndex = 0;
      if (!pattern.test(text)) return;
      pattern.lastIndex = 0;
      var fragment = document.createDocumentFragment();
      var position = 0;
      text.replace(pattern, function (match, _word, offset) {
        fragment.appendChild(document.createTextNode(text.slice(position, offset)));
        var mark = document.createElement("mark");
        mark.className = "search-mark";
        mark.textContent = match;
        fragment.appendChild(mark);
        position = offset + match.length;
      });
      fragment.appendChild(document.createTextNode(text.slice(position)));
      node.parentNode.replaceChild(fragment, node);
    });
    block.classList.add("search-landing");
  }

  // Remember the last heading scrolled past, so "Continue" on Home lands there. The personal fragment
  // fills #reading-position with where to post and the CSRF token; nothing is sent before it arrives.
  var SETTLE_MS = 1500;
  function trackReading() {
    var headings = Array.prototype.slice.call(document.querySelectorAll(".study-chapter .prose h2[id], .study-chapter .prose h3[id]"));
    if (!headings.length) return;
    var sent = "", timer = null;
    function current() {
      var passed = null;
      headings.forEach(function (h) { if (h.getBoundingClientRect().top < 120) passed = h; });
      return passed ? passed.id : "";
    }
    function send() {
      var slot = document.getElementById("reading-position");
      var id = current();
      if (!id || id === sent || !slot || !slot.dataset.url) return;
      var body = new URLSearchParams({ heading: id, csrfmiddlewaretoken: slot.dataset.token });
      fetch(slot.dataset.url, { method: "POST", body: body, credentials: "same-origin", keepalive: true })
        .then(function (r) { if (r.ok) sent = id; })
        .catch(function () {});
    }
    // Scroll-spy: the contents mark the sub-heading being read.
    var links = Array.prototype.slice.call(document.querySelectorAll(".toc-sub a[href^='#']"));
    var spyQueued = false;
    function spy() {
      spyQueued = false;
      var id = current();
      links.forEach(function (a) {
        var here = a.getAttribute("href") === "#" + id;
        a.classList.toggle("is-reading", here);
        if (here) a.setAttribute("aria-current", "location");
        else a.removeAttribute("aria-current");
      });
    }
    window.addEventListener("scroll", function () {
      clearTimeout(timer);
      timer = setTimeout(send, SETTLE_MS);
      if (!spyQueued && links.length) {
        spyQueued = true;
        window.requestAnimationFrame(spy);
      }
    }, { passive: true });
    window.addEventListener("pagehide", send);
  }

  function start() {
    forwardOldAnchor();
    foldContents();
    highlightWords();
    trackReading();
  }
  window.addEventListener("hashchange", forwardOldAnchor);
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
