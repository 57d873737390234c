// modelgate console: follows the cluster. The server sends an event when
// an approval or deployment changes; the page fetches its own address and
// swaps each part marked data-live, leaving alone a part the person is
// typing in or has focus in. Everything works without this script.
(function () {
  "use strict";
  if (!window.EventSource || !window.fetch) return;
  var page = document.body.dataset.page;
  var pending = null;

  function busy(part) {
    return part.contains(document.activeElement) && document.activeElement !== document.body;
  }

  async function refresh() {
    pending = null;
    var response = await fetch(page, { headers: { "Accept": "text/html" }, credentials: "same-origin" });
    if (!response.ok) return;
    var fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    var changed = false;
    document.querySelectorAll("[data-live]").forEach(function (part) {
      var next = fresh.getElementById(part.id);
      if (!next || busy(part) || next.innerHTML === part.innerHTML) return;
      part.replaceWith(document.importNode(next, true));
      changed = true;
    });
    if (changed) {
      var now = new Date().toLocaleTimeString();
      document.getElementById("live-status").textContent = "Updated from the cluster at " + now + ".";
    }
  }

  var events = new EventSource("/events");
  events.addEventListener("open", function () {
    document.getElementById("live-indicator").hidden = false;
  });
  events.addEventListener("error", function () {
    document.getElementById("live-indicator").hidden = true;
  });
  events.addEventListener("change", function () {
    // Several changes at once (a decision, then the operator's status)
    // make one fetch.
    if (pending === null) pending = setTimeout(refresh, 250);
  });
})();
