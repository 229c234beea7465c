"""Configuration common to every service and the CLI (env vars, ``PHOTCAL_`` prefix).

Each service extends :class:`CommonSettings` in its own ``settings.py``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NATS_PORT = 4222
DEFAULT_MONGO_PORT = 27017


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PHOTCAL_", extra="ignore")

    #: NATS server; unset means "the one `photcal run` started" (localhost)
    nats_url: str = f"nats://127.0.0.1:{DEFAULT_NATS_PORT}"
    #: MongoDB (a replica set in production, nx-27017 when embedded)
    mongo_url: str = f"mongodb://127.0.0.1:{DEFAULT_MONGO_PORT}"
    mongo_db: str = "photcal"
    data_dir: Path = Path("var")
    log_level: str = "INFO"
    #: the gateway's public port; the other services' ports follow from it
    http_port: int = 8080
    http_host: str = "127.0.0.1"
    #: secret mixed into every stored hashtag hash; unset = a file in data_dir
    hashtag_pepper: str | None = Field(default=None, repr=False)
    #: signs and encrypts the browser's session cookie (shared/session.py); unset = a file in data_dir
    session_secret: str | None = Field(default=None, repr=False)
    #: seconds a dependency may take to answer before we call it down
    backend_timeout: float = 5.0
    #: JetStream replicas of photcal's streams and buckets (3 on a 3-node cluster)
    nats_replicas: int = 1
    shutdown_grace: float = 10.0

    def service_port(self, offset: int) -> int:
        """Port of a service's own HTTP (health/metrics) endpoint: gateway + offset."""
        return self.http_port + offset

    def pepper(self) -> bytes:
        if self.hashtag_pepper:
            return self.hashtag_pepper.encode()
        return _file_secret(self.data_dir / "secrets" / "hashtag_pepper")

    def session_key(self) -> bytes:
        if self.session_secret:
            return self.session_secret.encode()
        return _file_secret(self.data_dir / "secrets" / "session_secret")


def _file_secret(path: Path) -> bytes:
    """A random secret kept in a file, created on first use (embedded setups)."""
    import os
    import secrets

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(secrets.token_hex(32))
        os.chmod(tmp, 0o600)
        try:
            os.link(tmp, path)  # first writer wins, never overwritten
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()
