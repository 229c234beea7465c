"""photcal-client: calibrate frames and catalogues with a photcal server from Python.

>>> from photcal_client import Client
>>> client = Client("http://127.0.0.1:8080", hashtag="...")
>>> result = client.upload("sex.cat", "ivo://gaia/alerts#Gaia23sim", mjd=60144.15961)
>>> table = client.lightcurve("ivo://gaia/alerts#Gaia23sim")   # an astropy Table, mag units, Time column
"""

from photcal_client.client import Client
from photcal_client.errors import (
    AuthenticationError,
    CalibrationRefused,
    ClientError,
    Conflict,
    ConnectionFailed,
    NotFound,
    PhotcalError,
    PhotcalTimeout,
    RateLimited,
    ServerError,
    StillCalibrating,
    Unavailable,
)
from photcal_client.results import Alert, DeletedDatapoint, QueuedUpload, UploadResult, UploadStatus, magnitude_system

__all__ = [
    "Alert",
    "AuthenticationError",
    "CalibrationRefused",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "DeletedDatapoint",
    "NotFound",
    "PhotcalError",
    "PhotcalTimeout",
    "QueuedUpload",
    "RateLimited",
    "ServerError",
    "StillCalibrating",
    "Unavailable",
    "UploadResult",
    "UploadStatus",
    "magnitude_system",
]
__version__ = "0.1.0"
