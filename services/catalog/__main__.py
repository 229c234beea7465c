from services.catalog.app import spec
from services.catalog.settings import CatalogSettings
from shared.runtime import run

run(spec(CatalogSettings()))
