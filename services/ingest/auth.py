"""Moved to :mod:`shared.auth` (the lightcurve service checks hashtags too); kept for imports."""

from shared.auth import authenticate, hashtag_of

__all__ = ["authenticate", "hashtag_of"]
