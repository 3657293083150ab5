"""Deterministic seeded users, made on demand from their index.

A directory of 100,000 users holds no user at all: ``get(i)`` computes user ``i`` from
a 64-bit hash of (seed, tenant, i). Ids and userPrincipalNames encode the index
invertibly, so ``/users/{id or upn}`` and ``$filter=... eq`` on them are O(1).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from graphkit.emulator.odata import EntitySchema

__all__ = ["USER_SCHEMA", "UserDirectory"]

_M64 = (1 << 64) - 1
_M48 = (1 << 48) - 1
_MULT = 0x9E3779B97F4B  # odd, so invertible modulo 2**48
_MULT_INV = pow(_MULT, -1, 1 << 48)


def _splitmix(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


_FIRST = [
    "Adele",
    "Alex",
    "Allan",
    "Amelia",
    "Anna",
    "Ben",
    "Carla",
    "Chen",
    "Dana",
    "Diego",
    "Eli",
    "Emma",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Henry",
    "Ines",
    "Isaac",
    "Jana",
    "Javier",
    "Joni",
    "Kai",
    "Karin",
    "Lars",
    "Lee",
    "Lena",
    "Liam",
    "Lidia",
    "Lynne",
    "Maya",
    "Megan",
    "Miriam",
    "Nestor",
    "Nina",
    "Noah",
    "Olga",
    "Omar",
    "Patti",
    "Pradeep",
    "Priya",
    "Quinn",
    "Raul",
    "Rosa",
    "Sami",
    "Sara",
    "Tomas",
    "Uma",
    "Victor",
    "Wei",
    "Yara",
    "Zoe",
]
_LAST = [
    "Adams",
    "Bauer",
    "Brown",
    "Carter",
    "Chen",
    "Cruz",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Gupta",
    "Hansen",
    "Ito",
    "Jansen",
    "Johnson",
    "Kim",
    "Kowalski",
    "Lambert",
    "Larsen",
    "Lopez",
    "Martin",
    "Meyer",
    "Moreau",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Petrov",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Smith",
    "Sousa",
    "Tanaka",
    "Taylor",
    "Tran",
    "Vargas",
    "Weber",
    "Wilson",
    "Wong",
    "Young",
    "Zhang",
]
_JOBS = (
    "Engineer",
    "Senior Engineer",
    "Product Manager",
    "Designer",
    "Accountant",
    "Sales Representative",
    "Support Specialist",
    "Marketing Manager",
    "Director",
    "Analyst",
)
_DEPARTMENTS = ("Engineering", "Sales", "Marketing", "Finance", "Support", "Operations", "Legal")
_OFFICES = ("Redmond", "Seattle", "London", "Paris", "Berlin", "Tokyo", "Sydney", "Remote")
_EPOCH = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)

# Property order is Graph's; v1.0 returns only DEFAULT_SELECT unless $select asks.
USER_PROPERTIES = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
    "accountEnabled",
    "department",
    "companyName",
    "createdDateTime",
    "mailNickname",
    "usageLocation",
    "userType",
    "employeeId",
)
DEFAULT_SELECT = USER_PROPERTIES[:11]

USER_SCHEMA = EntitySchema(
    type_name="user",
    set_name="users",
    properties=USER_PROPERTIES,
    default_select=DEFAULT_SELECT,
    filterable={
        "id": "string",
        "displayName": "string",
        "givenName": "string",
        "surname": "string",
        "userPrincipalName": "string",
        "mail": "string",
        "mailNickname": "string",
        "jobTitle": "string",
        "department": "string",
        "employeeId": "string",
        "userType": "string",
        "accountEnabled": "bool",
    },
    searchable={
        "displayName": "tokens",
        "givenName": "prefix",
        "surname": "prefix",
        "mail": "prefix",
        "userPrincipalName": "prefix",
        "jobTitle": "tokens",
        "department": "tokens",
    },
    orderable=("displayName", "userPrincipalName"),
    orderable_advanced=("createdDateTime",),
    endswith=("mail", "userPrincipalName"),
    expandable=("manager", "memberOf"),
    resource_label="User",
)
# Each user but the first reports to one of the users before it: a tree with this many
# direct reports per manager (so user 0 has no manager).
REPORTS_PER_MANAGER = 8

_UPN_NUMBER = re.compile(r"(\d+)$")


@functools.lru_cache(maxsize=8192)
def _day(n: int) -> str:
    return (_EPOCH + dt.timedelta(days=n)).strftime("%Y-%m-%d")


class UserDirectory:
    """``count`` users of one tenant; nothing is stored per user.

    Args:
        count: how many users.
        seed: the emulator's seed (same seed, same users).
        tenant_id: the tenant's GUID (different tenants, different users).
        domain: the tenant's domain, for userPrincipalName and mail.
        company: companyName of every user.
    """

    schema = USER_SCHEMA

    def __init__(self, count: int, *, seed: int, tenant_id: str, domain: str, company: str):
        if count < 0:
            raise ValueError("the number of users cannot be negative")
        self._count = count
        self._domain = domain
        self._company = company
        base = _splitmix((seed & _M64) ^ (uuid.UUID(tenant_id).int & _M64))
        self._key = base
        self._add48 = _splitmix(base) & _M48
        self._xor48 = _splitmix(base ^ 0x5DEECE66D) & _M48
        self._orders: dict[tuple[str, bool], list[int]] = {}
        self._order_lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    # -- identity <-> index

    def _mix(self, i: int) -> int:
        return (((i * _MULT) + self._add48) & _M48) ^ self._xor48

    def _unmix(self, m: int) -> int:
        return (((m ^ self._xor48) - self._add48) * _MULT_INV) & _M48

    def _id(self, i: int, h: int) -> str:
        # 80 hashed bits for the first groups, then the invertible 48-bit index.
        s = "%020x" % ((_splitmix(h) << 16) | (h & 0xFFFF))
        variant = "89ab"[h >> 62]
        return f"{s[:8]}-{s[8:12]}-4{s[12:15]}-{variant}{s[15:18]}-{self._mix(i):012x}"

    def index_of_id(self, value: str) -> int | None:
        value = value.strip().lower()
        if len(value) != 36:
            return None
        try:
            i = self._unmix(int(value[-12:], 16))
        except ValueError:
            return None
        if i < self._count and self.get(i)["id"] == value:
            return i
        return None

    def index_of_name(self, value: str) -> int | None:
        """The index of the user whose userPrincipalName or mail is ``value``."""
        local, _, domain = value.strip().lower().partition("@")
        m = _UPN_NUMBER.search(local)
        if not m or domain != self._domain.lower():
            return None
        i = int(m.group(1)) - 1
        if 0 <= i < self._count and self.get(i)["userPrincipalName"].lower() == value.lower():
            return i
        return None

    def find(self, key: str) -> dict[str, Any] | None:
        """A user by id or userPrincipalName (what ``/users/{key}`` accepts)."""
        i = self.index_of_name(key) if "@" in key else self.index_of_id(key)
        return self.get(i) if i is not None else None

    # -- the collection protocol used by odata.run_query

    def frozen_get(self) -> Callable[[int], dict[str, Any]]:
        """Users are made from their index alone: they never change."""
        return self.get

    def get(self, i: int) -> dict[str, Any]:
        h = _splitmix(self._key ^ i)
        first = _FIRST[h % len(_FIRST)]
        last = _LAST[(h >> 8) % len(_LAST)]
        n = i + 1
        nick = f"{first}.{last}{n}".lower()
        upn = f"{nick}@{self._domain}"
        minutes = 37 * i  # one account every 37 minutes since 2020
        return {
            "businessPhones": [f"+1 425 555 {n % 10000:04d}"],
            "displayName": f"{first} {last}",
            "givenName": first,
            "jobTitle": _JOBS[(h >> 16) % len(_JOBS)],
            "mail": upn,
            "mobilePhone": None,
            "officeLocation": _OFFICES[(h >> 24) % len(_OFFICES)],
            "preferredLanguage": "en-US",
            "surname": last,
            "userPrincipalName": upn,
            "id": self._id(i, h),
            "accountEnabled": (h >> 32) % 10 != 0,  # about one in ten is disabled
            "department": _DEPARTMENTS[(h >> 40) % len(_DEPARTMENTS)],
            "companyName": self._company,
            "createdDateTime": f"{_day(minutes // 1440)}T{minutes % 1440 // 60:02d}:"
            f"{minutes % 60:02d}:00Z",
            "mailNickname": nick,
            "usageLocation": "US",
            "userType": "Member",
            "employeeId": f"{n:06d}",
        }

    def manager_index(self, i: int) -> int | None:
        """The index of user ``i``'s manager, or None (user 0 is the top of the tree)."""
        return (i - 1) // REPORTS_PER_MANAGER if 0 < i < self._count else None

    def index_of(self, user: dict[str, Any]) -> int | None:
        return self.index_of_id(str(user.get("id", "")))

    def lookup(self, prop: str, value: Any) -> list[int] | None:
        if not isinstance(value, str):
            return None
        if prop == "id":
            i = self.index_of_id(value)
        elif prop in ("userPrincipalName", "mail"):
            i = self.index_of_name(value)
        else:
            return None
        return [i] if i is not None else []

    def order(self, prop: str, descending: bool) -> Sequence[int]:
        with self._order_lock:
            key = (prop, descending)
            if key not in self._orders:
                values = [str(self.get(i)[prop]).lower() for i in range(self._count)]
                self._orders[key] = sorted(
                    range(self._count), key=values.__getitem__, reverse=descending
                )
            return self._orders[key]
