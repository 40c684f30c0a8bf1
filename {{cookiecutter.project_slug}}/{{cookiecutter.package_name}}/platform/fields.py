"""What the input of every resource shares: ids in ASCII digits (``<id:...>`` in a route), the
largest id and offset an INTEGER column holds, and the text patterns every database stores.

A feature imports these; init_app registers the ``id`` converter before any feature's routes.
"""

from flask import Flask
from werkzeug.routing import BaseConverter

# The largest id and offset an INTEGER column holds on every supported database; larger ones are
# refused here instead of failing in the database.
MAX_ID = 2**31 - 1
# No database stores NUL characters (pydantic refuses unpaired surrogates itself); a name also
# needs one character that is not whitespace. As patterns, the document states them too.
NO_NUL = "^[^\\u0000]*$"
NOT_BLANK = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


class IdConverter(BaseConverter):
    """Match ids in ASCII digits only: ``\\d`` would take other scripts' digits as numbers."""

    regex = r"[0-9]{1,20}"

    def to_python(self, value: str) -> int:
        """Return the id as an int."""
        return int(value)


def init_app(app: Flask) -> None:
    """Let every route name an id as ``<id:name>`` (register it before the features' routes)."""
    app.url_map.converters["id"] = IdConverter
