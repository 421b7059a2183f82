"use strict";
/* Live figures: the summary, flags, differential, M:E and histogram of the page re-drawn from
 * WsiReview.summary() (the rules of aggregate.py) whenever the reviewer changes a cell, with the
 * model's figures beside them. The server-side page shows the report's figures; this replaces them
 * with the same markup, so a page reads the same before and after the first change.
 */
var WsiLive = (function () {
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function num(v) { return v === null || v === undefined ? "–" : (Number.isInteger(v) ? String(v) : WsiAggregate.pyFixed(v, 1)); }
  function pct(v, d) { return v === null || v === undefined ? "–" : WsiAggregate.pyFixed(v, d === undefined ? 1 : d); }
  function ci(c) { return !c ? "–" : WsiAggregate.pyFixed(c[0], 1) + "–" + WsiAggregate.pyFixed(c[1], 1); }
  function status(s) { return el("span", "status " + s, s.replace(/_/g, " ")); }
  function flagTitle(data, name) {
    if (data.flag_titles[name]) return data.flag_titles[name];
    var m = /^blasts_ge_(.*)pct$/.exec(name);
    return m ? "Blasts \u2265 " + m[1] + " %" : name;
  }
  function uncovered(data, codes) { return (codes || []).filter(function (c) { return data.classes.indexOf(c) < 0; }); }

  function renderFlags(data, s) {
    var body = document.querySelector("#flags tbody");
    if (!body) return;
    body.textContent = "";
    s.flags.forEach(function (f) {
      var tr = el("tr", "flag " + f.status);
      tr.dataset.flag = f.name;
      tr.appendChild(el("td", "", flagTitle(data, f.name)));
      var st = el("td"); st.appendChild(status(f.status)); tr.appendChild(st);
      tr.appendChild(el("td", "", num(f.value)));
      tr.appendChild(el("td", "", ci(f.ci95)));
      tr.appendChild(el("td", "", num(f.threshold)));
      tr.appendChild(el("td", "lacks", uncovered(data, data.flag_classes[f.name]).join(", ") || "–"));
      tr.appendChild(el("td", "msg", f.message));
      body.appendChild(tr);
    });
  }

  function renderDifferential(data, s) {
    var body = document.querySelector("#differential table.diff tbody");
    if (!body) return;
    var model = data.model_figures || {}, md = model.differential || {}, me = model.excluded || {};
    body.textContent = "";
    function row(code, count, p, c, modelCount, excluded) {
      var tr = el("tr", excluded ? "excluded" : "");
      tr.dataset.code = code;
      var td = el("td");
      td.appendChild(WsiClassUI.swatch(data, code, 12));
      td.appendChild(document.createTextNode(code + " "));
      td.appendChild(el("span", "muted", data.class_info[code].name + (excluded ? " (not counted)" : "") +
        (data.classes.indexOf(code) < 0 ? " (reviewer only)" : "")));
      tr.appendChild(td);
      tr.appendChild(el("td", "count", count));
      tr.appendChild(el("td", "", p + (excluded ? "*" : "")));
      tr.appendChild(el("td", "", c));
      tr.appendChild(el("td", "model", modelCount === undefined ? "–" : modelCount));
      body.appendChild(tr);
    }
    Object.keys(s.differential).forEach(function (code) {
      var d = s.differential[code];
      row(code, d.count, pct(d.percent), ci(d.ci95), (md[code] || {}).count, false);
    });
    Object.keys(s.excluded).forEach(function (code) {
      var d = s.excluded[code];
      row(code, d.count, pct(d.percent_of_detected), "", (me[code] || {}).count, true);
    });
    var small = document.querySelector("#differential h2 small");
    if (small) small.textContent = s.cells_counted + " cells counted of " + s.cells_detected + " detected";
  }

  function renderBlast(data, s) {
    var b = s.blast, target = document.getElementById("primary-blast");
    if (target) {
      target.textContent = "";
      if (b.percent === null) target.appendChild(el("b", "", "not assessable"));
      else {
        target.appendChild(el("b", "big", pct(b.percent) + " %"));
        target.appendChild(document.createTextNode(" of " + s.cells_counted + " counted cells (95 % CI " + ci(b.ci95) + "; " + b.count + " cells)"));
      }
      var states = s.flags.filter(function (f) { return /^blasts_ge_/.test(f.name); });
      states.forEach(function (f) {
        var sp = el("span", "cut"); sp.appendChild(document.createTextNode(" " + flagTitle(data, f.name) + ": "));
        sp.appendChild(status(f.status)); target.appendChild(sp);
      });
    }
    var adj = document.getElementById("blast-adjusted");
    if (adj && b.adjusted && !b.adjusted.applied) {
      adj.textContent = "Not adjusted for the model's blast confusion: " + b.adjusted.reason + "; the cut-off flags decide on the count's interval.";
    }
    var prob = document.getElementById("blast-prob");
    if (prob) prob.textContent = b.percent_prob === null || b.percent_prob === undefined ? "–" : pct(b.percent_prob) + " % (expected " + WsiAggregate.pyFixed(b.expected_count_prob || 0, 1) + " cells, summed P over " + b.classes.join(", ") + ")";
    var me = s.me_ratio, mEl = document.getElementById("me-ratio");
    if (mEl) {
      mEl.textContent = me.value !== null ? WsiAggregate.pyFixed(me.value, 2) + " : 1 " : me.status.replace(/_/g, " ") + " ";
      mEl.appendChild(el("span", "muted", (me.message || "") + "; normal about 2-4 : 1"));
    }
  }

  function renderHistogram(data, s) {
    var svg = document.querySelector("#histogram svg");
    if (!svg) return;
    var NS = "http://www.w3.org/2000/svg", hist = Object.keys(s.histogram), max = 1;
    hist.forEach(function (c) { max = Math.max(max, s.histogram[c] || 0); });
    var h = 16 * hist.length + 8;
    svg.setAttribute("height", String(h)); svg.setAttribute("viewBox", "0 0 460 " + h);
    svg.textContent = "";
    hist.forEach(function (c, k) {
      var v = s.histogram[c] || 0, w = v / max * 360, g = document.createElementNS(NS, "g");
      g.setAttribute("transform", "translate(0," + (4 + 16 * k) + ")");
      var t = document.createElementNS(NS, "text"); t.setAttribute("x", "38"); t.setAttribute("y", "11"); t.setAttribute("text-anchor", "end"); t.textContent = c;
      var r = document.createElementNS(NS, "rect"); r.setAttribute("x", "44"); r.setAttribute("y", "1"); r.setAttribute("width", w.toFixed(1)); r.setAttribute("height", "12"); r.setAttribute("fill", data.class_info[c].color);
      var l = document.createElementNS(NS, "text"); l.setAttribute("x", (48 + w).toFixed(1)); l.setAttribute("y", "11"); l.textContent = pct(s.histogram[c]);
      g.appendChild(t); g.appendChild(r); g.appendChild(l); svg.appendChild(g);
    });
  }

  /* "indeterminate / not reportable": why the figures cannot be reported as they stand */
  function reasons(data, s) {
    var out = [];
    if (!s.qc.count_adequate) out.push("count inadequate: " + s.cells_counted + " cells counted, at least " + s.qc.min_cells + " needed");
    (data.domain_reasons || []).concat(data.input_reasons || []).forEach(function (r) { out.push(r); });
    var open = s.flags.filter(function (f) { return f.status === "indeterminate"; }).map(function (f) { return flagTitle(data, f.name); });
    if (open.length) out.push("undecided: " + open.join(", ") + " (the 95 % interval spans the cut-off)");
    return out;
  }
  function renderBanner(data, s) {
    var b = document.getElementById("banner");
    if (!b) return;
    var why = reasons(data, s);
    b.hidden = !why.length;
    var list = b.querySelector("ul");
    list.textContent = "";
    why.forEach(function (w) { list.appendChild(el("li", "", w)); });
  }

  function render(data, s, changed) {
    renderFlags(data, s); renderDifferential(data, s); renderBlast(data, s); renderHistogram(data, s); renderBanner(data, s);
    var live = document.getElementById("live-state");
    if (live) live.textContent = changed ? changed + " unsaved change" + (changed === 1 ? "" : "s") + ": figures recomputed live; export the corrections and run `wsi-screen review apply` to keep them" : "";
    document.body.dataset.live = JSON.stringify({ blast: s.blast.percent, counted: s.cells_counted, flags: s.flags.map(function (f) { return f.status; }) });
  }

  return { render: render, reasons: reasons, flagTitle: flagTitle };
})();
