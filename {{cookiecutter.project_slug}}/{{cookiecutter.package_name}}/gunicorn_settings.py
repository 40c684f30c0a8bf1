"""Settings only gunicorn reads: its worker class, timeout, keep-alive and worker recycling."""

from typing import Literal

from pydantic import Field, model_validator

from .server import ServerSettings


class GunicornSettings(ServerSettings):
    """gunicorn's knobs: the shared server settings and gunicorn's own."""

    worker_class: Literal["sync", "gthread"] = "gthread"
    gunicorn_timeout: int = Field(30, ge=1)
    keepalive: int = Field(5, ge=0)
    # Recycle a worker after this many requests (plus up to the jitter), a guard against slow
    # memory leaks; each recycle costs a worker boot, so it stays rare.
    max_requests: int = Field(50000, ge=0)
    max_requests_jitter: int = Field(5000, ge=0)

    @model_validator(mode="after")
    def _sync_is_single_threaded(self) -> "GunicornSettings":
        """Give sync workers one thread: with more, gunicorn silently runs gthread instead."""
        if self.worker_class == "sync":
            self.web_threads = 1
        return self
