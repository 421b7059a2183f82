"use strict";
/* The rules of wsi_screen/aggregate.py (summarize), for the report page's live figures.
 *
 * The page never decides a rule of its own: class groups, cut-offs and thresholds come from the
 * report's resolved configuration (exported by reports/rules.py as "rules"), and this file mirrors
 * aggregate.summarize line for line, including Python's rounding (round-half-even on the exact
 * binary value) and its number formatting, so a figure shown live is the figure `review apply`
 * writes. tests/reports/test_live_rules.py drives both on the same cells and compares them.
 * Keep the two in step: a change to aggregate.py needs the same change here.
 */
var WsiAggregate = (function () {
  var RAISED = "raised", NOT_RAISED = "not_raised", NOT_ASSESSABLE = "not_assessable", INDETERMINATE = "indeterminate";
  var Z95 = 1.959963984540054;  // scipy.special.ndtri(0.975), as scipy's binomtest uses

  // Python's f"{x:.{d}f}": the exact binary value rounded, ties to even
  function pyFixed(x, d) {
    if (!isFinite(x)) return String(x);
    var s = x.toFixed(d), full = Math.abs(x).toFixed(Math.min(100, d + 80));
    var tail = full.slice(full.indexOf(".") + 1 + d);
    if (/^50*$/.test(tail)) {  // an exact tie: toFixed rounded it up, Python rounds to even
      var down = full.slice(0, full.indexOf(".") + 1 + d).replace(/\.$/, "");
      var last = Number(down.charAt(down.length - 1));
      if (last % 2 === 0) s = (x < 0 ? "-" : "") + down;
    }
    return s;
  }
  function pyRound(x, d) { return Number(pyFixed(x, d)); }
  // Python's f"{x:g}" for the plain numbers a cut-off is
  function pyG(x) { return String(Number(x.toPrecision(6))); }
  function pct(k, n) { return n <= 0 ? null : pyRound(100.0 * k / n, 3); }

  // regularised incomplete beta I_x(a, b) (continued fraction, Numerical Recipes 6.4)
  function lnGamma(z) {
    var g = [676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
      12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7];
    if (z < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * z)) - lnGamma(1 - z);
    z -= 1;
    var a = 0.99999999999980993, t = z + 7.5;
    for (var i = 0; i < 8; i++) a += g[i] / (z + i + 1);
    return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(a);
  }
  function betacf(a, b, x) {
    var qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap, tiny = 1e-300;
    if (Math.abs(d) < tiny) d = tiny;
    d = 1 / d;
    var h = d;
    for (var m = 1; m <= 10000; m++) {
      var m2 = 2 * m, aa = m * (b - m) * x / ((qam + m2) * (a + m2));
      d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
      c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
      d = 1 / d; h *= d * c;
      aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
      d = 1 + aa * d; if (Math.abs(d) < tiny) d = tiny;
      c = 1 + aa / c; if (Math.abs(c) < tiny) c = tiny;
      d = 1 / d;
      var del = d * c;
      h *= del;
      if (Math.abs(del - 1) < 1e-16) break;
    }
    return h;
  }
  function ibeta(x, a, b) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    var bt = Math.exp(lnGamma(a + b) - lnGamma(a) - lnGamma(b) + a * Math.log(x) + b * Math.log(1 - x));
    return x < (a + 1) / (a + b + 2) ? bt * betacf(a, b, x) / a : 1 - bt * betacf(b, a, 1 - x) / b;
  }
  function solve(f) {  // the root of an increasing f on [0, 1], to double precision
    var lo = 0, hi = 1;
    for (var i = 0; i < 200 && hi - lo > 1e-15; i++) {
      var mid = (lo + hi) / 2;
      if (f(mid) < 0) lo = mid; else hi = mid;
    }
    return (lo + hi) / 2;
  }

  // scipy.stats.binomtest(k, n).proportion_ci(0.95, method) in percent, rounded as aggregate does
  function bounds(k, n, method) {  // 95 % interval (fractions) of k/n, k may be real (aggregate._bounds)
    var lo, hi;
    if (method === "exact") {  // Clopper-Pearson: binom.sf(k-1, n, p) = I_p(k, n-k+1)
      var alpha = (1 - 0.95) / 2;
      lo = k <= 0 ? 0.0 : solve(function (p) { return ibeta(p, k, n - k + 1) - alpha; });
      hi = k >= n ? 1.0 : solve(function (p) { return alpha - (1 - ibeta(p, k + 1, n - k)); });
    } else {  // Wilson score without continuity correction (Newcombe 1998), scipy's operation order
      var p = k / n, z = Z95, denom = 2 * (n + z * z), center = (2 * n * p + z * z) / denom, q = 1 - p;
      var delta = z / denom * Math.sqrt(4 * n * p * q + z * z);
      lo = k <= 0 ? 0.0 : center - delta;
      hi = k >= n ? 1.0 : center + delta;
    }
    return [lo, hi];
  }
  function proportionCI(k, n, method) {
    if (n <= 0) return null;
    var b = bounds(k, n, method);
    return [pyRound(100.0 * b[0], 3), pyRound(100.0 * b[1], 3)];
  }
  function decide(ci, cut) {  // aggregate.decide: raised / not_raised / indeterminate from the 95 % interval
    if (!ci) return NOT_ASSESSABLE;
    if (ci[0] >= cut) return RAISED;
    return ci[1] < cut ? NOT_RAISED : INDETERMINATE;
  }
  function cellsToDecide(k, n, cutPercent, method, maxCells) {  // aggregate.cells_to_decide
    if (n <= 0) return null;
    var p = k / n, c = cutPercent / 100.0;
    if (p === c) return null;
    function decided(total) { var b = bounds(p * total, total, method); return p > c ? b[0] >= c : b[1] < c; }
    if (decided(n)) return 0;
    var top = 2 * n;
    while (!decided(top)) { if (top > maxCells) return null; top *= 2; }
    var low = Math.floor(top / 2);
    while (top - low > 1) { var mid = Math.floor((low + top) / 2); if (decided(mid)) top = mid; else low = mid; }
    return top - n;
  }

  function flag(name, status, value, threshold, message, ci95) {
    return { name: name, status: status, value: value, threshold: threshold, message: message,
      ci95: ci95 === undefined ? null : ci95, more_cells_to_decide: null };
  }
  function has(list, c) { return list.indexOf(c) >= 0; }

  /* cells: [{label, pb, pc, conf}] - final class, summed P of the blast classes the page's
   *   `names` hold, summed P of the counted classes, and max P (a reviewed cell: its one-hot row);
   * names: the classes of the figures (the model's, then reviewer-only classes in use);
   * model: the classes the model can call; rules: the exported AggregateConfig and its texts;
   * domain: the screening's qc.domain (a review changes classes, not pixels: its judgement stands). */
  function summarize(cells, names, model, rules, domain) {
    var n = cells.length, counts = {}, order = names.slice();
    names.forEach(function (c) { counts[c] = 0; });
    cells.forEach(function (cell) {
      if (!(cell.label in counts)) { counts[cell.label] = 0; order.push(cell.label); }
      counts[cell.label] += 1;
    });
    var excluded = rules.excluded_classes, counted = 0;
    var countedClasses = order.filter(function (c) { return !has(excluded, c); });
    countedClasses.forEach(function (c) { counted += counts[c]; });
    var differential = {};
    countedClasses.forEach(function (c) {
      differential[c] = { count: counts[c], percent: pct(counts[c], counted),
        ci95: proportionCI(counts[c], counted, rules.ci_method) };
    });
    var excludedBlock = {};
    names.forEach(function (c) {
      if (has(excluded, c)) excludedBlock[c] = { count: counts[c], percent_of_detected: pct(counts[c], n) };
    });
    var blast = blastFigures(cells, counts, names, model, counted, rules);
    var me = meRatio(counts, names, model, rules);
    var lowConf = 0, sumConf = 0;
    cells.forEach(function (cell) { if (Math.fround(cell.conf) < Math.fround(rules.low_confidence)) lowConf += 1; sumConf += cell.conf; });
    var flags = blastFlags(blast, counted, rules);
    flags.push(hairyFlag(cells, names, model, counted, rules));
    flags.push(flag("too_few_cells", counted < rules.min_cells ? RAISED : NOT_RAISED, counted, rules.min_cells,
      counted + " cells counted; at least " + rules.min_cells + " needed for an adequate differential"));
    flags.push(artefactFlag(counts, names, model, n, rules));
    flags = gateFlags(flags, domain, rules);
    var art = rules.artefact_class, nif = rules.not_identifiable_class;
    var histogram = {};
    names.forEach(function (c) { histogram[c] = pct(counts[c], n); });
    var qc = {
      cells_detected: n, cells_counted: counted, min_cells: rules.min_cells,
      count_adequate: counted >= rules.min_cells, low_confidence_threshold: rules.low_confidence,
      low_confidence_fraction: n ? pyRound(lowConf / n, 4) : 0.0,
      mean_confidence: n ? pyRound(sumConf / n, 4) : null,
      artefact_fraction: !has(names, art) || !n ? null : pyRound(counts[art] / n, 4),
      not_identifiable_fraction: !has(names, nif) || !n ? null : pyRound(counts[nif] / n, 4),
      classes_not_covered: rules.matek_classes.filter(function (c) { return !has(model, c); }).sort()
    };
    return { cells_detected: n, cells_counted: counted, differential: differential, excluded: excludedBlock,
      blast: blast, me_ratio: me, histogram: histogram, flags: flags, qc: qc };
  }

  // domain_gate.gate_flags: out of the model's domain, blast cut-offs and hairy cells are not assessable;
  // on a borderline verdict they are not decided (indeterminate)
  function gateFlags(flags, domain, rules) {
    if (!rules.domain_gate || !domain || (domain.status !== "out_of_domain" && domain.status !== "borderline")) return flags;
    var why = (domain.reasons || []).join("; ") || "the input is unlike the model's training data";
    var borderline = domain.status === "borderline";
    return flags.map(function (f) {
      if (!(/^blasts_ge_/.test(f.name) || f.name === "hairy_cells")) return f;
      if (borderline && f.status === NOT_ASSESSABLE) return f;
      var g = {}; Object.keys(f).forEach(function (k) { g[k] = f[k]; });
      g.status = borderline ? INDETERMINATE : NOT_ASSESSABLE; g.more_cells_to_decide = null;
      g.message = (borderline ? "domain check borderline, not decided: " : "out of the model's domain: ") + why + " (" + f.message + ")";
      return g;
    });
  }

  function blastFigures(cells, counts, names, model, counted, rules) {
    var present = rules.blast_classes.filter(function (c) { return has(names, c); });
    if (!present.length) {
      return { status: NOT_ASSESSABLE, classes: rules.blast_classes.slice(), percent: null, ci95: null,
        percent_prob: null, count: null,
        message: "the model has none of the blast-equivalent classes " + rules.blast_classes.join(", ") };
    }
    var k = 0, pBlast = 0, pCounted = 0;
    present.forEach(function (c) { k += counts[c]; });
    cells.forEach(function (cell) { pBlast += cell.pb; pCounted += cell.pc; });
    var missing = rules.blast_classes.filter(function (c) { return !has(model, c); });
    return { status: counted ? "assessed" : NOT_ASSESSABLE, classes: present, classes_missing_from_model: missing,
      count: k, percent: pct(k, counted), ci95: proportionCI(k, counted, rules.ci_method),
      percent_prob: counted ? pct(pBlast, pCounted) : null, expected_count_prob: pyRound(pBlast, 3),
      // reviewed counts are never adjusted for the model's blast confusion (wsi_screen/blast.py)
      adjusted: { applied: false, reason: rules.blast_adjustment === "none" ? "aggregate.blast_adjustment is 'none'"
        : "no measured blast rates apply (the model carries none, or the counts are reviewed)" } };
  }

  function meRatio(counts, names, model, rules) {
    var my = rules.myeloid_classes.filter(function (c) { return has(names, c); });
    var er = rules.erythroid_classes.filter(function (c) { return has(names, c); });
    var m = 0, e = 0, status, value, msg;
    my.forEach(function (c) { m += counts[c]; });
    er.forEach(function (c) { e += counts[c]; });
    if (!er.length || !my.length) {
      status = NOT_ASSESSABLE; value = null;
      msg = !er.length ? "the model lacks erythroid classes" : "the model lacks myeloid classes";
    } else if (e === 0) {
      status = "undefined"; value = null; msg = "no erythroid cells counted";
    } else {
      status = "assessed"; value = pyRound(m / e, 3); msg = m + " myeloid : " + e + " erythroid";
      var reviewOnly = my.concat(er).filter(function (c) { return !has(model, c); });
      if (reviewOnly.length) msg += "; " + reviewOnly.join(", ") + " from review only (the model cannot call them)";
    }
    return { status: status, value: value, myeloid: m, erythroid: e, myeloid_classes: my, erythroid_classes: er,
      message: msg };
  }

  function blastFlags(blast, counted, rules) {
    return rules.blast_cutoffs_percent.map(function (cut) {
      var name = "blasts_ge_" + pyG(cut) + "pct";
      if (blast.percent === null) {
        var why = blast.message || "no cells counted";
        return flag(name, NOT_ASSESSABLE, null, cut, "blast % not assessable: " + why);
      }
      var p = blast.percent, ci = blast.ci95, missing = blast.classes_missing_from_model || [];
      var status = decide(ci, cut), note = "", more = null;
      if (status === INDETERMINATE) {
        more = cellsToDecide(blast.count, counted, cut, rules.ci_method, rules.max_cells_to_decide);
        note = more ? "; indeterminate: the 95 % interval spans the cut-off; about " + more +
          " more counted cells at this proportion would decide it"
          : "; indeterminate: the 95 % interval spans the cut-off and counting more cells at this proportion cannot decide it";
      }
      if (missing.length && (status === NOT_RAISED || status === INDETERMINATE)) {
        status = NOT_ASSESSABLE; more = null;
        note += "; a lower bound only: the model has no " + missing.join(", ") + " class";
      } else if (missing.length) {
        note += "; the model has no " + missing.join(", ") + " class, so the true % may be higher";
      }
      if (counted < rules.min_cells) note += "; only " + counted + " cells counted (minimum " + rules.min_cells + ")";
      var f = flag(name, status, p, cut, "blasts " + pyFixed(p, 1) + " % (95 % CI " + pyFixed(ci[0], 1) + "-" +
        pyFixed(ci[1], 1) + ") of " + counted + " cells" + note, ci);
      f.more_cells_to_decide = more;
      return f;
    });
  }

  function hairyFlag(cells, names, model, counted, rules) {
    var hc = rules.hairy_cell, t = rules.text, thr = hc.min_percent;
    if (!has(names, hc.hairy_class)) {
      return flag("hairy_cells", NOT_ASSESSABLE, null, thr,
        "the model has no " + hc.hairy_class + " class: hairy cells cannot be assessed");
    }
    if (counted === 0) return flag("hairy_cells", NOT_ASSESSABLE, null, thr, "no cells counted");
    var k = 0;
    cells.forEach(function (cell) { if (cell.label === hc.hairy_class && Math.fround(cell.conf) >= Math.fround(hc.min_confidence)) k += 1; });
    var p = 100.0 * k / counted, ci = proportionCI(k, counted, rules.ci_method);
    // three states as the blast cut-offs: raised when the count and the lower bound reach the minimum
    var status = k >= hc.min_count && ci[0] >= thr ? RAISED : (ci[1] < thr ? NOT_RAISED : INDETERMINATE);
    var msg = k + " " + hc.hairy_class + " calls with confidence >= " + t.hairy_min_confidence + " (" + pyFixed(p, 1) +
      " % of " + counted + ", 95 % CI " + pyFixed(ci[0], 1) + "-" + pyFixed(ci[1], 1) + "); flag needs >= " +
      hc.min_count + " cells and >= " + t.hairy_min_percent + " %";
    var more = status === INDETERMINATE ? cellsToDecide(k, counted, thr, rules.ci_method, rules.max_cells_to_decide) : null;
    if (status === INDETERMINATE) {
      msg += "; indeterminate: the 95 % interval spans " + t.hairy_min_percent + " %" +
        (more ? "; about " + more + " more counted cells at this proportion would decide it" : "");
    }
    if (!has(model, hc.hairy_class) && (status === NOT_RAISED || status === INDETERMINATE)) {
      status = NOT_ASSESSABLE;
      msg += "; a lower bound only: the model has no " + hc.hairy_class + " class, only reviewed cells count";
    }
    var f = flag("hairy_cells", status, pyRound(p, 3), thr, msg, ci);
    f.more_cells_to_decide = status === INDETERMINATE ? more : null;
    return f;
  }

  function artefactFlag(counts, names, model, n, rules) {
    var art = rules.artefact_class, artPct = pct(counts[art] || 0, n), status, msg;
    if (has(names, art)) {
      status = (artPct || 0.0) > rules.max_artefact_percent ? RAISED : NOT_RAISED;
      msg = "share of detections classified as artefact (" + art + ")" + (status === RAISED ? "; check the smear and focus" : ": within " + rules.text.max_artefact_percent + " %");
      if (!has(model, art) && status === NOT_RAISED) {
        status = NOT_ASSESSABLE;
        msg += "; a lower bound only: the model has no " + art + " class, only reviewed cells count";
      }
    } else {
      status = NOT_ASSESSABLE; artPct = null;
      msg = "the model has no " + art + " class: artefacts cannot be assessed";
    }
    return flag("many_artefacts", status, artPct, rules.max_artefact_percent, msg);
  }

  return { summarize: summarize, proportionCI: proportionCI, decide: decide, cellsToDecide: cellsToDecide, pyFixed: pyFixed, pyRound: pyRound };
})();
