"""README's error table and the ErrorCode catalogue list the same codes, with the same status and meaning."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.contracts.errors import ErrorCode, markdown_table
from shared.errors import NotFound

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_rows() -> dict[str, tuple[int, str]]:
    text = README.read_text()
    block = text.split("<!-- error-codes:begin -->", 1)[1].split("<!-- error-codes:end -->", 1)[0]
    rows = {}
    for line in block.strip().splitlines()[2:]:
        code, status, meaning = (cell.strip() for cell in line.strip("|").split("|", 2))
        rows[code.strip("`")] = (int(status), meaning)
    return rows


def test_every_code_in_the_readme_is_in_the_catalogue_and_every_code_of_the_catalogue_in_the_readme():
    rows = readme_rows()
    assert set(rows) == {code.value for code in ErrorCode}
    assert rows == {code.value: (code.http_status, code.meaning) for code in ErrorCode}


def test_readme_table_is_the_generated_one():
    text = README.read_text()
    assert markdown_table() in text


def test_codes_are_snake_case_and_statuses_are_errors():
    for code in ErrorCode:
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code.value), code
        assert 400 <= code.http_status < 600, code
        assert code.meaning


def test_an_error_body_holds_the_bare_code():
    body = json.dumps(NotFound("no such event", code=ErrorCode.UNKNOWN_EVENT).to_dict())
    assert '"error": "unknown_event"' in body
