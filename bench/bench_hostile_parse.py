"""Issue 16 item 10: gateway CPU spent on pathological catalogues before they are refused.

The parser runs in the gateway (a thread per upload). A file of millions of
one-character comment lines used to be read line by line (8 s of CPU for 9.4 M
lines, then accepted); it is now refused from a count made in C. Printed:
CPU seconds (``time.process_time``) per case and the answer. Target: well
under 0.1 s each, as for an honest 20,000-row catalogue.
"""

from __future__ import annotations

import time

from services.ingest.parsing import parse_catalogue
from services.ingest.rows import warm_up
from shared.errors import PhotcalError

HEADER = b"#   1 MAG_AUTO\n#   2 MAGERR_AUTO\n#   3 ALPHA_J2000\n#   4 DELTA_J2000\n"
ROW = b"12.000 0.010 10.000 20.000\n"


def cases() -> dict[str, bytes]:
    return {
        "9.4 M comment lines '#'": HEADER + b"#\n" * 9_400_000 + ROW * 10,
        "9.4 M blank lines": HEADER + b"\n" * 9_400_000 + ROW * 10,
        "200,000 comment lines, then rows": HEADER + b"#\n" * 200_000 + ROW * 10,
        "honest: 20,000 rows": HEADER + ROW * 20_000,
    }


def main() -> None:
    warm_up()  # the compiled row reader, loaded before anything is timed (the gateway does it at start)
    print(f"{'case':<36} {'MB':>6} {'CPU s':>7}  answer")
    for name, data in cases().items():
        started = time.process_time()
        try:
            answer = f"accepted, {parse_catalogue(data, 'c.cat').n_rows} rows"
        except PhotcalError as exc:
            answer = f"{exc.http_status} {exc.code}"
        print(f"{name:<36} {len(data) / 1e6:>6.1f} {time.process_time() - started:>7.3f}  {answer}", flush=True)


if __name__ == "__main__":
    main()
