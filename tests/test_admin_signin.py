"""graphkit.admin_signin: an administrator's device code sign-in through msal's real
PublicClientApplication against the emulator, approved from another thread; each
failure with its advice. Waits between polls are injected (no real seconds)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from _emulator_helpers import no_ca_env

from graphkit import admin_signin
from graphkit.errors import AuthError
from graphkit.settings import Settings
from graphkit.token_errors import device_code_error

_no_ca_env = pytest.fixture(autouse=True)(no_ca_env)


def _settings(emu: Any) -> Settings:
    return Settings(
        tenant=emu.default_tenant.domain,
        authority_host=emu.authority_host,
        graph_url=emu.graph_url,
        ca_bundle=str(emu.ca_bundle),
    )


class Waits:
    """The sign-in's ``sleep``/``clock``: a wait returns once ``act`` (run in another
    thread, on the first wait) has finished, and moves the clock by the wait."""

    def __init__(self, act: Callable[[], None] | None = None) -> None:
        self.t = 1000.0
        self.slept: list[float] = []
        self.ticks: list[float] = []
        self._act = act
        self._done = threading.Event()
        self.failure: BaseException | None = None

    def _run(self) -> None:
        try:
            assert self._act is not None
            self._act()
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            self._done.set()

    def sleep(self, seconds: float) -> None:
        if self._act is not None and not self.slept:
            threading.Thread(target=self._run, daemon=True).start()
        if self._act is not None:
            assert self._done.wait(60), "the approving thread did not finish"
        self.slept.append(seconds)
        self.t += seconds

    def clock(self) -> float:
        return self.t


def _sign_in(emu: Any, waits: Waits, codes: list[Any], **kw: Any) -> admin_signin.AdminCredential:
    return admin_signin.sign_in(
        _settings(emu),
        on_code=codes.append,
        on_tick=waits.ticks.append,
        sleep=waits.sleep,
        clock=waits.clock,
        **kw,
    )


def test_sign_in_approved_from_another_thread(graphkit_emulator: Any) -> None:
    emu = graphkit_emulator
    emu.create_account("ada", roles=["Privileged Role Administrator"])
    codes: list[admin_signin.DeviceCode] = []
    waits = Waits(lambda: emu.approve_device_code(emu.wait_for_device_code(), "ada"))
    admin = _sign_in(emu, waits, codes)
    assert waits.failure is None
    [code] = codes
    assert code.client_id == admin_signin.DEFAULT_CLIENT_ID
    assert code.verification_uri == "https://microsoft.com/devicelogin"
    assert code.user_code in code.message and code.expires_in == 900
    # Only the scopes app create needs, and the user who approved.
    assert sorted(admin.granted_scopes) == sorted(admin_signin.APP_CREATE_SCOPES)
    assert admin.user.startswith("ada@")
    assert admin.get_token().claims["upn"] == admin.user
    assert waits.ticks and all(0 < left <= 900 for left in waits.ticks)  # the countdown
    [flow] = emu.device_codes()
    assert flow["client_id"] == admin_signin.DEFAULT_CLIENT_ID and flow["state"] == "redeemed"
    assert "token" not in repr(admin).lower()
    # A Graph client on that token calls Graph as ada.
    with admin_signin.graph_client(_settings(emu), admin) as graph:
        body = graph.get(
            "/servicePrincipals", {"$filter": "appId eq '00000003-0000-0000-c000-000000000000'"}
        )
    assert body["value"][0]["displayName"] == "Microsoft Graph"
    with pytest.raises(AuthError, match="sign in again"):
        admin.get_token(force_refresh=True)


def test_slow_down_lengthens_the_wait(graphkit_emulator: Any) -> None:
    emu = graphkit_emulator
    emu.settings(device_code_interval=1)
    emu.create_account("ada", roles=["Global Administrator"])

    codes: list[admin_signin.DeviceCode] = []

    def shown(code: admin_signin.DeviceCode) -> None:
        codes.append(code)
        emu.slow_down_device_code(code.user_code)  # the first poll gets slow_down

    waits = Waits(lambda: emu.approve_device_code(codes[0].user_code, "ada"))
    admin_signin.sign_in(_settings(emu), on_code=shown, sleep=waits.sleep, clock=waits.clock)
    assert waits.failure is None
    assert sum(waits.slept) == pytest.approx(1 + 5)  # the interval, 5 s longer


def test_declined(graphkit_emulator: Any) -> None:
    emu = graphkit_emulator
    waits = Waits(lambda: emu.decline_device_code(emu.wait_for_device_code()))
    with pytest.raises(AuthError) as caught:
        _sign_in(emu, waits, [])
    assert caught.value.message == "the sign-in was declined"
    assert "run the command again" in str(caught.value.hint)


def test_expired_on_the_servers_clock(graphkit_emulator: Any) -> None:
    emu = graphkit_emulator
    waits = Waits(lambda: emu.advance(901))
    with pytest.raises(AuthError) as caught:
        _sign_in(emu, waits, [])
    assert caught.value.code == 70020
    assert "expired" in caught.value.message
    assert "https://microsoft.com/devicelogin" in str(caught.value.hint)


def test_expired_on_our_clock_without_approval(graphkit_emulator: Any) -> None:
    emu = graphkit_emulator
    emu.settings(device_code_expires_in=10, device_code_interval=5)
    waits = Waits()
    with pytest.raises(AuthError, match="expired before anyone signed in"):
        _sign_in(emu, waits, [])
    assert sum(waits.slept) == pytest.approx(10)  # the code's lifetime, then no more


def test_custom_client_without_public_client_flows(graphkit_emulator: Any) -> None:
    emu = graphkit_emulator
    custom = emu.create_app(display_name="admin-tool").client_id
    with pytest.raises(AuthError) as caught:
        _sign_in(emu, Waits(), [], client_id=custom)
    assert caught.value.code == 7000218
    assert "Allow public client flows" in str(caught.value.hint)
    assert "--admin-client-id" in str(caught.value.hint)


@pytest.mark.parametrize("code", [53000, 50097])
def test_conditional_access_advice(code: int) -> None:
    # The answer's shape as Entra sends it (PROTOCOL.md §2); the emulator has no
    # Conditional Access, so the mapping is checked on the answer itself.
    answer = {
        "error": "invalid_grant",
        "error_description": f"AADSTS{code}: Device is not in required device state.",
        "error_codes": [code],
    }
    err = device_code_error(answer, Settings(tenant="contoso.onmicrosoft.com"), "x")
    assert "Conditional Access" in err.message and f"AADSTS{code}" in err.message
    assert "another administrator" in str(err.hint) and "device" in str(err.hint)


def test_without_a_tenant_the_users_home_tenant_signs_in(graphkit_emulator: Any) -> None:
    emu = graphkit_emulator
    emu.create_account("ada", roles=["Application Administrator"])
    settings = _settings(emu)
    settings.tenant = None  # /organizations
    admin = admin_signin.sign_in(
        settings, on_code=lambda c: emu.approve_device_code(c.user_code, "ada")
    )
    assert admin.tenant_id == emu.default_tenant.id
    assert any(r["path"].startswith("/organizations/") for r in emu.requests())
