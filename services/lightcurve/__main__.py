from services.lightcurve.app import spec
from services.lightcurve.settings import LightcurveSettings
from shared.runtime import run

run(spec(LightcurveSettings()))
