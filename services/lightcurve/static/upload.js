// The upload form: sends a FITS frame or its catalogue to /api/v1/uploads (outputFormat=json; its answers carry the
// whole message, and a duplicate's stored point) and shows the answer with its plot. The event field offers the
// events with data and, as one types, what the alerts search (/api/v1/alerts?q=) finds.
// Every value from the server is put in the page as text (textContent), never as HTML.
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const state = document.getElementById("upload-state");
  const result = document.getElementById("result");
  const message = document.getElementById("result-message");
  const table = document.getElementById("result-table");
  const links = document.getElementById("result-links");
  const plotBox = document.getElementById("result-plot-box");
  const plot = document.getElementById("result-plot");
  const button = document.getElementById("upload-submit");
  const file = document.getElementById("sexCat");
  const mjd = document.getElementById("MJD");
  const eventInput = document.getElementById("EventID");
  const eventList = document.getElementById("alerts-list");

  // the alerts search, a moment after the last key: its best matches replace the offered list
  let searchTimer = null;
  let searchSerial = 0;
  eventInput.addEventListener("input", function () {
    clearTimeout(searchTimer);
    const text = eventInput.value.trim();
    if (text.length < 2 || text.startsWith("ivo://")) return;
    searchTimer = setTimeout(async function () {
      const serial = ++searchSerial;
      try {
        const response = await fetch("/api/v1/alerts?limit=20&q=" + encodeURIComponent(text),
          { credentials: "same-origin", headers: { Accept: "application/json" } });
        if (!response.ok || serial !== searchSerial) return;
        const rows = await response.json();
        if (!Array.isArray(rows) || serial !== searchSerial) return;
        eventList.replaceChildren(...rows.map(function (r) {
          const option = document.createElement("option");
          option.value = String(r.ivorn);
          option.textContent = String(r.name) + (r.tns_name ? " · " + r.tns_name : "") +
            (r.n_datapoints ? " · " + r.n_datapoints + " points" : "");
          return option;
        }));
      } catch (e) {
        // the list stays as it was: the field still takes a typed name or ivorn
      }
    }, 200);
  });

  // a hint only (the server decides by the file's bytes): a FITS frame's header may give the date, a catalogue's not
  function looksLikeFrame(name) {
    return /\.(fits?|fts|fz)(\.gz)?$/i.test(name);
  }
  file.addEventListener("change", function () {
    const name = file.files && file.files.length ? file.files[0].name : "";
    mjd.required = name !== "" && !looksLikeFrame(name);
  });

  function num(v, digits) {
    return typeof v === "number" && isFinite(v) ? v.toFixed(digits) : null;
  }
  function row(label, value) {
    if (value === null || value === undefined || value === "") return;
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    const td = document.createElement("td");
    th.textContent = label;
    td.textContent = String(value);
    tr.append(th, td);
    table.append(tr);
  }
  // the gateway serves plots at /plots/NAME.png: show them from this origin whatever host the server recorded
  function plotPath(link) {
    if (typeof link !== "string") return null;
    const i = link.lastIndexOf("/plots/");
    if (i < 0) return null;
    const name = link.slice(i + 7);
    return /^[A-Za-z0-9]+\.png$/.test(name) ? "/plots/" + name : null;
  }
  function show(kind, text) {
    result.hidden = false;
    message.className = "msg " + kind;
    message.id = "result-message";
    message.setAttribute("role", kind === "error" ? "alert" : "status");
    message.textContent = text;
  }
  function render(body, httpStatus) {
    table.replaceChildren();
    links.replaceChildren();
    plotBox.hidden = true;
    plot.removeAttribute("src");
    if (!body || typeof body !== "object") {
      show("error", "The server answered " + httpStatus + " without a readable answer; try again.");
      return;
    }
    if (body.status !== "ok") {
      // the whole message, then its code apart (never cut: /api/v1 answers the full sentence)
      show("error", "Not calibrated: " + (body.message || "error " + httpStatus));
      if (body.error) {
        const code = document.createElement("code");
        code.id = "result-error-code";
        code.textContent = body.error;
        links.append("error ", code);
      }
      // a duplicate names the point already stored: link its page
      let stored = Number.isInteger(body.followup_id) ? body.followup_id : null;
      const named = /followup_id (\d+)/.exec(body.message || "");
      if (stored === null && named) stored = Number(named[1]);
      if (stored !== null) {
        const a = document.createElement("a");
        a.href = "/datapoints/" + stored;
        a.id = "result-stored-datapoint";
        a.textContent = "the datapoint already stored (" + stored + ")";
        links.append(" · ", a);
      }
      message.focus();
      return;
    }
    show("ok", body.message || "Calibrated.");
    row("Event", body.ivorn);
    row("MJD", num(body.mjd, 5));
    row("Survey / filter", (body.survey || "?") + " / " + (body.filter || "?"));
    if (body.detected !== false && num(body.mag, 3) !== null) {
      row("Magnitude", num(body.mag, 3) + (num(body.mag_err, 3) !== null ? " ± " + num(body.mag_err, 3) : ""));
    } else {
      row("Magnitude", "not detected");
    }
    row("Limiting magnitude", num(body.limit_mag, 2));
    if (num(body.ra, 6) !== null) row("Target position (RA, Dec)", num(body.ra, 6) + ", " + num(body.dec, 6));
    row("Zero point", num(body.zeropoint, 3) === null ? null :
      num(body.zeropoint, 3) + (num(body.zeropoint_err, 3) !== null ? " ± " + num(body.zeropoint_err, 3) : ""));
    if (num(body.colour_term, 3) !== null) row("Colour term", num(body.colour_term, 3) + (body.colour ? " (" + body.colour + ")" : ""));
    const phot = body.photometry;
    if (phot && typeof phot === "object") {
      row("Photometry", String(phot.method || "").replace(/_/g, " ") +
        (num(phot.fwhm_px, 1) !== null ? " (FWHM " + num(phot.fwhm_px, 1) + " px)" : ""));
      if (num(phot.snr, 1) !== null) row("S/N", num(phot.snr, 1) + " (a limit below " + num(phot.snr_limit, 1) + ")");
    }
    if (body.from_header && typeof body.from_header === "object") {
      const taken = Object.keys(body.from_header).sort().map(function (k) { return k + " from " + body.from_header[k]; });
      row("From the header", taken.join(", "));
    }
    row("Stars used", body.npoints);
    row("Outlier fraction", num(body.outlier_fraction, 3));
    row("Scatter (mag)", num(body.scatter, 3));
    row("Stored", body.stored ? "yes" : body.dry_run ? "no (dry run)" : "no");
    row("Followup id", body.followup_id);
    row("Upload id", body.upload_id);
    if (body.ivorn) {
      const a = document.createElement("a");
      a.href = "/lightcurve/" + encodeURIComponent(body.ivorn);
      a.id = "result-lightcurve";
      a.textContent = "Light curve of this event";
      links.append(a);
    }
    if (Number.isInteger(body.followup_id)) {
      const d = document.createElement("a");
      d.href = "/datapoints/" + body.followup_id;
      d.id = "result-datapoint";
      d.textContent = "The datapoint's page (calibration, candidates, provenance)";
      links.append(" · ", d);
    }
    const src = plotPath(body.image_link);
    if (src) {
      plot.src = src;
      plotBox.hidden = false;
    }
    message.focus();
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    const data = new FormData(form);
    data.set("outputFormat", "json");
    for (const flag of ["dryRun", "noPlot"]) {
      data.delete(flag);
      data.set(flag, document.getElementById(flag).checked ? "1" : "0");
    }
    button.disabled = true;
    state.textContent = "calibrating…";
    result.hidden = true;
    try {
      const response = await fetch(form.getAttribute("action") || "/api/v1/uploads",
        { method: "POST", body: data, credentials: "same-origin", headers: { Accept: "application/json" } });
      let body = null;
      try { body = await response.json(); } catch (e) { body = null; }
      render(body, response.status);
    } catch (e) {
      table.replaceChildren();
      plotBox.hidden = true;
      show("error", "The upload did not reach the server (" + e.message + "); check your connection and try again.");
    } finally {
      button.disabled = false;
      state.textContent = "";
    }
  });
})();
