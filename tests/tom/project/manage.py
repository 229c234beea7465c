#!/usr/bin/env python
"""The TOM project's manage.py, as `tom_setup` makes it: `python manage.py test photcal_checks`."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tom_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
