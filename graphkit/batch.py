"""Many Graph requests at once: JSON batching (``$batch``) with per-item retries and
adaptive concurrency.

:func:`parse_items` reads JSON lines ``{"id", "method", "url", "body", "headers",
"dependsOn"}`` and refuses bad input with its line number before anything is sent.
:class:`BatchRunner` sends them as ``$batch`` requests of at most 20 (PROTOCOL.md §5,
§10), several in flight at once, and yields each item's result as it completes:

- an item answered 429, 503 or 504 is retried on its own, after its own
  ``Retry-After`` (or backoff), in a later batch, ahead of items not yet sent; the rest
  of its batch is not resent. Items that failed only because such an item did (424
  Failed Dependency) go with it. A 429 with a Retry-After is retried until it succeeds
  (within the policy's total wait), as Graph asks: "If the request fails again with a
  429 error code, you are still being throttled. Continue to use the recommended
  Retry-After delay and retry the request until it succeeds" (throttling.md); and until
  that Retry-After has passed nothing else is sent either (Graph "limits any further
  requests from that client for a period of time");
- ``dependsOn`` follows Graph's rules: requests that depend on each other travel in one
  batch of their own, as a chain (each on the one before, at most 20) or a fan-out (all
  on the same request), and Graph answers 424 when a dependency failed;
- concurrency adapts, additive increase and multiplicative decrease: halved on a 429
  (or when ``x-ms-throttle-limit-percentage`` reaches 0.9), one more after a batch
  answered without any throttling, between 1 and ``max_concurrency``.

The library prints nothing; the command line (``graphkit batch``) renders the results.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from graphkit.errors import GraphkitError, OutcomeUnknownError, UsageError
from graphkit.files import parse_nested
from graphkit.retry import RetryPolicy, parse_retry_after

__all__ = ["MAX_BATCH", "BatchItem", "BatchRunner", "ItemResult", "parse_items"]

MAX_BATCH = 20  # Graph's limit of requests in one $batch
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
RETRY_STATUSES = frozenset({429, 503, 504})
THROTTLE_NEAR = 0.9  # x-ms-throttle-limit-percentage at which to slow down
# A guard, not a policy: a 429 that names its Retry-After is retried until it succeeds
# within RetryPolicy.max_total_wait; this bounds a server answering "Retry-After: 0"
# for ever.
MAX_THROTTLED_ATTEMPTS = 100


@dataclass
class BatchItem:
    """One request of the input, as Graph's $batch takes it."""

    line: int
    id: str
    method: str
    url: str  # relative to the version: /users/{id}
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    attempts: int = 0

    def wire(self) -> dict[str, Any]:
        request: dict[str, Any] = {"id": self.id, "method": self.method, "url": self.url}
        if self.depends_on:
            request["dependsOn"] = list(self.depends_on)
        headers = dict(self.headers)
        if self.body is not None:
            request["body"] = self.body
            headers.setdefault("Content-Type", "application/json")
        if headers:
            request["headers"] = headers
        return request


@dataclass
class ItemResult:
    """What Graph finally answered for one item."""

    id: str
    status: int
    body: Any
    attempts: int
    line: int
    # A POST or PATCH that may have been applied and was not resent: answered 5xx on its
    # own (status and body Graph's), or its $batch met a 5xx or a dropped connection
    # (status the $batch's, 0 for no answer; body an "outcomeUnknown" error).
    outcome_unknown: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "body": self.body}

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _relative(url: str, graph_url: str, where: str, api: str = "v1.0") -> str:
    """The item URL as $batch needs it: relative, no host, no version (a $batch goes to
    one version, ``api``: an item naming the other one is refused, as it would run
    as ``api``)."""
    text = url.strip()
    if not text:
        raise UsageError(f"{where}: the url is empty", "give a path such as /users/{id}")
    if "://" in text.split("?", 1)[0] or text.startswith("//"):
        from graphkit.transport import target

        try:
            origin, plain = target(text)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc.message}", exc.hint) from None
        if not plain or origin != target(graph_url)[0]:
            raise UsageError(
                f"{where}: {urlsplit(text).netloc or text!r} is not the configured Graph host",
                "give relative URLs such as /users/{id}: no token goes to another host",
            )
        parts = urlsplit(text)
        text = parts.path + (f"?{parts.query}" if parts.query else "")
    if not text.startswith("/"):
        text = "/" + text
    first = text.split("/", 2)[1] if text.count("/") >= 1 else ""
    if first in ("v1.0", "beta"):
        if first != api:
            raise UsageError(
                f"{where}: {text.split('?', 1)[0]} is a {first} request, and this $batch "
                f"goes to {api}",
                f"send the {first} requests with --api {first}, in a run of their own",
            )
        text = text[len(first) + 1 :] or "/"
    return text


