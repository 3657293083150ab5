"""Where graphkit keeps its state, and how connection settings are resolved.

Settings come from three layers, highest first: command-line flags, environment
variables (azure-identity's names, so existing setups work unchanged), and a profile
in ``config.toml``. :func:`resolve_settings` merges them and records where each value
came from; :func:`validate` turns anything unusable into a one-line
:class:`~graphkit.errors.ConfigError`; :func:`load_client_certificate` opens the
certificate (and key) the settings point to, and :func:`certificate_facts` reuses
what a full check of those very files established before (so that a warm run parses
no key and does not even import cryptography).

``GRAPHKIT_HOME`` moves everything (the config file, the token cache and msal's
HTTP cache) into one directory; otherwise the config file lives in the platform's
user config directory and the caches in its user state directory (platformdirs).

The config file is TOML::

    default_profile = "work"

    [profiles."work"]
    tenant = "contoso.onmicrosoft.com"
    client_id = "00000000-0000-0000-0000-000000000000"
    certificate = "/home/me/.graphkit/app.pem"

Relative paths in a profile are taken relative to the config file's directory.
Nothing secret is ever stored in it: a passphrase may only be referenced by file
(``passphrase_file``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from graphkit.errors import ConfigError, CryptoError, InputError

__all__ = [
    "CLOUDS",
    "ENV_VARS",
    "PROFILE_KEYS",
    "CertificateFacts",
    "ClientCertificate",
    "Settings",
    "certificate_facts",
    "config_dir",
    "config_path",
    "delete_profile",
    "expiry_warning",
    "is_domain",
    "is_guid",
    "load_client_certificate",
    "read_config",
    "resolve_settings",
    "save_profile",
    "set_default_profile",
    "state_dir",
    "validate",
    "write_config",
]

HOME_ENV = "GRAPHKIT_HOME"
PROFILE_ENV = "GRAPHKIT_PROFILE"
PASSPHRASE_ENV = "GRAPHKIT_KEY_PASSPHRASE"  # the same variable the certificate commands read
CONFIG_FILE = "config.toml"
APP_NAME = "graphkit"

# login host, Graph host: PROTOCOL.md §5.
CLOUDS: dict[str, tuple[str, str]] = {
    "global": ("https://login.microsoftonline.com", "https://graph.microsoft.com"),
    "usgov": ("https://login.microsoftonline.us", "https://graph.microsoft.us"),
    "usgovdod": ("https://login.microsoftonline.us", "https://dod-graph.microsoft.us"),
    "china": ("https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn"),
}
# Names other tools use for the same clouds (Azure CLI, azure-identity, PowerShell).
_CLOUD_ALIASES = {
    "public": "global",
    "azurecloud": "global",
    "azurepubliccloud": "global",
    "gcchigh": "usgov",
    "azureusgovernment": "usgov",
    "usgovernment": "usgov",
    "dod": "usgovdod",
    "azurechinacloud": "china",
}
DEFAULT_CLOUD = "global"

# Profile keys, in the order `config show` lists them.
PROFILE_KEYS = (
    "tenant",
    "client_id",
    "certificate",
    "private_key",
    "passphrase_file",
    "cloud",
    "authority_host",
    "graph_url",
    "ca_bundle",
)
_PATH_KEYS = frozenset({"certificate", "private_key", "passphrase_file", "ca_bundle"})

# Environment variables, highest priority first where two feed one setting.
ENV_VARS: dict[str, tuple[str, ...]] = {
    "tenant": ("AZURE_TENANT_ID",),
    "client_id": ("AZURE_CLIENT_ID",),
    "certificate": ("AZURE_CLIENT_CERTIFICATE_PATH",),
    "passphrase": ("AZURE_CLIENT_CERTIFICATE_PASSWORD", PASSPHRASE_ENV),
    "cloud": ("GRAPHKIT_CLOUD",),
    "authority_host": ("AZURE_AUTHORITY_HOST",),
    "graph_url": ("GRAPHKIT_GRAPH_URL",),
    "ca_bundle": ("GRAPHKIT_CA_BUNDLE",),
}

# Source ranks: a cloud chosen at a higher level replaces hosts chosen at a lower one.
_RANK = {"flag": 3, "env": 2, "profile": 1, "default": 0}

# Warn this many days before the client certificate expires (issue 5).
EXPIRY_WARNING_DAYS = 30

# Shortest RSA key validate() accepts: crypto.MIN_RSA_BITS, repeated here so that a
# check served by certificate_facts() does not import cryptography (a test keeps them equal).
MIN_RSA_BITS = 2048

# Results of full certificate checks, keyed by a digest of the files checked (in the
# state directory, mode 0600). Newest first; older entries are dropped.
CERTIFICATE_CHECKS_FILE = "certificate_checks.json"
_CHECKS_VERSION = 1
_MAX_CHECKS = 16

_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Compiled on first use (a millisecond): tenants are usually GUIDs.
_DOMAIN_PATTERN = (
    r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def is_domain(value: str) -> bool:
    return bool(re.match(_DOMAIN_PATTERN, value, re.IGNORECASE))


# ------------------------------------------------------------------ directories


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _home(env: Mapping[str, str] | None) -> Path | None:
    value = _env(env).get(HOME_ENV, "").strip()
    return Path(value).expanduser() if value else None


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """``GRAPHKIT_HOME``, else the platform's user config directory for graphkit."""
    home = _home(env)
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False, roaming=True))


