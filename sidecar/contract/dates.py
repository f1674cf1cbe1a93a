"""Dates and times as Pact's ``date``, ``time`` and ``datetime`` matchers check them.

A matcher's ``format`` is a Java ``SimpleDateFormat`` pattern (what every Pact library writes,
pact-python too: ``yyyy-MM-dd'T'HH:mm:ss'Z'``), checked as the regex :func:`java_date_regex`
makes of it; without a format, ISO 8601 (:func:`iso_date_ok`). Not here: the other matchers
(:mod:`.rules`).
"""

from __future__ import annotations

__all__ = ["iso_date_ok", "java_date_regex"]

import re
from datetime import datetime

#: Java SimpleDateFormat letters (longest first) and what each matches.
_JAVA_DATE = [
    ("yyyy", r"\d{4}"),
    ("yy", r"\d{2}"),
    ("MMMM", r"[A-Za-z]+"),
    ("MMM", r"[A-Za-z]{3}"),
    ("MM", r"(0[1-9]|1[0-2])"),
    ("M", r"(1[0-2]|[1-9])"),
    ("dd", r"(0[1-9]|[12]\d|3[01])"),
    ("d", r"([12]\d|3[01]|[1-9])"),
    ("HH", r"([01]\d|2[0-3])"),
    ("H", r"(1\d|2[0-3]|\d)"),
    ("hh", r"(0[1-9]|1[0-2])"),
    ("h", r"(1[0-2]|[1-9])"),
    ("mm", r"[0-5]\d"),
    ("ss", r"[0-5]\d"),
    ("SSSSSS", r"\d{6}"),
    ("SSS", r"\d{3}"),
    ("S", r"\d+"),
    ("XXX", r"(Z|[+-]\d{2}:\d{2})"),
    ("XX", r"(Z|[+-]\d{4})"),
    ("X", r"(Z|[+-]\d{2}(\d{2})?)"),
    ("Z", r"[+-]\d{4}"),
    ("z", r"[A-Za-z]+"),
    ("EEEE", r"[A-Za-z]+"),
    ("EEE", r"[A-Za-z]{3}"),
    ("a", r"(AM|PM|am|pm)"),
]


def java_date_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching what ``pattern`` (Java ``SimpleDateFormat``) formats."""
    out, at = [], 0
    while at < len(pattern):
        ch = pattern[at]
        if ch == "'":
            end = pattern.find("'", at + 1)
            end = len(pattern) if end < 0 else end
            out.append(re.escape(pattern[at + 1 : end]) if end > at + 1 else "'")
            at = end + 1
            continue
        for letters, regex in _JAVA_DATE:
            if pattern.startswith(letters, at):
                out.append(regex)
                at += len(letters)
                break
        else:
            out.append(re.escape(ch))
            at += 1
    return re.compile("".join(out))


def iso_date_ok(value: str, kind: str) -> bool:
    """Whether ``value`` is an ISO 8601 ``date``, ``time`` or date-time."""
    try:
        if kind == "date":
            datetime.strptime(value, "%Y-%m-%d")
        elif kind == "time":
            return re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?", value) is not None
        else:
            datetime.fromisoformat(value)
    except ValueError:
        return False
    return True
