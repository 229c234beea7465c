#!/usr/bin/env bash
# The automatic lint fixes over the whole tree, then what is left for a person:
# ruff's safe fixes, ruff's formatter, and mypy's report (mypy fixes nothing).
# Usage: bash tools/lint-fix.sh [paths...]   (default: the whole tree, as `make lint`)
set -uo pipefail
cd "$(dirname "$0")/.."
BIN="${BIN:-.venv/bin}"
paths=("$@")
[ ${#paths[@]} -eq 0 ] && paths=(.)
"$BIN/ruff" check --fix "${paths[@]}"
"$BIN/ruff" format "${paths[@]}"
# what ruff could not fix is listed by the first command; mypy reads its files from pyproject.toml
if [ "${paths[*]}" = "." ]; then
    "$BIN/mypy"
else
    "$BIN/mypy" "${paths[@]}"
fi