def config_path(env: Mapping[str, str] | None = None) -> Path:
    return config_dir(env) / CONFIG_FILE


def state_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where the token cache and msal's HTTP cache live (not created here).

    ``GRAPHKIT_HOME`` when set, so one variable moves all state; otherwise the
    platform's user state directory.
    """
    home = _home(env)
    if home is not None:
        return home
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME, appauthor=False))


# ------------------------------------------------------------------ config file


def read_config(path: Path | None = None) -> dict[str, Any]:
    """The parsed config file, or an empty one if it does not exist.

    Raises:
        ConfigError: the file is not valid TOML or has the wrong shape.
    """
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    _check_private_config(path)
    import tomllib  # only when there is a file to parse

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc})", "fix or delete it"
        ) from None
    profiles = data.get("profiles", {})
    if not isinstance(profiles, dict) or not all(isinstance(p, dict) for p in profiles.values()):
        raise ConfigError(
            f"config file {path}: 'profiles' must hold tables such as [profiles.\"work\"]",
            "fix or delete it",
        )
    default = data.get("default_profile")
    if default is not None and not isinstance(default, str):
        raise ConfigError(f"config file {path}: default_profile must be a string")
    return data


def _check_private_config(path: Path) -> None:
    """Refuse a config file others could change: its graph_url decides where tokens go.

    The file (a symbolic link is followed: dotfiles are often linked) and the directory
    holding it must belong to this user (or root) and not be writable by group or others.

    Raises:
        ConfigError: with the chmod that fixes it.
    """
    from graphkit.files import not_private

    problem = not_private(path)
    if problem:
        raise ConfigError(
            f"config file {path} is {problem}: others could send your tokens elsewhere",
            f"run chmod 600 {path} (it must be yours)",
        )
    directory = path.parent
    problem = not_private(directory)
    if problem:
        raise ConfigError(
            f"the directory of config file {path} is {problem}: others could replace it",
            f"run chmod 700 {directory} (it must be yours), or set {HOME_ENV} elsewhere",
        )


def _toml_string(value: str) -> str:
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return _toml_string(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    raise ConfigError(f"cannot store a {type(value).__name__} in the config file ({where})")


def dump_config(data: Mapping[str, Any]) -> str:
    """TOML text for the config: top-level scalars, then one table per profile.

    Only the shapes graphkit itself writes are supported (scalars, lists of scalars,
    and ``profiles.NAME`` tables of those); anything else is refused, not mangled.
    """
    lines = [
        "# graphkit configuration (`graphkit config set` rewrites this file;",
        "#  comments are not kept).",
    ]
    for key, value in data.items():
        if key == "profiles":
            continue
        if isinstance(value, dict):
            raise ConfigError(f"cannot store table {key!r} in the config file")
        lines.append(f"{_toml_key(key)} = {_toml_value(value, key)}")
    for name, profile in (data.get("profiles") or {}).items():
        lines.append("")
        lines.append(f"[profiles.{_toml_key(name)}]")
        for key, value in profile.items():
            if value is None:
                continue
            if isinstance(value, dict):
                raise ConfigError(f"cannot store table {key!r} in profile {name!r}")
            lines.append(f"{_toml_key(key)} = {_toml_value(value, f'{name}.{key}')}")
    return "\n".join(lines) + "\n"


def write_config(data: Mapping[str, Any], path: Path | None = None) -> Path:
    """Write the config file atomically (mode 0600, directory 0700)."""
    from graphkit.files import PRIVATE, atomic_write, not_private

    path = path or config_path()
    text = dump_config(data)
    problem = not_private(path.parent)
    if problem:
        raise ConfigError(
            f"not writing config file {path}: its directory is {problem}",
            f"run chmod 700 {path.parent} (it must be yours), or set {HOME_ENV} elsewhere",
        )
    return atomic_write(path, text.encode("utf-8"), mode=PRIVATE, force=True)


def _check_profile_name(name: str) -> None:
    if not _PROFILE_NAME.match(name):
        raise ConfigError(
            f"invalid profile name {name!r}",
            "use letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit",
        )


def save_profile(
    name: str,
    values: Mapping[str, Any],
    *,
    unset: tuple[str, ...] | list[str] = (),
    make_default: bool | None = None,
    path: Path | None = None,
) -> dict[str, Any]:
    """Create or update profile ``name`` with ``values`` (None values are left alone).

    Values are checked (:func:`check_values`) and paths made absolute before writing.
    The first profile saved becomes the default unless ``make_default`` is False.

    Returns:
        The profile as written.
    """
    _check_profile_name(name)
    path = path or config_path()
    unknown = [k for k in [*values, *unset] if k not in PROFILE_KEYS]
    if unknown:
        raise ConfigError(
            f"unknown profile key {unknown[0]!r}", f"known keys: {', '.join(PROFILE_KEYS)}"
        )
    clean: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        value = str(value).strip()
        if key in _PATH_KEYS:
            value = str(Path(value).expanduser().resolve())
        clean[key] = value
    check_values(clean, where=f"profile {name!r}")
    data = read_config(path)
    profiles = dict(data.get("profiles") or {})
    profile = dict(profiles.get(name) or {})
    profile.update(clean)
    for key in unset:
        profile.pop(key, None)
    profiles[name] = profile
    data = dict(data)
    data["profiles"] = profiles
    if make_default or (make_default is None and not data.get("default_profile")):
        data["default_profile"] = name
    write_config(data, path)
    return profile


def set_default_profile(name: str, path: Path | None = None) -> None:
    path = path or config_path()
    data = read_config(path)
    profiles = data.get("profiles") or {}
    if name not in profiles:
        raise ConfigError(f"no profile named {name!r} in {path}", _known_profiles_hint(profiles))
    data = dict(data)
    data["default_profile"] = name
    write_config(data, path)


def delete_profile(name: str, path: Path | None = None) -> None:
    path = path or config_path()
    data = dict(read_config(path))
    profiles = dict(data.get("profiles") or {})
    if name not in profiles:
        raise ConfigError(f"no profile named {name!r} in {path}", _known_profiles_hint(profiles))
    del profiles[name]
    data["profiles"] = profiles
    if data.get("default_profile") == name:
        data.pop("default_profile")
    write_config(data, path)


def _known_profiles_hint(profiles: Mapping[str, Any]) -> str:
    if not profiles:
        return (
            "create one with "
            "`graphkit config set NAME --tenant ... --client-id ... --certificate ...`"
        )
    return f"known profiles: {', '.join(sorted(profiles))} (see `graphkit config list`)"


# -------------------------------------------------------------------- settings


@dataclass
class Settings:
    """Resolved connection settings and where each came from."""

    profile: str | None = None
    tenant: str | None = None
    client_id: str | None = None
    certificate: Path | None = None
    private_key: Path | None = None
    passphrase: bytes | None = field(default=None, repr=False)
    cloud: str = DEFAULT_CLOUD
    authority_host: str = CLOUDS[DEFAULT_CLOUD][0]
    graph_url: str = CLOUDS[DEFAULT_CLOUD][1]
    ca_bundle: str | None = None
    sources: dict[str, str] = field(default_factory=dict)
    config_file: Path | None = None
    # The certificate once loaded (load_client_certificate memoises it here), or what
    # an earlier full check of the same files established (certificate_facts).
    _certificate: ClientCertificate | None = field(default=None, repr=False, compare=False)
    _facts: CertificateFacts | None = field(default=None, repr=False, compare=False)

    @property
    def scope(self) -> str:
        return f"{self.graph_url}/.default"

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant}"

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, display value, source) rows for `config show`; never a secret."""
        rows: list[tuple[str, str, str]] = [
            ("profile", self.profile or "(none)", self.source("profile"))
        ]
        for name in (
            "tenant",
            "client_id",
            "certificate",
            "private_key",
            "cloud",
            "authority_host",
            "graph_url",
            "ca_bundle",
        ):
            value = getattr(self, name)
            if value is None and name == "ca_bundle":
                shown = "(system default)"
            else:
                shown = "(not set)" if value is None else str(value)
            rows.append((name, shown, self.source(name) if value is not None else "-"))
        rows.append(
            (
                "passphrase",
                "(set)" if self.passphrase else "(not set)",
                self.source("passphrase") if self.passphrase else "-",
            )
        )
        rows.append(("scope", self.scope, "derived from graph_url"))
        return rows


