"""Tokens for other resources (`graphkit token --scope/--resource`), the emulator issuing
them as Entra does for a tenant with SharePoint and Exchange, a token cache that never
serves one resource's token for another, and Graph that only ever gets Graph tokens."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _emulator_helpers import admin
from _onboarding_helpers import Run, run_cli
from conftest import SignedIn

from graphkit.errors import ConfigError
from graphkit.graph import GraphClient
from graphkit.settings import resolve_settings
from graphkit.tokens import CertificateCredential, decode_claims

SHAREPOINT = "https://contoso.sharepoint.com"
EXCHANGE = "https://outlook.office365.com"


def _token(*args: str) -> Run:
    return run_cli(["token", "-o", "json", *args])


def _ok(r: Run) -> dict[str, Any]:
    assert r.exit_code == 0, r.stderr
    data: dict[str, Any] = json.loads(r.stdout)
    return data


def _error_line(r: Run) -> str:
    errors = [line for line in r.stderr.splitlines() if line.startswith("graphkit: error: ")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    return errors[0]


@pytest.fixture
def tenant_with_sharepoint(signed_in_env: SignedIn) -> SignedIn:
    emu = signed_in_env.emu
    emu.add_resource("sharepoint")
    emu.add_resource("exchange")
    emu.grant(emu.default_app, "Sites.FullControl.All", resource=SHAREPOINT)
    return signed_in_env


# ------------------------------------------------------------------ the emulator


def test_a_token_for_sharepoint_has_its_audience_and_the_roles_granted_on_it(
    tenant_with_sharepoint: SignedIn,
) -> None:
    emu = tenant_with_sharepoint.emu
    sharepoint = _ok(_token("--scope", f"{SHAREPOINT}/.default"))
    assert sharepoint["audience"] == SHAREPOINT
    assert sharepoint["roles"] == ["Sites.FullControl.All"]  # not Graph's User.Read.All
    assert sharepoint["scope"] == f"{SHAREPOINT}/.default"
    graph = _ok(_token())
    assert graph["audience"] == emu.graph_url and graph["roles"] == ["User.Read.All"]
    # --resource is --scope RESOURCE/.default; the admin URL is SharePoint's too.
    admin_site = _ok(_token("--resource", "https://contoso-admin.sharepoint.com/"))
    assert admin_site["audience"] == "https://contoso-admin.sharepoint.com"
    assert admin_site["roles"] == ["Sites.FullControl.All"]
    exchange = _ok(_token("--resource", EXCHANGE))
    assert exchange["audience"] == EXCHANGE and exchange["roles"] == []  # none granted there
    emu.grant(emu.default_app, "full_access_as_app", resource=EXCHANGE)
    assert _ok(_token("--resource", EXCHANGE, "--force-refresh"))["roles"] == ["full_access_as_app"]


def test_a_resource_the_tenant_does_not_have_is_aadsts500011(signed_in_env: SignedIn) -> None:
    r = _token("--scope", f"{SHAREPOINT}/.default")  # no SharePoint in this tenant
    assert r.exit_code == 5
    line = _error_line(r)
    assert f"resource {SHAREPOINT} is not known in tenant" in line and "AADSTS" not in line
    signed_in_env.emu.add_resource("sharepoint")
    assert _ok(_token("--scope", f"{SHAREPOINT}/.default"))["audience"] == SHAREPOINT
    other = _token("--resource", "https://fabrikam.sharepoint.com")  # another tenant's
    assert other.exit_code == 5


def test_a_role_the_resource_does_not_offer_cannot_be_granted(signed_in_env: SignedIn) -> None:
    emu = signed_in_env.emu
    emu.add_resource("https://api.contoso.com", roles=["Reports.Read"])
    with pytest.raises(ValueError, match="offers no application permission"):
        emu.grant(emu.default_app, "User.Read.All", resource="https://api.contoso.com")
    with pytest.raises(KeyError):
        emu.grant(emu.default_app, "Sites.Read.All", resource=SHAREPOINT)
    r = admin(
        emu,
        "POST",
        f"/apps/{emu.default_app.client_id}/grants",
        json={"role": "Reports.Read", "resource": "https://api.contoso.com"},
    )
    assert r.status_code == 200
    assert emu.roles(emu.default_app, resource="https://api.contoso.com") == ["Reports.Read"]
    assert emu.roles(emu.default_app) == ["User.Read.All"]


def test_resources_and_their_grants_survive_a_restart(signed_in_env: SignedIn) -> None:
    emu = signed_in_env.emu
    r = admin(emu, "POST", "/resources", json={"resource": "sharepoint"})
    assert r.status_code == 201 and SHAREPOINT in r.json()["uris"]
    emu.grant(emu.default_app, "Sites.Read.All", resource=SHAREPOINT)
    snapshot = emu.backend.export_state()
    emu.reset()
    assert emu.resources() == []
    emu.backend.load_state(snapshot)
    assert [x["app_id"] for x in emu.resources()] == ["00000003-0000-0ff1-ce00-000000000000"]
    assert emu.roles(emu.default_app, resource=SHAREPOINT) == ["Sites.Read.All"]


def test_graph_refuses_a_sharepoint_token(tenant_with_sharepoint: SignedIn) -> None:
    from _emulator_helpers import graph

    emu = tenant_with_sharepoint.emu
    token = emu.issue_token(resource=SHAREPOINT)
    assert decode_claims(token)["aud"] == SHAREPOINT
    r = graph(emu, "/v1.0/users", token)
    assert r.status_code == 401 and r.json()["error"]["code"] == "InvalidAuthenticationToken"


# ------------------------------------------------------------------ the command line


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--scope", "x/.default", "--resource", "x"], "--scope and --resource both given"),
        (["--scope", SHAREPOINT], "is not one resource followed by /.default"),
        (["--scope", "/.default"], "is not one resource followed by /.default"),
        (["--scope", f"{SHAREPOINT}/.default {EXCHANGE}/.default"], "is not one resource"),
        (["--resource", f"{SHAREPOINT}/.default"], "is not a resource identifier"),
        (["--resource", " "], "is not a resource identifier"),
    ],
)
def test_malformed_scopes_are_refused_before_anything_is_sent(
    signed_in_env: SignedIn, args: list[str], words: str
) -> None:
    signed_in_env.emu.clear_requests()
    r = _token(*args)
    assert r.exit_code == 2
    assert words in _error_line(r)
    assert signed_in_env.emu.requests() == []


# ------------------------------------------------------------------ the token cache


def test_the_cache_never_serves_one_resources_token_for_another(
    tenant_with_sharepoint: SignedIn,
) -> None:
    """Graph's, SharePoint's and Exchange's tokens live in one cache (one authority and
    certificate): each is served from it only for its own scope, by the warm path (a new
    process, before msal is loaded) and by msal's own lookup."""
    emu = tenant_with_sharepoint.emu
    scopes = {
        "graph": [],
        "sharepoint": ["--resource", SHAREPOINT],
        "exchange": ["--resource", EXCHANGE],
    }
    audience = {"graph": emu.graph_url, "sharepoint": SHAREPOINT, "exchange": EXCHANGE}
    first = {name: _ok(_token(*args)) for name, args in scopes.items()}
    assert not any(t["from_cache"] for t in first.values())  # each one asked for
    for name, args in scopes.items():
        again = _ok(_token(*args))  # the warm path
        assert again["from_cache"] and again["audience"] == audience[name], name
    # msal's lookup (the warm path skipped): one scope refreshed, the others still cached.
    refreshed = _ok(_token("--resource", SHAREPOINT, "--force-refresh"))
    assert not refreshed["from_cache"] and refreshed["audience"] == SHAREPOINT
    for name, args in scopes.items():
        assert _ok(_token(*args))["audience"] == audience[name], name
    settings = resolve_settings()
    for name in scopes:
        scope = None if name == "graph" else f"{audience[name]}/.default"
        with CertificateCredential(settings, scope=scope) as credential:
            credential.get_token()  # warm path
            token = credential.get_token(force_refresh=True)  # msal, application built
            cached = credential.get_token()  # msal's cache now, same application
        assert decode_claims(token.token)["aud"] == audience[name]
        assert cached.from_cache and decode_claims(cached.token)["aud"] == audience[name]
    token_requests = [e for e in emu.requests() if e.get("kind") == "token"]
    assert len(token_requests) == 3 + 1 + 3  # first tokens, --force-refresh, one per scope


