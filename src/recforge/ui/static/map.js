// Draws the embedding map from the figure JSON the page carries (plotly.js served by this app).
(function () {
  "use strict";
  const data = document.getElementById("figure");
  const div = document.getElementById("map");
  if (!data || !div || !window.Plotly) return;
  const fig = JSON.parse(data.textContent);
  window.Plotly.newPlot(div, fig.data, fig.layout, {responsive: true, displaylogo: false});
})();
