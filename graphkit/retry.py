"""When to try a request again, and how long to wait first: one policy for Graph and
for the token endpoint.

Throttling (429), 503, 504 and dropped connections are retried: with the server's
``Retry-After`` when it gives a usable one (seconds, possibly fractional, or an HTTP
date), otherwise backing off exponentially (1, 2, 4... seconds, capped at 30) with
jitter (a factor in [0.5, 1)) so that many clients do not retry in step. At most
``max_attempts`` tries, and never more than ``max_total_wait`` seconds of waiting for
one request. Time is injectable (``sleep``, ``clock``, ``jitter``) so tests assert
what was slept.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from graphkit._record import Record

__all__ = [
    "BACKOFF_BASE",
    "BACKOFF_CAP",
    "DEFAULT_MAX_ATTEMPTS",
    "DEFAULT_MAX_TOTAL_WAIT",
    "Retries",
    "RetryPolicy",
    "parse_retry_after",
]

# Microsoft's SDK retries 3 times with a 180 s cap; we allow a few more attempts
# (5 tries in total) but a shorter cap, since a CLI user is waiting.
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_MAX_TOTAL_WAIT = 120.0
# Backoff without Retry-After: 1, 2, 4, 8... seconds (times a jitter factor), capped.
BACKOFF_BASE = 1.0
BACKOFF_CAP = 30.0
JITTER = (0.5, 1.0)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header, or None when it gives no usable
    wait: absent, malformed, negative, a date already past, or out of range."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils

        try:
            when = email.utils.parsedate_to_datetime(value)
            seconds = when.timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError, OverflowError, OSError, IndexError):
            return None
        if seconds <= 0:
            return None  # a date in the past: back off instead of retrying at once
    if seconds != seconds or seconds < 0 or seconds == float("inf"):  # NaN, negative
        return None
    return seconds


class RetryPolicy(Record):
    """How many times, and how long, one request may be retried."""

    _fields = ("max_attempts", "max_total_wait", "sleep", "clock", "jitter")
    _hidden = frozenset({"sleep", "clock", "jitter"})

    def __init__(
        self,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_total_wait: float = DEFAULT_MAX_TOTAL_WAIT,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.max_attempts = max_attempts
        self.max_total_wait = max_total_wait
        self.sleep = sleep
        self.clock = clock
        self.jitter = jitter

    def backoff(self, attempt: int) -> float:
        """The wait after failed try number ``attempt`` (1-based) without Retry-After."""
        base = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
        return base * self.jitter(*JITTER)

    def start(self) -> Retries:
        return Retries(self, started=self.clock())


class Retries(Record):
    """The tries of one request under a :class:`RetryPolicy`."""

    _fields = ("policy", "started", "attempt")

    def __init__(self, policy: RetryPolicy, started: float, attempt: int = 0) -> None:
        self.policy = policy
        self.started = started
        self.attempt = attempt  # tries made so far

    def next_wait(self, retry_after: float | None) -> tuple[float | None, str]:
        """After a failed try: (seconds to wait, ``""``), or (None, why not) when the
        budget is spent."""
        policy = self.policy
        delay = retry_after if retry_after is not None else policy.backoff(self.attempt)
        if self.attempt >= policy.max_attempts:
            return None, f"after {self.attempt} attempt{'s' if self.attempt != 1 else ''}"
        elapsed = policy.clock() - self.started
        if elapsed + delay > policy.max_total_wait:
            return None, (
                f"waiting {delay:g} s more would exceed the {policy.max_total_wait:g} s cap"
            )
        return delay, ""
