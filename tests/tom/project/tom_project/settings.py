"""A TOM project as `tom_setup` generates it (TOM Toolkit 3.1), with the photcal plug-in added.

SQLite and the uploaded files live in a temporary directory (``TOM_PROJECT_DIR`` to choose it);
the photcal server is ``PHOTCAL_URL`` as the observatory of ``PHOTCAL_HASHTAG``
(tests/tom/test_tom_plugin.py passes both).
"""

import os
import tempfile

from tom_common.default_settings import *  # noqa: F403 (the generated settings start so)

BASE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE_DIR = os.environ.get("TOM_PROJECT_DIR") or tempfile.mkdtemp(prefix="tom-photcal-")

SECRET_KEY = "photcal-plugin-tests-only"
SECRET_KEY_FALLBACKS = []
DEBUG = True
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]

TOM_NAME = "tom_project"

INSTALLED_APPS = TOMTOOLKIT_INSTALLED_APPS + [  # noqa: F405
    "tom_photcal",
]
SITE_ID = 1
MIDDLEWARE = TOMTOOLKIT_MIDDLEWARE + []  # noqa: F405
ROOT_URLCONF = "tom_project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [os.path.join(BASE_DIR, "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]
CRISPY_TEMPLATE_PACK = "bootstrap5"
WSGI_APPLICATION = "tom_project.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(STATE_DIR, "db.sqlite3"),
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"
AUTH_PASSWORD_VALIDATORS = []
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
AUTHENTICATION_BACKENDS = TOMTOOLKIT_AUTHENTICATION_BACKENDS + []  # noqa: F405

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
FORMAT_MODULE_PATH = ["tom_base.formats"]

STATIC_URL = "/static/"
STATIC_ROOT = os.path.join(STATE_DIR, "_static")
STATICFILES_DIRS = []
MEDIA_ROOT = os.path.join(STATE_DIR, "data")
MEDIA_URL = "/data/"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"": {"handlers": ["console"], "level": "WARNING"}},
}
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": os.path.join(STATE_DIR, "cache"),
    }
}
TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}

TARGET_TYPE = "SIDEREAL"
MATCH_MANAGERS = {}
FACILITIES = {}

# the TOM's data product types and their processors, with photcal's two
DATA_PRODUCT_TYPES = {
    "photometry": ("photometry", "Photometry"),
    "fits_file": ("fits_file", "FITS File"),
    "spectroscopy": ("spectroscopy", "Spectroscopy"),
    "image_file": ("image_file", "Image File"),
    "photcal_catalogue": ("photcal_catalogue", "photcal: SExtractor catalogue"),
    "photcal_frame": ("photcal_frame", "photcal: FITS frame"),
}
DATA_PROCESSORS = {
    "photometry": "tom_dataproducts.processors.photometry_processor.PhotometryProcessor",
    "spectroscopy": "tom_dataproducts.processors.spectroscopy_processor.SpectroscopyProcessor",
    "photcal_catalogue": "tom_photcal.processors.PhotcalCatalogueProcessor",
    "photcal_frame": "tom_photcal.processors.PhotcalFrameProcessor",
}
# the photcal server, as the TOM Toolkit configures every data service
DATA_SERVICES = {
    "photcal": {
        "url": os.environ.get("PHOTCAL_URL", "http://127.0.0.1:8080"),
        "hashtag": os.environ.get("PHOTCAL_HASHTAG", ""),
    },
}

TOM_FACILITY_CLASSES = []
# the target's photcal alert (its ivorn or name), editable on the target's form
EXTRA_FIELDS = [{"name": "photcal_alert", "type": "string"}]
GENERAL_SEARCH_FUNCTIONS = {}
SELECTION_EXTRA_FIELDS = []
AUTH_STRATEGY = "READ_ONLY"
OPEN_URLS = []
TARGET_PERMISSIONS_ONLY = True
TARGET_DEFAULT_PERMISSION = "PRIVATE"
TARGET_LIST_COLUMNS = ["name", "type", "observations", "saved_data"]
HOOKS = {
    "target_post_save": "tom_common.hooks.target_post_save",
    "observation_change_state": "tom_common.hooks.observation_change_state",
    "data_product_post_upload": "tom_dataproducts.hooks.data_product_post_upload",
    "data_product_post_save": "tom_dataproducts.hooks.data_product_post_save",
    "multiple_data_products_post_save": "tom_dataproducts.hooks.multiple_data_products_post_save",
}
AUTO_THUMBNAILS = False
THUMBNAIL_MAX_SIZE = (0, 0)
THUMBNAIL_DEFAULT_SIZE = (200, 200)
HINTS_ENABLED = False
HINT_LEVEL = 20
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tom_common.accounts.api_auth.TomTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.BasicAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [],
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
PLOTLY_THEME = "plotly_white"
SHOW_PAGINATION_INFO = True
