// The set builder's track pickers: suggestions from /api/search as you type; picking one fills
// the hidden id, so the server builds from exactly that track (typed text alone is searched).
(function () {
  "use strict";
  function picker(name) {
    var input = document.getElementById(name);
    var hidden = document.getElementById(name + "_id");
    var options = document.getElementById(name + "-options");
    var ids = {};
    var timer = null;
    var asked = "";
    input.addEventListener("input", function () {
      var value = input.value;
      hidden.value = ids[value] || "";
      if (hidden.value || value.trim().length < 2) { return; }
      clearTimeout(timer);
      timer = setTimeout(function () {
        if (value === asked) { return; }
        asked = value;
        fetch("/api/search?limit=8&q=" + encodeURIComponent(value))
          .then(function (answer) { return answer.ok ? answer.json() : { results: [] }; })
          .then(function (found) {
            options.textContent = "";
            found.results.forEach(function (hit) {
              var label = hit.track.artist + " - " + hit.track.title;
              ids[label] = hit.track.id;
              var option = document.createElement("option");
              option.value = label;
              options.appendChild(option);
            });
            hidden.value = ids[input.value] || "";
          });
      }, 180);
    });
  }
  picker("from");
  picker("to");
})();
