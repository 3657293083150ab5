"""The admin API under /_emulator/ over raw HTTP, the Python API's edges, and the plugin."""

from __future__ import annotations

import email.utils
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import requests
from _emulator_helpers import (
    admin,
    claims_of,
    graph,
    identity,
    msal_app,
    no_ca_env,
    pem_credential,
)

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


@pytest.fixture
def emu(graphkit_emulator: Any) -> Any:
    return graphkit_emulator


def test_info(emu: Any) -> None:
    info = admin(emu, "GET", "/").json()
    assert info["authority_host"] == emu.authority_host
    assert info["graph_url"] == emu.graph_url
    assert info["ca_bundle"] == emu.ca_bundle
    assert info["tenant"] == {"id": emu.default_tenant.id, "domain": "contoso.onmicrosoft.com"}
    assert info["app"]["client_id"] == emu.default_app.client_id
    assert info["app"]["roles"] == ["User.Read.All"]
    assert info["app"]["certificates"] == 0
    assert info["environment"] == emu.environ()


def test_tenant_app_certificate_and_grants_end_to_end(emu: Any, tmp_path: Path) -> None:
    ident = identity(tmp_path)
    r = admin(emu, "POST", "/tenants", json={"domain": "fabrikam.onmicrosoft.com", "users": 12})
    assert r.status_code == 201
    tenant = r.json()
    assert tenant["users"] == 12
    r = admin(
        emu,
        "POST",
        "/apps",
        json={"tenant": "fabrikam.onmicrosoft.com", "display_name": "reports", "roles": []},
    )
    assert r.status_code == 201
    app = r.json()
    assert app["tenant_id"] == tenant["id"] and app["roles"] == []
    # The portal's upload: the PEM certificate as the body.
    r = admin(
        emu,
        "POST",
        f"/apps/{app['client_id']}/certificates",
        data=ident.cert_pem.encode(),
        headers={"Content-Type": "application/x-pem-file"},
    )
    assert r.status_code == 201
    assert r.json()["customKeyIdentifier"]
    r = admin(emu, "POST", f"/apps/{app['client_id']}/grants", json={"role": "User.Read.All"})
    assert r.json()["roles"] == ["User.Read.All"]

    authority = f"{emu.authority_host}/{tenant['id']}"
    client = msal_app(emu, app["client_id"], pem_credential(ident), authority=authority)
    token = client.acquire_token_for_client([emu.graph_scope])["access_token"]
    assert claims_of(token)["roles"] == ["User.Read.All"]
    users = graph(emu, "/v1.0/users?$top=999", token).json()["value"]
    assert len(users) == 12
    assert all(u["userPrincipalName"].endswith("@fabrikam.onmicrosoft.com") for u in users)

    r = admin(emu, "DELETE", f"/apps/{app['client_id']}/grants/User.Read.All")
    assert r.json()["roles"] == []
    fresh = msal_app(emu, app["client_id"], pem_credential(ident), authority=authority)
    token = fresh.acquire_token_for_client([emu.graph_scope], claims_challenge=None)
    # msal may serve the cached token; a new app object asks the server again.
    assert "roles" not in claims_of(token["access_token"])
    listed = {a["client_id"] for a in admin(emu, "GET", "/apps").json()["apps"]}
    assert listed == {app["client_id"], emu.default_app.client_id}
    domains = {t["domain"] for t in admin(emu, "GET", "/tenants").json()["tenants"]}
    assert domains == {"contoso.onmicrosoft.com", "fabrikam.onmicrosoft.com"}


def test_upload_as_json_base64_der(emu: Any, tmp_path: Path) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization

    ident = identity(tmp_path)
    der = ident.cert.public_bytes(serialization.Encoding.DER)
    r = admin(
        emu,
        "POST",
        f"/apps/{emu.default_app.client_id}/certificates",
        json={"certificate": base64.b64encode(der).decode()},
    )
    assert r.status_code == 201
    assert r.json()["key"] == base64.b64encode(der).decode()
    again = admin(
        emu,
        "POST",
        f"/apps/{emu.default_app.client_id}/certificates",
        json={"certificate": base64.b64encode(der).decode()},
    )
    assert again.status_code == 400  # the same certificate twice


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/tenants", {"domain": "not a domain"}, 400),
        ("POST", "/tenants", {"domain": "contoso.onmicrosoft.com"}, 400),
        ("POST", "/apps", {"tenant": "nowhere.example.com"}, 404),
        ("GET", "/apps/00000000-0000-0000-0000-000000000000", None, 404),
        ("POST", "/apps/00000000-0000-0000-0000-000000000000/grants", {"role": "x.y"}, 404),
        ("POST", "/apps", {"roles": "User.Read.All"}, 400),
        ("POST", "/settings", {"propagation_delay": -1}, 400),
        ("POST", "/settings", {"colour": "red"}, 400),
        ("GET", "/nothing-here", None, 404),
        ("PUT", "/requests", None, 405),
    ],
)
def test_admin_errors(emu: Any, method: str, path: str, body: Any, status: int) -> None:
    r = admin(emu, method, path, json=body)
    assert r.status_code == status
    assert r.json()["error"]


