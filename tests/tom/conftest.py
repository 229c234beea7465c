# tests/tom/project is a Django project run by .venv-tom (tests/tom/test_tom_plugin.py), not by this venv's pytest
collect_ignore = ["project"]
