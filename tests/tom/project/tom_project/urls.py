"""The URLs of a `tom_setup` project: the TOM Toolkit's own (apps such as tom_dataservices add theirs)."""

from django.urls import include, path

urlpatterns = [
    path("", include("tom_common.urls")),
]