def normalize_cloud(value: str) -> str:
    key = value.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    key = _CLOUD_ALIASES.get(key, key)
    if key not in CLOUDS:
        raise ConfigError(f"unknown cloud {value!r}", f"use one of: {', '.join(CLOUDS)}")
    return key


def _origin(value: str, what: str, *, allow_path: bool = False) -> tuple[str, str]:
    """``https://host[:port]`` (lower-case, no trailing slash) and the remaining path."""
    raw = value.strip()
    if not raw:
        raise ConfigError(f"{what} is empty")
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a valid URL") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"{what} {value!r} has no host name")
    loopback = host in {"localhost", "127.0.0.1", "::1"}
    if parts.scheme.lower() != "https" and not (parts.scheme.lower() == "http" and loopback):
        raise ConfigError(f"{what} {value!r} must use https", "tokens are only ever sent over TLS")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(f"{what} {value!r} must not carry a query, fragment or user name")
    path = parts.path.rstrip("/")
    if path and not allow_path:
        raise ConfigError(
            f"{what} {value!r} must be a host name or https://host[:port] without a path",
            "put the tenant in the tenant setting, not in the URL",
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme.lower()}://{netloc}", path


def normalize_authority_host(value: str) -> str:
    return _origin(value, "authority host")[0]


def normalize_graph_url(value: str) -> str:
    origin, path = _origin(value, "Graph URL", allow_path=True)
    # Be lenient about a pasted version segment: the API version is chosen per request.
    if path.lower() in {"/v1.0", "/beta"}:
        path = ""
    if path:
        raise ConfigError(
            f"Graph URL {value!r} must be https://host[:port] without a path",
            "for example https://graph.microsoft.com",
        )
    return origin