def parse_items(lines: Iterable[str], graph_url: str, api: str = "v1.0") -> list[BatchItem]:
    """The items of a JSON-lines input; blank lines and ``#`` comments are skipped.

    Raises:
        UsageError: naming the line: not JSON, not an object, no method or url, an
            unknown method, an absolute URL on another host, a duplicate id, a
            ``dependsOn`` naming no item, a dependency chain over 20 requests.
    """
    items: list[BatchItem] = []
    ids: dict[str, int] = {}
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        where = f"line {number}"
        try:
            data = parse_nested(json.loads, text)
        except json.JSONDecodeError as exc:
            raise UsageError(
                f"{where} is not JSON ({exc.msg})", "give one JSON object per line"
            ) from None
        except RecursionError:
            raise UsageError(f"{where} is nested too deeply", "check the line") from None
        if not isinstance(data, dict):
            raise UsageError(
                f"{where} is not a JSON object", 'e.g. {"method": "GET", "url": "/me"}'
            )
        method = data.get("method")
        if not isinstance(method, str) or not method.strip():
            raise UsageError(f"{where} has no method", f"give one of {', '.join(METHODS)}")
        method = method.strip().upper()
        if method not in METHODS:
            raise UsageError(f"{where}: method {method!r} is not one of {', '.join(METHODS)}")
        url = data.get("url")
        if not isinstance(url, str):
            raise UsageError(f"{where} has no url", "give a path such as /users/{id}")
        ident = data.get("id", str(number))
        if not isinstance(ident, str | int) or isinstance(ident, bool) or not str(ident).strip():
            raise UsageError(f"{where}: id must be a non-empty string")
        ident = str(ident).strip()
        if ident in ids:
            raise UsageError(f"{where}: id {ident!r} is already used on line {ids[ident]}")
        headers = data.get("headers") or {}
        if not isinstance(headers, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
        ):
            raise UsageError(f"{where}: headers must be an object of strings")
        if any(k.strip().lower() == "authorization" for k in headers):
            raise UsageError(f"{where}: an Authorization header is never sent from input")
        depends = data.get("dependsOn") or []
        if not isinstance(depends, list) or not all(isinstance(d, str | int) for d in depends):
            raise UsageError(f"{where}: dependsOn must be a list of ids")
        ids[ident] = number
        items.append(
            BatchItem(
                line=number,
                id=ident,
                method=method,
                url=_relative(url, graph_url, where, api),
                body=data.get("body"),
                headers=dict(headers),
                depends_on=[str(d) for d in depends],
            )
        )
    for item in items:
        for dep in item.depends_on:
            if dep not in ids:
                raise UsageError(f"line {item.line}: dependsOn {dep!r} names no item")
    for group in _groups(items):
        if len(group) > MAX_BATCH:
            raise UsageError(
                f"line {group[0].line}: {len(group)} requests depend on each other; a "
                f"$batch holds at most {MAX_BATCH}",
                "split the chain",
            )
        _check_shape(group)
    return items


def _check_shape(group: list[BatchItem]) -> None:
    """Graph serves dependsOn only as a sequence (each request depending on the one
    before it) or a fan-out (every request depending on the same one); anything else
    is refused as a whole (json-batching.md, known issues)."""
    if len(group) == 1:
        if group[0].depends_on:
            raise UsageError(f"line {group[0].line}: a request cannot depend on itself")
        return
    for item in group:
        if len(item.depends_on) > 1:
            raise UsageError(
                f"line {item.line}: a request may depend on one other only "
                "(Graph refuses a $batch where one depends on several)",
                "order them as a chain: each request depending on the one before",
            )
    roots = [i for i in group if not i.depends_on]
    targets = {i.depends_on[0] for i in group if i.depends_on}
    chain = len(roots) == 1 and all(
        i.depends_on == [group[n - 1].id] for n, i in enumerate(group) if n
    )
    fan_out = len(roots) == 1 and targets == {roots[0].id}
    if not (chain or fan_out):
        raise UsageError(
            f"line {group[0].line}: these requests depend on each other in a shape Graph "
            "refuses: a $batch takes a chain (each on the one before) or a fan-out (all "
            "on the same request)",
            "reorder the input or split it",
        )


def _groups(items: list[BatchItem]) -> list[list[BatchItem]]:
    """Items joined by dependsOn (either way), each group in input order."""
    parent: dict[str, str] = {i.id: i.id for i in items}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for item in items:
        for dep in item.depends_on:
            parent[find(item.id)] = find(dep)
    groups: dict[str, list[BatchItem]] = {}
    for item in items:
        groups.setdefault(find(item.id), []).append(item)
    return list(groups.values())


