// The light-curve plot: every observer's points by filter, error bars, limits as arrows, MJD with calendar dates.
// uPlot (vendored, /static/vendor/) draws axes, legend, cursor and box zoom; this file draws the points,
// error bars and limit arrows, and adds wheel zoom, shift+drag pan and a reset button.
"use strict";
(function () {
  const island = document.getElementById("lc-data");
  const box = document.getElementById("chart");
  if (!island || !box || typeof uPlot === "undefined") return;
  const lc = JSON.parse(island.textContent);
  const series = lc.series || [];

  const COLOURS = { U: "#7b2cbf", B: "#1f4fd1", V: "#1b9e3a", R: "#d62728", I: "#8c1c13", G: "#333333",
    u: "#9d4edd", g: "#118ab2", r: "#f77f00", i: "#a0522d", z: "#6a4c93", y: "#556b2f", BP: "#3a86ff", RP: "#c1121f" };
  const SPARE = ["#e76f51", "#2a9d8f", "#8338ec", "#ff006e", "#606c38", "#bc6c25"];
  const colourOf = (f, k) => COLOURS[f] || SPARE[k % SPARE.length];

  // aligned data: one x (every point, by MJD), one y column per filter; which points are limits and their errors aside
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
  rows.sort((a, b) => a[0] - b[0]);
  const xs = rows.map(r => r[0]);
  const ys = series.map(() => new Array(rows.length).fill(null));
  const errs = new Float64Array(rows.length);
  const isLimit = new Uint8Array(rows.length);
  const ids = new Array(rows.length).fill(null);
  rows.forEach((r, i) => { ys[r[1]][i] = r[2]; errs[i] = r[3]; isLimit[i] = r[4] ? 1 : 0; ids[i] = r[5] ?? null; });

  const MJD0 = Date.UTC(1858, 10, 17);
  const date = (mjd, withTime) => {
    const d = new Date(MJD0 + mjd * 86400000);
    if (isNaN(d)) return "";
    const iso = d.toISOString();
    return withTime ? iso.slice(0, 16).replace("T", " ") : iso.slice(0, 10);
  };

  let lo = Infinity, hi = -Infinity;
  rows.forEach(r => { lo = Math.min(lo, r[2] - r[3]); hi = Math.max(hi, r[2] + (r[4] ? 0.5 : r[3])); });
  const pad = Math.max(0.2, 0.06 * (hi - lo));
  const Y0 = [lo - pad, hi + pad];
  let X0 = [xs[0], xs[xs.length - 1]];
  if (X0[1] - X0[0] < 0.5) X0 = [X0[0] - 0.5, X0[1] + 0.5];
  else { const xp = 0.03 * (X0[1] - X0[0]); X0 = [X0[0] - xp, X0[1] + xp]; }

  function drawPoints(u) {
    const ctx = u.ctx;
    const dpr = uPlot.pxRatio;
    const [xmin, xmax] = [u.scales.x.min, u.scales.x.max];
    const r = 3.2 * dpr, arrow = 16 * dpr, head = 4.5 * dpr;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    ctx.lineWidth = 1.2 * dpr;
    for (let k = 0; k < series.length; k++) {
      if (!u.series[k + 1].show) continue;
      const colour = colourOf(series[k].filter, k);
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      const col = ys[k];
      for (let i = 0; i < xs.length; i++) {
        const y = col[i];
        if (y === null || xs[i] < xmin || xs[i] > xmax) continue;
        const px = u.valToPos(xs[i], "x", true);
        const py = u.valToPos(y, "y", true);
        if (isLimit[i]) {
          // a limit: the target is fainter than this, so the arrow points down (to fainter magnitudes)
          ctx.beginPath();
          ctx.moveTo(px - head, py); ctx.lineTo(px + head, py);
          ctx.moveTo(px, py); ctx.lineTo(px, py + arrow);
          ctx.stroke();
          ctx.beginPath();
          ctx.moveTo(px - head, py + arrow - head); ctx.lineTo(px, py + arrow); ctx.lineTo(px + head, py + arrow - head);
          ctx.stroke();
        } else {
          if (errs[i] > 0) {
            const y1 = u.valToPos(y - errs[i], "y", true), y2 = u.valToPos(y + errs[i], "y", true);
            ctx.beginPath();
            ctx.moveTo(px, y1); ctx.lineTo(px, y2);
            ctx.moveTo(px - 2 * dpr, y1); ctx.lineTo(px + 2 * dpr, y1);
            ctx.moveTo(px - 2 * dpr, y2); ctx.lineTo(px + 2 * dpr, y2);
            ctx.stroke();
          }
          ctx.beginPath();
          ctx.arc(px, py, r, 0, 2 * Math.PI);
          ctx.fill();
        }
      }
    }
    ctx.restore();
  }

  // tick labels: the MJD with as many decimals as the tick spacing needs, and its calendar date (and time under a day)
  function mjdTicks(u, splits) {
    const step = splits.length > 1 ? Math.abs(splits[1] - splits[0]) : 1;
    const digits = Math.min(5, Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
    return splits.map(v => v.toFixed(digits) + "\n" + (step < 1 ? date(v, true).slice(5) : date(v, false)));
  }
  const fmtMag = (u, v, si, i) => {
    if (v === null || v === undefined) return "–";
    return isLimit[i] ? "> " + v.toFixed(2) : v.toFixed(3) + (errs[i] > 0 ? " ± " + errs[i].toFixed(3) : "");
  };
  const opts = {
    width: Math.max(320, box.clientWidth || 900),
    height: 420,
    title: "",
    scales: {
      x: { time: false, range: (u, min, max) => [min, max] },
      y: { dir: -1, range: (u, min, max) => [min, max] },
    },
    axes: [
      { label: "MJD (UTC date)", size: 62, space: 110, values: mjdTicks },
      { label: "magnitude", size: 56, values: (u, splits) => splits.map(v => v.toFixed(1)) },
    ],
    series: [
      { label: "MJD", value: (u, v) => v === null || v === undefined ? "–" : v.toFixed(5) + " (" + date(v, true) + ")" },
      ...series.map((s, k) => ({
        label: s.filter + " (" + s.mjd.length + (s.lim.length ? " + " + s.lim.length + " limits" : "") + ")",
        stroke: colourOf(s.filter, k),
        fill: colourOf(s.filter, k),
        paths: () => null,
        points: { show: false },
        value: fmtMag,
        spanGaps: false,
      })),
    ],
    cursor: { drag: { x: true, y: true, uni: 30 }, points: { show: false } },
    legend: { live: true },
    hooks: { draw: [drawPoints] },
  };
  const plot = new uPlot(opts, [xs, ...ys], box);
  window.photcalChart = plot;  // for the browser tests and the curious

  function setRange(x, y) {
    plot.batch(() => {
      plot.setScale("x", { min: x[0], max: x[1] });
      plot.setScale("y", { min: y[0], max: y[1] });
    });
  }
  // the whole light curve with a margin (and room for the limit arrows); zoom and pan set the scales from here on
  const reset = () => setRange(X0, Y0);
  reset();
  document.getElementById("reset-zoom").addEventListener("click", reset);
  plot.over.addEventListener("dblclick", e => { e.stopPropagation(); reset(); }, true);

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

  // click a point (not a drag): open its datapoint page (calibration, candidates, plot, provenance, history)
  const CLICK_PX = 8;
  let down = null;
  plot.over.addEventListener("mousedown", e => { down = { x: e.clientX, y: e.clientY }; });
  function pointAt(cx, cy) {
    // the nearest shown point within CLICK_PX css pixels of (cx, cy), over-relative coordinates
    let best = null, bestD = CLICK_PX * CLICK_PX;
    for (let k = 0; k < series.length; k++) {
      if (!plot.series[k + 1].show) continue;
      const col = ys[k];
      for (let i = 0; i < xs.length; i++) {
        if (col[i] === null || ids[i] === null) continue;
        const dx = plot.valToPos(xs[i], "x") - cx, dy = plot.valToPos(col[i], "y") - cy;
        const d = dx * dx + dy * dy;
        if (d <= bestD) { bestD = d; best = ids[i]; }
      }
    }
    return best;
  }
  plot.over.addEventListener("click", e => {
    if (e.shiftKey || (down && Math.hypot(e.clientX - down.x, e.clientY - down.y) > 3)) return;  // a pan or a zoom box
    const rect = plot.over.getBoundingClientRect();
    const id = pointAt(e.clientX - rect.left, e.clientY - rect.top);
    if (id !== null) window.location.assign("/datapoints/" + encodeURIComponent(id));
  });
  plot.over.addEventListener("mousemove", e => {
    const rect = plot.over.getBoundingClientRect();
    plot.over.style.cursor = pointAt(e.clientX - rect.left, e.clientY - rect.top) !== null ? "pointer" : "";
  });
  window.photcalPointAt = pointAt;  // for the browser tests

  window.addEventListener("resize", () => plot.setSize({ width: Math.max(320, box.clientWidth), height: 420 }));
})();
