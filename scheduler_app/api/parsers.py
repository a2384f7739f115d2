"""
The one request body format the scheduler API accepts: JSON, and not too much of it.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# A trigger spec is a few hundred bytes; nothing legitimate comes near this.
MAX_BODY_BYTES = 64 * 1024


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, refusing with a 400 what would otherwise be a 500."""

    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: Any = None
    ) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            # json raises it for deep nesting, and DRF only turns ValueError into a 400.
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
