from shared.settings import CommonSettings


class LightcurveSettings(CommonSettings):
    lightcurve_port: int | None = None

    @property
    def port(self) -> int:
        return self.lightcurve_port or self.service_port(3)
