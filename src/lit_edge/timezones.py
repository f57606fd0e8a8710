"""UTC offsets, as field people type them, and the naive camera clocks they place.

Camera traps and drones keep local time with no zone: EXIF times, AVI/QuickTime recording times
and DJI telemetry are all naive. One offset (``--utc-offset +02:00``) turns them into instants;
this is the one parser of that option, shared by the exports (deployments) and the runtime
(telemetry).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from lit_edge.errors import UserError

_OFFSET = re.compile(r"^(Z|[+-]\d{2}:?\d{2})$")


def parse_offset(text: str, where: str) -> timezone:
    """``+02:00`` / ``-0500`` / ``Z`` -> a fixed timezone; a :class:`UserError` naming ``where`` else."""
    text = text.strip()
    if not _OFFSET.match(text):
        raise UserError(f"{where}: UTC offset {text!r} is not like +02:00 or Z; fix it")
    if text == "Z":
        return timezone.utc
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))


def localise(when: datetime | None, tz: timezone) -> datetime | None:
    """Give a naive (camera-clock) time the offset ``tz``; keep an aware one as it is."""
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=tz)
