from services.photometry.app import spec
from services.photometry.settings import PhotometrySettings
from shared.runtime import run

run(spec(PhotometrySettings()))
