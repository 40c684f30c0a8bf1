"""Settings only gunicorn reads: its worker class, timeout, keep-alive and worker recycling."""

from typing import Literal

from pydantic import Field, model_validator

from .server import ServerSettings


class GunicornSettings(ServerSettings):
    """gunicorn's knobs: the shared server settings and gunicorn's own."""

    worker_class: Literal["sync", "gthread"] = Field("gthread", description="`sync`: one thread")
    gunicorn_timeout: int = Field(
        30, ge=1, le=3600, description="seconds before a stuck worker is killed"
    )
    keepalive: int = Field(
        5, ge=0, le=3600, description="seconds an idle keep-alive connection stays open"
    )
    max_requests: int = Field(
        50000, ge=0, le=10**9, description="recycle a worker after this many; 0: never"
    )
    max_requests_jitter: int = Field(
        5000, ge=0, le=10**9, description="up to this many more, at random"
    )

    @model_validator(mode="after")
    def _sync_is_single_threaded(self) -> "GunicornSettings":
        """Give sync workers one thread: with more, gunicorn silently runs gthread instead."""
        if self.worker_class == "sync":
            self.web_threads = 1
        return self
