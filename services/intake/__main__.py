from services.intake.app import spec
from services.intake.settings import IntakeSettings
from shared.runtime import run

run(spec(IntakeSettings()))
