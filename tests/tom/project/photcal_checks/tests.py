"""The photcal plug-in inside a real TOM project, against a real photcal stack.

Run by tests/tom/test_tom_plugin.py (``manage.py test photcal_checks`` in .venv-tom), which
starts the stack and passes it by environment: PHOTCAL_URL, PHOTCAL_HASHTAG (an observatory's),
PHOTCAL_OBSERVATORY (its name), PHOTCAL_ALERT / PHOTCAL_ALERT_NAME (an alert on the field),
PHOTCAL_FIELD (the simulated field's directory: its catalogues and truth.json).
Each test uses its own MJDs: photcal keeps what earlier tests stored (the TOM's database does not).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

import requests
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import SimpleTestCase, TestCase
from django.urls import reverse
from photcal_client import Client, Conflict
from tom_dataproducts.data_processor import run_data_processor
from tom_dataproducts.models import DataProduct, PhotometryReducedDatum
from tom_dataservices.dataservices import get_data_service_class
from tom_photcal.config import PhotcalProcessingError
from tom_photcal.photometry import DATAPOINT_KEY, URL_KEY, datum, mjd_of_product, stored_datapoint_id
from tom_targets.models import Target, TargetExtra

URL = os.environ["PHOTCAL_URL"]
HASHTAG = os.environ["PHOTCAL_HASHTAG"]
OBSERVATORY = os.environ["PHOTCAL_OBSERVATORY"]
IVORN = os.environ["PHOTCAL_ALERT"]
ALERT_NAME = os.environ["PHOTCAL_ALERT_NAME"]
FIELD = Path(os.environ["PHOTCAL_FIELD"])
TRUTH = json.loads((FIELD / "truth.json").read_text())
#: the field's CCD frame (FITS with WCS, MJD-OBS, EXPTIME, INSTRUME)
FRAME = Path(os.environ["PHOTCAL_FRAME"])


def catalogue_rows(keep) -> bytes:
    """The field's SExtractor catalogue with only the rows ``keep(ra, dec, mag)`` accepts (deg, deg, mag)."""
    lines = (FIELD / "sex_ascii_head.cat").read_text().splitlines()
    header = [line for line in lines if line.startswith("#")]
    rows = [line for line in lines if line.strip() and not line.startswith("#")]
    kept = [r for r in rows if keep(float(r.split()[3]), float(r.split()[4]), float(r.split()[5]))]
    return ("\n".join(header + kept) + "\n").encode()


def away_from_transient(ra: float, dec: float, _mag: float) -> bool:
    """More than 5 arcsec from the transient: the catalogue of a frame where it was not seen."""
    t = TRUTH["transient"]
    dra = (ra - t["ra"]) * math.cos(math.radians(t["dec"]))
    return math.hypot(dra, dec - t["dec"]) * 3600 > 5


def mjd_of(datum: PhotometryReducedDatum) -> float:
    return datum.timestamp.timestamp() / 86400.0 + 40587.0  # the Unix epoch is MJD 40587


class PluginTestCase(TestCase):
    def setUp(self) -> None:
        self.user = User.objects.create_superuser("observer", "observer@example.org", "pw")
        self.client.force_login(self.user)
        alert = TRUTH["alert"]
        self.target = Target.objects.create(name="SimTom target", type="SIDEREAL", ra=alert["ra"], dec=alert["dec"])
        TargetExtra.objects.create(target=self.target, key="photcal_alert", value=IVORN)

    def upload_through_the_form(self, name: str, content: bytes, product_type: str = "photcal_catalogue") -> list[str]:
        """The TOM's "upload a data product" form on the target's page; the messages it shows."""
        response = self.client.post(
            reverse("dataproducts:upload"),
            {
                "target": self.target.pk,
                "data_product_type": product_type,
                "referrer": reverse("targets:detail", kwargs={"pk": self.target.pk}),
                "files": SimpleUploadedFile(name, content),
            },
        )
        self.assertEqual(response.status_code, 302, response.content[:2000])
        return [str(m) for m in get_messages(response.wsgi_request)]

    def photometry(self) -> list[PhotometryReducedDatum]:
        return list(PhotometryReducedDatum.objects.filter(target=self.target).order_by("timestamp"))

    def product(self, name: str, content: bytes, extra_data: str = "") -> DataProduct:
        dp = DataProduct(target=self.target, data_product_type="photcal_catalogue", extra_data=extra_data)
        dp.data.save(name, ContentFile(content), save=False)
        dp.save()
        return dp