def test_garbage_certificate_upload_is_400(emu: Any) -> None:
    r = admin(emu, "POST", f"/apps/{emu.default_app.client_id}/certificates", data=b"hello")
    assert r.status_code == 400


def test_requests_log_and_clear(emu: Any) -> None:
    token = emu.issue_token()
    graph(emu, "/v1.0/users?$top=1", token, headers={"client-request-id": "abc"})
    log = admin(emu, "GET", "/requests").json()["requests"]
    assert log[0]["kind"] == "graph" and log[0]["client_request_id"] == "abc"
    assert admin(emu, "DELETE", "/requests").status_code == 204
    log = admin(emu, "GET", "/requests").json()["requests"]
    # Only the admin call that read it (logged after it answered) remains.
    assert [e["kind"] for e in log] == ["admin"]


def test_settings_and_clock(emu: Any, tmp_path: Path) -> None:
    r = admin(emu, "POST", "/settings", json={"propagation_delay": 60, "token_lifetime": 1200})
    assert {k: r.json()[k] for k in ("propagation_delay", "token_lifetime")} == {
        "propagation_delay": 60.0,
        "token_lifetime": 1200,
    }
    assert emu.propagation_delay == 60 and emu.token_lifetime == 1200
    ident = identity(tmp_path)
    emu.upload_certificate(emu.default_app, ident.cert)
    first = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    assert first.acquire_token_for_client([emu.graph_scope])["error_codes"] == [700027]
    before = emu.now()
    r = admin(emu, "POST", "/clock/advance", json={"seconds": 61})
    assert r.json()["offset"] == 61
    assert emu.now() - before >= 61
    second = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    result = second.acquire_token_for_client([emu.graph_scope])
    assert result["expires_in"] == 1200
    date = email.utils.parsedate_to_datetime(admin(emu, "GET", "/").headers["Date"])
    assert date.timestamp() >= before + 60


def test_reset_restores_the_start_state(emu: Any, tmp_path: Path) -> None:
    tenant_id, client_id = emu.default_tenant.id, emu.default_app.client_id
    emu.create_tenant("fabrikam.onmicrosoft.com")
    emu.upload_certificate(emu.default_app, identity(tmp_path).cert)
    emu.grant(emu.default_app, "Directory.Read.All")
    emu.add_fault(kind="429", every=5)
    emu.advance(1000)
    emu.propagation_delay = 9
    r = admin(emu, "POST", "/reset")
    assert r.status_code == 200
    assert (emu.default_tenant.id, emu.default_app.client_id) == (tenant_id, client_id)
    assert emu.key_credentials(emu.default_app) == []
    assert emu.roles(emu.default_app) == ["User.Read.All"]
    assert emu.faults() == []
    assert emu.propagation_delay == 0
    assert abs(emu.now() - __import__("time").time()) < 60
    assert [t["domain"] for t in admin(emu, "GET", "/tenants").json()["tenants"]] == [
        "contoso.onmicrosoft.com"
    ]
    # Python reset says the same.
    emu.create_tenant("fabrikam.onmicrosoft.com")
    emu.reset()
    assert emu.requests() == []


def test_stats(emu: Any) -> None:
    stats = admin(emu, "GET", "/stats").json()
    assert stats["peak_rss_bytes"] > 1_000_000
    assert stats["requests_total"] == 0  # a fresh emulator; this request not yet counted
    for _ in range(3):
        assert graph(emu, "/v1.0/users", None).status_code == 401
    again = admin(emu, "GET", "/stats").json()
    assert again["requests_total"] == 4  # the first /stats and three Graph requests
    assert again["peak_rss_bytes"] >= stats["peak_rss_bytes"]


# ---------------------------------------------------------------- the Python API


