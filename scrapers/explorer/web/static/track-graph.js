// The track page's neighbourhood graph (Cytoscape.js, vendored): the track in the middle, what
// DJs play before it on the left, after it on the right. Node size: setlists playing the track;
// edge width: setlists playing the two in that order. Clicking a track opens its page.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("graph-data").textContent);
  var colours = { centre: "#e8793a", predecessor: "#5b8def", follower: "#2fae7b", both: "#8e6bd8" };
  var maxPlays = Math.max.apply(null, data.nodes.map(function (n) { return n.plays; }).concat([1]));
  var maxSets = Math.max.apply(null, data.edges.map(function (e) { return e.sets; }).concat([1]));
  var columns = { predecessor: [], follower: [], both: [] };
  data.nodes.forEach(function (n) { if (n.role !== "centre") { columns[n.role].push(n.id); } });
  var spacing = 92;
  function place(ids, x, offset) {
    var positions = {};
    ids.forEach(function (id, i) { positions[id] = { x: x, y: (i - (ids.length - 1) / 2) * spacing + (offset || 0) }; });
    return positions;
  }
  var positions = Object.assign(
    {},
    place(columns.predecessor, -420),
    place(columns.follower, 420),
    place(columns.both, 0, 190)
  );
  data.nodes.forEach(function (n) { if (n.role === "centre") { positions[n.id] = { x: 0, y: 0 }; } });
  function size(plays) { return 22 + 46 * Math.sqrt(plays / maxPlays); }
  var elements = data.nodes.map(function (n) {
    return { group: "nodes", data: { id: n.id, label: n.label, plays: n.plays, role: n.role, size: size(n.plays) }, position: positions[n.id] };
  }).concat(data.edges.map(function (e) {
    return { group: "edges", data: { id: e.source + ">" + e.target, source: e.source, target: e.target, sets: e.sets, djs: e.djs, width: 1.5 + 9 * e.sets / maxSets } };
  }));
  var cy = cytoscape({
    container: document.getElementById("graph"),
    elements: elements,
    layout: { name: "preset", fit: true, padding: 40 },
    minZoom: 0.2,
    maxZoom: 3,
    style: [
      { selector: "node", style: {
        "width": "data(size)", "height": "data(size)",
        "background-color": function (n) { return colours[n.data("role")]; },
        "label": "data(label)", "font-size": 12, "color": "#1d2233",
        "text-wrap": "wrap", "text-max-width": 190, "text-valign": "bottom", "text-margin-y": 5,
        "text-background-color": "#ffffff", "text-background-opacity": 0.85, "text-background-padding": 2,
        "border-width": 2, "border-color": "#ffffff"
      } },
      { selector: "node[role = 'centre']", style: { "font-size": 14, "font-weight": "bold", "border-width": 4, "border-color": "#fde2d2" } },
      { selector: "node:active, node.hover", style: { "overlay-opacity": 0.08, "border-color": "#1d2233" } },
      { selector: "edge", style: {
        "width": "data(width)", "curve-style": "bezier", "target-arrow-shape": "triangle", "arrow-scale": 0.9,
        "line-color": "#b9c0d4", "target-arrow-color": "#b9c0d4", "opacity": 0.9,
        "label": "data(sets)", "font-size": 11, "color": "#5a6177",
        "text-background-color": "#ffffff", "text-background-opacity": 1, "text-background-padding": 2, "text-background-shape": "roundrectangle"
      } }
    ]
  });
  cy.on("tap", "node", function (event) {
    var node = event.target;
    if (node.data("role") !== "centre") { window.location.href = "/track/" + encodeURIComponent(node.id()); }
  });
  var container = cy.container();
  cy.on("mouseover", "node", function (event) {
    event.target.addClass("hover");
    if (event.target.data("role") !== "centre") { container.style.cursor = "pointer"; }
  });
  cy.on("mouseout", "node", function (event) {
    event.target.removeClass("hover");
    container.style.cursor = "default";
  });
  window.explorerGraph = cy;
})();
