"""The Django app: registers the ``photcal`` data service through the TOM Toolkit's integration point."""

from django.apps import AppConfig


class TomPhotcalConfig(AppConfig):
    name = "tom_photcal"
    verbose_name = "photcal"
    default_auto_field = "django.db.models.BigAutoField"

    def data_services(self) -> list[dict[str, str]]:
        """The TOM Toolkit's data-service integration point (``tom_dataservices.get_data_service_classes``)."""
        return [{"class": f"{self.name}.dataservice.PhotcalDataService"}]