# ------------------------------------------------------------------ Graph gets Graph tokens


def test_query_never_sends_graph_a_sharepoint_token(tenant_with_sharepoint: SignedIn) -> None:
    emu = tenant_with_sharepoint.emu
    assert _ok(_token("--resource", SHAREPOINT))["audience"] == SHAREPOINT  # cached now
    emu.clear_requests()
    r = run_cli(["query", "/users", "--top", "3", "-o", "json"])
    assert r.exit_code == 0, r.stderr
    assert len(json.loads(r.stdout)) == 3
    graph_requests = [e for e in emu.requests() if e.get("kind") == "graph"]
    assert graph_requests and all(e["status"] == 200 for e in graph_requests)


def test_a_graph_client_refuses_a_credential_or_token_for_another_resource(
    tenant_with_sharepoint: SignedIn,
) -> None:
    emu = tenant_with_sharepoint.emu
    settings = resolve_settings()
    sharepoint = CertificateCredential(settings, scope=f"{SHAREPOINT}/.default")
    with pytest.raises(ConfigError, match="not for Microsoft Graph"):
        GraphClient(emu.graph_url, sharepoint, ca_bundle=emu.ca_bundle)

    class Unlabelled:
        """A credential that does not say what its tokens are for."""

        def get_token(self, *, force_refresh: bool = False) -> Any:
            return sharepoint.get_token(force_refresh=force_refresh)

    emu.clear_requests()
    with (
        GraphClient(emu.graph_url, Unlabelled(), ca_bundle=emu.ca_bundle) as client,
        pytest.raises(ConfigError, match=f"audience is {SHAREPOINT}"),
    ):
        client.get("/users")
    assert [e for e in emu.requests() if e.get("kind") == "graph"] == []  # nothing sent
    graph = CertificateCredential(settings)
    with GraphClient(emu.graph_url, graph, ca_bundle=emu.ca_bundle) as client:
        assert client.get("/users", {"$top": "1"})["value"]
