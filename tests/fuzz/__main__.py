"""`python -m tests.fuzz [SECONDS]`: fuzz the gateway's parsers for a fixed budget (``make fuzz``).

With atheris (libFuzzer, coverage-guided) when it is installed, else with
hypothesis (random, shrinking) for the same budget. Either way the targets
are those of :mod:`tests.fuzz.targets`: any exception but our own 4xx errors
is a failure, saved under ``test-artifacts/fuzz/`` to be replayed with
``python -m tests.fuzz --replay FILE``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "fuzz"
SEEDS = [
    *(ROOT / "tests" / "data" / "parsing").iterdir(),
    *(
        p
        for d in (ROOT / "tests" / "data" / "fields").iterdir()
        if d.is_dir()
        for p in d.iterdir()
        if p.name.startswith("sex_")
    ),
]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--replay"]:
        from tests.fuzz.targets import one_input

        for name in argv[1:]:
            one_input(Path(name).read_bytes())
            print(f"{name}: no failure")
        return 0
    seconds = int(argv[0]) if argv else int(os.environ.get("FUZZ_SECONDS", "60"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        import atheris  # noqa: F401
    except ImportError:
        return _hypothesis(seconds)
    return _atheris(seconds)


def _atheris(seconds: int) -> int:
    import atheris

    # the compiled (numba) reader is imported, and compiled, before instrumenting: numba compiles a
    # function from its bytecode, which atheris' branch tracing would make uncompilable
    from services.ingest import rows

    rows.warm_up()
    with atheris.instrument_imports():
        from tests.fuzz import targets
    corpus = Path(tempfile.mkdtemp(prefix="photcal-fuzz-"))
    for seed in SEEDS:
        shutil.copy(seed, corpus / seed.name)
    print(f"fuzzing with atheris for {seconds} s ({len(SEEDS)} seeds); failures go to {ARTIFACTS}/", flush=True)
    args = [
        sys.argv[0],
        f"-max_total_time={seconds}",
        f"-artifact_prefix={ARTIFACTS}/",
        "-rss_limit_mb=3072",
        "-max_len=200000",
        "-timeout=20",
        str(corpus),
    ]
    atheris.Setup(args, targets.one_input)
    atheris.Fuzz()  # exits the process: 0 when the budget ran out without a failure
    return 0


def _hypothesis(seconds: int) -> int:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.fuzz import targets

    seeds = [p.read_bytes() for p in SEEDS]
    deadline = time.monotonic() + seconds
    examples = 0

    def mutated(draw_seed: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
        data = bytearray(draw_seed)
        for pos, junk in cuts:
            pos = pos % (len(data) + 1)
            data[pos : pos + len(junk)] = junk
        return bytes(data)

    inputs = st.one_of(
        st.binary(max_size=5000),
        st.builds(
            mutated,
            st.sampled_from(seeds),
            st.lists(st.tuples(st.integers(0, 10**6), st.binary(max_size=16)), max_size=8),
        ),
    )

    # rounds of 200 until the budget is spent (a round past the deadline returns at once)
    @settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(inputs)
    def run(data: bytes) -> None:
        nonlocal examples
        if time.monotonic() > deadline:
            return
        examples += 1
        try:
            targets.one_input(data)
        except Exception:
            (ARTIFACTS / f"crash-{int(time.time() * 1000)}").write_bytes(data)
            raise

    print(f"atheris is not installed: fuzzing with hypothesis for {seconds} s", flush=True)
    while time.monotonic() < deadline:
        try:
            run()
        except Exception as exc:  # hypothesis re-raises the shrunk failure
            print(f"FAILURE: {exc!r}; inputs saved in {ARTIFACTS}/")
            return 1
    print(f"{examples} inputs, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
