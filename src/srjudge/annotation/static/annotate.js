// Keyboard shortcuts of the annotation page (srjudge.annotation). Served as a file: the page's
// Content-Security-Policy allows no inline script.
"use strict";
(function () {
  var CHOICE_KEYS = { "1": "1", "2": "2", "3": "tie_good", "4": "tie_poor" };

  function typing(el) {
    return el && (el.tagName === "TEXTAREA" || (el.tagName === "INPUT" && el.type === "text"));
  }

  function follow(id) {
    var a = document.getElementById(id);
    if (a) { window.location.href = a.href; }
  }

  document.addEventListener("keydown", function (e) {
    var form = document.getElementById("label-form");
    if (!form || e.ctrlKey || e.metaKey || e.altKey) {
      if (form && e.key === "Enter" && (e.ctrlKey || e.metaKey)) { e.preventDefault(); form.requestSubmit(); }
      return;
    }
    if (typing(e.target)) {
      if (e.key === "Escape") { e.target.blur(); }
      return;
    }
    if (CHOICE_KEYS[e.key]) {
      document.getElementById("choice-" + CHOICE_KEYS[e.key]).checked = true;
      e.preventDefault();
    } else if (e.key === "Enter") {
      if (e.target.tagName === "A" || e.target.tagName === "BUTTON") { return; }  // their own action
      e.preventDefault();
      form.requestSubmit(document.getElementById("save"));
    } else if (e.key === "ArrowLeft") {
      e.preventDefault();
      follow("prev");
    } else if (e.key === "ArrowRight") {
      e.preventDefault();
      follow("next");
    } else {
      var box = form.querySelector('input[type="checkbox"][data-key="' + e.key.toLowerCase() + '"]');
      if (box && e.key.length === 1) { box.checked = !box.checked; e.preventDefault(); }
    }
  });
})();