def check_values(values: Mapping[str, Any], where: str = "settings") -> None:
    """Check the format of the values given (those present), one-line errors."""
    tenant = values.get("tenant")
    if tenant is not None:
        _check_tenant(str(tenant))
    client_id = values.get("client_id")
    if client_id is not None:
        _check_client_id(str(client_id))
    if values.get("cloud") is not None:
        normalize_cloud(str(values["cloud"]))
    if values.get("authority_host") is not None:
        normalize_authority_host(str(values["authority_host"]))
    if values.get("graph_url") is not None:
        normalize_graph_url(str(values["graph_url"]))


def _check_tenant(tenant: str) -> str:
    if not (is_guid(tenant) or is_domain(tenant)):
        raise ConfigError(
            f"tenant {tenant!r} is neither a GUID nor a domain name",
            "use the Directory (tenant) ID from the portal, or a domain such as "
            "contoso.onmicrosoft.com",
        )
    return tenant


def _check_client_id(client_id: str) -> str:
    if not is_guid(client_id):
        raise ConfigError(
            f"client id {client_id!r} is not a GUID",
            "use the Application (client) ID from the app registration's Overview page",
        )
    return client_id


def _select_profile(
    profile: str | None, env: Mapping[str, str], data: Mapping[str, Any], path: Path
) -> tuple[str | None, str, dict[str, Any]]:
    profiles = data.get("profiles") or {}
    if profile:
        name, source, explicit = profile, "flag", True
    elif env.get(PROFILE_ENV, "").strip():
        name, source, explicit = env[PROFILE_ENV].strip(), f"env:{PROFILE_ENV}", True
    elif data.get("default_profile"):
        name, source, explicit = data["default_profile"], f"default_profile in {path}", False
    else:
        return None, "default", {}
    if name not in profiles:
        if explicit or profiles:
            raise ConfigError(
                f"no profile named {name!r} in {path}", _known_profiles_hint(profiles)
            )
        return None, "default", {}
    values = dict(profiles[name])
    unknown = [k for k in values if k not in PROFILE_KEYS]
    if unknown:
        raise ConfigError(
            f"profile {name!r} in {path} has unknown key {unknown[0]!r}",
            f"known keys: {', '.join(PROFILE_KEYS)}",
        )
    for key, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"profile {name!r} in {path}: {key} must be a string")
    return name, source, values


def _read_passphrase_file(path: Path, source: str) -> bytes:
    from graphkit.files import read_passphrase_file

    try:
        raw = read_passphrase_file(path)
    except InputError as exc:
        raise ConfigError(f"{exc.message} (set by {source})", exc.hint) from None
    lines = raw.splitlines()
    if not lines or not lines[0]:
        raise ConfigError(f"passphrase file {path} is empty", "put the passphrase on line 1")
    return lines[0]