class CatalogueProcessorTests(PluginTestCase):
    def test_an_uploaded_catalogue_becomes_one_calibrated_point_and_processing_again_adds_none(self) -> None:
        content = (FIELD / "sex_ascii_head.cat").read_bytes()
        shown = self.upload_through_the_form("north_V_mjd60010.5.cat", content)
        self.assertTrue(any("Successfully uploaded" in m for m in shown), shown)
        [point] = self.photometry()
        self.assertLess(abs(point.brightness - TRUTH["transient"]["mag"]), 0.1)
        self.assertEqual(point.bandpass, TRUTH["best"]["band"])
        self.assertTrue(0 < point.brightness_error < 0.2, point.brightness_error)
        self.assertIsNone(point.limit)
        self.assertEqual((point.telescope, point.unit, point.source_name), (OBSERVATORY, "mag", "photcal"))
        self.assertAlmostEqual(mjd_of(point), 60010.5, delta=1e-6)
        self.assertEqual(point.value["survey"], TRUTH["best"]["survey"])
        self.assertEqual(point.value["mag_system"], "Vega")
        datapoint_id = point.value[DATAPOINT_KEY]
        self.assertEqual(point.value[URL_KEY], f"{URL}/datapoints/{datapoint_id}")
        self.assertEqual(requests.get(point.value[URL_KEY], timeout=30).status_code, 200)
        stored = Client(URL).lightcurve(IVORN)
        self.assertIn(datapoint_id, list(stored["followup_id"]))

        # the same product processed again: photcal answers 409 with the stored point, nothing is added
        product = point.data_product
        self.assertEqual(run_data_processor(product), [])
        # the same file uploaded again as a new product: still one point
        self.upload_through_the_form("north_V_mjd60010.5.cat", content)
        self.assertEqual([p.value[DATAPOINT_KEY] for p in self.photometry()], [datapoint_id])

        # the TOM lost its point: processing again rebuilds it from photcal's stored one (the 409's)
        PhotometryReducedDatum.objects.filter(target=self.target).delete()
        [rebuilt] = run_data_processor(product)
        self.assertEqual(rebuilt.value[DATAPOINT_KEY], datapoint_id)
        self.assertAlmostEqual(rebuilt.brightness, point.brightness, places=6)
        self.assertEqual((rebuilt.bandpass, rebuilt.telescope), (point.bandpass, OBSERVATORY))
        self.assertEqual(len(self.photometry()), 1)

    def test_a_catalogue_without_the_target_stores_its_limit(self) -> None:
        product = self.product("no_transient.cat", catalogue_rows(away_from_transient), '{"mjd": 60020.5}')
        [limit] = run_data_processor(product)
        self.assertIsNone(limit.brightness)
        self.assertIsNone(limit.brightness_error)
        self.assertIsNotNone(limit.limit)
        # a limit brighter than the transient (it would have been seen), not a fantasy
        self.assertTrue(TRUTH["limit_mag_5sigma"] - 1.5 < limit.limit < TRUTH["transient"]["mag"] + 1.5, limit.limit)
        self.assertEqual((limit.bandpass, limit.telescope, limit.unit), (TRUTH["best"]["band"], OBSERVATORY, "mag"))
        self.assertAlmostEqual(mjd_of(limit), 60020.5, delta=1e-6)
        self.assertEqual(run_data_processor(product), [])
        self.assertEqual(len(self.photometry()), 1)

    def test_a_refused_calibration_stores_nothing_and_says_photcals_reason(self) -> None:
        mags = sorted(
            float(line.split()[5])
            for line in (FIELD / "sex_ascii_head.cat").read_text().splitlines()
            if line.strip() and not line.startswith("#")
        )
        few = catalogue_rows(lambda _ra, _dec, mag: mag <= mags[7])  # 8 stars: too few pass the cuts
        shown = self.upload_through_the_form("few_mjd60030.5.cat", few)
        self.assertTrue(any("too_few_stars" in m for m in shown), shown)
        self.assertEqual(self.photometry(), [])
        self.assertFalse(DataProduct.objects.filter(target=self.target).exists())  # the TOM drops a failed product
        with self.assertRaises(PhotcalProcessingError) as refused:
            run_data_processor(self.product("few.cat", few, "mjd=60031.5"))
        self.assertEqual((refused.exception.code, refused.exception.status), ("too_few_stars", 400))

    def test_a_text_catalogue_without_an_mjd_is_refused_before_it_is_sent(self) -> None:
        shown = self.upload_through_the_form("north_V.cat", (FIELD / "sex_ascii_head.cat").read_bytes())
        self.assertTrue(any("no MJD" in m and "extra_data" in m for m in shown), shown)
        self.assertEqual(self.photometry(), [])

    def test_an_uploaded_frame_is_photometered_and_dated_by_its_header(self) -> None:
        shown = self.upload_through_the_form("frame.fits", FRAME.read_bytes(), product_type="photcal_frame")
        self.assertTrue(any("Successfully uploaded" in m for m in shown), shown)
        [point] = self.photometry()
        self.assertLess(abs(point.brightness - TRUTH["transient"]["mag"]), 0.1)
        self.assertEqual((point.bandpass, point.telescope, point.unit), (TRUTH["best"]["band"], OBSERVATORY, "mag"))
        self.assertEqual(point.instrument, "simcam")  # the frame's INSTRUME
        # the header's start (MJD-OBS) plus half the exposure: photcal's mid-exposure MJD
        mid = TRUTH["mjd"] + TRUTH["exptime"] / 2 / 86400
        self.assertAlmostEqual(mjd_of(point), mid, delta=1e-5)
        self.assertEqual(point.exposure_time, TRUTH["exptime"])
        self.assertEqual(run_data_processor(point.data_product), [])
        # a pull of the light curve holds this point: it stays one, with its instrument
        service = get_data_service_class("photcal")()
        service.to_reduced_datums(self.target, service.query_reduced_data(self.target))
        mine = [p for p in self.photometry() if p.value[DATAPOINT_KEY] == point.value[DATAPOINT_KEY]]
        self.assertEqual([(p.pk, p.instrument) for p in mine], [(point.pk, "simcam")])

    def test_a_frame_product_must_be_fits(self) -> None:
        shown = self.upload_through_the_form(
            "frame_mjd60040.5.fits.txt", (FIELD / "sex_ascii_head.cat").read_bytes(), product_type="photcal_frame"
        )
        self.assertTrue(any("is not a FITS file" in m for m in shown), shown)
        self.assertEqual(self.photometry(), [])


