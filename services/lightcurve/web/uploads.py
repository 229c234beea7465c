"""The upload form. The upload itself is the gateway's ``/api/v1/uploads`` (its answers carry the whole message
and, for a duplicate, the stored point), with a script or without (``outputFormat=html``: the answer is a page)."""

from __future__ import annotations

from aiohttp import web

from services.lightcurve import handlers
from services.lightcurve.pages import attr, escape
from services.lightcurve.web.common import (
    csrf_of,
    current_user,
    redirect_to_login,
    render,
)
from shared.contracts.surveys import SURVEYS

#: what the file input offers: FITS frames (plain, gzipped, tile-compressed) and catalogues (text, FITS, LDAC).
#: A hint for the browser's file chooser only: the gateway tells a frame from a catalogue by its bytes
FILE_TYPES = ".fits,.fit,.fts,.fz,.gz,.cat,.txt,.ascii,.ldac,.tsv,.csv,text/plain"


def _force_filter_options() -> str:
    options = ['<option value="no" selected>no (the best survey and band)</option>']
    for survey in SURVEYS.values():
        for band in survey.band_names:
            value = f"{survey.name}/{band}"
            options.append(f'<option value="{attr(value)}">{escape(value)}</option>')
    return "".join(options)


#: the alerts the form offers before anything is typed: those with data, latest data first (typing asks the
#: alerts search, /api/v1/alerts?q=, for any other)
OFFERED = 300


async def _offered(request: web.Request) -> list[dict]:
    rows = [r for r in await handlers.summary_rows(request) if r["n_datapoints"]]
    rows.sort(key=lambda r: r["last_mjd"] or 0.0, reverse=True)
    return rows[:OFFERED]


def _label(row: dict) -> str:
    tns = f" · {row['tns_name']}" if row.get("tns_name") else ""
    data = f" · {row['n_datapoints']} points" if row.get("n_datapoints") else ""
    return f"{row['name']}{tns}{data}"


async def upload_page(request: web.Request) -> web.Response:
    user = await current_user(request)
    if user is None:
        return redirect_to_login(request)
    datalist = "".join(
        f'<option value="{attr(r["ivorn"])}">{escape(_label(r))}</option>' for r in await _offered(request)
    )
    event = request.query.get("ivorn", "")
    content = (
        f"""
<p>Send your FITS frame (plain, <code>.fits.gz</code> or tile-compressed <code>.fz</code>) or its SExtractor
catalogue; photcal measures the frame at the event's position (or reads the catalogue), matches it with the reference
surveys, fits the zero point and answers the target's magnitude (or limit) with a plot. A frame's date, exposure and
filter are read from its header (DATE-OBS or MJD-OBS, EXPTIME) when the form leaves them empty; what you type wins.
With <b>dry run</b> on, nothing is stored.</p>
<form method="post" action="/api/v1/uploads" enctype="multipart/form-data" class="card" id="upload-form">
<input type="hidden" name="outputFormat" value="html">
<input type="hidden" name="csrf" value="{attr(csrf_of(request))}">
<div class="grid">
<label for="sexCat">FITS frame or catalogue</label><input type="file" id="sexCat" name="sexCat" required """
        f"""accept="{FILE_TYPES}">
<label for="EventID">Event (name or ivorn)</label>
<span class="field"><input type="text" id="EventID" name="EventID" list="alerts-list" required value="{attr(event)}"
 placeholder="Gaia21eeo or ivo://gaia/alerts#Gaia21eeo" autocomplete="off" aria-describedby="EventID-hint">
<datalist id="alerts-list">{datalist}</datalist>
<small id="EventID-hint">type a name, TNS name or ivorn: the events with data are offered first</small></span>
<label for="MJD">MJD (mid-exposure)</label><input type="number" id="MJD" name="MJD" step="any" min="0" max="100000" """
        """placeholder="60000.12345" aria-describedby="MJD-hint">
<span class="spacer"></span><small id="MJD-hint">needed with a catalogue; with a FITS frame, empty takes the """
        """header's</small>
<label for="expTime">Exposure (s)</label><input type="number" id="expTime" name="expTime" step="any" min="0">
<label for="matchDist">Match distance (arcsec)</label><input type="number" id="matchDist" name="matchDist" """
        f"""step="any" min="0.1" max="60" value="2">
<label for="forceFilter">Force filter</label><select id="forceFilter" name="forceFilter">{_force_filter_options()}"""
        """</select>
<label for="comment">Comment</label><input type="text" id="comment" name="comment" maxlength="2000">
<label for="callback_url">Callback URL</label><input type="url" id="callback_url" name="callback_url" """
        """maxlength="2000" placeholder="https://tom.example.org/photcal-hook" aria-describedby="cb-hint">
<span></span><small id="cb-hint">optional: the result is POSTed there, signed, once done (README: callbacks)</small>
<span>Options</span>
<span><input type="hidden" name="dryRun" value="0"><label class="check"><input type="checkbox" id="dryRun" """
        """name="dryRun" value="1" checked> dry run (do not store)</label>
<input type="hidden" name="noPlot" value="0"><label class="check"><input type="checkbox" id="noPlot" name="noPlot" """
        """value="1"> no plot</label></span>
</div>
<button type="submit" id="upload-submit">Calibrate</button> <span id="upload-state" class="state" aria-live="polite">"""
        """</span>
</form>
<section id="result" hidden>
<p id="result-message" class="msg" tabindex="-1"></p>
<table id="result-table" class="kv"></table>
<p id="result-links"></p>
<figure id="result-plot-box" hidden><img id="result-plot" alt="calibration plot"><figcaption>Calibration plot"""
        """</figcaption></figure>
</section>"""
    )
    return await render(request, "Upload a frame", content, active="upload", scripts=("/static/upload.js",))
