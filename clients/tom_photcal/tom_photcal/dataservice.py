"""The ``photcal`` data service: an alert's calibrated light curve pulled into a target's photometry.

A TOM 3.x ``tom_dataservices`` DataService, configured by ``DATA_SERVICES["photcal"]``
(``url``; ``hashtag`` is not needed to read). On a target's page "update data" (or
``manage.py updatereduceddata``) pulls the light curve of the target's photcal alert
(its ``photcal_alert`` extra field, else its name); the query form looks an alert up by
ivorn or name and can create its target. Every photcal datapoint is stored once per target
(by its datapoint id): a second pull adds nothing, and a point photcal recalibrated since
is updated in place.
"""

from __future__ import annotations

import logging
from typing import Any

from django import forms
from photcal_client import PhotcalError
from tom_dataproducts.models import PhotometryReducedDatum, try_parse_reduced_datum
from tom_dataservices.dataservices import DataService, QueryServiceError
from tom_dataservices.forms import BaseQueryForm
from tom_targets.models import Target

from tom_photcal.config import PhotcalProcessingError, alert_of, ivorn_of, photcal_client, photcal_settings
from tom_photcal.photometry import ALERT_FIELD, DATAPOINT_KEY, SOURCE_NAME, URL_KEY, datum_of_row, timestamp_of

logger = logging.getLogger(__name__)

#: the typed columns a pulled point may change (photcal recalibrates): compared, then updated. Not the
#: instrument: photcal's light curve does not say it, a processed frame's (its INSTRUME) is kept
_UPDATABLE = ("brightness", "brightness_error", "limit", "bandpass", "telescope", "exposure_time")


class PhotcalQueryForm(BaseQueryForm):
    alert = forms.CharField(
        label="photcal alert",
        help_text="its ivorn (ivo://gaia/alerts#Gaia23abc) or its name (Gaia23abc)",
    )


class PhotcalDataService(DataService):
    name = SOURCE_NAME
    verbose_name = "photcal: calibrated follow-up photometry"
    service_notes = (
        "Pulls an alert's photcal light curve (magnitudes in mag, Vega or AB per survey) into a target; "
        "set up in settings.py as DATA_SERVICES['photcal'] (clients/tom_photcal/README.md)."
    )

    @classmethod
    def get_form_class(cls) -> type[PhotcalQueryForm]:
        return PhotcalQueryForm

    @classmethod
    def urls(cls, **kwargs: Any) -> dict[str, Any]:
        url = photcal_settings()["url"]
        return {"base_url": url, "info_url": f"{str(url).rstrip('/')}/api/docs"}

    def build_query_parameters(self, parameters: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {"alert": str(parameters.get("alert") or "").strip()}

    def build_query_parameters_from_target(self, target: Any, **kwargs: Any) -> dict[str, Any]:
        return {"alert": alert_of(target)}

    def query_service(self, query_parameters: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The alert's light curve: ``ivorn``, ``name``, ``ra``, ``dec`` (deg) and ``points``, photometry dicts."""
        alert = str(query_parameters.get("alert") or "").strip()
        if not alert:
            raise QueryServiceError("no photcal alert given: an ivorn or a name")
        try:
            with photcal_client(need_hashtag=False) as client:
                ivorn = ivorn_of(client, alert)
                table = client.lightcurve(ivorn)
                points = [datum_of_row(client.url, ivorn, row) for row in table]
        except (PhotcalError, PhotcalProcessingError) as exc:
            raise QueryServiceError(f"photcal: {exc}") from exc
        self.query_results = {
            "ivorn": ivorn,
            "name": table.meta.get("name"),
            "ra": table.meta.get("ra"),
            "dec": table.meta.get("dec"),
            "points": points,
        }
        return self.query_results

    def query_photometry(self, query_parameters: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
        return list(self.query_service(query_parameters, **kwargs)["points"])

    def query_targets(self, query_parameters: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
        found = self.query_service(query_parameters, **kwargs)
        return [
            {
                "name": found["name"] or found["ivorn"],
                "ivorn": found["ivorn"],
                "ra": found["ra"],
                "dec": found["dec"],
                "reduced_datums": {"photometry": found["points"]},
            }
        ]

    def create_target_from_query(self, target_result: dict[str, Any], **kwargs: Any) -> Any:
        return Target(name=target_result["name"], type="SIDEREAL", ra=target_result["ra"], dec=target_result["dec"])

    def create_target_extras_from_query(self, query_results: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        return {ALERT_FIELD: query_results["ivorn"]}

    def create_reduced_datums_from_query(
        self, target: Any, data: Any, data_type: str | None = None, **kwargs: Any
    ) -> list[Any]:
        """Each photcal datapoint once for ``target``: created, or updated when photcal's values changed."""
        if data_type not in (None, "photometry"):
            return []
        stored = []
        for point in data or []:
            datapoint_id = point[DATAPOINT_KEY]
            parsed = try_parse_reduced_datum(
                {
                    "target": target,
                    "timestamp": timestamp_of(point["mjd"]),
                    "source_name": SOURCE_NAME,
                    "source_location": point[URL_KEY],
                    "data_type": "photometry",
                    **point,
                }
            )
            existing = PhotometryReducedDatum.objects.filter(
                target=target, **{f"value__{DATAPOINT_KEY}": datapoint_id}
            ).first()
            if existing is None:
                parsed.save()
                stored.append(parsed)
                continue
            changed = [f for f in _UPDATABLE if getattr(existing, f) != getattr(parsed, f)]
            if existing.timestamp != parsed.timestamp:
                changed.append("timestamp")
            merged = {**existing.value, **parsed.value}  # a processed product's own keys (upload id) kept
            if changed or merged != existing.value:
                for field in changed:
                    setattr(existing, field, getattr(parsed, field))
                existing.value = merged
                existing.save()
                logger.info("photcal datapoint %s of %s updated: %s", datapoint_id, target, ", ".join(changed))
            stored.append(existing)
        return stored