class DataServiceTests(PluginTestCase):
    def test_pulling_the_light_curve_stores_photcals_points_once(self) -> None:
        # a point an observer sent to photcal without the TOM
        observer = Client(URL, HASHTAG)
        with contextlib.suppress(Conflict):  # stored by an earlier run against this stack
            observer.upload(FIELD / "sex_cpcs.cat", IVORN, 60050.25)
        # the target names its alert by name this time
        TargetExtra.objects.filter(target=self.target, key="photcal_alert").update(value=ALERT_NAME)
        service = get_data_service_class("photcal")()
        service.to_reduced_datums(self.target, service.query_reduced_data(self.target))

        curve = Client(URL).lightcurve(IVORN)
        self.assertGreaterEqual(len(curve), 1)

        def masked(value):
            return None if hasattr(value, "mask") and bool(value.mask) else float(value)

        expected = sorted(
            (int(r["followup_id"]), masked(r["mag"]), masked(r["mag_err"]), str(r["filter"]), round(float(r["mjd"]), 6))
            for r in curve
        )
        pulled = self.photometry()
        got = sorted(
            (p.value[DATAPOINT_KEY], p.brightness, p.brightness_error, p.bandpass, round(p.value["mjd"], 6))
            for p in pulled
        )
        self.assertEqual(got, expected)
        for p in pulled:
            self.assertAlmostEqual(mjd_of(p), p.value["mjd"], delta=1e-6)
            self.assertEqual((p.source_name, p.source_location), ("photcal", p.value[URL_KEY]))
            if p.brightness is None:
                self.assertIsNotNone(p.limit)
        row = list(curve["followup_id"]).index(max(curve["followup_id"]))
        self.assertIn(str(curve["observatory"][row]), {p.telescope for p in pulled})

        # a second pull, and the TOM's own "update data" button: nothing added
        service.to_reduced_datums(self.target, service.query_reduced_data(self.target))
        response = self.client.post(
            reverse("dataservices:update-data"), {"target": self.target.pk, "data_service": "photcal"}
        )
        self.assertEqual(response.status_code, 302)
        self.assertEqual(len(self.photometry()), len(expected))

    def test_a_query_by_alert_creates_its_target_with_its_photometry(self) -> None:
        service = get_data_service_class("photcal")()
        [found] = service.query_targets(service.build_query_parameters({"alert": ALERT_NAME}))
        self.assertEqual((found["ivorn"], found["name"]), (IVORN, ALERT_NAME))
        target = service.to_target(found)
        self.assertEqual(target.targetextra_set.get(key="photcal_alert").value, IVORN)
        service.to_reduced_datums(target, found["reduced_datums"])
        self.assertEqual(
            PhotometryReducedDatum.objects.filter(target=target).count(), len(Client(URL).lightcurve(IVORN))
        )

    def test_an_unknown_alert_is_a_query_error_naming_it(self) -> None:
        from tom_dataservices.dataservices import QueryServiceError

        service = get_data_service_class("photcal")()
        with self.assertRaises(QueryServiceError) as unknown:
            service.query_service({"alert": "NoSuchAlert"})
        self.assertIn("NoSuchAlert", str(unknown.exception))


