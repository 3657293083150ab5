"""Property-based tests (issue 10): every parser of user or server input either succeeds
or raises graphkit's own error (``GraphkitError``), never another exception, never a
hang. Derandomized, so a run is the same every time; a few seconds in all.

Parsers covered: PEM, DER and PFX loading (keys, certificates, CSRs), subjects and
SANs, Graph paths and URLs, nextLinks and redirect Locations, headers, config files and
environment values, Retry-After, JWTs decoded for display, JMESPath, --scope and
--resource, delta state files.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from graphkit import crypto
from graphkit.errors import GraphkitError

FAST = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
FEW = settings(FAST, max_examples=20)  # each example does real RSA or PBKDF2 work


def _ok_or_graphkit_error(fn: Any, *args: Any, **kw: Any) -> Any:
    """``fn(*args, **kw)``: its result, or None when it raised a GraphkitError."""
    try:
        return fn(*args, **kw)
    except GraphkitError:
        return None


@pytest.fixture(scope="module")
def material(certs_rsa_key: Any) -> dict[str, bytes]:
    cert = crypto.self_sign(certs_rsa_key, crypto.parse_subject(cn="properties"))
    csr = crypto.build_csr(certs_rsa_key, crypto.parse_subject(cn="properties"))
    from cryptography.hazmat.primitives import serialization

    return {
        "key_pem": crypto.dump_private_key(certs_rsa_key),
        "key_der": certs_rsa_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        "cert_pem": crypto.dump_certificate(cert),
        "cert_der": crypto.dump_certificate(cert, der=True),
        "csr_pem": crypto.dump_csr(csr),
        "pfx": crypto.dump_pfx(certs_rsa_key, cert, b"pw", legacy=True),
        "combined": crypto.dump_combined_pem(certs_rsa_key, cert),
    }


# A mutation of real bytes: (position fraction, how) pairs applied in order.
_MUTATIONS = st.lists(
    st.tuples(
        st.floats(0, 1),
        st.sampled_from(["flip", "cut", "drop", "dup", "zero"]),
        st.integers(1, 255),
    ),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, mutations: list[tuple[float, str, int]]) -> bytes:
    out = bytearray(data)
    for where, how, value in mutations:
        if not out:
            break
        i = min(len(out) - 1, int(where * len(out)))
        if how == "flip":
            out[i] ^= value
        elif how == "cut":
            del out[i:]
        elif how == "drop":
            del out[i : i + value]
        elif how == "dup":
            out[i:i] = out[i : i + value]
        else:
            out[i] = 0
    return bytes(out)


def _pem(label: str, body: bytes) -> bytes:
    return (
        f"-----BEGIN {label}-----\n".encode()
        + base64.encodebytes(body)
        + f"-----END {label}-----\n".encode()
    )


# ------------------------------------------------------------------ PEM, DER, PFX


@FEW
@given(kind=st.sampled_from(["key_pem", "key_der", "combined"]), mutations=_MUTATIONS)
def test_private_key_loading(material: dict[str, bytes], kind: str, mutations: Any) -> None:
    _ok_or_graphkit_error(crypto.load_private_key, _mutate(material[kind], mutations))


@FAST
@given(
    body=st.binary(max_size=600),
    label=st.sampled_from(["PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "X"]),
    passphrase=st.none() | st.binary(min_size=1, max_size=8),
)
@example(body=b"", label="PRIVATE KEY", passphrase=None)
def test_private_key_loading_of_random_pem_and_der(
    body: bytes, label: str, passphrase: bytes | None
) -> None:
    _ok_or_graphkit_error(crypto.load_private_key, _pem(label, body), passphrase)
    _ok_or_graphkit_error(crypto.load_private_key, body, passphrase)


@FEW
@given(
    kind=st.sampled_from(["cert_pem", "cert_der", "pfx", "combined"]),
    mutations=_MUTATIONS,
    passphrase=st.sampled_from([None, b"pw", b"wrong"]),
)
def test_certificate_loading(
    material: dict[str, bytes], kind: str, mutations: Any, passphrase: bytes | None
) -> None:
    data = _mutate(material[kind], mutations)
    bundle = _ok_or_graphkit_error(crypto.load_certificate_bundle, data, passphrase)
    if bundle is not None:  # what loads can be shown
        crypto.certificate_info(bundle.certificate)


@FAST
@given(body=st.binary(max_size=600), pfx_prefix=st.booleans())
def test_certificate_loading_of_random_bytes(body: bytes, pfx_prefix: bool) -> None:
    data = (b"\x30\x82\x02\x00\x02\x01\x03" + body) if pfx_prefix else body
    _ok_or_graphkit_error(crypto.load_certificate_bundle, data)
    _ok_or_graphkit_error(crypto.load_certificate_bundle, _pem("CERTIFICATE", body))


@FEW
@given(kind=st.sampled_from(["csr_pem"]), mutations=_MUTATIONS)
def test_csr_loading(material: dict[str, bytes], kind: str, mutations: Any) -> None:
    _ok_or_graphkit_error(crypto.load_csr, _mutate(material[kind], mutations))
    _ok_or_graphkit_error(crypto.load_csr, _mutate(material[kind], mutations)[30:])


# ------------------------------------------------------------------ subjects and SANs

_NAME_TEXT = st.lists(
    st.sampled_from([*'CNOUL=,+\\#"<>;. -_aZ09ü\x00é', "2.5.4.3", "CN=", "C=", "1.2="]),
    max_size=20,
).map("".join)


@FAST
@given(subject=_NAME_TEXT, cn=st.none() | st.text(max_size=80))
@example(subject="", cn="a" * 65)
@example(subject="CN=" + "a" * 65, cn=None)
def test_subjects_parse_and_sign(certs_rsa_key: Any, subject: str, cn: str | None) -> None:
    name = _ok_or_graphkit_error(crypto.parse_subject, None if cn else subject, cn)
    if name is not None:  # a subject that parses also goes into a CSR
        crypto.build_csr(certs_rsa_key, name)


_SAN_TEXT = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda kind, rest: f"{kind}:{rest}",
        st.sampled_from(["DNS", "dns", "email", "URI", "IP", "RID", ""]),
        st.text(alphabet=st.sampled_from(list("ab.-*@:/[]ü1 _%")), max_size=30),
    ),
)


@FAST
@given(value=_SAN_TEXT)
@example(value="DNS:ü.example")
@example(value="URI:ü://x")
@example(value="email:@@")
@example(value="DNS:")
def test_sans_parse_and_sign(certs_rsa_key: Any, value: str) -> None:
    san = _ok_or_graphkit_error(crypto.parse_san, value)
    if san is not None:  # a SAN that parses also goes into a CSR
        crypto.build_csr(certs_rsa_key, crypto.parse_subject(cn="x"), [san])


# ------------------------------------------------------------------ Graph paths, links

_URL_TEXT = st.one_of(
    st.text(max_size=60),
    st.builds(
        lambda scheme, host, rest: f"{scheme}{host}{rest}",
        st.sampled_from(["https://", "http://", "//", "", "ftp://", "https:/"]),
        st.sampled_from(
            ["graph.example", "graph.example:99999", "[::1", "[x]", "u@graph.example", "a\\b"]
        ),
        st.text(alphabet=st.sampled_from(list("/v1.0users?$=&#%@:[] ü\x7f")), max_size=30),
    ),
)


class _Credential:
    def get_token(self, *, force_refresh: bool = False) -> Any:
        raise AssertionError("no request is made in these tests")


@FAST
@given(path=_URL_TEXT, params=st.dictionaries(st.text(max_size=8), st.text(max_size=12)))
@example(path="https://[::1/v1.0/users", params={})
def test_graph_paths_and_urls(path: str, params: dict[str, str]) -> None:
    from graphkit.graph import GraphClient, advanced_query, encode_params, required_role

    client = GraphClient("https://graph.example", _Credential())
    url = _ok_or_graphkit_error(client.url, path)
    client.is_graph_url(path)  # never raises
    if url is not None:
        advanced_query(url, params, None)
        encode_params(params)
        required_role(url)


@FAST
@given(link=st.one_of(_URL_TEXT, st.integers(), st.none(), st.dictionaries(st.text(), st.text())))
@example(link="http://[::1/v1.0/users")
@example(link="https://graph.example:99999/x")
def test_next_links_and_locations(link: Any) -> None:
    from graphkit.graph import GraphClient, _resolve_link

    client = GraphClient("https://graph.example", _Credential())
    base = "https://graph.example/v1.0/users"
    url = _ok_or_graphkit_error(_resolve_link, base, link, "an @odata.nextLink")
    if url is not None:
        _ok_or_graphkit_error(client._check_origin, url, "the @odata.nextLink")
    _ok_or_graphkit_error(_resolve_link, base, link, "a Location", redirect=True)


@FAST
@given(headers=st.dictionaries(st.text(max_size=12), st.text(max_size=20), max_size=3))
@example(headers={"X-A": "b\r\nInjected: 1"})
@example(headers={"Ünï": "x"})
def test_headers(headers: dict[str, str]) -> None:
    from graphkit.transport import check_headers

    checked = _ok_or_graphkit_error(check_headers, headers)
    if checked is not None:  # what passes is one header line that http.client can encode
        for name, value in checked.items():
            if name.strip().lower() != "authorization":
                assert "\n" not in value and "\r" not in value and ":" not in name
                name.encode("ascii")
                value.encode("latin-1")


# ------------------------------------------------------------------ config and environment


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("properties-home")
    d.chmod(0o700)
    return d


_TOML_TEXT = st.one_of(
    st.text(max_size=120),
    st.builds(
        lambda key, value: f'[profiles."{key}"]\n{value}\n',
        st.text(max_size=10),
        st.text(alphabet=st.sampled_from(list('abc=" []{}\n,.123tenant_idgraph_url')), max_size=60),
    ),
    st.integers(1, 3000).map(lambda n: "a = " + "[" * n + "]" * n),
)


@FAST
@given(text=_TOML_TEXT, raw=st.none() | st.binary(max_size=40))
@example(text="a = " + "[" * 5000 + "]" * 5000, raw=None)
@example(text="profiles = 5", raw=None)
def test_config_files(home: Path, text: str, raw: bytes | None) -> None:
    from graphkit import settings as settings_mod

    path = home / "config.toml"
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw if raw is not None else text.encode("utf-8", "surrogatepass"))
    _ok_or_graphkit_error(settings_mod.read_config, path)
    _ok_or_graphkit_error(settings_mod.resolve_settings, env={"GRAPHKIT_HOME": str(home)})


_ENV_TEXT = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=["Cs"]), max_size=40
)


@FAST
@given(
    values=st.fixed_dictionaries(
        {},
        optional={
            name: st.one_of(_ENV_TEXT, _URL_TEXT.filter(lambda s: "\x00" not in s))
            for name in (
                "AZURE_TENANT_ID",
                "AZURE_CLIENT_ID",
                "AZURE_CLIENT_CERTIFICATE_PATH",
                "AZURE_CLIENT_CERTIFICATE_PASSWORD",
                "AZURE_AUTHORITY_HOST",
                "GRAPHKIT_GRAPH_URL",
                "GRAPHKIT_CA_BUNDLE",
                "GRAPHKIT_CLOUD",
                "GRAPHKIT_PROFILE",
                "GRAPHKIT_HOME",
            )
        },
    )
)
@example(values={"GRAPHKIT_HOME": "/proc/self"})
@example(values={"AZURE_AUTHORITY_HOST": "https://[::1"})
def test_environment_values(home: Path, values: dict[str, str]) -> None:
    from graphkit import settings as settings_mod

    (home / "config.toml").unlink(missing_ok=True)
    env = {"GRAPHKIT_HOME": str(home), **values}
    if "\x00" in "".join(env.values()):
        return  # an environment cannot carry NUL
    resolved = _ok_or_graphkit_error(settings_mod.resolve_settings, env=env)
    if resolved is not None:
        resolved.describe()  # what `config show` prints
        _ok_or_graphkit_error(settings_mod.state_dir, env)


# ------------------------------------------------------------------ Retry-After

_HTTP_DATE = st.builds(
    lambda day, mon, year, hms: f"{day}, 01 {mon} {year} {hms} GMT",
    st.sampled_from(["Sun", "Mon", "Xyz", ""]),
    st.sampled_from(["Jan", "Feb", "Dec", "Foo"]),
    st.integers(-10, 10**12),
    st.sampled_from(["00:00:00", "25:61:61", "1:2", ""]),
)


@FAST
@given(value=st.one_of(st.none(), st.text(max_size=30), _HTTP_DATE, st.floats().map(str)))
@example(value="Sun, 01 Jan 99999999999 00:00:00 GMT")
@example(value="-5")
@example(value="nan")
def test_retry_after(value: str | None) -> None:
    import math

    from graphkit.retry import parse_retry_after

    seconds = parse_retry_after(value)  # never raises
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0)


# ------------------------------------------------------------------ JWTs for display


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


@FAST
@given(
    token=st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda h, p, s: f"{h}.{p}.{s}",
            st.text(max_size=10),
            st.one_of(
                st.binary(max_size=40).map(_b64),
                st.recursive(
                    st.none() | st.integers() | st.text(max_size=5),
                    lambda kids: st.lists(kids, max_size=3),
                ).map(lambda v: _b64(json.dumps(v).encode())),
                st.integers(1, 20000).map(lambda n: _b64(b"[" * n + b"]" * n)),
            ),
            st.text(max_size=10),
        ),
    )
)
@example(token="a." + _b64(b"[" * 100000) + ".c")
def test_jwts_decoded_for_display(token: str) -> None:
    from graphkit.tokens import decode_claims

    assert isinstance(decode_claims(token), dict)


_CLAIM = st.one_of(
    st.none(),
    st.integers(-(10**20), 10**20),
    st.floats(),  # NaN and infinities too: json.loads reads NaN and 1e400
    st.text(max_size=8),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
)


@FAST
@given(
    claims=st.fixed_dictionaries(
        {}, optional={k: _CLAIM for k in ("iat", "exp", "aud", "tid", "appid", "roles")}
    ),
    expires_on=st.integers(-(10**15), 10**15),
)
@example(claims={"iat": 10**14}, expires_on=10**14)
@example(claims={"iat": float("inf"), "roles": [1, "a"]}, expires_on=0)
def test_token_claims_are_displayed_whatever_they_hold(
    claims: dict[str, Any], expires_on: int
) -> None:
    """``graphkit token`` shows a token's claims (from a server): absurd times, NaN,
    roles that are not strings are shown, never a crash."""
    import contextlib
    import io

    from graphkit.cli import token as token_cli
    from graphkit.settings import Settings
    from graphkit.tokens import AccessToken

    access = AccessToken("eyJ.a.b", expires_on, from_cache=False, claims=claims)
    json.dumps(token_cli._summary(access, Settings(), False), default=str)
    with contextlib.redirect_stdout(io.StringIO()):
        token_cli._render(access, Settings(), False)


# ------------------------------------------------------------------ JMESPath

_JMES_TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(list("@[]{}().,:|&*?!<>=`'\"ab0-")), max_size=30),
    st.builds(
        lambda fn, arg: f"{fn}({arg})",
        st.sampled_from(
            [
                "abs",
                "keys",
                "values",
                "sort",
                "sort_by",
                "max_by",
                "join",
                "length",
                "to_number",
                "avg",
                "sum",
                "contains",
                "starts_with",
                "merge",
                "reverse",
                "ceil",
                "floor",
                "not_null",
                "to_array",
                "type",
                "frob",
                "map",
                "min",
                "max",
                "ends_with",
            ]
        ),
        st.sampled_from(["@", "@, &a", '`"a"`', "`1`, @", "&a, @", "@[0]", "'x', @", "a"]),
    ),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.sampled_from("ab"), kids),
    max_leaves=12,
)


@FAST
@given(expression=_JMES_TEXT, data=_JSON)
@example(expression='abs(`"a"`)', data=[{"a": 1}])
@example(expression="sort_by(@,&a)", data=[{"a": [1]}, {"a": [2]}])
@example(expression="keys(@)", data=[1])
@example(expression="[" * 5000, data=[])
def test_jmespath(expression: str, data: Any) -> None:
    from graphkit.output import JmesQuery

    query = _ok_or_graphkit_error(JmesQuery, expression)
    if query is None:
        return
    _ok_or_graphkit_error(query.search, data)
    if query.streams and isinstance(data, list):
        _ok_or_graphkit_error(lambda: list(query.per_item(data)))


# ------------------------------------------------------------------ file names

_FILE_NAME = st.one_of(
    st.text(max_size=40),
    st.integers(240, 300).map(lambda n: "n" * n),
    st.sampled_from(["..", ".", "", "a/../..", "/dev/null", "/proc/self/x", "a\x00b"]),
)


@FAST
@given(name=_FILE_NAME)
@example(name="a" * 300)
@example(name="b" * 250)
def test_output_and_input_file_names(home: Path, name: str) -> None:
    """Any name given for an output (--out, --pem...) or an input (--key, a certificate)
    is written or read, or refused with a GraphkitError."""
    from graphkit import files

    out = home / "names"
    out.mkdir(mode=0o700, exist_ok=True)
    target = out / name if name and not name.startswith("/") else Path(name or ".")
    if _ok_or_graphkit_error(files.atomic_write, target, b"x", force=False) is not None:
        assert files.read_bytes(target) == b"x"
        target.unlink()
    _ok_or_graphkit_error(files.read_bytes, target)
    _ok_or_graphkit_error(files.read_passphrase_file, target)
    files.input_file_problem(target)  # never raises


@FAST
@given(
    scope=st.one_of(st.none(), st.text(max_size=40), st.just("https://x.example/.default")),
    resource=st.one_of(st.none(), st.text(max_size=40), st.just("https://x.example/")),
)
@example(scope="/.default", resource=None)
@example(scope=None, resource="https://x.example/.default")
def test_scopes_and_resources(scope: str | None, resource: str | None) -> None:
    """--scope/--resource: one resource with /.default, or graphkit's own error."""
    from graphkit.tokens import requested_scope

    wanted = _ok_or_graphkit_error(requested_scope, scope, resource)
    if wanted is not None:
        assert wanted.endswith("/.default") and wanted != "/.default"
        assert not any(c.isspace() for c in wanted)


