from services.calibrate.app import spec
from services.calibrate.settings import CalibrateSettings
from shared.runtime import run

run(spec(CalibrateSettings()))
