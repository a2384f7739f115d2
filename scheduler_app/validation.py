"""
Checks of the plain text operators type: job ids, job names, function names.

Ids and names are shown in every front door and stored in indexed columns, so they
must be printable single-line text of a sane length; HTML in them is fine (every
door escapes it), control characters and NUL are not (PostgreSQL refuses NUL, and
a newline or escape sequence in a CLI table or log line misleads whoever reads it).
"""

from __future__ import annotations

import re

from scheduler_app.exceptions import InvalidInput

# `DjangoJob.id` and `JobRecord.name` are 255 characters; ids stay shorter so they fit
# into URLs, NOTIFY payloads and audit rows with room to spare.
MAX_ID_LENGTH = 191
MAX_NAME_LENGTH = 255
# Unicode's control characters (category Cc: NUL, newline, escape, C1 controls) and lone
# surrogates (Cs), which no database encoding takes.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def validate_identifier(value: object, *, field: str) -> str:
    """A job id or function name: 1 to 191 printable characters, no spaces, no slash."""
    text = _printable_text(value, field=field, max_length=MAX_ID_LENGTH)
    if any(character.isspace() or character == "/" for character in text):
        raise InvalidInput("must not contain spaces or slashes.", field=field)
    return text


def validate_name(value: object, *, field: str = "name") -> str:
    """A job's display name: 1 to 255 printable characters on one line."""
    return _printable_text(value, field=field, max_length=MAX_NAME_LENGTH).strip()


def _printable_text(value: object, *, field: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise InvalidInput("must be a string.", field=field)
    if not value.strip():
        raise InvalidInput("must not be empty.", field=field)
    if len(value) > max_length:
        raise InvalidInput(f"must be at most {max_length} characters, not {len(value)}.",
                           field=field)
    if _UNPRINTABLE.search(value):
        raise InvalidInput("must not contain control characters.", field=field)
    return value