_STATE = {
    "format": "graphkit delta state",
    "version": 1,
    "delta_link": "https://graph.example/v1.0/users/delta?$deltatoken=x",
}


@FAST
@given(
    raw=st.one_of(
        st.binary(max_size=200),
        st.builds(
            lambda changes: json.dumps({**_STATE, **changes}).encode(),
            st.dictionaries(
                st.sampled_from(["format", "version", "delta_link", "query", "tenant"]),
                st.one_of(st.none(), st.integers(), st.text(max_size=10), st.lists(st.integers())),
                max_size=3,
            ),
        ),
    )
)
@example(raw=b"[" * 5000)
@example(raw=json.dumps(_STATE).encode())
def test_delta_state_files(home: Path, raw: bytes) -> None:
    """A --delta-state file, whatever it holds: read as a state, or refused with a
    GraphkitError (and then never replaced)."""
    from graphkit.delta_sync import DeltaSync
    from graphkit.graph import GraphClient

    path = home / "delta-state.json"
    path.write_bytes(raw)
    client = GraphClient("https://graph.example", _Credential())
    sync = _ok_or_graphkit_error(DeltaSync, client, path, "/users/delta")
    if sync is not None:
        assert isinstance(sync.previous, dict)
        assert isinstance(sync.previous["delta_link"], str)
    else:
        assert path.read_bytes() == raw


