"""Batch jobs: work above the services, run by the ``photcal`` command line.

A service answers one message at a time and imports no other service; a
batch job may need several of them at once (the catalogue's HATS layout and
the calibration core, for ``photcal recalibrate``), so it lives here, beside
the command that runs it, and no service imports it.
"""
