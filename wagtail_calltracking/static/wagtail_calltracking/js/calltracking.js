/* wagtail-calltracking cache-safe number swap (no dependencies). The page carries the
   canonical number; this asks the private endpoint for the visitor's number, sending the
   landing (location.search, document.referrer) a CDN may have stripped, and swaps only
   elements marked data-ct-number, keeping their width. */
(function (d) {
  var s = d.currentScript, url = s && s.getAttribute("data-endpoint");
  if (!url || !window.fetch) return;
  function run() {
    var els = d.querySelectorAll("[data-ct-number]"), keys = [], i, k;
    for (i = 0; i < els.length; i++) {
      k = els[i].getAttribute("data-ct-number");
      if (keys.indexOf(k) < 0) keys.push(k);
    }
    if (!keys.length) return;
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        search: location.search, referrer: d.referrer, path: location.pathname,
        title: d.title, keys: keys.slice(0, 10)
      })
    }).then(function (r) { return r.ok ? r.json() : null; }).then(function (j) {
      if (!j || !j.numbers) return;
      for (i = 0; i < els.length; i++) {
        var el = els[i], n = j.numbers[el.getAttribute("data-ct-number")];
        if (!n || !n.e164) continue;
        if (el.tagName === "A") el.setAttribute("href", n.tel_href);
        if (!el.hasAttribute("data-ct-label")) {
          var w = el.getBoundingClientRect().width, st = el.style;
          if (getComputedStyle(el).display === "inline") st.display = "inline-block";
          st.minWidth = w + "px";
          st.whiteSpace = "nowrap";
          el.textContent = n[el.getAttribute("data-ct-format")] || n.display;
        }
        el.setAttribute("data-ct-swapped", n.kind);
      }
    })["catch"](function () {});
  }
  if (d.readyState === "loading") d.addEventListener("DOMContentLoaded", run); else run();
})(document);