# ------------------------------------------------------------------ query -X and --body


@FAST
@given(
    method=st.text(max_size=8),
    body=st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode)),
    content_type=st.none() | st.text(max_size=30),
)
@example(method="post", body=b'{"a": [1, 2', content_type=None)
@example(method="PUT", body=b"\xff\xd8", content_type="image/jpeg\r\nX: y")
@example(method="PATCH", body=b"[" * 5000, content_type="application/json")
def test_query_methods_and_bodies(method: str, body: bytes, content_type: str | None) -> None:
    """`query -X` and `--body`/`--content-type`: a method is one of the five or refused, a
    body is JSON or refused (naming where it breaks, never echoing it), a content type is
    one header value or refused; nothing else escapes."""
    from graphkit.cli import query

    verb = _ok_or_graphkit_error(query._method, method)
    if verb is not None:
        assert verb in query.METHODS
    headers: dict[str, str] = {}
    ctype = _ok_or_graphkit_error(query._content_type, headers, content_type)
    if ctype is not None:
        assert "\n" not in ctype and "\r" not in ctype
    try:
        query._check_json(body, "--body")
    except GraphkitError as exc:
        assert "is not" in str(exc) and (len(body) < 8 or body.decode("latin-1") not in str(exc))
    else:
        json.loads(body)


