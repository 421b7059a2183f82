"use strict";
/* The report page's wiring: the review state (review_state.js), the legend, class picker and cell
 * panel (picker.js), the live figures (live.js over aggregate.js) and the viewer (viewer.js), plus
 * the crops' keys. It holds no rule and no class list of its own: everything comes from the page's
 * JSON data block (reports/page_data.py). window.wsiPage exposes the parts to the browser tests.
 *
 * Keys on a focused crop: arrows move; a class code (E, B, O) or a model class's digit reclassifies;
 * "/" opens the class picker; D marks a duplicate, X not a cell; Backspace undoes; Enter shows the
 * cell in the viewer. Without a focused crop, keys keep their usual meaning.
 */
(function () {
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; document.body.dataset.jsErrors = String(errors); });
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var screening = JSON.parse(document.getElementById("screening-data").textContent);
  var review = WsiReview.create(data, screening), C = data.cells;
  var REMOVE_KEYS = { d: "duplicate", x: "not_a_cell" };
  var codes = data.review_classes;
  // a removal key never shadows a class code's first letter
  Object.keys(REMOVE_KEYS).forEach(function (k) {
    if (codes.some(function (c) { return c.toLowerCase().charAt(0) === k; })) delete REMOVE_KEYS[k];
  });

  var crops = Array.prototype.slice.call(document.querySelectorAll("figure.crop")), cropsById = new Map();
  crops.forEach(function (el) {
    var id = Number(el.dataset.id);
    if (!cropsById.has(id)) cropsById.set(id, []);
    cropsById.get(id).push(el);
  });

  var pick = WsiClassUI.picker(data);
  var viewer = null;
  var panel = WsiClassUI.cellPanel(data, review, pick, { zoomTo: function (x, y) { if (viewer) viewer.zoomTo(x, y); } });
  var legend = WsiClassUI.legend(data, review, function (code, hide) { if (viewer) viewer.filter(code, hide); });
  var addBtn = document.getElementById("add-cell");
  function setAdd(on) {
    if (!viewer) return;
    viewer.setAddMode(on);
    if (addBtn) addBtn.setAttribute("aria-pressed", on ? "true" : "false");
  }
  viewer = WsiViewer.create(data, review, {
    onSelect: function (row) { panel.show(row); locate(C.id[row]); },
    onSelectAdded: function (k) { panel.show(undefined, k); },
    onAdd: function (x, y) {
      setAdd(false);
      pick.open("Class of the missed cell at " + Math.round(x) + ", " + Math.round(y), function (code) {
        panel.show(undefined, review.addCell(x, y, code));
      });
    }
  });
  if (addBtn) {
    addBtn.disabled = !viewer;
    addBtn.addEventListener("click", function () { setAdd(!viewer.addMode()); });
  }
  var home = document.getElementById("viewer-home");
  if (home) home.addEventListener("click", function () { if (viewer) viewer.osd.viewport.goHome(); });

  function paintCrop(i) {
    var id = C.id[i], code = review.classOf(i), rem = review.removedOf(i), info = data.class_info[code] || {};
    var corrected = review.isCorrected(i) || !!rem;
    (cropsById.get(id) || []).forEach(function (el) {
      var tag = el.querySelector(".tag"), conf = el.querySelector(".conf");
      tag.textContent = code + (rem ? " \u00b7 " + rem.replace(/_/g, " ") : "");
      tag.style.background = rem ? "#6b7280" : (info.color || "#000");
      tag.style.color = rem ? "#fff" : (info.text || "#fff");
      // a reviewed class is the reviewer's call: the model's confidence no longer belongs to it
      if (conf) conf.textContent = corrected ? "reviewed" : C.conf[i].toFixed(2);
      el.classList.toggle("corrected", corrected);
      el.classList.toggle("removed", !!rem);
      el.classList.toggle("note", !!review.commentOf(i));
      var pred = review.predicted(i);
      el.title = "cell " + id + ": " + code + (rem ? " (removed: " + rem.replace(/_/g, " ") + ")" : "") +
        (pred && pred !== code ? " (model: " + pred + ")" : "") + (pred ? ", model confidence " + C.conf[i].toFixed(2) : "");
    });
  }

  function refresh() {
    for (var i = 0; i < review.n; i++) paintCrop(i);
    var k = review.changes(), s = review.summary();
    document.getElementById("corr-count").textContent = k + " correction" + (k === 1 ? "" : "s");
    WsiLive.render(data, s, k);
    legend.update(s);
    review.save();
  }
  review.onChange(refresh);

  function locate(id) {
    crops.forEach(function (el) { el.classList.toggle("located", Number(el.dataset.id) === id); });
  }
  function showCell(el) {
    var i = review.rowOf(Number(el.dataset.id));
    if (i === undefined) return;
    panel.show(i);
    locate(C.id[i]);
    if (viewer) viewer.select(i, false);
  }

  function visibleCrops() { return crops.filter(function (el) { return el.offsetParent !== null; }); }
  function move(el, key) {
    var list = visibleCrops(), k = list.indexOf(el), target = null;
    if (k < 0) { if (list.length) list[0].focus(); return; }
    if (key === "ArrowRight") target = list[k + 1];
    else if (key === "ArrowLeft") target = list[k - 1];
    else {
      var r0 = el.getBoundingClientRect(), best = Infinity;
      list.forEach(function (o) {
        var r = o.getBoundingClientRect(), dy = r.top - r0.top;
        if ((key === "ArrowDown" && dy <= 4) || (key === "ArrowUp" && dy >= -4)) return;
        var d = Math.abs(dy) * 4 + Math.abs(r.left - r0.left);
        if (d < best) { best = d; target = o; }
      });
    }
    if (target) { target.focus(); target.scrollIntoView({ block: "nearest" }); }
  }

  var typed = "", typedAt = 0;
  function onKey(ev) {
    if (pick.isOpen() || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var tag = ev.target.tagName;
    if (tag === "INPUT" || tag === "TEXTAREA") return;
    var el = ev.target.closest ? ev.target.closest("figure.crop") : null;
    if (!el) {
      if (ev.key === "Escape" && viewer && viewer.addMode()) setAdd(false);
      return;  // no crop focused: keys (arrows included) keep their usual meaning
    }
    var i = review.rowOf(Number(el.dataset.id));
    if (i === undefined) return;
    var key = ev.key, lower = key.length === 1 ? key.toLowerCase() : "";
    if (key.indexOf("Arrow") === 0) { ev.preventDefault(); move(el, key); return; }
    if (key === "Enter") {
      ev.preventDefault(); showCell(el);
      if (viewer) viewer.select(i, true);
      return;
    }
    if (key === "Backspace" || key === "Delete") { ev.preventDefault(); review.undo(i); showCell(el); return; }
    if (key === "/") {
      ev.preventDefault();
      pick.open("Class of cell " + C.id[i], function (code) { review.setClass(i, code); el.focus(); });
      return;
    }
    if (REMOVE_KEYS[lower]) { ev.preventDefault(); review.remove(i, REMOVE_KEYS[lower]); showCell(el); return; }
    for (var c in data.class_info) {
      if (data.class_info[c].key && data.class_info[c].key === key) { ev.preventDefault(); review.setClass(i, c); showCell(el); return; }
    }
    if (/^[a-zA-Z]$/.test(key)) {
      var now = Date.now();
      typed = (now - typedAt < 1500 ? typed : "") + key.toUpperCase();
      typedAt = now;
      var hits = codes.filter(function (x) { return x.toUpperCase().indexOf(typed) === 0; });
      var exact = codes.filter(function (x) { return x.toUpperCase() === typed; });
      if (exact.length === 1 && hits.length === 1) { review.setClass(i, exact[0]); showCell(el); typed = ""; }
      else if (!hits.length) typed = "";
      ev.preventDefault();
    }
  }

  function exportCorrections() {
    var doc = review.exportDoc();
    var blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "corrections.json";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
  }

  var reviewerInput = document.getElementById("reviewer"), caseNote = document.getElementById("case-comment");
  review.restore();
  if (!review.reviewer() && reviewerInput.value) review.reviewer(reviewerInput.value);
  else reviewerInput.value = review.reviewer();
  if (caseNote) {
    if (!review.caseComment() && caseNote.value) review.caseComment(caseNote.value);
    else caseNote.value = review.caseComment();
    caseNote.addEventListener("change", function () { review.caseComment(caseNote.value); });
  }
  reviewerInput.addEventListener("change", function () { review.reviewer(reviewerInput.value); });
  document.addEventListener("keydown", onKey);
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("figure.crop") : null;
    if (el) { el.focus(); showCell(el); }
  });
  document.getElementById("export").addEventListener("click", exportCorrections);
  document.getElementById("clear").addEventListener("click", function () { review.clear(); });
  for (var j = 0; j < review.n; j++) paintCrop(j);
  var pending = review.changes();
  legend.update(review.summary());
  if (pending) refresh();  // a restored draft: its live figures, not the report's
  else document.getElementById("corr-count").textContent = "0 corrections";
  window.wsiPage = { review: review, viewer: viewer, picker: pick, panel: panel, legend: legend, data: data };
  document.body.dataset.ready = "1";
  document.body.dataset.cells = String(review.n);
})();
