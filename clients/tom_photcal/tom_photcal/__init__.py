"""tom_photcal: photcal's calibrated photometry in a TOM Toolkit project.

- :mod:`tom_photcal.processors`: the ``photcal_catalogue`` and ``photcal_frame`` data product
  types' processors (a SExtractor catalogue or a FITS frame sent to photcal, its calibrated
  point stored as the target's photometry);
- :mod:`tom_photcal.dataservice`: the ``photcal`` data service (an alert's light curve pulled
  into a target's photometry);
- settings: ``DATA_SERVICES["photcal"] = {"url": ..., "hashtag": ...}`` (README.md).
"""

__version__ = "0.1.0"