# --------------------------------------------- keyCredentials, thumbprints, rotation state

_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=20), inner),
    max_leaves=20,
)
_KEY_FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "keyId": _JSONISH,
        "key": st.one_of(
            _JSONISH, st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())
        ),
        "customKeyIdentifier": st.one_of(
            _JSONISH,
            st.binary(min_size=20, max_size=20).map(lambda b: base64.b64encode(b).decode()),
        ),
        "displayName": _JSONISH,
        "startDateTime": st.one_of(_JSONISH, st.just("2026-01-01T00:00:00Z")),
        "endDateTime": st.one_of(
            _JSONISH, st.just("2027-01-01T00:00:00Z"), st.just("9999-12-31T23:59:59Z")
        ),
    },
)


@FAST
@given(entries=st.one_of(_JSONISH, st.lists(st.one_of(_KEY_FIELDS, _JSONISH), max_size=5)))
def test_key_credentials_from_graph(entries: Any) -> None:
    from graphkit import app_keys

    rows = _ok_or_graphkit_error(app_keys.certificates_from, entries, in_use="AB" * 20)
    for row in rows or []:
        json.dumps(row.as_dict())


@FAST
@given(value=st.text(max_size=80))
@example(value="ab:" * 19 + "ab")
@example(value="00000000-0000-0000-0000-000000000000")
def test_thumbprint_arguments(value: str) -> None:
    from graphkit.cli.app_certs import _normalise_thumbprint

    _ok_or_graphkit_error(_normalise_thumbprint, value)


@FAST
@given(raw=st.one_of(st.binary(max_size=200), _JSONISH.map(lambda v: json.dumps(v).encode())))
@example(
    raw=json.dumps(
        {
            "stage": "made",
            "old": {
                "thumbprint": "AB",
                "certificate": "/a.crt",
                "not_before": "2026-01-01T00:00:00+00:00",
                "not_after": "2027-01-01T00:00:00+00:00",
            },
            "new": {"thumbprint": "CD", "certificate": "/b.crt", "private_key": "/b.key"},
            "key_ids": {"AB": "x", "CD": 5},
        }
    ).encode()
)
def test_rotation_state_files(home: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes) -> None:
    from graphkit import rotation

    monkeypatch.setenv("GRAPHKIT_HOME", str(home))
    path = home / "rotation" / "work.json"
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(raw)
    state = _ok_or_graphkit_error(rotation._State.load, "work")
    if state is not None:
        assert state.stage in (None, *rotation.STEPS) and isinstance(state.key_ids, dict)
        if raw.startswith(b'{"stage": "made"'):
            assert state.stage == "made" and state.key_ids == {"AB": "x"}  # 5 is no keyId
