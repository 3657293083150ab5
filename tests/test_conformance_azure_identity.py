"""Conformance: azure-identity (the token) and azure-core (Microsoft's HTTP pipeline:
bearer-token policy, retries, ItemPaged, its error types) against the emulator, as a
script would use them against a real tenant: paging users, $select and $filter, an
advanced query, a $batch, and the emulator's answers parsed into azure-core's and
azure-identity's own exceptions (HttpResponseError with an OData error,
ResourceNotFoundError, ClientAuthenticationError carrying the AADSTS code).

azure-identity is a dev dependency, so these always run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _emulator_helpers import Identity, identity, no_ca_env
from azure.core import PipelineClient
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ODataV4Format,
    ResourceNotFoundError,
    map_error,
)
from azure.core.paging import ItemPaged
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RetryPolicy,
)
from azure.core.pipeline.transport import RequestsTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.identity import CertificateCredential, EnvironmentCredential

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)
EMPTY = "00000000-0000-0000-0000-000000000000"
EVENTUAL = {"ConsistencyLevel": "eventual"}


@pytest.fixture
def ident(tmp_path: Path) -> Identity:
    return identity(tmp_path)


@pytest.fixture
def emu(graphkit_emulator: Any, ident: Identity) -> Any:
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, ident.cert)
    return graphkit_emulator


def _credential(emu: Any, ident: Identity) -> CertificateCredential:
    return CertificateCredential(
        emu.default_tenant.id,
        emu.default_app.client_id,
        certificate_path=str(ident.combined),
        authority=emu.authority_host,
        disable_instance_discovery=True,
        connection_verify=emu.ca_bundle,
    )


class Graph:
    """The smallest Graph client azure-core makes: its pipeline and its error types."""

    def __init__(self, emu: Any, credential: Any):
        self.emu = emu
        self.client: PipelineClient[HttpRequest, HttpResponse] = PipelineClient(
            base_url=emu.graph_url,
            policies=[
                HeadersPolicy(),
                RetryPolicy(retry_total=3, retry_backoff_factor=0.01),
                BearerTokenCredentialPolicy(credential, emu.graph_scope),
            ],
            transport=RequestsTransport(connection_verify=emu.ca_bundle),
        )

    def send(
        self, method: str, url: str, *, headers: dict[str, str] | None = None, body: Any = None
    ) -> Any:
        request = HttpRequest(method, url, headers=headers, json=body)
        response = self.client.send_request(request)
        if response.status_code >= 400:
            map_error(
                response.status_code,
                response,
                {404: ResourceNotFoundError, 401: ClientAuthenticationError},
            )
            raise HttpResponseError(response=response, error_format=ODataV4Format)
        return response.json()

    def items(self, url: str, headers: dict[str, str] | None = None) -> ItemPaged[Any]:
        def get_next(link: str | None) -> Any:
            return self.send("GET", link or url, headers=headers)

        def extract(page: Any) -> tuple[str | None, Iterator[Any]]:
            return page.get("@odata.nextLink"), iter(page["value"])

        return ItemPaged(get_next, extract)


@pytest.fixture
def api(emu: Any, ident: Identity) -> Graph:
    return Graph(emu, _credential(emu, ident))


# ------------------------------------------------------------------------- reading


@pytest.mark.graphkit_emulator(users=345)
def test_item_paged_follows_every_next_link(emu: Any, api: Graph) -> None:
    users = list(api.items(f"{emu.graph_url}/v1.0/users?$top=50&$select=id,displayName"))
    assert len(users) == 345 and len({u["id"] for u in users}) == 345
    assert set(users[0]) == {"id", "displayName"}
    pages = [e for e in emu.requests() if e["path"] == "/v1.0/users"]
    assert len(pages) == 7  # 345 / 50, each nextLink followed once
    tokens = [e for e in emu.requests() if e["kind"] == "token"]
    assert len(tokens) == 1  # the policy caches the token


def test_select_and_filter(emu: Any, api: Graph) -> None:
    url = f"{emu.graph_url}/v1.0/users?$filter=accountEnabled eq false&$select=id,accountEnabled"
    users = list(api.items(url))
    assert users and all(u == {"id": u["id"], "accountEnabled": False} for u in users)


def test_advanced_query(emu: Any, api: Graph) -> None:
    url = f"{emu.graph_url}/v1.0/users?$filter=accountEnabled ne true&$count=true&$select=id"
    page = api.send("GET", url, headers=EVENTUAL)
    assert page["@odata.count"] == len(page["value"]) > 0
    with pytest.raises(HttpResponseError) as err:
        api.send("GET", url)
    assert err.value.status_code == 400
    assert err.value.error is not None and err.value.error.code == "Request_UnsupportedQuery"


def test_batch(emu: Any, api: Graph) -> None:
    first = api.send("GET", f"{emu.graph_url}/v1.0/users?$top=1&$select=id")["value"][0]
    body = {
        "requests": [
            {"id": "1", "method": "GET", "url": f"/users/{first['id']}?$select=id"},
            {"id": "2", "method": "GET", "url": f"/users/{EMPTY}"},
            {"id": "3", "method": "GET", "url": "/users/$count", "headers": EVENTUAL},
        ]
    }
    answer = api.send("POST", f"{emu.graph_url}/v1.0/$batch", body=body)
    items = {r["id"]: r for r in answer["responses"]}
    assert items["1"]["status"] == 200 and items["1"]["body"]["id"] == first["id"]
    assert items["2"]["status"] == 404
    assert items["2"]["body"]["error"]["code"] == "Request_ResourceNotFound"
    assert (items["3"]["status"], items["3"]["body"]) == (200, "250")


# ------------------------------------------------------------------------- errors


def test_not_found_is_resource_not_found_error(emu: Any, api: Graph) -> None:
    with pytest.raises(ResourceNotFoundError) as err:
        api.send("GET", f"{emu.graph_url}/v1.0/users/{EMPTY}")
    assert err.value.status_code == 404
    odata = HttpResponseError(response=err.value.response, error_format=ODataV4Format)
    assert odata.error is not None and odata.error.code == "Request_ResourceNotFound"


def test_forbidden_parses_the_odata_error(emu: Any, api: Graph) -> None:
    emu.revoke(emu.default_app, "User.Read.All")
    with pytest.raises(HttpResponseError) as err:
        api.send("GET", f"{emu.graph_url}/v1.0/users")
    assert err.value.status_code == 403
    assert err.value.error is not None
    assert err.value.error.code == "Authorization_RequestDenied"
    assert err.value.error.message == "Insufficient privileges to complete the operation."
    assert json.loads(err.value.response.text())["error"]["innerError"]["request-id"]


@pytest.mark.filterwarnings("ignore:Using /common or /organizations authority")
def test_token_refusals_are_client_authentication_errors(
    graphkit_emulator: Any, ident: Identity
) -> None:
    emu = graphkit_emulator  # nothing uploaded
    with pytest.raises(ClientAuthenticationError) as err:
        _credential(emu, ident).get_token(emu.graph_scope)
    assert "AADSTS700027" in str(err.value)
    bad_tenant = CertificateCredential(
        "common",
        emu.default_app.client_id,
        certificate_path=str(ident.combined),
        authority=emu.authority_host,
        disable_instance_discovery=True,
        connection_verify=emu.ca_bundle,
    )
    with pytest.raises(ClientAuthenticationError) as err:
        bad_tenant.get_token(emu.graph_scope)
    assert "AADSTS90010" in str(err.value)


def test_environment_credential_from_emulator_environ(
    emu: Any, ident: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in emu.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AZURE_CLIENT_CERTIFICATE_PATH", str(ident.combined))
    api = Graph(emu, EnvironmentCredential(disable_instance_discovery=True))
    page = api.send("GET", f"{emu.graph_url}/v1.0/users?$top=1&$select=id")
    assert len(page["value"]) == 1