def test_python_api_contract(emu: Any) -> None:
    from graphkit.emulator import App, Emulator, Tenant

    assert isinstance(emu, Emulator)
    assert emu.authority_host == emu.graph_url == f"https://127.0.0.1:{emu.port}"
    assert not emu.authority_host.endswith("/")
    assert Path(emu.ca_bundle).read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    assert isinstance(emu.default_tenant, Tenant) and isinstance(emu.default_app, App)
    tenant = emu.create_tenant(domain="fabrikam.onmicrosoft.com")
    app = emu.create_app(tenant.id, display_name="x", roles=["User.Read.All"])
    assert app.tenant_id == tenant.id
    by_domain = emu.create_app("fabrikam.onmicrosoft.com", display_name="y")
    assert by_domain.tenant_id == tenant.id
    assert emu.roles(by_domain) == []
    with pytest.raises(ValueError):
        emu.create_tenant("fabrikam.onmicrosoft.com")
    with pytest.raises(KeyError):
        emu.create_app("nowhere.example.com")
    with pytest.raises(ValueError):
        emu.grant(app, "not a role")
    env = emu.environ(app)
    assert env["AZURE_TENANT_ID"] == tenant.id and env["AZURE_CLIENT_ID"] == app.client_id
    assert set(env) == {
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_AUTHORITY_HOST",
        "GRAPHKIT_GRAPH_URL",
        "GRAPHKIT_CA_BUNDLE",
        "REQUESTS_CA_BUNDLE",
    }


def test_ids_are_deterministic_and_stop_cleans_up() -> None:
    from graphkit.emulator import Emulator

    with Emulator() as one:
        ids = (one.default_tenant.id, one.default_app.client_id)
        ca = Path(one.ca_bundle)
        extra = one.create_app(display_name="extra").client_id
        assert ca.exists()
    assert not ca.parent.exists()
    with pytest.raises(RuntimeError):
        _ = one.authority_host
    with Emulator() as two:
        assert (two.default_tenant.id, two.default_app.client_id) == ids
        assert two.create_app(display_name="extra").client_id == extra


def test_stop_closes_kept_alive_connections(tmp_path: Path) -> None:
    import shutil

    from graphkit.emulator import Emulator

    emu = Emulator(users=3).start()
    ca = shutil.copy(emu.ca_bundle, tmp_path / "ca.pem")  # the emulator's copy goes at stop
    session = requests.Session()
    session.trust_env = False
    session.verify = str(ca)
    url = f"{emu.graph_url}/v1.0/users"
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    assert session.get(url, headers=headers).ok
    emu.stop()
    # Had the kept-alive connection survived, its handler thread would still answer.
    with pytest.raises(requests.exceptions.ConnectionError):
        session.get(url, headers=headers)


def test_untrusted_client_is_refused_and_server_keeps_going(emu: Any) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{emu.base_url}/_emulator/", verify=True, timeout=30)
    assert admin(emu, "GET", "/").status_code == 200


# ---------------------------------------------------------------- the pytest plugin


