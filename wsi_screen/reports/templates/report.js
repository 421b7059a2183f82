"use strict";
(function () {
  var errors = 0;
  window.addEventListener("error", function () { errors += 1; document.body.dataset.jsErrors = String(errors); });
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var screening = JSON.parse(document.getElementById("screening-data").textContent);
  var C = data.cells, names = data.classes, n = C.id.length;
  var rowOf = new Map(), current = new Array(n);
  for (var i = 0; i < n; i++) { rowOf.set(C.id[i], i); current[i] = C.rev[i] >= 0 ? C.rev[i] : C.pred[i]; }
  var storeKey = "wsi-screen:" + data.storage_key;
  var crops = Array.prototype.slice.call(document.querySelectorAll("figure.crop"));
  var cropsById = new Map();
  crops.forEach(function (el) {
    var id = Number(el.dataset.id);
    if (!cropsById.has(id)) cropsById.set(id, []);
    cropsById.get(id).push(el);
  });
  var svg = document.getElementById("overview-svg"), marks = document.getElementById("marks");
  var hl = document.getElementById("highlight"), markById = new Map(), radius = 6;
  var SVGNS = "http://www.w3.org/2000/svg";

  function drawMarks() {
    if (!svg) return;
    var vb = svg.viewBox.baseVal, s = data.overview_scale;
    radius = Math.max(4, Math.max(vb.width, vb.height) / 110);
    var frag = document.createDocumentFragment();
    for (var i = 0; i < n; i++) {
      var c = document.createElementNS(SVGNS, "circle");
      c.setAttribute("cx", (C.x[i] * s).toFixed(1));
      c.setAttribute("cy", (C.y[i] * s).toFixed(1));
      c.setAttribute("r", radius.toFixed(1));
      c.dataset.id = String(C.id[i]);
      var t = document.createElementNS(SVGNS, "title");
      t.textContent = "cell " + C.id[i];
      c.appendChild(t);
      frag.appendChild(c);
      markById.set(C.id[i], c);
    }
    marks.appendChild(frag);
    marks.addEventListener("click", function (ev) {
      var id = Number(ev.target.dataset && ev.target.dataset.id);
      if (!isNaN(id)) findCrop(id);
    });
  }

  function paint(i) {
    var id = C.id[i], cls = current[i], code = cls >= 0 ? names[cls] : "?";
    var corrected = cls !== C.pred[i];
    var m = markById.get(id);
    if (m) m.setAttribute("stroke", cls >= 0 ? data.colors[cls] : "#000");
    (cropsById.get(id) || []).forEach(function (el) {
      var tag = el.querySelector(".tag");
      tag.textContent = code;
      tag.style.background = cls >= 0 ? data.colors[cls] : "#000";
      el.classList.toggle("corrected", corrected);
      el.title = "cell " + id + ": " + code + (corrected ? " (model: " + names[C.pred[i]] + ")" : "") + ", P(blast) " + C.pb[i];
    });
  }

  function liveFigures() {
    var counted = 0, blasts = 0, changes = 0, excl = new Set(data.excluded_classes), bl = new Set(data.blast_classes);
    for (var i = 0; i < n; i++) {
      var code = names[current[i]];
      if (current[i] !== C.pred[i]) changes += 1;
      if (excl.has(code)) continue;
      counted += 1;
      if (bl.has(code)) blasts += 1;
    }
    document.getElementById("corr-count").textContent = changes + " correction" + (changes === 1 ? "" : "s");
    var live = document.getElementById("live-figures");
    if (!bl.size || !counted) { live.textContent = ""; return; }
    var pct = (100 * blasts / counted).toFixed(1);
    var was = data.original_blast_percent;
    live.textContent = "blasts " + pct + " % of " + counted + (changes && was !== null ? " (report: " + was.toFixed(1) + " %)" : "");
  }

  function save() {
    try {
      var obj = {};
      for (var i = 0; i < n; i++) if (current[i] !== (C.rev[i] >= 0 ? C.rev[i] : C.pred[i])) obj[C.id[i]] = names[current[i]];
      localStorage.setItem(storeKey, JSON.stringify({ reviewer: reviewerInput.value, changes: obj }));
    } catch (e) { /* storage may be unavailable for file:// pages: corrections live until export */ }
  }

  function restore() {
    try {
      var saved = JSON.parse(localStorage.getItem(storeKey) || "null");
      if (!saved) return;
      reviewerInput.value = saved.reviewer || "";
      Object.keys(saved.changes || {}).forEach(function (k) {
        var i = rowOf.get(Number(k)), cls = names.indexOf(saved.changes[k]);
        if (i !== undefined && cls >= 0) current[i] = cls;
      });
    } catch (e) { /* ignore unreadable storage */ }
  }

  function assign(el, cls) {
    var i = rowOf.get(Number(el.dataset.id));
    if (i === undefined) return;
    current[i] = cls;
    paint(i); liveFigures(); save();
  }

  function locate(id) {
    crops.forEach(function (el) { el.classList.remove("located"); });
    (cropsById.get(id) || []).forEach(function (el) { el.classList.add("located"); });
    var m = markById.get(id);
    markById.forEach(function (c) { c.classList.remove("sel"); });
    if (!m || !hl) return;
    m.classList.add("sel");
    hl.setAttribute("cx", m.getAttribute("cx"));
    hl.setAttribute("cy", m.getAttribute("cy"));
    hl.setAttribute("r", (radius * 2.2).toFixed(1));
    var box = svg.getBoundingClientRect();
    if (box.bottom < 0 || box.top > window.innerHeight) svg.scrollIntoView({ block: "nearest" });
  }

  function findCrop(id) {
    var els = cropsById.get(id);
    var note = document.getElementById("overview-note");
    locate(id);
    if (els && els.length) { els[0].focus(); els[0].scrollIntoView({ block: "center" }); return; }
    var i = rowOf.get(id);
    if (note && i !== undefined) note.textContent = "Cell " + id + " (" + names[current[i]] + ", confidence " + C.conf[i] + ") has no crop in this report.";
  }

  function visibleCrops() { return crops.filter(function (el) { return el.offsetParent !== null; }); }

  function move(el, key) {
    var list = visibleCrops(), k = list.indexOf(el);
    if (k < 0) { if (list.length) list[0].focus(); return; }
    var target = null;
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
    if (ev.target.tagName === "INPUT" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
    var el = ev.target.closest ? ev.target.closest("figure.crop") : null;
    if (!el) return;  // no crop focused: keys (arrows included) keep their usual meaning
    if (ev.key.indexOf("Arrow") === 0) { ev.preventDefault(); move(el, ev.key); return; }
    var i = rowOf.get(Number(el.dataset.id));
    if (ev.key === "Enter") { ev.preventDefault(); locate(Number(el.dataset.id)); return; }
    if (ev.key === "Backspace" || ev.key === "Delete") { ev.preventDefault(); assign(el, C.pred[i]); return; }
    var k = data.keys.indexOf(ev.key);
    if (k >= 0 && ev.key !== "") { ev.preventDefault(); assign(el, k); return; }
    if (/^[a-zA-Z]$/.test(ev.key)) {
      var now = Date.now();
      typed = (now - typedAt < 1500 ? typed : "") + ev.key.toUpperCase();
      typedAt = now;
      var hits = names.filter(function (c) { return c.toUpperCase().indexOf(typed) === 0; });
      var exact = names.filter(function (c) { return c.toUpperCase() === typed; });
      if (exact.length === 1 && hits.length === 1) { assign(el, names.indexOf(exact[0])); typed = ""; }
      else if (!hits.length) typed = "";
      ev.preventDefault();
    }
  }

  function exportCorrections() {
    var list = [];
    for (var i = 0; i < n; i++) {
      var was = C.rev[i] >= 0;
      if (current[i] !== C.pred[i] || (was && current[i] !== C.rev[i])) {
        list.push({ cell_id: C.id[i], "class": names[current[i]], predicted: names[C.pred[i]] });
      }
    }
    var doc = {
      format: "wsi-screen-corrections", version: 1, input: data.input, input_sha256: data.input_sha256,
      screening: screening,
      reviewer: reviewerInput.value || null, created_at: new Date().toISOString(), corrections: list
    };
    var blob = new Blob([JSON.stringify(doc, null, 2)], { type: "application/json" });
    var a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "corrections.json";
    document.body.appendChild(a); a.click(); a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
  }

  var reviewerInput = document.getElementById("reviewer");
  restore();
  drawMarks();
  for (var j = 0; j < n; j++) paint(j);
  liveFigures();
  document.addEventListener("keydown", onKey);
  document.addEventListener("click", function (ev) {
    var el = ev.target.closest ? ev.target.closest("figure.crop") : null;
    if (el) { el.focus(); locate(Number(el.dataset.id)); }
  });
  reviewerInput.addEventListener("change", save);
  document.getElementById("export").addEventListener("click", exportCorrections);
  document.getElementById("clear").addEventListener("click", function () {
    for (var i = 0; i < n; i++) { current[i] = C.rev[i] >= 0 ? C.rev[i] : C.pred[i]; paint(i); }
    liveFigures(); save();
  });
  document.body.dataset.ready = "1";
  document.body.dataset.cells = String(n);
})();
