// Small progressive enhancements; the site works without this file.
(function () {
  // Our views answer invalid input (400) and limits (429) with a fragment made for the swap — a
  // re-rendered form or panels with a message — so show it instead of htmx's default of ignoring 4xx.
  document.addEventListener("htmx:beforeSwap", function (event) {
    var status = event.detail.xhr.status;
    if (status === 400 || status === 429) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
