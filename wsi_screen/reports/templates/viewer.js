"use strict";
/* The zoomable viewer: OpenSeadragon (vendored, BSD-3-Clause) over the deep-zoom tiles written
 * beside the report (viewer/), with the cells drawn as an SVG overlay: one colour and one shape
 * per class (reports/palette.py), dashed for cells added by the reviewer, grey and crossed out
 * for removed ones. Click a mark to select its cell; in "add" mode a click places a missed cell.
 * Without the tiles or the script (a page copied alone) the viewer says so and the rest works.
 */
var WsiViewer = (function () {
  var SVGNS = "http://www.w3.org/2000/svg";

  function create(data, review, hooks) {
    var box = document.getElementById("viewer");
    var note = document.getElementById("viewer-note");
    if (!box) return null;
    if (!data.viewer || typeof OpenSeadragon !== "function") {
      box.hidden = true;
      if (note) note.textContent = data.viewer ? "The viewer script (viewer/openseadragon.min.js) was not found beside this page." : "No zoomable view was written for this report.";
      return null;
    }
    var dz = data.viewer, C = data.cells, n = review.n, info = data.class_info;
    var v = OpenSeadragon({
      element: box, tileSources: dz.tile_source, drawer: "canvas", showNavigationControl: false,
      showNavigator: true, navigatorPosition: "BOTTOM_RIGHT", navigatorSizeRatio: 0.18,
      maxZoomPixelRatio: 4, visibilityRatio: 0.3, animationTime: 0.5, preserveImageSizeOnResize: true,
      gestureSettingsMouse: { clickToZoom: false, dblClickToZoom: true }
    });
    var svg = document.createElementNS(SVGNS, "svg"), g = document.createElementNS(SVGNS, "g");
    svg.setAttribute("class", "viewer-marks");
    svg.appendChild(g);
    var marks = [], addedMarks = [], hidden = {}, addMode = false, selected = null, radiusVp = 0, lastScale = 0;
    var toVp = dz.scale / dz.width;  // level-0 pixels -> viewport units (image width = 1)
    var cellR = Math.max(4, data.cell_radius_px || 20) * 1.25 * toVp;

    function mark(x, y, code) {
      var p = document.createElementNS(SVGNS, "path");
      p.setAttribute("d", data.shapes[(info[code] || {}).shape || "circle"]);
      p.dataset.x = String(x * toVp); p.dataset.y = String(y * toVp);
      g.appendChild(p);
      return p;
    }
    function paintMark(p, code, state) {
      var c = info[code] || { color: "#000", shape: "circle" };
      p.setAttribute("d", data.shapes[c.shape]);
      p.setAttribute("stroke", state === "removed" ? "#6b7280" : c.color);
      p.setAttribute("class", "mk c-" + code + (state ? " " + state : "") + (hidden[code] ? " filtered" : ""));
    }
    function place(p) {
      p.setAttribute("transform", "translate(" + p.dataset.x + "," + p.dataset.y + ") scale(" + radiusVp.toPrecision(4) + ")");
    }
    function drawAll() {
      for (var i = 0; i < n; i++) {
        if (!marks[i]) { marks[i] = mark(C.x[i], C.y[i], review.classOf(i)); marks[i].dataset.row = String(i); }
        paintMark(marks[i], review.classOf(i), review.removedOf(i) ? "removed" :
          (C.origin[i] === "reviewer" ? "added" : (C.counted[i] === false ? "uncounted" : "")));
        place(marks[i]);
      }
      addedMarks.forEach(function (p) { p.remove(); });
      addedMarks = review.added().map(function (a, k) {
        var p = mark(a.x, a.y, a.cls);
        p.dataset.added = String(k);
        paintMark(p, a.cls, "added new");
        place(p);
        return p;
      });
      if (selected !== null) select(selected, false);
    }
    function sync() {
      var vp = v.viewport, zoom = vp.getZoom(true), s = vp.getContainerSize().x * zoom;
      var o = vp.pixelFromPoint(new OpenSeadragon.Point(0, 0), true);
      g.setAttribute("transform", "translate(" + o.x.toFixed(2) + "," + o.y.toFixed(2) + ") scale(" + s.toPrecision(6) + ")");
      if (!lastScale || s / lastScale > 1.4 || lastScale / s > 1.4) {  // keep marks legible: at least 7 px
        lastScale = s;
        radiusVp = Math.max(cellR, 7 / s);
        marks.forEach(place); addedMarks.forEach(place);
      }
    }
    function nearest(vx, vy) {
      var best = null, bestD = Infinity, lim = radiusVp * 1.6;
      function consider(p) {
        if (p.classList.contains("filtered")) return;
        var d = Math.hypot(Number(p.dataset.x) - vx, Number(p.dataset.y) - vy);
        if (d < bestD && d <= lim) { bestD = d; best = p; }
      }
      marks.forEach(consider); addedMarks.forEach(consider);
      return best;
    }
    function select(row, zoom) {
      marks.forEach(function (p) { p.classList.remove("sel"); });
      selected = row;
      if (row === null || !marks[row]) return;
      marks[row].classList.add("sel");
      g.appendChild(marks[row]);  // on top
      if (zoom) zoomTo(C.x[row], C.y[row]);
    }
    function zoomTo(x, y) {  // native resolution (one image pixel to at least one screen pixel)
      var vp = v.viewport, target = Math.max(vp.imageToViewportZoom(1.5), vp.getZoom());
      vp.zoomTo(target, null, false);
      vp.panTo(new OpenSeadragon.Point(x * toVp, y * toVp), false);
    }
    function drawRegions() {  // excluded regions (thick, clumped, blurred, artefact), under the marks
      (data.excluded_regions || []).forEach(function (r) {
        var rect = document.createElementNS(SVGNS, "rect");
        rect.setAttribute("x", String(r[0] * toVp)); rect.setAttribute("y", String(r[1] * toVp));
        rect.setAttribute("width", String(r[2] * toVp)); rect.setAttribute("height", String(r[3] * toVp));
        rect.setAttribute("class", "region excluded");
        var t = document.createElementNS(SVGNS, "title"); t.textContent = "excluded region: " + r[4]; rect.appendChild(t);
        g.insertBefore(rect, g.firstChild);
      });
    }
    v.addHandler("open", function () {
      v.canvas.appendChild(svg); drawRegions(); drawAll(); sync();
      box.dataset.ready = "1";
      if (hooks.onOpen) hooks.onOpen(v);
    });
    v.addHandler("animation", sync);
    v.addHandler("animation-finish", sync);
    v.addHandler("resize", sync);
    v.addHandler("update-viewport", sync);
    v.addHandler("canvas-click", function (ev) {
      if (!ev.quick) return;
      var pt = v.viewport.pointFromPixel(ev.position, true);
      var x0 = pt.x / toVp, y0 = pt.y / toVp;
      if (addMode) { ev.preventDefaultAction = true; if (hooks.onAdd) hooks.onAdd(x0, y0); return; }
      var hit = nearest(pt.x, pt.y);
      if (!hit) return;
      ev.preventDefaultAction = true;
      if (hit.dataset.added !== undefined) { if (hooks.onSelectAdded) hooks.onSelectAdded(Number(hit.dataset.added)); return; }
      select(Number(hit.dataset.row), false);
      if (hooks.onSelect) hooks.onSelect(Number(hit.dataset.row));
    });
    review.onChange(function () { drawAll(); });

    return {
      osd: v,
      select: select,
      zoomTo: zoomTo,
      setAddMode: function (on) { addMode = !!on; box.classList.toggle("adding", addMode); },
      addMode: function () { return addMode; },
      filter: function (code, hide) { hidden[code] = !!hide; drawAll(); },
      hiddenClasses: function () { return Object.keys(hidden).filter(function (k) { return hidden[k]; }); },
      marks: function () { return marks.length + addedMarks.length; },
      imagePoint: function (x, y) { return v.viewport.pixelFromPoint(new OpenSeadragon.Point(x * toVp, y * toVp), true); }
    };
  }
  return { create: create };
})();
