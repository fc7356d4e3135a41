// wf serve: live updates of a run in progress. The page works without this script; with it,
// the page polls a small version endpoint and swaps in the new page body when the run changed.
"use strict";
(function () {
  function tick() {
    var live = document.getElementById("wf-live");
    if (!live) { return; }
    fetch(live.getAttribute("data-poll"), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (v) {
        if (!v || v.version === live.getAttribute("data-seen")) { return null; }
        var typing = document.activeElement && document.activeElement.tagName === "INPUT";
        if (typing) { return null; }
        return fetch(location.pathname, { credentials: "same-origin" })
          .then(function (r) { return r.ok ? r.text() : null; })
          .then(function (html) {
            if (!html) { return; }
            var doc = new DOMParser().parseFromString(html, "text/html");
            document.body.replaceWith(doc.body);
            document.title = doc.title;
          });
      })
      .catch(function () { /* the server may be restarting; try again at the next tick */ })
      .then(function () { setTimeout(tick, 2000); });
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setTimeout(tick, 2000); });
  } else {
    setTimeout(tick, 2000);
  }
})();
