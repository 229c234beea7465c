"""clients/python/README.md's session runs as written against a fresh stack, and answers what it shows."""

from __future__ import annotations

import doctest
import re

import pytest

from tests.conftest import ROOT
from tests.integration.conftest import field_dir
from tools.devstack import standalone_stack, stop_all

pytestmark = pytest.mark.integration

README = ROOT / "clients" / "python" / "README.md"
#: what differs from run to run: the upload ids, the server's port
_UPLOAD_ID = re.compile(r"\b[0-9a-f]{32}\b")
_PORT = re.compile(r"127\.0\.0\.1:\d+")


class _SameButIds(doctest.OutputChecker):
    def check_output(self, want: str, got: str, optionflags: int) -> bool:
        def norm(text: str) -> str:
            return _PORT.sub("127.0.0.1:PORT", _UPLOAD_ID.sub("UPLOAD_ID", text))

        return super().check_output(norm(want), norm(got), optionflags)


def test_the_readme_session_runs_as_written(tmp_path_factory, monkeypatch):
    stack, servers = standalone_stack(tmp=tmp_path_factory.mktemp("readme"), PHOTCAL_MONGO_DB="readme")
    try:
        stack.load_field(field_dir("north_V"))
        added = stack.cli(
            "observatory", "add", "--name", "Ondrejov 0.65m", "--lon", "14.78", "--lat", "49.91", "--filters", "B,V,R,I"
        ).stdout
        found = re.search(r"hashtag: (\S+)", added)
        assert found is not None, added
        stack.cli(
            "alert", "add", "--ivorn", "ivo://gaia/alerts#Gaia23sim", "--ra", "150.085676", "--dec", "30.0448869",
            "--name", "Gaia23sim",
        )  # fmt: skip
        stack.start()
        text = "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), re.S))
        readme_hashtag = re.search(r'hashtag="(\w+)"', text)
        assert readme_hashtag is not None
        text = text.replace(readme_hashtag.group(1), found.group(1)).replace("http://127.0.0.1:8080", stack.url)
        monkeypatch.chdir(ROOT)  # the session runs from the repository's root
        test = doctest.DocTestParser().get_doctest(text, {}, "clients/python/README.md", str(README), 0)
        runner = doctest.DocTestRunner(checker=_SameButIds(), optionflags=doctest.NORMALIZE_WHITESPACE)
        report: list[str] = []
        runner.run(test, out=report.append)
        assert runner.failures == 0 and runner.tries > 10, "".join(report)
    finally:
        stop_all(stack, servers)
