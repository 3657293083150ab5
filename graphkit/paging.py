"""How GraphClient pages a collection: each ``@odata.nextLink`` checked before it is
followed, and with ``prefetch`` the next page fetched in threads while the caller reads
this one (asked for as soon as this page's nextLink has arrived).

Used by :meth:`graphkit.graph.GraphClient.pages`; nothing here is public API.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graphkit.errors import GraphError, NetworkError
from graphkit.graph import _resolve_link as resolve_link
from graphkit.transport import wire_url

if TYPE_CHECKING:  # pragma: no cover
    from graphkit.graph import GraphClient

__all__ = ["ItemBudget", "Lane", "NextLinks", "Prefetcher", "Stopped", "next_link"]


def next_link(body: Any) -> Any:
    return body.get("@odata.nextLink") if isinstance(body, dict) else None


class NextLinks:
    """The nextLinks of one paging run: each resolved against the page it came in,
    checked against the Graph origin, and refused if Graph returned it before."""

    def __init__(self, client: GraphClient, url: str, first: str) -> None:
        self._client = client
        self._base = url
        self._followed = {wire_url(first).split("#", 1)[0]}

    def after(self, body: Any) -> str | None:
        """The URL of the page after ``body`` (None: the last page).

        Raises:
            GraphError: the link is malformed, or was returned before.
            ForeignHostError: the link leaves the Graph origin.
        """
        link = next_link(body)
        if not link:
            return None
        link = resolve_link(self._base, link, "an @odata.nextLink")
        self._client._check_origin(link, "the @odata.nextLink Graph returned")
        # A nextLink seen before (its own URL; a fragment changes nothing on the wire)
        # would page forever through the same items.
        seen_as = wire_url(link).split("#", 1)[0]
        if seen_as in self._followed:
            raise GraphError(
                f"Graph returned an @odata.nextLink it had already returned "
                f"({urlsplit(link).path}): paging stopped, no page is repeated",
                "retry; if it persists, report the query (it may be a service fault)",
            )
        self._followed.add(seen_as)
        self._base = link
        return link


class ItemBudget:
    """Counts the items of the pages fetched: with ``max_items``, says when no further
    page is needed."""

    def __init__(self, max_items: int | None) -> None:
        self._left = max_items

    def count(self, body: Any) -> None:
        if self._left is None:
            return
        items = body.get("value") if isinstance(body, dict) else None
        if isinstance(items, list):
            self._left -= len(items)
        else:
            self._left = 0  # a page that is no collection ends the items

    def spent(self) -> bool:
        return self._left is not None and self._left <= 0

    @property
    def unlimited(self) -> bool:
        return self._left is None


class Stopped(Exception):
    """Raised inside a paging thread when its reader has gone: the thread just ends."""


class Lane:
    """How the paging threads send: retry waits are handed to the reader (who reports
    them on its own thread), a wait ends early when paging stops, and a stopped run
    sends nothing more."""

    def __init__(
        self,
        on_wait: Callable[[float, str], None],
        sleep: Callable[[float], None],
        stopped: Callable[[], bool],
    ) -> None:
        self.on_wait, self.sleep, self._stopped = on_wait, sleep, stopped

    def check(self) -> None:
        """Raises Stopped once paging has stopped."""
        if self._stopped():
            raise Stopped


# What the paging threads hand the reader, in order.
_PAGE, _WAIT, _END, _FAILED = "page", "wait", "end", "failed"

_HEAD_LIMIT = 1 << 16  # bytes of a page searched for its nextLink before "value"
_TURN = 0.25  # seconds the reader waits for the next page before checking for Ctrl-C
_decoder = json.JSONDecoder()


def head_link(head: bytes) -> tuple[bool, str | None]:
    """The ``@odata.nextLink`` of a page from the first bytes of its body, when it comes
    before ``"value"`` (the emulator's order, and believed to be Graph's): ``(True, link)``;
    ``(True, None)`` when the head shows there is none to find there (``"value"`` came
    first, or this is no JSON object); ``(False, None)`` when more bytes are needed.

    Only the top-level members before ``"value"`` are read, each decoded whole: a
    nextLink inside a string or a nested object is never taken for the page's own.
    """
    text = head.decode("utf-8", "replace")
    n = len(text)

    def skip(i: int) -> int:
        while i < n and text[i] in " \t\r\n":
            i += 1
        return i

    i = skip(0)
    if i == n:
        return False, None
    if text[i] != "{":
        return True, None
    i += 1
    first = True
    while True:
        i = skip(i)
        if i == n:
            return False, None
        if text[i] == "}":
            return True, None
        if not first:
            if text[i] != ",":
                return True, None  # not JSON: the whole body says what it is
            i = skip(i + 1)
            if i == n:
                return False, None
        first = False
        if text[i] != '"':
            return True, None
        try:
            key, i = _decoder.raw_decode(text, i)
        except ValueError:
            return False, None  # a key cut short
        i = skip(i)
        if i == n:
            return False, None
        if text[i] != ":":
            return True, None
        if key == "value":
            return True, None
        i = skip(i + 1)
        try:
            value, end = _decoder.raw_decode(text, i)
        except ValueError:
            return False, None  # a value cut short
        if end == n and not isinstance(value, str | dict | list):
            return False, None  # a number or literal may go on in the next bytes
        if key == "@odata.nextLink":
            return True, value if isinstance(value, str) and value else None
        i = end


class _Answer:
    """One page on its way: its response, sent for with its headers in, and the first
    bytes of its body (``head``), in which its nextLink may already be (``early``).
    The body reader reads the rest; ``link`` is the nextLink it found, for a page
    whose head did not have it (``done`` is set then)."""

    def __init__(self, client: GraphClient, url: str, resp: Any, *, look_ahead: bool) -> None:
        self.url, self.resp = url, resp
        self.chunks = client.iter_body(resp)
        self.head = b""
        self.early: str | None = None
        self.cut: NetworkError | None = None  # the body was cut short: fetched again
        self.link: str | None = None
        self.done = threading.Event()
        decided = not look_ahead
        try:
            while not decided:
                chunk = next(self.chunks, None)
                if chunk is None:
                    break
                self.head += chunk
                decided, self.early = head_link(self.head)
                decided = decided or len(self.head) > _HEAD_LIMIT
        except NetworkError as exc:
            self.cut, self.early = exc, None

    def close(self) -> None:
        self.chunks.close()
        self.resp.close()  # a body never started: closing its generator runs nothing


_SENT_ALL = object()  # the sender's last word to the body reader


class _Wait:
    """A retry wait of the sender's, handed on by the body reader after the pages before."""

    def __init__(self, seconds: float, reason: str) -> None:
        self.seconds, self.reason = seconds, reason


