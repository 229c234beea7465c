from services.notify.app import spec
from services.notify.settings import NotifySettings
from shared.runtime import run

run(spec(NotifySettings()))
