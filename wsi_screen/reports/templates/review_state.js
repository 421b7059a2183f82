"use strict";
/* The reviewer's work on one report page: each cell's class (any class of the review scheme),
 * removals (duplicate, not a cell), added cells, comments; kept in localStorage per screening,
 * exported as a corrections file (format version 2) that `wsi-screen review apply` reads, and
 * turned into live figures with WsiAggregate (the rules of aggregate.py, exported as data.rules).
 *
 * Rows: the cells of cells.parquet (model detections and cells added by earlier reviews), then
 * the cells added on this page (cell id null until applied; each gets a stable add_id at once, so
 * the exported file applied twice adds it once). A row's "base" state is the state the report
 * records; exported corrections are the differences from it, each stating the cell's end state.
 */
var WsiReview = (function () {
  var REASONS = ["duplicate", "not_a_cell"];
  var seq = 0;

  /* A stable id for a cell added on this page: random, so two pages (or two reviewers) never share one. */
  function newAddId() {
    var hex = "";
    try {
      var b = new Uint8Array(8);
      (window.crypto || window.msCrypto).getRandomValues(b);
      for (var k = 0; k < b.length; k++) hex += (b[k] < 16 ? "0" : "") + b[k].toString(16);
    } catch (e) {
      hex = Math.floor(Math.random() * 4294967296).toString(16) + Date.now().toString(16);
    }
    seq += 1;
    return "a" + hex + "-" + seq;
  }

  function create(data, screening) {
    var C = data.cells, names = data.classes, n = C.id.length, listeners = [];
    var rules = data.rules, review = data.review_classes;
    var baseCls = [], baseRemoved = [], baseComment = [], cls = [], removed = [], comment = [];
    var rowOf = new Map(), added = [], applied = {};
    for (var i = 0; i < n; i++) {
      rowOf.set(C.id[i], i);
      if (C.aid && C.aid[i]) applied[C.aid[i]] = true;
      baseCls[i] = C.rev[i] || (C.pred[i] >= 0 ? names[C.pred[i]] : null);
      baseRemoved[i] = C.removed[i] || null;
      baseComment[i] = C.comment[i] || "";
    }
    var caseComment = "", reviewer = "";
    resetRows();

    function resetRows() {
      for (var i = 0; i < n; i++) { cls[i] = baseCls[i]; removed[i] = baseRemoved[i]; comment[i] = baseComment[i]; }
      added = [];
    }
    function emit(what) { listeners.forEach(function (fn) { fn(what); }); }
    function predicted(i) { return C.pred[i] >= 0 ? names[C.pred[i]] : null; }
    function checkClass(code) {
      if (review.indexOf(code) < 0) throw new Error("unknown class " + code);
    }

    var api = {
      n: n,
      rowOf: function (id) { return rowOf.get(id); },
      id: function (i) { return C.id[i]; },
      classOf: function (i) { return cls[i]; },
      predicted: predicted,
      removedOf: function (i) { return removed[i]; },
      commentOf: function (i) { return comment[i]; },
      added: function () { return added.slice(); },
      isChanged: function (i) { return cls[i] !== baseCls[i] || removed[i] !== baseRemoved[i] || comment[i] !== baseComment[i]; },
      isCorrected: function (i) { return C.origin[i] === "reviewer" || cls[i] !== predicted(i); },
      setClass: function (i, code) { checkClass(code); cls[i] = code; removed[i] = null; emit("row"); },
      undo: function (i) { cls[i] = baseCls[i]; removed[i] = baseRemoved[i]; comment[i] = baseComment[i]; emit("row"); },
      remove: function (i, reason) {
        if (REASONS.indexOf(reason) < 0) throw new Error("unknown reason " + reason);
        removed[i] = reason; emit("row");
      },
      setComment: function (i, text) { comment[i] = String(text || ""); emit("comment"); },
      addCell: function (x, y, code, note) {
        checkClass(code);
        added.push({ x: Math.round(x * 10) / 10, y: Math.round(y * 10) / 10, cls: code, comment: note || "",
          add_id: newAddId() });
        emit("added");
        return added.length - 1;
      },
      setAddedClass: function (k, code) { checkClass(code); added[k].cls = code; emit("added"); },
      dropAdded: function (k) { added.splice(k, 1); emit("added"); },
      caseComment: function (text) { if (text !== undefined) { caseComment = String(text); emit("comment"); } return caseComment; },
      reviewer: function (text) { if (text !== undefined) { reviewer = String(text); emit("comment"); } return reviewer; },
      onChange: function (fn) { listeners.push(fn); },
      changes: function () {
        var k = added.length;
        for (var i = 0; i < n; i++) if (api.isChanged(i)) k += 1;
        return k;
      },
      clear: function () { resetRows(); emit("clear"); },
      summary: summary,
      figureCells: figureCells,
      exportDoc: exportDoc,
      save: save,
      restore: restore
    };

    /* The rows the figures count and what aggregate.summarize sees of each: a corrected row counts
     * with probability 1 for its class (one-hot), a model row with the model's probabilities. */
    function figureCells() {
      var out = [], used = {};
      function oneHot(code) {
        return { label: code, pb: rules.blast_classes.indexOf(code) >= 0 ? 1 : 0,
          pc: rules.excluded_classes.indexOf(code) >= 0 ? 0 : 1, conf: 1 };
      }
      for (var i = 0; i < n; i++) {
        if (removed[i] || C.counted[i] === false) continue;  // removed, or in a region that is not counted
        var code = cls[i];
        used[code] = true;
        out.push(api.isCorrected(i) ? oneHot(code) : { label: code, pb: C.pb[i], pc: C.pc[i], conf: C.conf[i] });
      }
      added.forEach(function (a) { used[a.cls] = true; out.push(oneHot(a.cls)); });
      var figNames = names.concat(review.filter(function (c) { return names.indexOf(c) < 0 && used[c]; }));
      return { cells: out, names: figNames };
    }

    function summary() {
      var f = figureCells();
      var s = WsiAggregate.summarize(f.cells, f.names, names, rules, data.domain);
      s.qc.low_confidence_fraction = data.model_qc.low_confidence_fraction;  // QC describes the model's calls
      s.qc.mean_confidence = data.model_qc.mean_confidence;
      return s;
    }

    function exportDoc() {
      var list = [];
      for (var i = 0; i < n; i++) {
        var item = null, pred = predicted(i);
        if (removed[i] && removed[i] !== baseRemoved[i]) item = { kind: "remove", cell_id: C.id[i], reason: removed[i] };
        else if (cls[i] !== baseCls[i] || (!removed[i] && baseRemoved[i])) item = { kind: "reclassify", cell_id: C.id[i], "class": cls[i] };
        else if (comment[i] !== baseComment[i]) item = { kind: "comment", cell_id: C.id[i] };
        if (!item) continue;
        if (pred) item.predicted = pred;
        if (comment[i] !== baseComment[i] || (comment[i] && item.kind !== "comment")) item.comment = comment[i];
        list.push(item);
      }
      added.forEach(function (a) {
        var item = { kind: "add", add_id: a.add_id, x: a.x, y: a.y, "class": a.cls };
        if (a.comment) item.comment = a.comment;
        list.push(item);
      });
      return {
        format: "wsi-screen-corrections", version: 2, input: data.input, input_sha256: data.input_sha256,
        screening: screening, reviewer: reviewer || null, comment: caseComment || null,
        created_at: new Date().toISOString(), corrections: list
      };
    }

    var storeKey = "wsi-screen:" + data.storage_key;
    function save() {
      try {
        var rows = {};
        for (var i = 0; i < n; i++) {
          if (api.isChanged(i)) rows[C.id[i]] = { c: cls[i], r: removed[i], m: comment[i] };
        }
        localStorage.setItem(storeKey, JSON.stringify({ v: 2, reviewer: reviewer, comment: caseComment, rows: rows, added: added }));
      } catch (e) { /* storage may be unavailable for file:// pages: the work lives until export */ }
    }
    function restore() {
      try {
        var saved = JSON.parse(localStorage.getItem(storeKey) || "null");
        if (!saved) return;
        reviewer = saved.reviewer || ""; caseComment = saved.comment || "";
        if (saved.v !== 2) {  // a page of the previous format kept {id: class}
          Object.keys(saved.changes || {}).forEach(function (k) {
            var i = rowOf.get(Number(k));
            if (i !== undefined && review.indexOf(saved.changes[k]) >= 0) cls[i] = saved.changes[k];
          });
          return;
        }
        Object.keys(saved.rows || {}).forEach(function (k) {
          var i = rowOf.get(Number(k)), s = saved.rows[k];
          if (i === undefined || !s) return;
          if (review.indexOf(s.c) >= 0) cls[i] = s.c;
          removed[i] = REASONS.indexOf(s.r) >= 0 ? s.r : null;
          comment[i] = typeof s.m === "string" ? s.m : "";
        });
        (saved.added || []).forEach(function (a) {
          if (a && review.indexOf(a.cls) >= 0 && isFinite(a.x) && isFinite(a.y) && !applied[a.add_id]) {
            added.push({ x: a.x, y: a.y, cls: a.cls, comment: a.comment || "",
              add_id: typeof a.add_id === "string" && a.add_id ? a.add_id : newAddId() });
          }
        });
      } catch (e) { /* ignore unreadable storage */ }
    }
    return api;
  }
  return { create: create, REASONS: REASONS };
})();