class ConversionTests(SimpleTestCase):
    """The plug-in's pure conversions (no server)."""

    def test_the_mjd_comes_from_extra_data_then_the_file_name(self) -> None:
        self.assertEqual(mjd_of_product('{"mjd": 60011.25}', "field_mjd60010.5.cat"), 60011.25)
        self.assertEqual(mjd_of_product("mjd=60012.75", ""), 60012.75)
        self.assertEqual(mjd_of_product("", "field_mjd60010.5.cat"), 60010.5)
        # Django's name for a second file of that name keeps the MJD readable
        self.assertEqual(mjd_of_product("", "field_mjd60010_AbC12x9.5.cat"), 60010.5)
        self.assertIsNone(mjd_of_product("", "field.cat"))
        self.assertIsNone(mjd_of_product("seeing 2 arcsec", "frame.fits"))

    def test_a_duplicate_names_its_stored_datapoint(self) -> None:
        message = "this datapoint is already stored (followup_id 17): same event, observatory and MJD"
        self.assertEqual(stored_datapoint_id({}, message), 17)
        self.assertEqual(stored_datapoint_id({"followup_id": 18}, message), 18)
        self.assertIsNone(stored_datapoint_id({}, "this datapoint is already stored"))

    def test_a_non_detection_keeps_only_its_limit(self) -> None:
        value = datum(
            server_url="https://photcal.example.org/",
            datapoint_id=5,
            mag=None,
            mag_err=0.1,
            limit_mag=20.4,
            band="V",
            survey="APASS",
            mag_system="Vega",
            observatory="Obs",
        )
        self.assertEqual((value["magnitude"], value["error"], value["limit"]), (None, None, 20.4))
        self.assertEqual(value[URL_KEY], "https://photcal.example.org/datapoints/5")
        detected = datum(
            server_url="u", datapoint_id=6, mag=19.0, mag_err=0.05, limit_mag=20.4, band="V",
            survey="APASS", mag_system="Vega", observatory="Obs",
        )  # fmt: skip
        self.assertEqual((detected["magnitude"], detected["error"], detected["limit"]), (19.0, 0.05, None))
