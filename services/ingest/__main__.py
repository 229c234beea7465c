from services.ingest.app import spec
from services.ingest.settings import IngestSettings
from shared.runtime import run

run(spec(IngestSettings()))
