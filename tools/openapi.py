"""Write the OpenAPI document the lightcurve service serves: ``python -m tools.openapi``.

The route entries live in ``shared/contracts/openapi.py``; this hands it the body models that live
in the services (a service does not import another, so the document is built here, where both are
in reach) and writes ``services/lightcurve/static/openapi.json``. ``tests/unit/test_openapi.py``
fails, saying to run this, when the file is not a fresh build.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from services.ingest.forms import UploadForm
from services.lightcurve.datapoints import DatapointDetail
from services.lightcurve.web.apidocs import DOCUMENT
from shared.contracts.messages import CalibrationResult, RecalibrationRequest
from shared.contracts.openapi import build_document
from shared.contracts.webhooks import (
    DeliveryList,
    Subscription,
    SubscriptionList,
    SubscriptionRequest,
    WebhookSecretView,
)
from shared.usecases.uploads import UploadList

BODY_MODELS: dict[str, type[BaseModel]] = {
    model.__name__: model
    for model in (
        UploadForm,
        CalibrationResult,
        UploadList,
        DatapointDetail,
        RecalibrationRequest,
        SubscriptionRequest,
        Subscription,
        SubscriptionList,
        DeliveryList,
        WebhookSecretView,
    )
}


def document() -> dict[str, Any]:
    return build_document(BODY_MODELS)


def document_text() -> str:
    """The document as the file holds it: sorted keys would reorder the paths, so as built, indented."""
    return json.dumps(document(), indent=1, ensure_ascii=False) + "\n"


def main() -> None:
    DOCUMENT.write_text(document_text(), encoding="utf-8")
    print(f"wrote {DOCUMENT}")


if __name__ == "__main__":
    main()
