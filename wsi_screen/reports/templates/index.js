"use strict";
(function () {
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; document.body.dataset.jsErrors = String(errors); });
  var table = document.getElementById("index-table");
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function key(row, col, num) {
    var v = row.cells[col].dataset.v;
    if (!num) return (v || "").toLowerCase();
    return v === "" || v === undefined ? null : Number(v);
  }
  heads.forEach(function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var num = th.dataset.type === "num";
      var dir = th.getAttribute("aria-sort") === "descending" ? 1 : (th.getAttribute("aria-sort") === "ascending" ? -1 : (num ? -1 : 1));
      heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a, col, num), y = key(b, col, num);
        if (x === y) return 0;
        if (x === null) return 1;
        if (y === null) return -1;
        return (x < y ? -1 : 1) * dir;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sort(); } });
  });
  document.body.dataset.ready = "1";
})();
