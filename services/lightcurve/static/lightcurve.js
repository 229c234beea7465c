// The light-curve plot: every observer's points, a series per filter, survey and observatory (colour per
// band, marker shape per observatory), error bars, limits as arrows, MJD with calendar dates, or the phase
// when a period is given (?period=days&t0=mjd). uPlot (vendored, /static/vendor/) draws the axes, the
// legend and the box zoom; this file draws the points, error bars and limit arrows, the hover box, the
// filter and observatory toggles, wheel zoom, shift+drag pan, and the PNG and SVG exports.
"use strict";
(function () {
  const island = document.getElementById("lc-data");
  const box = document.getElementById("chart");
  if (!island || !box || typeof uPlot === "undefined") return;
  const lc = JSON.parse(island.textContent);
  const series = lc.series || [];

  // ---- series: colour per band (a filter of a survey), marker shape per observatory ----
  const COLOURS = { U: "#7b2cbf", B: "#1f4fd1", V: "#1b9e3a", R: "#d62728", I: "#8c1c13", G: "#333333",
    u: "#9d4edd", g: "#118ab2", r: "#f77f00", i: "#a0522d", z: "#6a4c93", y: "#556b2f", BP: "#3a86ff", RP: "#c1121f",
    "g'": "#0f6e8c", "r'": "#c45f00", "i'": "#7a3e1d" };
  const SPARE = ["#e76f51", "#2a9d8f", "#8338ec", "#ff006e", "#606c38", "#bc6c25", "#0b7285", "#5f3dc4"];
  const SHAPES = ["circle", "square", "triangle", "diamond", "down", "cross", "plus", "star"];
  const bandKey = s => s.filter + "|" + s.survey;
  const bandLabel = s => s.filter + " (" + [s.survey || "no survey", s.system].filter(Boolean).join(", ") + ")";
  const bands = [], observatories = [];
  series.forEach(s => {
    if (!bands.some(b => b.key === bandKey(s))) bands.push({ key: bandKey(s), filter: s.filter, label: bandLabel(s) });
    if (!observatories.includes(s.observatory)) observatories.push(s.observatory);
  });
  observatories.sort();
  // a filter's own colour for its first survey; the same filter name of another survey (PS1 g, SDSS g) gets a spare one
  let spare = 0;
  const seenFilter = new Set();
  bands.forEach(b => {
    b.colour = COLOURS[b.filter] && !seenFilter.has(b.filter) ? COLOURS[b.filter] : SPARE[spare++ % SPARE.length];
    seenFilter.add(b.filter);
  });
  const bandOf = s => bands.find(b => b.key === bandKey(s));
  const colourOf = s => bandOf(s).colour;
  const shapeOf = s => SHAPES[observatories.indexOf(s.observatory) % SHAPES.length];
  const seriesLabel = s => bandLabel(s) + " · " + s.observatory + " (" + s.mjd.length +
    (s.lim.length ? " + " + s.lim.length + " limit" + (s.lim.length === 1 ? "" : "s") : "") + ")";

  const MJD0 = Date.UTC(1858, 10, 17);
  const DAY_MS = 86400000;
  // the calendar date (UTC) of an MJD, rounded to the resolution shown: "day", "minute" or "second"
  function calendar(mjd, resolution) {
    const unit = resolution === "day" ? DAY_MS : resolution === "minute" ? 60000 : 1000;
    const d = new Date(MJD0 + Math.round(mjd * DAY_MS / unit) * unit);
    if (isNaN(d)) return "";
    const iso = d.toISOString();
    return resolution === "day" ? iso.slice(0, 10) : resolution === "minute" ? iso.slice(0, 16).replace("T", " ")
      : iso.slice(5, 19).replace("T", " ");
  }
  // the fewest decimals that write every multiple of `step` exactly (0.25 -> 2, 2.5 -> 1, 5 -> 0)
  function decimalsFor(step) {
    for (let d = 0; d < 8; d++) {
      const scaled = step * Math.pow(10, d);
      if (Math.abs(scaled - Math.round(scaled)) < 1e-6 * Math.max(1, scaled)) return d;
    }
    return 8;
  }
  // the tick spacings offered: 1, 2, 2.5 and 5 times a power of ten (uPlot's own stop 2.5 below 1 only)
  const INCRS = [];
  for (let e = -6; e <= 6; e++) [1, 2, 2.5, 5].forEach(m => INCRS.push(+(m * Math.pow(10, e)).toPrecision(3)));

  // ---- the view: time (MJD) or phase-folded ----
  const params = new URLSearchParams(window.location.search);
  const foldMsg = document.getElementById("fold-msg");
  let fold = null;
  if (params.has("period")) {
    const period = Number(params.get("period"));
    const t0Text = params.get("t0");
    const t0 = t0Text === null || t0Text.trim() === "" ? NaN : Number(t0Text);
    const allMjd = series.flatMap(s => s.mjd.concat(s.lim_mjd));
    if (!(period > 0) || !isFinite(period)) {
      if (foldMsg) foldMsg.textContent = "The period must be a positive number of days (e.g. 0.4321); showing time.";
    } else if (t0Text !== null && t0Text.trim() !== "" && !isFinite(t0)) {
      if (foldMsg) foldMsg.textContent = "T0 must be an MJD (e.g. 60200.5), or empty for the first point; showing time.";
    } else {
      fold = { period, t0: isFinite(t0) ? t0 : (allMjd.length ? Math.min(...allMjd) : 0) };
      if (foldMsg) foldMsg.textContent = "Folded with P = " + period + " d, T0 = MJD " + fold.t0 + ".";
    }
  }
  box.dataset.mode = fold ? "phase" : "time";
  const phaseOf = mjd => { const p = (mjd - fold.t0) / fold.period; return p - Math.floor(p); };

  // aligned data: one x (every point, by MJD or phase), one y column per series; limits, errors, ids aside
  const rows = [];
  series.forEach((s, k) => {
    s.mjd.forEach((x, j) => rows.push([x, k, s.mag[j], s.err[j], false, (s.id || [])[j]]));
    s.lim_mjd.forEach((x, j) => rows.push([x, k, s.lim[j], 0, true, (s.lim_id || [])[j]]));
  });
  if (rows.length === 0) {
    box.textContent = "No datapoints yet.";
    box.style.minHeight = "0";
    return;
  }
  rows.forEach(r => r.push(fold ? phaseOf(r[0]) : r[0]));  // r[6]: the plotted x
  rows.sort((a, b) => a[6] - b[6]);
  const xs = rows.map(r => r[6]);
  const mjds = rows.map(r => r[0]);
  const ys = series.map(() => new Array(rows.length).fill(null));
  const errs = new Float64Array(rows.length);
  const isLimit = new Uint8Array(rows.length);
  const ids = new Array(rows.length).fill(null);
  rows.forEach((r, i) => { ys[r[1]][i] = r[2]; errs[i] = r[3]; isLimit[i] = r[4] ? 1 : 0; ids[i] = r[5] ?? null; });

  // ---- drawing ----
  const MARKER_PX = 4;   // marker half-size, css px
  const ARROW_PX = 16;   // a limit arrow's length, css px
  const HEAD_PX = 4.5;   // its head's and bar's half-width, css px
  const MARGIN_PX = 14;  // room kept between the outermost mark and the plot frame, css px

  function markerPath(ctx, shape, x, y, r) {
    ctx.beginPath();
    switch (shape) {
      case "square": ctx.rect(x - r * 0.9, y - r * 0.9, 1.8 * r, 1.8 * r); break;
      case "triangle": ctx.moveTo(x, y - 1.15 * r); ctx.lineTo(x + r, y + 0.75 * r); ctx.lineTo(x - r, y + 0.75 * r); ctx.closePath(); break;
      case "down": ctx.moveTo(x, y + 1.15 * r); ctx.lineTo(x + r, y - 0.75 * r); ctx.lineTo(x - r, y - 0.75 * r); ctx.closePath(); break;
      case "diamond": ctx.moveTo(x, y - 1.2 * r); ctx.lineTo(x + r, y); ctx.lineTo(x, y + 1.2 * r); ctx.lineTo(x - r, y); ctx.closePath(); break;
      case "cross": ctx.moveTo(x - r, y - r); ctx.lineTo(x + r, y + r); ctx.moveTo(x + r, y - r); ctx.lineTo(x - r, y + r); break;
      case "plus": ctx.moveTo(x - 1.2 * r, y); ctx.lineTo(x + 1.2 * r, y); ctx.moveTo(x, y - 1.2 * r); ctx.lineTo(x, y + 1.2 * r); break;
      case "star":
        for (let j = 0; j < 10; j++) {
          const a = -Math.PI / 2 + j * Math.PI / 5, rr = j % 2 ? 0.5 * r : 1.25 * r;
          j ? ctx.lineTo(x + rr * Math.cos(a), y + rr * Math.sin(a)) : ctx.moveTo(x + rr * Math.cos(a), y + rr * Math.sin(a));
        }
        ctx.closePath();
        break;
      default: ctx.arc(x, y, r, 0, 2 * Math.PI);
    }
  }
  const stroked = shape => shape === "cross" || shape === "plus";

  // every mark of the shown series, in css px relative to the plot area (x, y, error bar ends, arrow tip)
  function marks(u, each) {
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    for (let k = 0; k < series.length; k++) {
      if (!u.series[k + 1].show) continue;
      const col = ys[k];
      for (let i = 0; i < xs.length; i++) {
        const y = col[i];
        if (y === null || xs[i] < xmin || xs[i] > xmax) continue;
        each(k, i, y);
      }
    }
  }

  function drawPoints(u) {
    const ctx = u.ctx;
    const dpr = uPlot.pxRatio;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    ctx.lineWidth = 1.2 * dpr;
    marks(u, (k, i, y) => {
      const s = series[k], colour = colourOf(s), shape = shapeOf(s);
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      const px = u.valToPos(xs[i], "x", true), py = u.valToPos(y, "y", true);
      if (isLimit[i]) {
        // a limit: the target is fainter than this, so the arrow points down (to fainter magnitudes)
        const arrow = ARROW_PX * dpr, head = HEAD_PX * dpr;
        ctx.beginPath();
        ctx.moveTo(px - head, py); ctx.lineTo(px + head, py);
        ctx.moveTo(px, py); ctx.lineTo(px, py + arrow);
        ctx.moveTo(px - head, py + arrow - head); ctx.lineTo(px, py + arrow); ctx.lineTo(px + head, py + arrow - head);
        ctx.stroke();
        markerPath(ctx, shape, px, py, 2.6 * dpr);  // the observatory's shape, hollow, on the limit
        ctx.stroke();
        return;
      }
      if (errs[i] > 0) {
        const y1 = u.valToPos(y - errs[i], "y", true), y2 = u.valToPos(y + errs[i], "y", true);
        ctx.beginPath();
        ctx.moveTo(px, y1); ctx.lineTo(px, y2);
        ctx.moveTo(px - 2 * dpr, y1); ctx.lineTo(px + 2 * dpr, y1);
        ctx.moveTo(px - 2 * dpr, y2); ctx.lineTo(px + 2 * dpr, y2);
        ctx.stroke();
      }
      markerPath(ctx, shape, px, py, MARKER_PX * dpr);
      if (stroked(shape)) { ctx.lineWidth = 2 * dpr; ctx.stroke(); ctx.lineWidth = 1.2 * dpr; } else ctx.fill();
    });
    ctx.restore();
  }

  // ---- ticks: as many decimals as the spacing needs; MJD ticks with the calendar date they are ----
  const ticks = { x: [], y: [] };
  // what the axes say, for the browser tests (the canvas has no text to read): the spacing and each tick
  function record(axis, step, splits, labels) {
    ticks[axis] = splits.map((v, j) => ({ value: v, label: labels[j] }));
    box.dataset[axis + "Ticks"] = JSON.stringify(ticks[axis]);
    box.dataset[axis + "Step"] = String(step);
  }
  // uPlot's values callback: (u, splits, axis index, space, the spacing it chose)
  function xTicks(u, splits, axisIdx, space, step) {
    const digits = decimalsFor(step);
    let labels;
    if (fold) labels = splits.map(v => v.toFixed(digits));
    else {
      const resolution = digits === 0 ? "day" : step >= 1 / 1440 - 1e-12 ? "minute" : "second";
      // a narrow plot drops the year from a date with a time: "09-18 12:00" fits where "2023-09-18 12:00" does not
      const short = resolution === "minute" && narrow(u);
      labels = splits.map(v => v.toFixed(digits) + "\n" + (short ? calendar(v, resolution).slice(5) : calendar(v, resolution)));
    }
    record("x", step, splits, labels);
    return labels;
  }
  function yTicks(u, splits, axisIdx, space, step) {
    const digits = decimalsFor(step);
    const labels = splits.map(v => v.toFixed(digits));
    record("y", step, splits, labels);
    return labels;
  }
  const narrow = u => u.bbox.width / uPlot.pxRatio < 500;
  // css px between x ticks: a tick label is two lines, the MJD and its date (with the time under a day)
  const xSpace = (u, axisIdx, min, max, plotDim) => (fold ? 60 : plotDim < 500 ? 80 : 110);
  const X_LABEL = fold ? "phase (P = " + fold.period + " d, T0 = MJD " + fold.t0 + ")" : "MJD (UTC date)";

  const chartHeight = () => (window.innerWidth < 600 ? 340 : 420);
  const opts = {
    width: Math.max(240, box.clientWidth || 900),
    height: chartHeight(),
    title: "",
    scales: {
      x: { time: false, range: (u, min, max) => [min, max] },
      y: { dir: -1, range: (u, min, max) => [min, max] },
    },
    axes: [
      { label: X_LABEL, size: fold ? 48 : 62, space: xSpace, incrs: INCRS, values: xTicks },
      { label: "magnitude", size: 56, incrs: INCRS, values: yTicks },
    ],
    series: [
      { label: fold ? "phase" : "MJD" },
      ...series.map(s => ({
        label: seriesLabel(s),
        stroke: colourOf(s),
        fill: colourOf(s),
        paths: () => null,
        points: { show: false },
        spanGaps: false,
      })),
    ],
    cursor: { drag: { x: true, y: true, uni: 30 }, points: { show: false } },
    // the legend names the series and toggles one; the hover box below says what a point is
    legend: { live: false },
    hooks: { draw: [drawPoints], setSeries: [() => { if (ready) home(); }] },
  };
  let ready = false;
  const plot = new uPlot(opts, [xs, ...ys], box);
  window.photcalChart = plot;  // for the browser tests and the curious
  window.photcalChartData = { xs, mjds, ys, errs, isLimit, ids, series, ARROW_PX, HEAD_PX, MARKER_PX };

  function setRange(x, y) {
    plot.batch(() => {
      plot.setScale("x", { min: x[0], max: x[1] });
      plot.setScale("y", { min: y[0], max: y[1] });
    });
  }

  // the shown series' extent with room for every mark: MARGIN_PX around the points and error bars, and
  // below each limit its arrow (css px turned into magnitudes at the plot's current size)
  function homeRange() {
    let x0 = Infinity, x1 = -Infinity, lo = Infinity, hiDet = -Infinity, hiLim = -Infinity;
    for (let k = 0; k < series.length; k++) {
      if (!plot.series[k + 1].show) continue;
      const col = ys[k];
      for (let i = 0; i < xs.length; i++) {
        const y = col[i];
        if (y === null) continue;
        x0 = Math.min(x0, xs[i]); x1 = Math.max(x1, xs[i]);
        if (isLimit[i]) { lo = Math.min(lo, y); hiLim = Math.max(hiLim, y); }
        else { lo = Math.min(lo, y - errs[i]); hiDet = Math.max(hiDet, y + errs[i]); }
      }
    }
    if (x0 === Infinity) return null;  // nothing shown: keep the view
    const W = Math.max(50, plot.bbox.width / uPlot.pxRatio), H = Math.max(50, plot.bbox.height / uPlot.pxRatio);
    if (fold) { x0 = Math.min(x0, 0); x1 = Math.max(x1, 1); }
    let xspan = x1 - x0;
    if (xspan < 1) { const c = (x0 + x1) / 2; x0 = c - 0.5; x1 = c + 0.5; xspan = 1; }
    const xpad = xspan * (MARGIN_PX + HEAD_PX) / (W - 2 * (MARGIN_PX + HEAD_PX));
    const hi = Math.max(hiDet, hiLim);
    if (hi - lo < 0.3) { const c = (hi + lo) / 2; lo = Math.min(lo, c - 0.15); hiDet = Math.max(hiDet, c + 0.15); }
    let y0 = lo, y1 = Math.max(hiDet, hiLim), span = y1 - y0;
    for (let n = 0; n < 8; n++) {  // a fixed point: the margins in magnitudes depend on the span they make
      const perPx = span / H;
      y0 = lo - MARGIN_PX * perPx;
      y1 = Math.max(hiDet + MARGIN_PX * perPx, hiLim + (ARROW_PX + MARGIN_PX) * perPx);
      span = y1 - y0;
    }
    return [[x0 - xpad, x1 + xpad], [y0, y1]];
  }
  let home0 = null;
  function home() {
    const r = homeRange();
    if (r) { home0 = r; setRange(r[0], r[1]); }
  }
  home();
  ready = true;
  document.getElementById("reset-zoom").addEventListener("click", home);
  plot.over.addEventListener("dblclick", e => { e.stopPropagation(); home(); }, true);

  // the zoom buttons (the keyboard's way): both axes, around the middle of the view
  function zoomBy(f) {
    const sx = plot.scales.x, sy = plot.scales.y;
    const cx = (sx.min + sx.max) / 2, cy = (sy.min + sy.max) / 2;
    setRange([cx - (cx - sx.min) * f, cx + (sx.max - cx) * f], [cy - (cy - sy.min) * f, cy + (sy.max - cy) * f]);
  }
  const zoomIn = document.getElementById("zoom-in"), zoomOut = document.getElementById("zoom-out");
  if (zoomIn) zoomIn.addEventListener("click", () => zoomBy(0.8));
  if (zoomOut) zoomOut.addEventListener("click", () => zoomBy(1.25));

  // wheel: zoom both axes around the cursor
  plot.over.addEventListener("wheel", e => {
    e.preventDefault();
    const f = e.deltaY < 0 ? 0.8 : 1.25;
    const rect = plot.over.getBoundingClientRect();
    const cx = plot.posToVal(e.clientX - rect.left, "x"), cy = plot.posToVal(e.clientY - rect.top, "y");
    const sx = plot.scales.x, sy = plot.scales.y;
    setRange([cx - (cx - sx.min) * f, cx + (sx.max - cx) * f], [cy - (cy - sy.min) * f, cy + (sy.max - cy) * f]);
  }, { passive: false });

  // shift+drag: pan (a plain drag is uPlot's box zoom)
  plot.root.addEventListener("mousedown", e => {
    if (!e.shiftKey || !plot.over.contains(e.target)) return;
    e.stopPropagation();
    e.preventDefault();
    const start = { x: e.clientX, y: e.clientY, sx: [plot.scales.x.min, plot.scales.x.max], sy: [plot.scales.y.min, plot.scales.y.max] };
    const ppx = (start.sx[1] - start.sx[0]) / plot.over.clientWidth;
    const ppy = (start.sy[1] - start.sy[0]) / plot.over.clientHeight;
    const move = ev => {
      const dx = (ev.clientX - start.x) * ppx, dy = (ev.clientY - start.y) * ppy;
      setRange([start.sx[0] - dx, start.sx[1] - dx], [start.sy[0] - dy, start.sy[1] - dy]);
    };
    const up = () => { document.removeEventListener("mousemove", move); document.removeEventListener("mouseup", up); };
    document.addEventListener("mousemove", move);
    document.addEventListener("mouseup", up);
  }, true);

  // ---- a point under the pointer: hover box, click to its datapoint page ----
  const NEAR_PX = 8;
  // the nearest shown point within NEAR_PX css pixels of (cx, cy), plot-area coordinates: {k, i} or null
  function nearest(cx, cy) {
    let best = null, bestD = NEAR_PX * NEAR_PX;
    marks(plot, (k, i, y) => {
      const dx = plot.valToPos(xs[i], "x") - cx, dy = plot.valToPos(y, "y") - cy;
      const d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = { k, i }; }
    });
    return best;
  }
  const pointAt = (cx, cy) => { const p = nearest(cx, cy); return p && ids[p.i] !== null ? ids[p.i] : null; };
  window.photcalPointAt = pointAt;  // for the browser tests

  const tip = document.createElement("div");
  tip.id = "chart-tip";
  tip.className = "chart-tip";
  tip.hidden = true;
  plot.over.appendChild(tip);
  function describe(k, i) {
    const s = series[k], y = ys[k][i];
    const mag = isLimit[i] ? "> " + y.toFixed(2) + " (not detected)" : y.toFixed(3) + (errs[i] > 0 ? " ± " + errs[i].toFixed(3) : "");
    const lines = [s.observatory, bandLabel(s), mag, "MJD " + mjds[i].toFixed(5) + " · " + calendar(mjds[i], "minute") + " UTC"];
    if (fold) lines.push("phase " + xs[i].toFixed(3));
    if (ids[i] !== null) lines.push("datapoint " + ids[i] + " (click to open)");
    return lines;
  }
  let down = null;
  plot.over.addEventListener("mousedown", e => { down = { x: e.clientX, y: e.clientY }; });
  plot.over.addEventListener("mousemove", e => {
    const rect = plot.over.getBoundingClientRect();
    const cx = e.clientX - rect.left, cy = e.clientY - rect.top;
    const p = nearest(cx, cy);
    plot.over.style.cursor = p && ids[p.i] !== null ? "pointer" : "";
    if (!p) { tip.hidden = true; return; }
    tip.replaceChildren(...describe(p.k, p.i).map(t => { const d = document.createElement("div"); d.textContent = t; return d; }));
    tip.hidden = false;
    const px = plot.valToPos(xs[p.i], "x"), py = plot.valToPos(ys[p.k][p.i], "y");
    // kept inside the plot area: a box past the page's edge would scroll a phone's page sideways
    const left = px + 12 + tip.offsetWidth > rect.width ? Math.max(0, px - 12 - tip.offsetWidth) : px + 12;
    const top = py + 12 + tip.offsetHeight > rect.height ? Math.max(0, py - 12 - tip.offsetHeight) : py + 12;
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  });
  plot.over.addEventListener("mouseleave", () => { tip.hidden = true; });
  plot.over.addEventListener("click", e => {
    if (e.shiftKey || (down && Math.hypot(e.clientX - down.x, e.clientY - down.y) > 3)) return;  // a pan or a zoom box
    const rect = plot.over.getBoundingClientRect();
    const id = pointAt(e.clientX - rect.left, e.clientY - rect.top);
    if (id !== null) window.location.assign("/datapoints/" + encodeURIComponent(id));
  });

  // ---- toggles: filters and observatories (checkboxes: keyboard-operable); a series shows when both are on ----
  const SVGNS = "http://www.w3.org/2000/svg";
  function glyph(shape, colour) {
    // the marker as a small inline SVG (the same shapes the canvas draws)
    const svg = document.createElementNS(SVGNS, "svg");
    svg.setAttribute("width", "14"); svg.setAttribute("height", "14"); svg.setAttribute("viewBox", "-7 -7 14 14");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(SVGNS, "path");
    path.setAttribute("d", svgPath(shape, 0, 0, 5));
    if (stroked(shape)) { path.setAttribute("stroke", colour); path.setAttribute("stroke-width", "2"); path.setAttribute("fill", "none"); }
    else path.setAttribute("fill", colour);
    svg.appendChild(path);
    return svg;
  }
  const on = { band: new Map(bands.map(b => [b.key, true])), obs: new Map(observatories.map(o => [o, true])) };
  function applyToggles() {
    plot.batch(() => {
      ready = false;
      series.forEach((s, k) => {
        const show = on.band.get(bandKey(s)) && on.obs.get(s.observatory);
        if (plot.series[k + 1].show !== show) plot.setSeries(k + 1, { show });
      });
      ready = true;
      home();  // the shown series' own extent: hiding one never leaves the rest on or past the frame
    });
  }
  function toggleGroup(id, title, items, kind) {
    const fs = document.getElementById(id);
    if (!fs) return;
    const legend = document.createElement("legend");
    legend.textContent = title;
    fs.appendChild(legend);
    items.forEach(item => {
      const label = document.createElement("label");
      label.className = "toggle";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.checked = true;
      input.value = item.key;
      input.dataset.kind = kind;
      input.addEventListener("change", () => { on[kind].set(item.key, input.checked); applyToggles(); });
      label.append(input, glyph(item.shape, item.colour), document.createTextNode(" " + item.label));
      fs.appendChild(label);
    });
  }
  toggleGroup("band-toggles", "Filters", bands.map(b => ({ key: b.key, label: b.label, colour: b.colour, shape: "circle" })), "band");
  toggleGroup("obs-toggles", "Observatories", observatories.map((o, j) => ({ key: o, label: o, colour: "#3b4452", shape: SHAPES[j % SHAPES.length] })), "obs");

  // ---- export: the chart with its legend, PNG (the canvas) and SVG (drawn again as vectors) ----
  const fileStem = (lc.name || "lightcurve").replace(/[^A-Za-z0-9_.-]+/g, "_");
  function legendEntries() {
    return series.map((s, k) => ({ s, k })).filter(e => plot.series[e.k + 1].show)
      .map(e => ({ label: seriesLabel(e.s), colour: colourOf(e.s), shape: shapeOf(e.s) }));
  }
  const LEGEND_ROW = 18, LEGEND_COL = 300;  // css px
  function legendLayout(width) {
    const cols = Math.max(1, Math.floor((width - 20) / LEGEND_COL));
    const entries = legendEntries();
    return { cols, entries, height: 30 + Math.ceil(entries.length / cols) * LEGEND_ROW + 10 };
  }
  function download(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }
  function exportPng() {
    const dpr = uPlot.pxRatio, src = plot.ctx.canvas;
    const width = src.width / dpr, title = 24;
    const lay = legendLayout(width);
    const canvas = document.createElement("canvas");
    canvas.width = src.width;
    canvas.height = src.height + (title + lay.height) * dpr;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    ctx.scale(dpr, dpr);
    ctx.fillStyle = "#1d2430";
    ctx.font = "bold 14px sans-serif";
    ctx.fillText("Light curve of " + (lc.name || ""), 10, 17);
    ctx.drawImage(src, 0, title, src.width / dpr, src.height / dpr);
    ctx.font = "12px sans-serif";
    const top = title + src.height / dpr + 20;
    lay.entries.forEach((e, j) => {
      const x = 10 + (j % lay.cols) * LEGEND_COL, y = top + Math.floor(j / lay.cols) * LEGEND_ROW;
      ctx.fillStyle = ctx.strokeStyle = e.colour;
      ctx.lineWidth = 2;
      markerPath(ctx, e.shape, x + 6, y - 4, 5);
      stroked(e.shape) ? ctx.stroke() : ctx.fill();
      ctx.fillStyle = "#1d2430";
      ctx.fillText(e.label, x + 16, y);
    });
    canvas.toBlob(blob => download(blob, fileStem + ".png"), "image/png");
  }
  function svgPath(shape, x, y, r) {
    const f = v => v.toFixed(2);
    switch (shape) {
      case "square": return `M${f(x - 0.9 * r)} ${f(y - 0.9 * r)}h${f(1.8 * r)}v${f(1.8 * r)}h${f(-1.8 * r)}Z`;
      case "triangle": return `M${f(x)} ${f(y - 1.15 * r)}L${f(x + r)} ${f(y + 0.75 * r)}L${f(x - r)} ${f(y + 0.75 * r)}Z`;
      case "down": return `M${f(x)} ${f(y + 1.15 * r)}L${f(x + r)} ${f(y - 0.75 * r)}L${f(x - r)} ${f(y - 0.75 * r)}Z`;
      case "diamond": return `M${f(x)} ${f(y - 1.2 * r)}L${f(x + r)} ${f(y)}L${f(x)} ${f(y + 1.2 * r)}L${f(x - r)} ${f(y)}Z`;
      case "cross": return `M${f(x - r)} ${f(y - r)}L${f(x + r)} ${f(y + r)}M${f(x + r)} ${f(y - r)}L${f(x - r)} ${f(y + r)}`;
      case "plus": return `M${f(x - 1.2 * r)} ${f(y)}H${f(x + 1.2 * r)}M${f(x)} ${f(y - 1.2 * r)}V${f(y + 1.2 * r)}`;
      case "star": {
        let d = "";
        for (let j = 0; j < 10; j++) {
          const a = -Math.PI / 2 + j * Math.PI / 5, rr = j % 2 ? 0.5 * r : 1.25 * r;
          d += (j ? "L" : "M") + f(x + rr * Math.cos(a)) + " " + f(y + rr * Math.sin(a));
        }
        return d + "Z";
      }
      default: return `M${f(x - r)} ${f(y)}a${f(r)} ${f(r)} 0 1 0 ${f(2 * r)} 0a${f(r)} ${f(r)} 0 1 0 ${f(-2 * r)} 0Z`;
    }
  }
  const xml = t => String(t).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
  function exportSvg() {
    const dpr = uPlot.pxRatio;
    const width = plot.ctx.canvas.width / dpr, chartH = plot.ctx.canvas.height / dpr, title = 24;
    const L = plot.bbox.left / dpr, T = plot.bbox.top / dpr + title, W = plot.bbox.width / dpr, H = plot.bbox.height / dpr;
    const lay = legendLayout(width);
    const height = title + chartH + lay.height;
    const px = v => L + plot.valToPos(v, "x"), py = v => T + plot.valToPos(v, "y");
    const out = [`<svg xmlns="${SVGNS}" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
      `<rect width="100%" height="100%" fill="#ffffff"/>`,
      `<text x="10" y="17" font-weight="bold" font-size="14">Light curve of ${xml(lc.name || "")}</text>`,
      `<rect x="${L}" y="${T}" width="${W}" height="${H}" fill="none" stroke="#9aa3ad"/>`];
    const xmin = plot.scales.x.min, xmax = plot.scales.x.max, ymin = plot.scales.y.min, ymax = plot.scales.y.max;
    ticks.x.filter(t => t.value >= xmin && t.value <= xmax).forEach(t => {
      const x = px(t.value).toFixed(1);
      out.push(`<line x1="${x}" y1="${T}" x2="${x}" y2="${T + H}" stroke="#e6e9ee"/>`);
      t.label.split("\n").forEach((line, j) =>
        out.push(`<text x="${x}" y="${(T + H + 16 + j * 14).toFixed(1)}" text-anchor="middle">${xml(line)}</text>`));
    });
    ticks.y.filter(t => t.value >= Math.min(ymin, ymax) && t.value <= Math.max(ymin, ymax)).forEach(t => {
      const y = py(t.value).toFixed(1);
      out.push(`<line x1="${L}" y1="${y}" x2="${L + W}" y2="${y}" stroke="#e6e9ee"/>`);
      out.push(`<text x="${L - 6}" y="${(+y + 4).toFixed(1)}" text-anchor="end">${xml(t.label)}</text>`);
    });
    out.push(`<text x="${L + W / 2}" y="${T + H + (fold ? 40 : 52)}" text-anchor="middle">${xml(X_LABEL)}</text>`);
    out.push(`<text transform="translate(14 ${T + H / 2}) rotate(-90)" text-anchor="middle">magnitude</text>`);
    out.push(`<clipPath id="plot-area"><rect x="${L}" y="${T}" width="${W}" height="${H}"/></clipPath><g clip-path="url(#plot-area)">`);
    marks(plot, (k, i, y) => {
      const s = series[k], colour = colourOf(s), shape = shapeOf(s), x = px(xs[i]), yy = py(y), f = v => v.toFixed(2);
      if (isLimit[i]) {
        const a = yy + ARROW_PX, h = HEAD_PX;
        out.push(`<path d="M${f(x - h)} ${f(yy)}H${f(x + h)}M${f(x)} ${f(yy)}V${f(a)}M${f(x - h)} ${f(a - h)}L${f(x)} ${f(a)}L${f(x + h)} ${f(a - h)}" stroke="${colour}" fill="none" stroke-width="1.2"/>`);
        out.push(`<path d="${svgPath(shape, x, yy, 2.6)}" stroke="${colour}" fill="none" stroke-width="1.2"/>`);
        return;
      }
      if (errs[i] > 0) {
        const y1 = py(y - errs[i]), y2 = py(y + errs[i]);
        out.push(`<path d="M${f(x)} ${f(y1)}V${f(y2)}M${f(x - 2)} ${f(y1)}H${f(x + 2)}M${f(x - 2)} ${f(y2)}H${f(x + 2)}" stroke="${colour}" stroke-width="1.2"/>`);
      }
      out.push(stroked(shape) ? `<path d="${svgPath(shape, x, yy, MARKER_PX)}" stroke="${colour}" stroke-width="2" fill="none"/>`
        : `<path d="${svgPath(shape, x, yy, MARKER_PX)}" fill="${colour}"/>`);
    });
    out.push("</g>");
    const top = title + chartH + 20;
    lay.entries.forEach((e, j) => {
      const x = 10 + (j % lay.cols) * LEGEND_COL, y = top + Math.floor(j / lay.cols) * LEGEND_ROW;
      out.push(stroked(e.shape) ? `<path d="${svgPath(e.shape, x + 6, y - 4, 5)}" stroke="${e.colour}" stroke-width="2" fill="none"/>`
        : `<path d="${svgPath(e.shape, x + 6, y - 4, 5)}" fill="${e.colour}"/>`);
      out.push(`<text x="${x + 16}" y="${y}">${xml(e.label)}</text>`);
    });
    out.push("</svg>");
    download(new Blob([out.join("\n")], { type: "image/svg+xml" }), fileStem + ".svg");
  }
  const png = document.getElementById("export-png"), svg = document.getElementById("export-svg");
  if (png) png.addEventListener("click", exportPng);
  if (svg) svg.addEventListener("click", exportSvg);

  window.addEventListener("resize", () => {
    const wasHome = home0 && plot.scales.x.min === home0[0][0] && plot.scales.x.max === home0[0][1];
    plot.setSize({ width: Math.max(240, box.clientWidth), height: chartHeight() });
    if (wasHome) home();  // the margins are pixels: keep them at the new size
  });
})();
