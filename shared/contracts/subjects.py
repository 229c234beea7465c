"""The names NATS traffic is addressed by: subjects, streams, consumers, buckets and headers.

Each subject carries one message model of :mod:`shared.contracts.messages`
and its version: a breaking change is a new subject, never an edit in place.

===============================  ===============================  ==========================================
subject                          message                          from -> to
===============================  ===============================  ==========================================
``photcal.upload.v1``            ``UploadRequested``              ingest, photometry -> calibrate (UPLOADS)
``photcal.frame.v1``             ``UploadRequested`` (``image``)  ingest -> photometry (stream UPLOADS)
``photcal.calibrated.v1``        ``CalibrationResult``            calibrate, photometry -> ingest, notify (RESULTS)
``photcal.catalog.cone.v1``      ``ConeRequest`` / ``ConeReply``  request/reply, JSON (older clients)
``photcal.catalog.cone.v2``      ``ConeRequestV2`` / binary       calibrate <-> catalog (shared/conewire.py)
``photcal.catalog.versions.v1``  ``CatalogueVersionsRequest``     ingest <-> catalog, request/reply, JSON
``photcal.upload.dead.v1``       ``DeadLetter``                   calibrate, photometry -> operators (DEADLETTERS)
``photcal.recalibrate.v1``       ``RecalibrationTask``            ingest, photcal CLI -> calibrate (RECALIBRATIONS)
``photcal.recalibrated.v1``      ``RecalibratedEvent``            calibrate -> subscribers (RESULTS)
===============================  ===============================  ==========================================
"""

from __future__ import annotations

SUBJECT_UPLOAD = "photcal.upload.v1"
#: a FITS frame to photometer: ``UploadRequested`` with ``image`` set; the photometry service measures it
#: and publishes the same upload on SUBJECT_UPLOAD with its sources and ``forced_target``
SUBJECT_FRAME = "photcal.frame.v1"
SUBJECT_CALIBRATED = "photcal.calibrated.v1"
SUBJECT_CONE = "photcal.catalog.cone.v1"
#: v2: the reply is binary columns in parts (shared/conewire.py), so a cone of any density can be sent
SUBJECT_CONE_V2 = "photcal.catalog.cone.v2"
#: which catalogue versions are on disk (the gateway checks a recalibration's catalogue_versions)
SUBJECT_CATALOG_VERSIONS = "photcal.catalog.versions.v1"
SUBJECT_DEAD = "photcal.upload.dead.v1"
#: one datapoint of a recalibration job to compute or apply (work queue, its own stream: a job of
#: 100,000 points must not delay the uploads' queue)
SUBJECT_RECALIBRATE = "photcal.recalibrate.v1"
#: a datapoint's current calibration was replaced by a recalibration
SUBJECT_RECALIBRATED = "photcal.recalibrated.v1"

STREAM_UPLOADS = "UPLOADS"
STREAM_RESULTS = "RESULTS"
STREAM_DEAD = "DEADLETTERS"
STREAM_RECALIBRATIONS = "RECALIBRATIONS"
CONSUMER_CALIBRATE = "calibrate"
CONSUMER_PHOTOMETRY = "photometry"
CONSUMER_RECALIBRATE = "recalibrate"
#: the notify service's own durable consumers of SUBJECT_CALIBRATED (callbacks and subscriptions, issue 22)
#: and of SUBJECT_RECALIBRATED (subscriptions: a stored datapoint's calibration replaced)
CONSUMER_NOTIFY = "notify"
CONSUMER_NOTIFY_RECALIBRATED = "notify-recalibrated"
QUEUE_CATALOG = "catalog"
OBJECT_BUCKET_UPLOADS = "photcal-uploads"
OBJECT_BUCKET_PLOTS = "photcal-plots"

#: header carrying the correlation id from the HTTP request through NATS
HEADER_CORRELATION = "X-Correlation-ID"
#: a cone v2 reply's parts (shared/conewire.py): the id of the reply they belong to, and ``<i>/<n>``
HEADER_REPLY = "Photcal-Reply"
HEADER_PART = "Photcal-Part"
#: a webhook delivery (services/notify): the signature ``t=<unix>,v1=<hex>``, the delivery's id, the upload's id
HEADER_SIGNATURE = "X-Photcal-Signature"
HEADER_DELIVERY = "X-Photcal-Delivery"
HEADER_UPLOAD = "X-Photcal-Upload"
HEADER_SUBSCRIPTION = "X-Photcal-Subscription"
#: the subject of the event a delivery posts (``photcal.calibrated.v1``, ``photcal.recalibrated.v1``)
HEADER_EVENT = "X-Photcal-Event"
