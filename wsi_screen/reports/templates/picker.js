"use strict";
/* Class UI of the report page: the legend (always visible in the toolbar; click a class to hide
 * or show its marks), the class picker (every class of the review scheme, with search: type to
 * filter by code or name, arrows to move, Enter to pick), and the cell panel (the selected
 * cell's probabilities, its class, removal as duplicate / not a cell, and a comment).
 */
var WsiClassUI = (function () {
  var SVGNS = "http://www.w3.org/2000/svg";

  function swatch(data, code, size) {
    var c = data.class_info[code] || { color: "#000", shape: "circle" };
    var s = document.createElementNS(SVGNS, "svg");
    s.setAttribute("width", String(size)); s.setAttribute("height", String(size));
    s.setAttribute("viewBox", "-1.4 -1.4 2.8 2.8"); s.setAttribute("class", "shape"); s.setAttribute("aria-hidden", "true");
    var p = document.createElementNS(SVGNS, "path");
    p.setAttribute("d", data.shapes[c.shape]); p.setAttribute("fill", c.color);
    p.setAttribute("stroke", "#1d2330"); p.setAttribute("stroke-width", "0.18");
    s.appendChild(p);
    return s;
  }

  function legend(data, review, onToggle) {
    var ul = document.getElementById("legend");
    if (!ul) return { update: function () {} };
    var items = {}, off = {};
    data.review_classes.forEach(function (code) {
      var li = document.createElement("li"), b = document.createElement("button");
      b.type = "button"; b.className = "chip"; b.dataset.code = code;
      b.title = code + " " + data.class_info[code].name + (data.classes.indexOf(code) < 0 ? " (reviewer only: the model cannot call it)" : "") + " - click to hide or show its marks";
      b.appendChild(swatch(data, code, 13));
      var t = document.createElement("span"); t.textContent = code; b.appendChild(t);
      var k = document.createElement("small"); b.appendChild(k);
      b.addEventListener("click", function () {
        off[code] = !off[code]; b.classList.toggle("off", off[code]); b.setAttribute("aria-pressed", off[code] ? "true" : "false");
        onToggle(code, off[code]);
      });
      li.appendChild(b); ul.appendChild(li);
      items[code] = { li: li, count: k };
    });
    function update(summary) {
      var counts = {};
      Object.keys(summary.histogram).forEach(function (c) { counts[c] = 0; });
      var f = review.figureCells();
      f.cells.forEach(function (cell) { counts[cell.label] = (counts[cell.label] || 0) + 1; });
      data.review_classes.forEach(function (code) {
        var k = counts[code] || 0, it = items[code];
        it.count.textContent = String(k);
        it.li.classList.toggle("absent", k === 0 && data.classes.indexOf(code) < 0);
      });
    }
    return { update: update };
  }

  function picker(data) {
    var dlg = document.getElementById("class-picker"), input = document.getElementById("picker-search");
    var list = document.getElementById("picker-list"), done = null, active = 0, shown = [];
    if (!dlg) return { open: function () {} };
    function render() {
      var q = input.value.trim().toLowerCase();
      shown = data.review_classes.filter(function (c) {
        return !q || c.toLowerCase().indexOf(q) === 0 || data.class_info[c].name.toLowerCase().indexOf(q) >= 0;
      });
      active = Math.min(active, Math.max(0, shown.length - 1));
      list.textContent = "";
      shown.forEach(function (code, k) {
        var li = document.createElement("li"), c = data.class_info[code];
        li.setAttribute("role", "option"); li.dataset.code = code;
        li.setAttribute("aria-selected", k === active ? "true" : "false");
        li.appendChild(swatch(data, code, 14));
        var b = document.createElement("b"); b.textContent = code; li.appendChild(b);
        li.appendChild(document.createTextNode(" " + c.name + (c.key ? " [" + c.key + "]" : "") + (data.classes.indexOf(code) < 0 ? " (reviewer only)" : "")));
        li.addEventListener("mousedown", function (ev) { ev.preventDefault(); pick(code); });
        list.appendChild(li);
      });
    }
    function pick(code) { var fn = done; close(); if (fn && code) fn(code); }
    function close() { dlg.hidden = true; done = null; if (back && back.focus) back.focus(); }
    var back = null;
    input.addEventListener("input", function () { active = 0; render(); });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown") { active = Math.min(shown.length - 1, active + 1); render(); ev.preventDefault(); }
      else if (ev.key === "ArrowUp") { active = Math.max(0, active - 1); render(); ev.preventDefault(); }
      else if (ev.key === "Enter") { pick(shown[active]); ev.preventDefault(); }
      else if (ev.key === "Escape") { close(); ev.preventDefault(); }
      ev.stopPropagation();
    });
    input.addEventListener("blur", function () { setTimeout(function () { if (!dlg.hidden && document.activeElement !== input) close(); }, 0); });
    return {
      open: function (title, fn) {
        back = document.activeElement; done = fn; input.value = ""; active = 0;
        document.getElementById("picker-title").textContent = title;
        dlg.hidden = false; render(); input.focus();
      },
      isOpen: function () { return !dlg.hidden; },
      choose: pick
    };
  }

  function cellPanel(data, review, pick, hooks) {
    var panel = document.getElementById("cell-panel");
    if (!panel) return { show: function () {} };
    var C = data.cells, names = data.classes, row = null, addedK = null;
    var title = panel.querySelector(".cp-title"), probs = panel.querySelector(".cp-probs");
    var note = panel.querySelector("textarea"), state = panel.querySelector(".cp-state");
    function show(i, k) {
      row = i === undefined ? null : i; addedK = k === undefined ? null : k;
      panel.hidden = row === null && addedK === null;
      if (panel.hidden) return;
      probs.textContent = "";
      if (addedK !== null) {
        var a = review.added()[addedK];
        title.textContent = "new cell (added here) at " + Math.round(a.x) + ", " + Math.round(a.y);
        state.textContent = "class " + a.cls + "; export the corrections to keep it";
        note.value = a.comment || "";
        return;
      }
      var pred = review.predicted(row), cls = review.classOf(row), rem = review.removedOf(row);
      title.textContent = "cell " + C.id[row] + (C.origin[row] === "reviewer" ? " (added by a reviewer)" : "");
      state.textContent = (rem ? "removed (" + rem.replace(/_/g, " ") + ")" : "class " + cls) +
        (pred ? "; model: " + pred + " (" + C.conf[row].toFixed(2) + ")" : "");
      note.value = review.commentOf(row) || "";
      if (!C.probs) return;
      var p = C.probs[row] || [], order = names.map(function (c, j) { return j; }).sort(function (a, b) { return (p[b] || 0) - (p[a] || 0); });
      order.forEach(function (j) {
        var li = document.createElement("li"), bar = document.createElement("span");
        bar.className = "bar"; bar.style.width = (100 * (p[j] || 0)).toFixed(1) + "%";
        bar.style.background = data.class_info[names[j]].color;
        li.appendChild(swatch(data, names[j], 11));
        li.appendChild(document.createTextNode(names[j] + " " + (p[j] || 0).toFixed(3)));
        li.appendChild(bar);
        probs.appendChild(li);
      });
    }
    panel.querySelector(".cp-class").addEventListener("click", function () {
      if (addedK !== null) { var k = addedK; pick.open("Class of the new cell", function (code) { review.setAddedClass(k, code); show(undefined, k); }); return; }
      if (row === null) return;
      var r = row;
      pick.open("Class of cell " + C.id[r], function (code) { review.setClass(r, code); show(r); });
    });
    panel.querySelectorAll("[data-remove]").forEach(function (b) {
      b.addEventListener("click", function () {
        if (addedK !== null) { review.dropAdded(addedK); show(); return; }
        if (row !== null) { review.remove(row, b.dataset.remove); show(row); }
      });
    });
    panel.querySelector(".cp-undo").addEventListener("click", function () { if (row !== null) { review.undo(row); show(row); } });
    panel.querySelector(".cp-zoom").addEventListener("click", function () {
      if (row !== null && hooks.zoomTo) hooks.zoomTo(C.x[row], C.y[row]);
      if (addedK !== null && hooks.zoomTo) { var a = review.added()[addedK]; hooks.zoomTo(a.x, a.y); }
    });
    note.addEventListener("change", function () {
      if (row !== null) review.setComment(row, note.value);
      else if (addedK !== null) review.added()[addedK].comment = note.value;
    });
    note.addEventListener("keydown", function (ev) { ev.stopPropagation(); });
    return { show: show, row: function () { return row; } };
  }

  return { swatch: swatch, legend: legend, picker: picker, cellPanel: cellPanel };
})();
