"""Page every user through the emulator with requests ($top=999): wall time and memory.

The emulator runs as its own process (`graphkit emulator serve --json`), so the peak RSS
reported (from its /_emulator/stats) is the server's alone, not this client's. A token is
obtained the real way: a certificate uploaded at start, msal signing the assertion.

    .venv/bin/python scripts/bench_emulator.py            # 10,000 and 100,000 users
    .venv/bin/python scripts/bench_emulator.py 250000     # any sizes
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import Served, record


def bench(users: int) -> dict[str, Any]:
    with Served(users) as served:
        session = served.admin
        token = served.token_file.read_text()
        stats_url = f"{served.graph_url}/_emulator/stats"
        rss_start = session.get(stats_url).json()["peak_rss_bytes"]
        headers = {"Authorization": f"Bearer {token}"}
        url: str | None = f"{served.graph_url}/v1.0/users?$top=999"
        seen: set[str] = set()
        pages = 0
        start = time.perf_counter()
        while url:
            r = session.get(url, headers=headers)
            r.raise_for_status()
            body = r.json()
            seen.update(u["id"] for u in body["value"])
            pages += 1
            url = body.get("@odata.nextLink")
        elapsed = time.perf_counter() - start
        rss_peak = session.get(stats_url).json()["peak_rss_bytes"]
    if len(seen) != users:
        raise SystemExit(f"paged {len(seen)} distinct users, expected {users}")
    return {
        "users": users,
        "pages": pages,
        "seconds": round(elapsed, 2),
        "users_per_second": round(users / elapsed),
        "server_peak_rss_mib_at_start": round(rss_start / 2**20, 1),
        "server_peak_rss_mib_after": round(rss_peak / 2**20, 1),
    }


def main(argv: list[str]) -> int:
    sizes = [int(a) for a in argv] or [10_000, 100_000]
    results = []
    for n in sizes:
        result = bench(n)
        results.append(result)
        print(
            f"{result['users']:>7} users  {result['pages']:>4} pages  "
            f"{result['seconds']:>6.2f} s  {result['users_per_second']:>6} users/s  "
            f"server peak RSS {result['server_peak_rss_mib_at_start']} MiB at start, "
            f"{result['server_peak_rss_mib_after']} MiB after paging"
        )

    small, big = results[0], results[-1]
    record(
        "bench_emulator",
        f"emulator paging {big['users']:,} users ($top=999), users per second",
        value=big["users_per_second"],
        baseline=None,
        unit="users/s",
        target=None,
        runs=1,
        note=f"{big['pages']} pages in {big['seconds']} s",
    )
    ok = record(
        "bench_emulator",
        f"emulator server peak RSS after {big['users']:,} users vs {small['users']:,}",
        value=big["server_peak_rss_mib_after"],
        baseline=small["server_peak_rss_mib_after"],
        unit="MiB",
        target=1.25,
        runs=1,
        baseline_label=f"the same server paging {small['users']:,} users",
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