class _Concurrency:
    """How many $batch requests may be in flight: additive increase, multiplicative
    decrease."""

    def __init__(self, start: int, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.limit = max(1, min(start, self.maximum))
        self.lowest = self.limit
        self.highest = self.limit

    def throttled(self) -> None:
        self.limit = max(1, self.limit // 2)
        self.lowest = min(self.lowest, self.limit)

    def clear(self) -> None:
        self.limit = min(self.maximum, self.limit + 1)
        self.highest = max(self.highest, self.limit)


class BatchRunner:
    """Send ``items`` through ``post`` (a function taking a $batch body and returning
    ``(responses, headers)``) and yield each :class:`ItemResult` as it completes.

    Args:
        post: sends one ``{"requests": [...]}`` and returns Graph's ``responses`` list
            and the response headers (normally :meth:`for_client`).
        retry: the per-item policy (attempts, cap, backoff, injectable sleep/clock).
        max_concurrency: the most $batch requests in flight at once.
        start_concurrency: how many to begin with.
    """

    def __init__(
        self,
        post: Callable[[dict[str, Any]], tuple[list[dict[str, Any]], Any]],
        *,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 8,
        start_concurrency: int = 4,
    ) -> None:
        self._post = post
        self._retry = retry or RetryPolicy()
        self.concurrency = _Concurrency(start_concurrency, max_concurrency)
        self.batches_sent = 0
        self.retried = 0
        self._lock = threading.Lock()
        self._clients: list[Any] = []
        self._resume_at = float("-inf")  # no new batch before this (a Retry-After)

    @classmethod
    def for_clients(cls, make_client: Callable[[], Any], **kw: Any) -> BatchRunner:
        """A runner posting through :class:`graphkit.graph.GraphClient` objects, one per
        worker thread (a requests session is not shared between threads), made by
        ``make_client``: their token, retries of the whole request and origin checks.
        Close them with :meth:`close`."""
        local = threading.local()
        made: list[Any] = []

        def post(body: dict[str, Any]) -> tuple[list[dict[str, Any]], Any]:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = make_client()
                made.append(client)
            # The $batch POST may be resent after a 503/504 or a dropped connection
            # only when every item in it may be (a batch of GETs, PUTs, DELETEs).
            from graphkit.graph import IDEMPOTENT_METHODS

            again = all(
                str(item.get("method", "")).upper() in IDEMPOTENT_METHODS
                for item in body.get("requests", [])
            )
            resp = client.send("POST", "/$batch", json_body=body, idempotent=again)
            data = client.decode(resp)
            responses = data.get("responses") if isinstance(data, dict) else None
            if not isinstance(responses, list):
                raise GraphkitError(
                    "Graph answered the $batch request without a responses list",
                    "retry; if it persists, check the Graph URL",
                )
            return responses, resp.headers

        runner = cls(post, **kw)
        runner._clients = made
        return runner

    def close(self) -> None:
        for client in getattr(self, "_clients", []):
            client.close()

    def run(self, items: list[BatchItem]) -> Iterator[ItemResult]:
        """Yield each item's final result, in the order they complete.

        A $batch of writes that meets a 5xx or a dropped connection is not resent: each
        of its items is yielded with ``outcome_unknown`` set, and the others go on. Any
        other failure of a whole $batch stops sending; the batches in flight are still
        yielded, then it is raised."""
        if not items:
            return
        pending: list[list[BatchItem]] = _groups(items)  # groups ready to send now
        waiting: list[tuple[float, int, list[BatchItem]]] = []  # (ready at, seq, group)
        seq = 0
        started: dict[str, float] = {}
        clock = self._retry.clock
        # A $batch that fails as a whole stops new ones; those in flight are still
        # answered and yielded (their requests were sent), then the failure is raised.
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.concurrency.maximum) as pool:
            in_flight: dict[Future[Any], list[BatchItem]] = {}
            while in_flight or (failure is None and (pending or waiting)):
                now = clock()
                ready: list[list[BatchItem]] = []
                while failure is None and waiting and waiting[0][0] <= now:
                    ready.append(heapq.heappop(waiting)[2])
                pending[:0] = ready  # retried items go first: their wait has started
                paused = now < self._resume_at
                while (
                    failure is None
                    and pending
                    and not paused
                    and len(in_flight) < self.concurrency.limit
                ):
                    batch = _take_batch(pending)
                    for item in batch:
                        item.attempts += 1
                        started.setdefault(item.id, now)
                    in_flight[pool.submit(self._post, {"requests": [i.wire() for i in batch]})] = (
                        batch
                    )
                    self.batches_sent += 1
                if not in_flight:
                    if failure is None:
                        until = waiting[0][0] if waiting and not pending else float("-inf")
                        until = max(until, self._resume_at)
                        self._retry.sleep(max(0.0, until - clock()))
                    continue
                done, _ = wait(list(in_flight), timeout=None, return_when=FIRST_COMPLETED)
                for future in done:
                    batch = in_flight.pop(future)
                    try:
                        responses, headers = future.result()
                    except OutcomeUnknownError as exc:
                        # Only this batch's items are in doubt: say so for each, go on.
                        yield from _unknown(batch, exc)
                        continue
                    except Exception as exc:
                        failure = failure or exc
                        continue
                    results, again = self._settle(batch, responses, headers, started)
                    yield from results
                    for ready_at, group in again:
                        seq += 1
                        heapq.heappush(waiting, (ready_at, seq, group))
        if failure is not None:
            raise failure

    def _settle(
        self,
        batch: list[BatchItem],
        responses: list[dict[str, Any]],
        headers: Any,
        started: dict[str, float],
    ) -> tuple[list[ItemResult], list[tuple[float, list[BatchItem]]]]:
        from graphkit.graph import _OUTCOME_UNKNOWN_STATUSES, IDEMPOTENT_METHODS

        by_id = {str(r.get("id")): r for r in responses if isinstance(r, dict)}
        throttled = _near_limit(headers)
        results: list[ItemResult] = []
        retry_ids: dict[str, float] = {}
        for item in batch:
            answer = by_id.get(item.id) or {
                "status": 502,
                "body": {"error": {"code": "missing", "message": "no answer for this item"}},
            }
            status = int(answer.get("status") or 0)
            if status == 429:
                throttled = True
            # As outside a $batch: 429 is retried for every method (Graph did not process
            # the request), 503/504 only for those that may be sent twice; a POST or
            # PATCH answered 5xx may have been applied.
            resend = status == 429 or item.method in IDEMPOTENT_METHODS
            doubtful = not resend and status in _OUTCOME_UNKNOWN_STATUSES
            if resend and status in RETRY_STATUSES:
                item_headers = answer.get("headers") or {}
                after = parse_retry_after(_header(item_headers, "Retry-After"))
                delay = after if after is not None else self._retry.backoff(item.attempts)
                now = self._retry.clock()
                waited = now - started[item.id]
                tries = (
                    MAX_THROTTLED_ATTEMPTS
                    if status == 429 and after is not None
                    else self._retry.max_attempts
                )
                if item.attempts < tries and waited + delay <= self._retry.max_total_wait:
                    retry_ids[item.id] = delay
                    if status == 429:
                        with self._lock:
                            self._resume_at = max(self._resume_at, now + delay)
                    continue
            results.append(
                ItemResult(item.id, status, answer.get("body"), item.attempts, item.line, doubtful)
            )
        # Items that failed only because a retried one did go again with it.
        again: list[tuple[float, list[BatchItem]]] = []
        if retry_ids:
            self.retried += len(retry_ids)
            keep: list[ItemResult] = []
            group = [i for i in batch if i.id in retry_ids]
            for result in results:
                item = next(i for i in batch if i.id == result.id)
                if result.status == 424 and set(item.depends_on) & set(retry_ids):
                    group.append(item)
                else:
                    keep.append(result)
            results = keep
            order = {i.id: n for n, i in enumerate(batch)}
            group.sort(key=lambda i: order[i.id])
            # A dependency already answered is done: only those sent again are waited on.
            again_ids = {i.id for i in group}
            for item in group:
                item.depends_on = [d for d in item.depends_on if d in again_ids]
            again.append((self._retry.clock() + max(retry_ids.values()), group))
        with self._lock:
            if throttled:
                self.concurrency.throttled()
            else:
                self.concurrency.clear()
        return results, again


def _unknown(batch: list[BatchItem], exc: OutcomeUnknownError) -> Iterator[ItemResult]:
    """The results of a $batch that may have been applied and was not resent."""
    body = {"error": {"code": "outcomeUnknown", "message": exc.message}}
    for item in batch:
        yield ItemResult(item.id, exc.status or 0, body, item.attempts, item.line, True)


def _take_batch(pending: list[list[BatchItem]]) -> list[BatchItem]:
    """The next $batch: a group of dependent requests alone (Graph refuses a batch
    mixing a chain with independent requests), else independent ones, up to
    MAX_BATCH, in order."""
    first = pending[0]
    if len(first) > 1:
        pending.pop(0)
        return list(first)
    batch: list[BatchItem] = []
    rest: list[list[BatchItem]] = []
    for group in pending:
        if len(group) == 1 and len(batch) < MAX_BATCH:
            batch.extend(group)
        else:
            rest.append(group)
    pending[:] = rest
    return batch


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for key, value in headers.items():
        if str(key).lower() == name.lower():
            return str(value)
    return None


def _near_limit(headers: Any) -> bool:
    value = headers.get("x-ms-throttle-limit-percentage") if headers is not None else None
    try:
        return value is not None and float(value) >= THROTTLE_NEAR
    except ValueError:
        return False