def test_plugin_import_is_cheap() -> None:
    code = (
        "import sys, graphkit.testing; "
        "heavy = [m for m in ('graphkit.emulator', 'cryptography', 'requests', 'msal', 'jwt') "
        "if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_plugin_fixtures_in_a_user_suite(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(
        textwrap.dedent(
            """
            import pytest, requests

            def _count(emu):
                r = requests.get(emu.graph_url + "/v1.0/users/$count", verify=emu.ca_bundle,
                                 headers={"Authorization": "Bearer " + emu.issue_token(),
                                          "ConsistencyLevel": "eventual"})
                return r.text

            def test_default(graphkit_emulator):
                assert _count(graphkit_emulator) == "250"

            @pytest.mark.graphkit_emulator(users=7)
            def test_marked(graphkit_emulator, graphkit_emulator_session):
                assert _count(graphkit_emulator) == "7"
                assert graphkit_emulator_session.port != graphkit_emulator.port

            @pytest.mark.graphkit_emulator(colour="red")
            def test_bad_marker(graphkit_emulator):
                pass
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert "2 passed" in out.stdout, out.stdout + out.stderr
    assert "1 error" in out.stdout and "colour" in out.stdout, out.stdout


# ---------------------------------------------- issue 11: certificates, grants, index


def _token_status(emu: Any, ident: Any) -> Any:
    app = msal_app(emu, emu.default_app.client_id, pem_credential(ident))
    return app.acquire_token_for_client([emu.graph_scope])


def test_remove_a_certificate_by_key_id_or_thumbprint(emu: Any, tmp_path: Path) -> None:
    one, two = identity(tmp_path, "one"), identity(tmp_path, "two")
    cid = emu.default_app.client_id
    for ident in (one, two):
        r = admin(emu, "POST", f"/apps/{cid}/certificates", data=ident.cert_pem.encode())
        assert r.status_code == 201, r.text
    listed = admin(emu, "GET", f"/apps/{cid}/certificates").json()["certificates"]
    assert len(listed) == 2 and all(c["key"] is None for c in listed)
    assert "access_token" in _token_status(emu, one)
    # By keyId.
    first = next(c for c in listed if c["displayName"] == one.cert.subject.rfc4514_string())
    assert admin(emu, "DELETE", f"/apps/{cid}/certificates/{first['keyId']}").status_code == 204
    result = _token_status(emu, one)
    assert result.get("error_codes") == [700027], result
    assert "access_token" in _token_status(emu, two)
    # By the thumbprint as the portal shows it (lower case and colons work too).
    colons = ":".join(two.sha1[i : i + 2] for i in range(0, 40, 2)).lower()
    assert admin(emu, "DELETE", f"/apps/{cid}/certificates/{colons}").status_code == 204
    assert admin(emu, "GET", f"/apps/{cid}/certificates").json()["certificates"] == []
    missing = admin(emu, "DELETE", f"/apps/{cid}/certificates/{two.sha1}")
    assert missing.status_code == 404 and "no certificate" in missing.json()["error"]
    # The Python API says the same.
    emu.upload_certificate(emu.default_app, one.cert)
    assert emu.remove_certificate(emu.default_app, one.sha1)["keyId"]
    assert emu.key_credentials(emu.default_app) == []


def test_list_and_revoke_grants(emu: Any) -> None:
    cid = emu.default_app.client_id
    expected = {
        "client_id": cid,
        "role": "User.Read.All",
        "app_role_id": "df021288-bdef-4463-88db-98f22de89214",
    }
    assert admin(emu, "GET", "/grants").json() == {"grants": [expected]}
    admin(emu, "POST", f"/apps/{cid}/grants", json={"role": "Group.Read.All"})
    roles = [g["role"] for g in admin(emu, "GET", f"/apps/{cid}/grants").json()["grants"]]
    assert roles == ["Group.Read.All", "User.Read.All"]
    assert emu.grants(emu.default_app) == admin(emu, "GET", f"/apps/{cid}/grants").json()["grants"]
    assert admin(emu, "DELETE", f"/apps/{cid}/grants/Group.Read.All").status_code == 200
    assert admin(emu, "GET", "/grants").json() == {"grants": [expected]}
    # Revoking what was never granted is a 404 (it used to be a silent 200).
    again = admin(emu, "DELETE", f"/apps/{cid}/grants/Group.Read.All")
    assert again.status_code == 404
    # The token follows the grants.
    token = emu.issue_token()
    assert claims_of(token)["roles"] == ["User.Read.All"]


def test_index_lists_every_admin_endpoint_and_the_readme_documents_them(emu: Any) -> None:
    from graphkit.emulator.routes import ROUTES

    index = admin(emu, "GET", "/").json()["endpoints"]
    admin_routes = [r for r in ROUTES if r.kind == "admin"]
    assert len(index) == len(admin_routes)
    assert all(e["description"] for e in index)
    pairs = {(e["method"], e["path"]) for e in index}
    assert ("DELETE", "/_emulator/apps/{client}/certificates/{key}") in pairs
    assert ("GET", "/_emulator/grants") in pairs
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for method, path in sorted(pairs):
        assert f"`{method} {path}`" in readme, f"README does not document {method} {path}"


def test_the_session_emulator_is_one_emulator_for_the_whole_session(tmp_path: Path) -> None:
    # Two tests in two modules: the second sees the first one's emulator (same port,
    # its tenant still there); graphkit_emulator stays per test.
    (tmp_path / "test_a.py").write_text(
        textwrap.dedent(
            """
            import json, pathlib

            def test_first(graphkit_emulator_session, graphkit_emulator):
                graphkit_emulator_session.create_tenant("fabrikam.onmicrosoft.com")
                seen = {"session": graphkit_emulator_session.port,
                        "fresh": graphkit_emulator.port}
                pathlib.Path("first.json").write_text(json.dumps(seen))
            """
        )
    )
    (tmp_path / "test_b.py").write_text(
        textwrap.dedent(
            """
            import json, pathlib, requests

            def test_second(graphkit_emulator_session, graphkit_emulator):
                first = json.loads(pathlib.Path("first.json").read_text())
                emu = graphkit_emulator_session
                assert emu.port == first["session"]
                domains = [t["domain"] for t in requests.get(
                    emu.base_url + "/_emulator/tenants", verify=emu.ca_bundle, timeout=30
                ).json()["tenants"]]
                assert "fabrikam.onmicrosoft.com" in domains
                assert graphkit_emulator.port != emu.port  # a fresh one for this test
                fresh = requests.get(graphkit_emulator.base_url + "/_emulator/tenants",
                                     verify=graphkit_emulator.ca_bundle, timeout=30).json()
                assert [t["domain"] for t in fresh["tenants"]] == ["contoso.onmicrosoft.com"]
            """
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_a.py", "test_b.py"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert out.returncode == 0 and "2 passed" in out.stdout, out.stdout + out.stderr
