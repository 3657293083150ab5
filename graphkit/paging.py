"""How GraphClient pages a collection: each ``@odata.nextLink`` checked before it is
followed, and with ``prefetch`` the next page fetched in a thread while the caller reads
this one.

Used by :meth:`graphkit.graph.GraphClient.pages`; nothing here is public API.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from graphkit.errors import GraphError
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


class Stopped(Exception):
    """Raised inside the paging thread when its reader has gone: the thread just ends."""


class Lane:
    """How the paging thread sends: retry waits are handed to the reader (who reports
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


# What the paging thread hands the reader, in order.
_PAGE, _WAIT, _END, _FAILED = "page", "wait", "end", "failed"


class Prefetcher:
    """Fetches page N+1 in a thread of its own while the reader works on page N.

    One page ahead, never more: the thread may fetch a page only with a credit, and
    the reader gives one back each time it takes a page. The nextLink checks, retries
    and the one-time token refresh are GraphClient's own (``_send``), on the client's
    session, which the thread and the reader's thread take in turns. Whatever happens
    in the thread (a page, a retry wait, the end, an error) reaches the reader in
    order through one queue, so an error on page N+1 is raised only when the reader
    asks for it, after page N.
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
        self._credit = threading.Semaphore(1)  # page 2 comes while page 1 is read
        self._stop = threading.Event()
        self._lane = Lane(self._hand_wait, self._nap, self._stop.is_set)
        self._thread = threading.Thread(
            target=self._run,
            args=(body, links, budget, headers),
            name="graphkit-prefetch",
            daemon=True,  # never keeps the process alive (Ctrl-C, an error)
        )
        client._prefetchers.add(self)
        self._thread.start()

    # ---------------------------------------------------------- the paging thread

    def _run(
        self, body: Any, links: NextLinks, budget: ItemBudget, headers: Mapping[str, str]
    ) -> None:
        client = self._client
        try:
            while not budget.spent():
                link = links.after(body)
                if link is None:
                    break
                self._credit.acquire()
                if self._stop.is_set():
                    return
                body = client._decode(client._send("GET", link, None, headers, lane=self._lane))
                budget.count(body)
                self._events.put((_PAGE, body))
            self._events.put((_END, None))
        except Stopped:
            return
        except BaseException as exc:  # handed to the reader, who raises it
            if not self._stop.is_set():
                self._events.put((_FAILED, exc))

    def _hand_wait(self, seconds: float, reason: str) -> None:
        self._events.put((_WAIT, (seconds, reason)))

    def _nap(self, seconds: float) -> None:
        if self._client._sleep is time.sleep:
            self._stop.wait(seconds)  # the real clock: a stop ends the wait
        else:
            self._client._sleep(seconds)  # a test's recorder
        if self._stop.is_set():
            raise Stopped

    # ---------------------------------------------------------- the reader

    def next_page(self) -> Any:
        """The next page (None after the last); raises what fetching it raised."""
        while True:
            kind, value = self._events.get()
            if kind == _WAIT:
                if self._client.on_wait is not None:
                    self._client.on_wait(*value)
                continue
            if kind == _PAGE:
                self._credit.release()  # the page before is done with: fetch one more
                return value
            if kind == _END:
                return None
            raise value

    def stop(self) -> None:
        """Stop the thread: a wait ends, a request in flight fails at once, nothing
        more is fetched. Does not wait for the thread."""
        self._stop.set()
        self._credit.release()
        self._client._prefetchers.discard(self)
        # Only a session of the client's own making can abort (make_session(abortable)).
        abort = getattr(self._client._session, "abort", None)
        if self._client._own_session and abort is not None and self._thread.ident:
            abort(self._thread.ident)
