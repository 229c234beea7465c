"""What is fuzzed: the catalogue parser and the upload form, on bytes from the fuzzer.

An input may be refused only with our own errors (a 4xx with a code and a
short message); anything else (IndexError, MemoryError, a numpy warning
turned error, a hang caught by the fuzzer's timeout) is a bug.
"""

from __future__ import annotations

import math

from services.ingest.forms import read_upload_form
from services.ingest.parsing import parse_catalogue
from shared.bounds import INT64_MAX, loads_json, parse_id
from shared.errors import BadCatalogue, BadInput, PayloadTooLarge

MAX_ROWS = 5000
FORM_KEYS = ("EventID", "MJD", "expTime", "matchDist", "comment", "forceFilter", "dryRun", "noPlot", "outputFormat")


def one_input(data: bytes) -> None:
    parse(data)
    form(data)
    client_json(data)


def parse(data: bytes) -> None:
    try:
        parsed = parse_catalogue(data, "fuzz.cat", MAX_ROWS)
    except (BadCatalogue, PayloadTooLarge) as err:
        assert err.code and err.message and len(err.message) <= 300, err
        return
    table = parsed.table
    assert 1 <= parsed.n_usable <= parsed.n_rows == len(table) <= MAX_ROWS
    assert parsed.format in ("ascii_head", "ascii", "fits", "fits_ldac")


def form(data: bytes) -> None:
    # the bytes, split on NUL, become the form's field values in order (non-UTF-8 replaced, as the reader does)
    values = data[:4000].decode("utf-8", "replace").split("\x00")
    fields = dict(zip(FORM_KEYS, values))
    try:
        f = read_upload_form(fields)
    except BadInput as err:
        assert err.http_status == 400 and err.code and err.message, err
        return
    assert f.MJD is not None and math.isfinite(f.MJD) and 0 < f.MJD < 100_000
    assert f.expTime is None or math.isfinite(f.expTime)
    assert math.isfinite(f.matchDist) and f.outputFormat in ("json", "html")


def client_json(data: bytes) -> None:
    """What a client's JSON body and integer ids become before BSON/pydantic see them (issue 16, item 9)."""
    text = data[:70_000].decode("utf-8", "replace")
    try:
        loads_json(text)
    except BadInput as err:
        assert err.code in ("bad_json", "too_large"), err
    for token in text.split()[:20]:
        try:
            number = parse_id(token, "followupid")
        except BadInput as err:
            assert err.code == "bad_field", err
            continue
        assert 0 <= number <= INT64_MAX
