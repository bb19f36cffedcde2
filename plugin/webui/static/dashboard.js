/* The dashboard's chart: studies per day, one stacked bar per modality,
 * from page_data.per_day ({"days": [ISO dates], "series": {modality: [n]}}).
 * Chart.js (vendored, loaded before this file) draws it; without it the
 * page says so and shows the tables only. */
(function () {
  "use strict";

  /* Distinguishable on the dark background, and not only by hue. */
  var PALETTE = ["#5aa9ff", "#ffb020", "#5fd08a", "#ff7b72", "#c89bff", "#4dd9e0", "#f2e85c", "#ff9ed2",
                 "#a3b1c2", "#9be36d"];

  var canvas = document.getElementById("per-day-chart");
  if (!canvas || typeof window.Chart === "undefined") {
    return;
  }

  var styles = getComputedStyle(document.documentElement);
  var perDay = pacs.pageData().per_day;
  var Chart = window.Chart;
  Chart.defaults.color = styles.getPropertyValue("--text").trim();
  Chart.defaults.borderColor = styles.getPropertyValue("--border").trim();
  Chart.defaults.font.family = styles.getPropertyValue("--font").trim();

  var datasets = Object.keys(perDay.series).map(function (modality, index) {
    return {
      label: modality,
      data: perDay.series[modality],
      backgroundColor: PALETTE[index % PALETTE.length],
      borderColor: "#121417",
      borderWidth: 1
    };
  });

  new Chart(canvas, {
    type: "bar",
    data: { labels: perDay.days.map(function (day) { return day.slice(5); }), datasets: datasets },
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      interaction: { mode: "index", intersect: false },
      scales: {
        x: { stacked: true, grid: { display: false } },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }
      },
      plugins: { legend: { position: "bottom" } }
    }
  });
}());