def resolve_settings(
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Merge flags (``overrides``) > environment > profile, recording each source.

    Args:
        profile: the profile named on the command line (else ``GRAPHKIT_PROFILE``,
            else the config file's default profile, else none).
        overrides: values from flags, keyed by setting name (``tenant``,
            ``client_id``, ``certificate``, ``private_key``, ``passphrase`` (bytes),
            ``passphrase_file``, ``cloud``, ``authority_host``, ``graph_url``,
            ``ca_bundle``); None values are ignored.
        env: the environment (default ``os.environ``).

    Returns:
        Settings with values normalised; formats are checked, files are not (see
        :func:`validate`).

    Raises:
        ConfigError: a named profile does not exist, or a value is malformed.
    """
    env = _env(env)
    path = config_path(env)
    data = read_config(path)
    name, profile_source, prof = _select_profile(profile, env, data, path)
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None and v != ""}
    unknown = [k for k in overrides if k not in PROFILE_KEYS and k != "passphrase"]
    if unknown:
        raise ConfigError(f"unknown setting {unknown[0]!r}")

    raw: dict[str, Any] = {}
    sources: dict[str, str] = {}
    ranks: dict[str, int] = {}

    def put(key: str, value: Any, source: str, rank: str) -> None:
        raw[key] = value
        sources[key] = source
        ranks[key] = _RANK[rank]

    # Lowest first; later layers overwrite.
    for key, value in prof.items():
        if not value.strip():
            continue
        if key in _PATH_KEYS:
            p = Path(value).expanduser()
            value = str(p if p.is_absolute() else (path.parent / p))
        put(key, value, f"profile:{name} ({path})", "profile")
    for key, names in ENV_VARS.items():
        for var in names:
            value = env.get(var, "")
            if value.strip():
                put(key, value.strip() if key != "passphrase" else value, f"env:{var}", "env")
                break
    for key, value in overrides.items():
        put(key, value, "flag", "flag")

    # A passphrase file stands for the passphrase at its own level.
    if "passphrase_file" in raw and ranks["passphrase_file"] > ranks.get("passphrase", -1):
        pf_source = sources["passphrase_file"]
        raw["passphrase"] = _read_passphrase_file(Path(str(raw["passphrase_file"])), pf_source)
        sources["passphrase"] = pf_source
        ranks["passphrase"] = ranks["passphrase_file"]

    def checked(key: str, fn: Any) -> Any:
        try:
            return fn(str(raw[key]).strip())
        except ConfigError as exc:
            src = sources.get(key, "default")
            raise ConfigError(f"{exc.message} (set by {src})", exc.hint) from None

    settings = Settings(profile=name, config_file=path)
    if name is not None:
        sources["profile"] = profile_source
    if "tenant" in raw:
        settings.tenant = checked("tenant", _check_tenant)
    if "client_id" in raw:
        settings.client_id = checked("client_id", _check_client_id)
    for key in ("certificate", "private_key"):
        if key in raw:
            setattr(settings, key, Path(str(raw[key])).expanduser())
    if "ca_bundle" in raw:
        settings.ca_bundle = str(Path(str(raw["ca_bundle"])).expanduser())
    if "passphrase" in raw:
        value = raw["passphrase"]
        settings.passphrase = value if isinstance(value, bytes) else str(value).encode()

    cloud_rank = ranks.get("cloud", 0)
    if "cloud" in raw:
        settings.cloud = checked("cloud", normalize_cloud)
    elif "authority_host" in raw:
        # AZURE_AUTHORITY_HOST=login.microsoftonline.us implies that cloud's Graph host.
        host = checked("authority_host", normalize_authority_host)
        for cloud, (login, _graph) in CLOUDS.items():
            if host == login:
                settings.cloud = cloud
                sources["cloud"] = f"derived from authority_host ({sources['authority_host']})"
                break
    sources.setdefault("cloud", "default")
    login, graph = CLOUDS[settings.cloud]
    if "authority_host" in raw and ranks["authority_host"] >= cloud_rank:
        settings.authority_host = checked("authority_host", normalize_authority_host)
    else:
        settings.authority_host = login
        sources["authority_host"] = f"default (cloud {settings.cloud})"
    if "graph_url" in raw and ranks["graph_url"] >= cloud_rank:
        settings.graph_url = checked("graph_url", normalize_graph_url)
    else:
        settings.graph_url = graph
        sources["graph_url"] = f"default (cloud {settings.cloud})"
    settings.sources = sources
    return settings


def validate(
    settings: Settings, *, now: dt.datetime | None = None, cache_dir: Path | None = None
) -> None:
    """Check that ``settings`` can authenticate: everything present and well-formed,
    the certificate readable, current, RSA, and matching its key.

    Args:
        settings: resolved settings.
        now: check the certificate's dates against this time (always a full check).
        cache_dir: where earlier full checks are recorded (normally
            :func:`state_dir`): files byte-identical to ones checked before are not
            parsed again (see :func:`certificate_facts`). None: always a full check.

    Raises:
        ConfigError: with a one-line message naming the setting and its source.
        CryptoError: the certificate or key file is unreadable or malformed.
    """
    missing = [
        (key, hint)
        for key, hint in (
            ("tenant", "--tenant, AZURE_TENANT_ID"),
            ("client_id", "--client-id, AZURE_CLIENT_ID"),
            ("certificate", "--certificate, AZURE_CLIENT_CERTIFICATE_PATH"),
        )
        if getattr(settings, key) is None
    ]
    if missing:
        key, hint = missing[0]
        where = f"profile {settings.profile!r}" if settings.profile else "a profile"
        raise ConfigError(
            f"no {key} configured",
            f"give {hint}, or add it to {where} with "
            f"`graphkit config set {settings.profile or 'NAME'} --{key.replace('_', '-')} ...`",
        )
    assert settings.tenant is not None and settings.client_id is not None
    try:
        _check_tenant(settings.tenant)
        _check_client_id(settings.client_id)
    except ConfigError as exc:
        key = "tenant" if "tenant" in exc.message else "client_id"
        raise ConfigError(f"{exc.message} (set by {settings.source(key)})", exc.hint) from None
    if settings.ca_bundle is not None and not Path(settings.ca_bundle).is_file():
        raise ConfigError(
            f"CA bundle {settings.ca_bundle} (set by {settings.source('ca_bundle')}) "
            "does not exist",
            "give the PEM file of the CA that signed the servers' certificates",
        )
    if cache_dir is not None and now is None:
        facts = certificate_facts(settings, cache_dir=cache_dir)
        if facts.key_bits >= MIN_RSA_BITS:
            return
    cert = load_client_certificate(settings, now=now)
    from graphkit import crypto

    crypto.require_rsa(cert.certificate.public_key(), f"the key of certificate {cert.path}")


# ------------------------------------------------------------------ certificate


@dataclass(frozen=True)
class ClientCertificate:
    """The client certificate and its key, as msal needs them (in memory only)."""

    path: Path
    certificate: Any  # cryptography x509.Certificate
    certificate_pem: str
    private_key_pem: str = field(repr=False)  # unencrypted PKCS#8: never written anywhere
    sha1: str
    key_bits: int
    form: str  # pem | der | pfx
    holds_key: bool  # the certificate file itself carries the key (combined PEM / PFX)

    @property
    def not_before(self) -> dt.datetime:
        value: dt.datetime = self.certificate.not_valid_before_utc
        return value

    @property
    def not_after(self) -> dt.datetime:
        value: dt.datetime = self.certificate.not_valid_after_utc
        return value

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400


class CertificateFacts(NamedTuple):
    """What a full check (:func:`load_client_certificate`) established about the
    certificate and key files: enough to check them again and to warn of expiry.

    Holds nothing secret: no key material, no passphrase. (A NamedTuple: making a
    frozen dataclass costs a millisecond at import, on every run.)
    """

    path: Path
    sha1: str
    not_before: dt.datetime
    not_after: dt.datetime
    key_bits: int
    holds_key: bool

    def days_left(self, now: dt.datetime | None = None) -> float:
        now = now or dt.datetime.now(dt.UTC)
        return (self.not_after - now).total_seconds() / 86400


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:RSA |EC |DSA |ENCRYPTED )?PRIVATE KEY)-----.*?-----END \1-----\r?\n?",
    re.DOTALL,
)


def _split_key_block(data: bytes) -> tuple[bytes, bytes | None]:
    """(the PEM without its private key block, that block) when there is one."""
    if b"-----BEGIN" not in data:
        return data, None
    match = _KEY_BLOCK.search(data)
    if match is None:
        return data, None
    return data[: match.start()] + data[match.end() :], match.group(0)


def _load_key(data: bytes, passphrase: bytes | None, source: str) -> Any:
    """Load a private key, fast.

    cryptography's RSA consistency check costs ~40 ms on every run; it guards against
    hostile or corrupted keys, and this is the user's own key, whose public half is
    compared with the certificate's below (a corrupt key is refused by the identity
    platform anyway). Anything unusual goes through ``crypto.load_private_key`` for its
    precise messages (encrypted without passphrase, wrong passphrase, DER...).
    """
    from cryptography.hazmat.primitives import serialization

    from graphkit import crypto

    match = _KEY_BLOCK.search(data) if b"-----BEGIN" in data else None
    if match is not None:
        block = match.group(0)
        encrypted = b"ENCRYPTED" in block
        if passphrase or not encrypted:
            try:
                return serialization.load_pem_private_key(
                    block,
                    password=passphrase if encrypted else None,
                    unsafe_skip_rsa_key_validation=True,
                )
            except Exception:
                pass
    return crypto.load_private_key(data, passphrase, source=source)


def _passphrase_advice(exc: CryptoError, settings: Settings) -> CryptoError:
    """The crypto layer's passphrase hints name the certificate commands' options;
    here the passphrase comes from the connection settings."""
    if "passphrase" not in exc.message and "encrypted" not in exc.message:
        return exc
    if settings.passphrase is None:
        hint = (
            "give it with --passphrase-file, AZURE_CLIENT_CERTIFICATE_PASSWORD or "
            f"{PASSPHRASE_ENV} (or passphrase_file in the profile)"
        )
    else:
        hint = f"check the passphrase (set by {settings.source('passphrase')})"
    return CryptoError(exc.message, hint)


def load_client_certificate(
    settings: Settings, *, now: dt.datetime | None = None
) -> ClientCertificate:
    """Open the certificate (and key) ``settings`` name; memoised on ``settings``.

    Accepts a certificate with a separate key, a combined key+certificate PEM, or a
    PFX; an encrypted key or PFX is opened with ``settings.passphrase``.

    Raises:
        ConfigError: no certificate configured, file missing, no key, key mismatch,
            expired or not yet valid.
        CryptoError: unreadable or malformed file, wrong or missing passphrase,
            non-RSA or short key.
    """
    if settings._certificate is not None and now is None:
        return settings._certificate
    from graphkit import crypto
    from graphkit.files import read_bytes

    if settings.certificate is None:
        raise ConfigError(
            "no certificate configured",
            "give --certificate, AZURE_CLIENT_CERTIFICATE_PATH, or set it in the profile",
        )
    cert_path = settings.certificate
    src = settings.source("certificate")
    try:
        data = read_bytes(cert_path, "certificate file")
    except InputError as exc:
        raise ConfigError(
            f"certificate file {cert_path} (set by {src}) cannot be read: {exc.message}",
            exc.hint or "check the path",
        ) from None
    cert_part, key_block = _split_key_block(data)
    if b"-----BEGIN CERTIFICATE-----" not in cert_part:
        cert_part, key_block = data, None  # let crypto explain what the file holds
    try:
        bundle = crypto.load_certificate_bundle(
            cert_part, settings.passphrase, source=f"certificate {cert_path}"
        )
        key = bundle.key
        if key_block is not None and settings.private_key is None:
            key = _load_key(key_block, settings.passphrase, f"certificate {cert_path}")
    except CryptoError as exc:
        raise _passphrase_advice(exc, settings) from None
    holds_key = key is not None
    if settings.private_key is not None:
        key_src = settings.source("private_key")
        try:
            key_data = read_bytes(settings.private_key, "private key file")
        except InputError as exc:
            raise ConfigError(
                f"private key {settings.private_key} (set by {key_src}) cannot be read: "
                f"{exc.message}",
                exc.hint or "check the path",
            ) from None
        try:
            key = _load_key(key_data, settings.passphrase, f"private key {settings.private_key}")
        except CryptoError as exc:
            raise _passphrase_advice(exc, settings) from None
    cert = bundle.certificate
    if key is not None and not crypto.key_matches_certificate(key, cert):
        # In a combined file the leaf is the certificate matching the key.
        cert = next((c for c in bundle.chain if crypto.key_matches_certificate(key, c)), cert)
    if key is None:
        raise ConfigError(
            f"certificate {cert_path} holds no private key",
            "give the key with --private-key (or private_key in the profile), or use a "
            "combined key+certificate PEM or a PFX",
        )
    tp = crypto.thumbprints(cert)
    if not crypto.key_matches_certificate(key, cert):
        key_file = settings.private_key or cert_path
        raise ConfigError(
            f"private key {key_file} does not match certificate {cert_path} (SHA-1 {tp['sha1']})",
            "give the key the certificate was made from",
        )
    from cryptography.hazmat.primitives.asymmetric import rsa

    if not isinstance(key, rsa.RSAPrivateKey):
        crypto.require_rsa(key, f"the key for certificate {cert_path}")  # raises
    # The size is checked by validate(): loaded alone, a short key is left for the
    # identity platform to refuse (AADSTS50032), as it would.
    when = now or _now()
    if when > cert.not_valid_after_utc:
        raise ConfigError(
            f"certificate {cert_path} (SHA-1 {tp['sha1']}) expired on "
            f"{cert.not_valid_after_utc:%Y-%m-%d}",
            "make a new one with `graphkit selfsign` and upload it to the app registration",
        )
    if when < cert.not_valid_before_utc:
        raise ConfigError(
            f"certificate {cert_path} is not valid until "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            "check this computer's clock, or wait",
        )
    try:
        loaded = ClientCertificate(
            path=cert_path,
            certificate=cert,
            certificate_pem=crypto.dump_certificate(cert).decode("ascii"),
            private_key_pem=crypto.dump_private_key(key).decode("ascii"),
            sha1=tp["sha1"],
            key_bits=int(key.key_size),
            form=bundle.form,
            holds_key=holds_key or key_block is not None,
        )
    except ValueError as exc:  # pragma: no cover - cryptography refusing to serialise
        raise CryptoError(f"cannot use the key for {cert_path}: {exc}") from None
    if now is None:
        settings._certificate = loaded
    return loaded


def _files_digest(settings: Settings) -> str | None:
    """SHA-256 over the certificate file and the separate key file (if any), or None
    when one cannot be read (the full check then says why)."""
    import hashlib

    digest = hashlib.sha256(b"graphkit certificate check v1\0")
    try:
        for path in (settings.certificate, settings.private_key):
            if path is None:
                digest.update(b"-")
                continue
            data = Path(path).read_bytes()
            digest.update(b"F%d:" % len(data))
            digest.update(data)
    except OSError:
        return None
    return digest.hexdigest()


def _read_checks(path: Path) -> dict[str, Any]:
    import json

    from graphkit.files import read_private

    raw = read_private(path)  # planted records would vouch for a certificate unchecked
    if raw is None:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    if not isinstance(data, dict) or data.get("version") != _CHECKS_VERSION:
        return {}
    checks = data.get("checks")
    return checks if isinstance(checks, dict) else {}


def _facts_from_record(record: Any, path: Path) -> CertificateFacts | None:
    if not isinstance(record, dict):
        return None
    try:
        return CertificateFacts(
            path=path,
            sha1=str(record["sha1"]),
            not_before=dt.datetime.fromtimestamp(float(record["not_before"]), dt.UTC),
            not_after=dt.datetime.fromtimestamp(float(record["not_after"]), dt.UTC),
            key_bits=int(record["key_bits"]),
            holds_key=bool(record["holds_key"]),
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        return None


def _record_check(cache_dir: Path, digest: str, cert: ClientCertificate) -> None:
    """Add ``cert``'s facts under ``digest``; failures are ignored (it is a cache)."""
    import json

    from graphkit.files import PRIVATE, atomic_write, ensure_private_dir, not_private

    if not_private(cache_dir):
        return  # the credential refuses this directory (see auth._private_dir)
    path = cache_dir / CERTIFICATE_CHECKS_FILE
    record = {
        "sha1": cert.sha1,
        "not_before": cert.not_before.timestamp(),
        "not_after": cert.not_after.timestamp(),
        "key_bits": cert.key_bits,
        "holds_key": cert.holds_key,
    }
    checks: dict[str, Any] = {digest: record}
    for key, value in _read_checks(path).items():
        if key != digest and len(checks) < _MAX_CHECKS:
            checks[key] = value
    text = json.dumps({"version": _CHECKS_VERSION, "checks": checks}, indent=1)
    try:
        ensure_private_dir(cache_dir)
        atomic_write(path, text.encode("utf-8"), mode=PRIVATE, force=True)
    except Exception:  # a lost record costs one full check next time
        pass


def certificate_facts(
    settings: Settings, *, cache_dir: Path | None = None
) -> ClientCertificate | CertificateFacts:
    """The settings' certificate, checked as :func:`load_client_certificate` checks it.

    When the certificate file (and the separate key file, if any) are byte for byte
    the ones an earlier full check recorded in ``cache_dir``, and the certificate's
    dates still hold, that check's facts are returned and nothing is parsed.
    Otherwise the files are loaded in full (raising as
    :func:`load_client_certificate` does) and, unless they changed meanwhile, the
    result is recorded. A configured passphrase always means a full load: only
    decrypting the key tells whether it is right, and no verifier of it is stored.

    Args:
        settings: resolved settings.
        cache_dir: where checks are recorded (None: always a full load, no files).

    Raises:
        ConfigError, CryptoError: as :func:`load_client_certificate`.
    """
    if settings._certificate is not None:
        return settings._certificate
    if cache_dir is None or settings.passphrase is not None or settings.certificate is None:
        return load_client_certificate(settings)
    facts = settings._facts
    if facts is not None and facts.not_before <= _now() <= facts.not_after:
        return facts
    digest = _files_digest(settings)
    if digest is not None:
        path = cache_dir / CERTIFICATE_CHECKS_FILE
        facts = _facts_from_record(_read_checks(path).get(digest), settings.certificate)
        if facts is not None and facts.not_before <= _now() <= facts.not_after:
            settings._facts = facts
            return facts
    cert = load_client_certificate(settings)
    if digest is not None and _files_digest(settings) == digest:
        _record_check(cache_dir, digest, cert)
    return cert


def expiry_warning(
    cert: ClientCertificate | CertificateFacts,
    *,
    now: dt.datetime | None = None,
    days: int = EXPIRY_WARNING_DAYS,
) -> str | None:
    """A warning when ``cert`` expires within ``days`` days, else None."""
    left = cert.days_left(now)
    if left >= days:
        return None
    whole = max(0, int(left))
    when = "today" if whole == 0 else "in 1 day" if whole == 1 else f"in {whole} days"
    return (
        f"certificate {cert.path} (SHA-1 {cert.sha1}) expires {when} "
        f"({cert.not_after:%Y-%m-%d %H:%M} UTC): make a new one with `graphkit selfsign` "
        "and upload it to the app registration before then"
    )