class Prefetcher:
    """Fetches page N+1 in threads of its own while the reader works on page N.

    Two threads: the sender asks for each page and reads the first bytes of its body;
    the body reader reads the rest and decodes it. When a page names its nextLink
    before its items (as the emulator does, and Graph's answers are believed to), the
    sender asks for the page after it at once, while this page's items are still
    arriving, on a second connection: a run then waits for the network once per page,
    not for the network and the page's transfer. Otherwise the sender waits for the
    body reader's nextLink.

    One page ahead, never more: the sender may ask for a page only with a credit, and
    the reader gives one back each time it is done with a page, so page N+1 is asked
    for (and read) only once the reader is done with page N-1. The nextLink checks,
    retries and the one-time token refresh are GraphClient's own (``_send``).
    Whatever happens in the threads (a page, a retry wait, the end, an error) reaches
    the reader in order through one queue, so an error on page N+1 is raised only
    when the reader asks for it, after page N.
    """

    def __init__(
        self,
        client: GraphClient,
        body: Any,
        links: NextLinks,
        budget: ItemBudget,
        headers: Mapping[str, str],
    ) -> None:
        self._client = client
        self._events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._answers: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # The credits, one a page (page 2 is asked for while page 1 is read). A queue, not
        # a Semaphore: the reader gives one back just where Ctrl-C lands, and a
        # KeyboardInterrupt raised just after a Semaphore took its Python-level lock can
        # leave it held (bpo-29988) for stop() to wait on; SimpleQueue.put takes none.
        self._credit: queue.SimpleQueue[None] = queue.SimpleQueue()
        self._credit.put(None)
        self._stop = threading.Event()
        self._waiting: _Answer | None = None  # the page whose nextLink the sender awaits
        # A retry wait is told to the reader in order: the body reader's at once (it
        # hands on the pages), the sender's after the pages before it (see _read_pages).
        self._lane = Lane(self._hand_wait, self._nap, self._stop.is_set)
        self._send_lane = Lane(self._queue_wait, self._nap, self._stop.is_set)
        self._threads = [
            threading.Thread(
                target=self._send_pages,
                args=(body, links, budget, headers),
                name="graphkit-prefetch",
                daemon=True,  # never keeps the process alive (Ctrl-C, an error)
            ),
            threading.Thread(
                target=self._read_pages,
                args=(links, budget, headers),
                name="graphkit-prefetch-body",
                daemon=True,
            ),
        ]
        client._prefetchers.add(self)
        for thread in self._threads:
            thread.start()

    # ---------------------------------------------------------- the sender

    def _send_pages(
        self, body: Any, links: NextLinks, budget: ItemBudget, headers: Mapping[str, str]
    ) -> None:
        client = self._client
        # With max_items, a page is asked for only once the items before it are counted.
        look_ahead = budget.unlimited
        try:
            link = links.after(body)
            while link is not None:
                self._credit.get()
                if self._stop.is_set():
                    return
                resp = client._send("GET", link, None, headers, stream=True, lane=self._send_lane)
                answer = _Answer(client, link, resp, look_ahead=look_ahead)
                if self._stop.is_set():  # stopped while it was sent: nobody will read it
                    answer.close()
                    return
                self._answers.put(answer)
                if answer.early is not None:
                    link = links.after({"@odata.nextLink": answer.early})
                    continue
                self._waiting = answer
                if self._stop.is_set():
                    return
                answer.done.wait()
                if self._stop.is_set():
                    return
                link = answer.link
            self._answers.put(_SENT_ALL)
        except Stopped:
            return
        except BaseException as exc:  # handed on in order, after the pages before it
            if not self._stop.is_set():
                self._answers.put(exc)

    # ---------------------------------------------------------- the body reader

    def _read_pages(self, links: NextLinks, budget: ItemBudget, headers: Mapping[str, str]) -> None:
        try:
            while True:
                answer = self._answers.get()
                if answer is _SENT_ALL:
                    self._events.put((_END, None))
                    return
                if isinstance(answer, _Wait):
                    self._events.put((_WAIT, (answer.seconds, answer.reason)))
                    continue
                if isinstance(answer, BaseException):
                    raise answer
                if self._stop.is_set():
                    answer.close()
                    return
                body = self._body(answer, headers)
                budget.count(body)
                self._events.put((_PAGE, body))
                if answer.early is None:
                    answer.link = None if budget.spent() else links.after(body)
                    answer.done.set()
        except Stopped:
            return
        except BaseException as exc:  # handed to the reader, who raises it
            if not self._stop.is_set():
                self._events.put((_FAILED, exc))
                self._halt()
        finally:
            self._drain()

    def _body(self, answer: _Answer, headers: Mapping[str, str]) -> Any:
        client = self._client
        if answer.cut is None:
            try:
                content = answer.head + b"".join(answer.chunks)
            except NetworkError as exc:
                answer.cut = exc
        if answer.cut is not None:
            self._lane.check()  # paging stopped: its read was cut off
            self._lane.on_wait(0.0, f"{answer.cut.message}; asking for the page again")
            # A GET may be sent again: the page anew, with GraphClient's own retries. Its
            # nextLink may differ (skiptokens are opaque): the one it named first, and
            # followed already, stands.
            answer.close()
            return client._decode(client._send("GET", answer.url, None, headers, lane=self._lane))
        body = client._decode(answer.resp, content)
        if answer.early is not None and next_link(body) != answer.early:
            raise GraphError(
                f"a page from Graph named two different @odata.nextLinks "
                f"({urlsplit(answer.url).path}): paging stopped",
                "retry; if it persists, report the query (it may be a service fault)",
            )
        return body

    def _drain(self) -> None:
        """Close the answers nobody will read (their connections go back)."""
        while True:
            try:
                answer = self._answers.get_nowait()
            except queue.Empty:
                return
            if isinstance(answer, _Answer):
                answer.close()

    # ---------------------------------------------------------- both

    def _hand_wait(self, seconds: float, reason: str) -> None:
        self._events.put((_WAIT, (seconds, reason)))

    def _queue_wait(self, seconds: float, reason: str) -> None:
        self._answers.put(_Wait(seconds, reason))

    def _nap(self, seconds: float) -> None:
        if self._client._sleep is time.sleep:
            self._stop.wait(seconds)  # the real clock: a stop ends the wait
        else:
            self._client._sleep(seconds)  # a test's recorder
        if self._stop.is_set():
            raise Stopped

    def _halt(self) -> None:
        """Nothing more is sent or read: the waits end, requests in flight fail at once."""
        self._stop.set()
        self._credit.put(None)
        waiting = self._waiting
        if waiting is not None:
            waiting.done.set()
        self._answers.put(_SENT_ALL)  # the body reader stops waiting for an answer
        # Only a session of the client's own making can abort (make_session(abortable)).
        abort = getattr(self._client._session, "abort", None)
        if self._client._own_session and abort is not None:
            for thread in self._threads:
                if thread.ident and thread is not threading.current_thread():
                    abort(thread.ident)

    # ---------------------------------------------------------- the reader

    def next_page(self) -> Any:
        """The next page (None after the last); raises what fetching it raised."""
        self._credit.put(None)  # the page before is done with: one more may be asked for
        while True:
            try:
                # In turns, not one wait: Ctrl-C must end it even when the signal lands
                # on another thread (or on Windows, where a lock wait ignores it), and
                # Python raises KeyboardInterrupt only once this thread runs again.
                kind, value = self._events.get(timeout=_TURN)
            except queue.Empty:
                continue
            if kind == _WAIT:
                if self._client.on_wait is not None:
                    self._client.on_wait(*value)
                continue
            if kind == _PAGE:
                return value
            if kind == _END:
                return None
            raise value

    def stop(self) -> None:
        """Stop the threads: a wait ends, a request in flight fails at once, nothing
        more is fetched. Does not wait for the threads."""
        self._client._prefetchers.discard(self)
        if not self._stop.is_set():
            self._halt()
