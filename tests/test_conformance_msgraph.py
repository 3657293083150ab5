"""Conformance: Microsoft's Graph SDK for Python (msgraph-sdk, with azure-identity for the
token) against the emulator, as a script would use it against a real tenant: paging
users with its PageIterator, $select and $filter, an advanced query, $expand, a $batch,
and the emulator's errors parsed into the SDK's own ODataError.

msgraph-sdk is an optional extra (`pip install 'graphkit[conformance]'`, which .ci/run
installs); without it these tests are skipped, saying so.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import warnings
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from _emulator_helpers import Identity, identity, no_ca_env

if os.environ.get("GRAPHKIT_REQUIRE_CONFORMANCE"):  # .ci/run: a missing SDK is a failure
    import deprecated  # noqa: F401
    import msgraph  # noqa: F401
else:
    pytest.importorskip(
        "msgraph",
        reason="msgraph-sdk is not installed (pip install 'graphkit[conformance]'; .ci/run does)",
    )
    pytest.importorskip("deprecated", reason="msgraph-core's undeclared dependency 'Deprecated'")

# After the skip: these come with msgraph-sdk. Its generated classes warn about
# themselves as they are defined; nothing here can act on that.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import httpx
    from azure.identity import CertificateCredential
    from kiota_abstractions.base_request_configuration import RequestConfiguration
    from kiota_authentication_azure.azure_identity_authentication_provider import (
        AzureIdentityAuthenticationProvider,
    )
    from msgraph import GraphRequestAdapter, GraphServiceClient
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError
    from msgraph.generated.models.user import User
    from msgraph.generated.users.item.user_item_request_builder import (
        UserItemRequestBuilder,
    )
    from msgraph.generated.users.users_request_builder import UsersRequestBuilder
    from msgraph_core import GraphClientFactory, PageIterator
    from msgraph_core.requests.batch_request_content import BatchRequestContent
    from msgraph_core.requests.batch_request_item import BatchRequestItem

T = TypeVar("T")
# The SDK's generated request builders warn about themselves; nothing to act on here.
pytestmark = pytest.mark.filterwarnings("ignore:This class is deprecated:DeprecationWarning")
_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)
EMPTY = "00000000-0000-0000-0000-000000000000"


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@pytest.fixture
def ident(tmp_path: Path) -> Identity:
    return identity(tmp_path)


@pytest.fixture
def emu(graphkit_emulator: Any, ident: Identity) -> Any:
    graphkit_emulator.upload_certificate(graphkit_emulator.default_app, ident.cert)
    return graphkit_emulator


def _client(emu: Any, ident: Identity, client_id: str | None = None) -> GraphServiceClient:
    credential = CertificateCredential(
        emu.default_tenant.id,
        client_id or emu.default_app.client_id,
        certificate_path=str(ident.combined),
        authority=emu.authority_host,
        disable_instance_discovery=True,
        connection_verify=emu.ca_bundle,
    )
    auth = AzureIdentityAuthenticationProvider(
        credential, scopes=[emu.graph_scope], allowed_hosts=["127.0.0.1"]
    )
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=emu.ca_bundle))
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = f"{emu.graph_url}/v1.0"
    return GraphServiceClient(request_adapter=adapter)


@pytest.fixture
def client(emu: Any, ident: Identity) -> Iterator[GraphServiceClient]:
    yield _client(emu, ident)


def _users_config(**query: Any) -> RequestConfiguration[Any]:
    params = UsersRequestBuilder.UsersRequestBuilderGetQueryParameters(**query)
    return RequestConfiguration(query_parameters=params)


# ------------------------------------------------------------------------- reading


@pytest.mark.graphkit_emulator(users=345)
def test_page_iterator_pages_every_user(client: GraphServiceClient) -> None:
    async def go() -> list[User]:
        first = await client.users.get(_users_config(top=100, select=["id", "displayName"]))
        assert first is not None and first.odata_next_link
        items: list[User] = []
        iterator = PageIterator(first, client.request_adapter)
        await iterator.iterate(lambda user: items.append(user) or True)
        return items

    users = run(go())
    assert len(users) == 345
    assert len({u.id for u in users}) == 345
    assert all(isinstance(u, User) and u.display_name for u in users)


def test_select_and_filter(client: GraphServiceClient) -> None:
    async def go() -> Any:
        return await client.users.get(
            _users_config(filter="accountEnabled eq false", select=["id", "accountEnabled"])
        )

    page = run(go())
    assert page.value
    assert all(u.account_enabled is False for u in page.value)
    assert all(u.display_name is None for u in page.value)  # not selected


def test_advanced_query_with_the_sdks_count_and_header(client: GraphServiceClient) -> None:
    async def go() -> tuple[Any, ODataError]:
        config = _users_config(filter="accountEnabled ne true", count=True, select=["id"])
        config.headers.add("ConsistencyLevel", "eventual")
        page = await client.users.get(config)
        # Without the header the SDK gets Graph's refusal, as its own error type.
        with pytest.raises(ODataError) as err:
            await client.users.get(
                _users_config(filter="accountEnabled ne true", count=True, select=["id"])
            )
        return page, err.value

    page, refusal = run(go())
    assert page.odata_count == len(page.value) > 0
    assert refusal.response_status_code == 400
    assert refusal.error.code == "Request_UnsupportedQuery"


def test_expand_manager(client: GraphServiceClient) -> None:
    async def go() -> tuple[Any, Any]:
        page = await client.users.get(_users_config(top=5, select=["id"]))
        someone = page.value[3].id
        params = UserItemRequestBuilder.UserItemRequestBuilderGetQueryParameters(expand=["manager"])
        user = await client.users.by_user_id(someone).get(
            RequestConfiguration(query_parameters=params)
        )
        manager = await client.users.by_user_id(someone).manager.get()
        return user, manager

    user, manager = run(go())
    assert isinstance(user.manager, User)
    assert user.manager.id == manager.id


# ------------------------------------------------------------------------- $batch


def test_batch(emu: Any, client: GraphServiceClient) -> None:
    base = f"{emu.graph_url}/v1.0"

    async def go() -> Any:
        page = await client.users.get(_users_config(top=2, select=["id"]))
        content = BatchRequestContent()
        for user_id in (page.value[0].id, EMPTY):
            item = BatchRequestItem(
                request_information=client.users.by_user_id(user_id).to_get_request_information()
            )
            # msgraph-core keeps the absolute URL (msgraph-sdk-python#1015,
            # msgraph-sdk-python-core#1116); Graph wants it relative: the known workaround.
            item.url = item.url.replace(base, "")
            content.add_request(item.id, item)
        ids = list(content.requests)
        return ids, page.value[0].id, await client.batch.post(content)

    (ok_id, missing_id), user_id, response = run(go())
    assert response.get_response_status_codes() == {ok_id: 200, missing_id: 404}
    # msgraph-core 1.5 reads an item's body with get_bytes_value(), so the JSON object
    # Graph sends (json-batching.md) comes back as None, from Graph as from here: the
    # statuses and headers are what the SDK gives a script.
    assert response.get_response_by_id(ok_id).content_type.startswith("application/json")
    assert response.get_response_by_id(missing_id).content_type.startswith("application/json")
    assert user_id


def test_batch_with_the_sdks_absolute_urls_fails_per_item_as_on_graph(
    client: GraphServiceClient,
) -> None:
    # Without the workaround each item is a 400 inside a 200 batch (msgraph-sdk-python#1015).
    async def go() -> Any:
        await client.users.get(_users_config(top=1))  # after a first call the SDK's
        content = BatchRequestContent()  # request URLs are absolute
        item = BatchRequestItem(request_information=client.users.to_get_request_information())
        assert item.url.startswith("https://")
        content.add_request(item.id, item)
        return item.id, await client.batch.post(content)

    item_id, response = run(go())
    assert response.get_response_status_codes() == {item_id: 400}
    assert response.get_response_by_id(item_id).content_type.startswith("application/json")


# ------------------------------------------------------------------------- errors


def test_not_found_parses_into_odata_error(client: GraphServiceClient) -> None:
    with pytest.raises(ODataError) as err:
        run(client.users.by_user_id(EMPTY).get())
    e = err.value
    assert e.response_status_code == 404
    assert e.error.code == "Request_ResourceNotFound"
    assert EMPTY in e.error.message
    assert e.error.inner_error is not None and e.error.inner_error.request_id


def test_missing_role_is_authorization_request_denied(emu: Any, client: GraphServiceClient) -> None:
    emu.revoke(emu.default_app, "User.Read.All")
    with pytest.raises(ODataError) as err:
        run(client.users.get())
    assert err.value.response_status_code == 403
    assert err.value.error.code == "Authorization_RequestDenied"


def test_token_refusal_surfaces_as_azure_identity_error(
    graphkit_emulator: Any, ident: Identity
) -> None:
    from azure.core.exceptions import ClientAuthenticationError

    client = _client(graphkit_emulator, ident)  # the certificate was never uploaded
    with pytest.raises(ClientAuthenticationError) as err:
        run(client.users.get())
    assert "AADSTS700027" in str(err.value)
