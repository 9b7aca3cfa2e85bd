/* "Add a number" for the pool's inline numbers: clones Django's empty form (no dependencies). */
(function () {
  "use strict";
  function init(root) {
    if (root.dataset.ctReady) return;
    root.dataset.ctReady = "1";
    var prefix = root.getAttribute("data-ct-formset");
    var total = root.querySelector('input[name="' + prefix + '-TOTAL_FORMS"]');
    var rows = root.querySelector("[data-ct-formset-rows]");
    var template = root.querySelector("template[data-ct-formset-template]");
    var add = root.querySelector("[data-ct-formset-add]");
    if (!total || !rows || !template || !add) return;
    add.addEventListener("click", function () {
      var index = parseInt(total.value, 10) || 0;
      var html = template.innerHTML.replace(/__prefix__/g, String(index));
      rows.insertAdjacentHTML("beforeend", html);
      total.value = String(index + 1);
      var input = rows.lastElementChild && rows.lastElementChild.querySelector("input[type=text]");
      if (input) input.focus();
    });
  }
  function initAll() {
    document.querySelectorAll("[data-ct-formset]").forEach(init);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", initAll);
  } else {
    initAll();
  }
})();
