"""Where settings come from: profiles, the environment and flags, and their checks.

Settings come from three layers, highest first: command-line flags, environment
variables (azure-identity's names, so existing setups work unchanged), and a profile
in ``config.toml``. :func:`resolve_settings` merges them and records where each value
came from; :func:`validate` turns anything unusable into a one-line
:class:`~graphkit.errors.ConfigError` (the certificate itself is checked by
:mod:`graphkit.certificates`). The checks of a tenant, a client id and a profile
name live here, once: :func:`check_tenant`, :func:`check_client_id` and
:func:`check_profile_name` serve the profile, the flags, the environment and
``init``'s prompts alike.

``GRAPHKIT_HOME`` moves everything (the config file, the token cache and msal's
HTTP cache) into one directory; otherwise the config file lives in the platform's
user config directory and the caches in its user state directory (platformdirs).

The config file is TOML (written with tomli-w)::

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
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from graphkit._record import Record
from graphkit.errors import ConfigError, InputError

__all__ = [
    "CLOUDS",
    "ENV_VARS",
    "PROFILE_KEYS",
    "Settings",
    "check_client_id",
    "check_object_id",
    "check_profile_name",
    "check_tenant",
    "config_dir",
    "config_path",
    "delete_profile",
    "is_domain",
    "is_guid",
    "read_config",
    "resolve_settings",
    "save_profile",
    "set_default_profile",
    "source_rank",
    "state_dir",
    "validate",
    "write_config",
]

HOME_ENV = "GRAPHKIT_HOME"
PROFILE_ENV = "GRAPHKIT_PROFILE"
# The same variable the certificate commands read.
PASSPHRASE_ENV = "GRAPHKIT_KEY_PASSPHRASE"  # nosec B105  # the name of a variable, not its value
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
    "object_id",
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


def source_rank(source: str) -> int:
    """The rank of a source as :class:`Settings` records it (``env:AZURE_...`` is env)."""
    return _RANK.get(source.split(":", 1)[0], 0)


_GUID = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
# Compiled on first use (a millisecond): tenants are usually GUIDs.
_DOMAIN_PATTERN = (
    r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$"
)
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


# ------------------------------------------------------------------- validation


def is_guid(value: str) -> bool:
    return bool(_GUID.match(value))


def is_domain(value: str) -> bool:
    return bool(re.match(_DOMAIN_PATTERN, value, re.IGNORECASE))


def check_tenant(value: str | None) -> str:
    """The tenant (a GUID or a domain), stripped and lower-cased: the one check every
    caller uses (flags, environment, profile, init's prompt).

    Raises:
        ConfigError: empty, or neither a GUID nor a domain name.
    """
    text = (value or "").strip()
    if not text:
        raise ConfigError(
            "no tenant given",
            "give --tenant with the directory (tenant) ID "
            "or a domain such as contoso.onmicrosoft.com",
        )
    if not (is_guid(text) or is_domain(text)):
        raise ConfigError(
            f"tenant {text!r} is neither a GUID nor a domain name",
            "use the Directory (tenant) ID from the portal, or a domain such as "
            "contoso.onmicrosoft.com",
        )
    return text.lower()


def check_client_id(value: str | None) -> str:
    """The client (application) id, a GUID, stripped and lower-cased.

    Raises:
        ConfigError: empty, or not a GUID.
    """
    text = (value or "").strip()
    if not text:
        raise ConfigError(
            "no client id given", "give --client-id with the Application (client) ID of the app"
        )
    if not is_guid(text):
        raise ConfigError(
            f"client id {text!r} is not a GUID",
            "use the Application (client) ID from the app registration's Overview page",
        )
    return text.lower()


def check_object_id(value: str | None) -> str:
    """The application's OBJECT id (not its client id), a GUID, stripped and lower-cased.

    ``addKey``/``removeKey`` proofs and ``/applications/{id}`` name the app by it
    (PROTOCOL.md §6, §9); the portal shows it on the app's Overview page as "Object ID".

    Raises:
        ConfigError: empty, or not a GUID.
    """
    text = (value or "").strip()
    if not text:
        raise ConfigError(
            "no object id given",
            "give the app's Object ID (the app registration's Overview page, \"Object ID\")",
        )
    if not is_guid(text):
        raise ConfigError(
            f"object id {text!r} is not a GUID",
            "use the Object ID from the app registration's Overview page (not its client id)",
        )
    return text.lower()


def check_profile_name(value: str | None) -> str:
    """A profile name: letters, digits, '.', '_' or '-', up to 64, stripped.

    Raises:
        ConfigError: the name is not usable.
    """
    text = (value or "").strip()
    if not _PROFILE_NAME.match(text):
        raise ConfigError(
            f"invalid profile name {text!r}",
            "use letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit",
        )
    return text


# ------------------------------------------------------------------ directories


def _env(env: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if env is None else env


def _home(env: Mapping[str, str] | None) -> Path | None:
    """``GRAPHKIT_HOME`` as a path, or None when unset.

    Raises:
        ConfigError: it names something other than a directory for files (a file, a
            device, or a place in /proc or /sys, where nothing can be stored).
    """
    value = _env(env).get(HOME_ENV, "").strip()
    if not value:
        return None
    home = Path(value).expanduser()
    problem = _home_problem(home)
    if problem:
        raise ConfigError(
            f"{HOME_ENV}={value if len(value) <= 100 else value[:97] + '...'} {problem}",
            f"set {HOME_ENV} to a directory of yours (created, mode 0700, if missing)",
        )
    return home


def _home_problem(home: Path) -> str | None:
    """Why ``home`` cannot hold graphkit's files, or None."""
    import stat

    try:
        st = os.stat(home)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # too long, a loop, a file where a directory should be...
        return f"is not a usable directory ({exc.strerror})"
    if st is not None and not stat.S_ISDIR(st.st_mode):
        return "is not a directory"
    if os.name == "posix":
        real = os.path.realpath(home)
        for pseudo in ("/proc", "/sys"):
            if real == pseudo or real.startswith(pseudo + "/"):
                return f"is in {pseudo}, a kernel file system that cannot hold files"
    return None


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
    raw = _read_private_config(path)
    if raw is None:
        return {}
    import tomllib  # only when there is a file to parse

    from graphkit.files import parse_nested

    try:
        data = parse_nested(tomllib.loads, raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML ({exc})", "fix or delete it"
        ) from None
    except RecursionError:  # arrays or tables nested thousands deep
        raise ConfigError(
            f"config file {path} is not a graphkit config: its values nest too deeply",
            "fix or delete it",
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


def _read_private_config(path: Path) -> bytes | None:
    """The config file's bytes, refused if others could change it: its graph_url
    decides where tokens go.

    Read once, and judged on what was opened (see :func:`graphkit.files.read_trusted`):
    the file (a symbolic link is followed: dotfiles are often linked), the directory
    holding it and the one holding the file linked to must belong to this user (or
    root) and not be writable by group or others, and no directory above them may let
    others rename what is inside.

    Raises:
        ConfigError: with the chmod that fixes it.
    """
    from graphkit.files import UntrustedPathError, read_trusted

    try:
        return read_trusted(path)
    except UntrustedPathError as exc:
        if not exc.is_directory:
            raise ConfigError(
                f"config file {path} is {exc.problem}: others could send your tokens elsewhere",
                f"run chmod 600 {exc.where} (it must be yours)",
            ) from None
        if exc.where == path.parent:
            raise ConfigError(
                f"the directory of config file {path} is {exc.problem}: others could replace it",
                f"run chmod 700 {exc.where} (it must be yours), or set {HOME_ENV} elsewhere",
            ) from None
        raise ConfigError(
            f"config file {path} lies under {exc.where}, which is {exc.problem}: others "
            "could replace it",
            f"keep it where only you can write (run chmod 700 {exc.where}, or set "
            f"{HOME_ENV} elsewhere)",
        ) from None
    except InputError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.message}", exc.hint) from None


def dump_config(data: Mapping[str, Any]) -> str:
    """TOML text for the config (tomli-w): top-level values, then one table per profile.

    Profile values that are None are left out.
    """
    import tomli_w

    clean: dict[str, Any] = {k: v for k, v in data.items() if k != "profiles"}
    profiles = {
        name: {k: str(v) if isinstance(v, Path) else v for k, v in p.items() if v is not None}
        for name, p in (data.get("profiles") or {}).items()
    }
    if profiles:
        clean["profiles"] = profiles
    header = (
        "# graphkit configuration (`graphkit config set` rewrites this file;\n"
        "#  comments are not kept).\n"
    )
    try:
        return header + tomli_w.dumps(clean)
    except TypeError as exc:
        raise ConfigError(f"cannot store this in the config file: {exc}") from None


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
    name = check_profile_name(name)
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


class Settings(Record):
    """Resolved connection settings and where each came from."""

    _fields = (
        "profile", "tenant", "client_id", "object_id", "certificate", "private_key", "passphrase",
        "cloud", "authority_host", "graph_url", "ca_bundle", "sources", "config_file",
    )  # fmt: skip
    _hidden = frozenset({"passphrase"})

    def __init__(
        self,
        profile: str | None = None,
        tenant: str | None = None,
        client_id: str | None = None,
        object_id: str | None = None,
        certificate: Path | None = None,
        private_key: Path | None = None,
        passphrase: bytes | None = None,
        cloud: str = DEFAULT_CLOUD,
        authority_host: str = CLOUDS[DEFAULT_CLOUD][0],
        graph_url: str = CLOUDS[DEFAULT_CLOUD][1],
        ca_bundle: str | None = None,
        sources: dict[str, str] | None = None,
        config_file: Path | None = None,
    ) -> None:
        self.profile = profile
        self.tenant = tenant
        self.client_id = client_id
        self.object_id = object_id  # the application object's id (app create saves it)
        self.certificate = certificate
        self.private_key = private_key
        self.passphrase = passphrase
        self.cloud = cloud
        self.authority_host = authority_host
        self.graph_url = graph_url
        self.ca_bundle = ca_bundle
        self.sources: dict[str, str] = {} if sources is None else sources
        self.config_file = config_file

    @property
    def scope(self) -> str:
        return f"{self.graph_url}/.default"

    @property
    def authority(self) -> str:
        return f"{self.authority_host}/{self.tenant}"

    def source(self, name: str) -> str:
        return self.sources.get(name, "default")

    def rank(self, name: str) -> int:
        """How high the layer that set ``name`` stands: flag 3, env 2, profile 1, else 0."""
        return source_rank(self.source(name))

    @property
    def key_given_for_certificate(self) -> bool:
        """Whether ``private_key`` was given at (at least) the certificate's own layer.

        A key from a lower layer (the profile's, when the certificate comes from a flag
        or the environment) belonged to another certificate: a combined PEM or a PFX
        then signs with its own key, and the profile's key is used only for a
        certificate file that holds none.
        """
        return self.private_key is not None and self.rank("private_key") >= self.rank("certificate")

    def describe(self) -> list[tuple[str, str, str]]:
        """(setting, display value, source) rows for `config show`; never a secret."""
        rows: list[tuple[str, str, str]] = [
            ("profile", self.profile or "(none)", self.source("profile"))
        ]
        for name in (
            "tenant",
            "client_id",
            "object_id",
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


_URL_HINT = "give a host name or https://host[:port]"


def _origin(value: str, what: str, *, allow_path: bool = False) -> tuple[str, str]:
    """``https://host[:port]`` (lower-case, no trailing slash) and the remaining path."""
    raw = value.strip()
    if not raw:
        raise ConfigError(f"{what} is empty", _URL_HINT)
    if "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a valid URL", _URL_HINT) from None
    host = (parts.hostname or "").lower()
    if not host:
        raise ConfigError(f"{what} {value!r} has no host name", _URL_HINT)
    from graphkit.transport import is_loopback

    loopback = is_loopback(host)
    if parts.scheme.lower() != "https" and not (parts.scheme.lower() == "http" and loopback):
        raise ConfigError(f"{what} {value!r} must use https", "tokens are only ever sent over TLS")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigError(
            f"{what} {value!r} must not carry a query, fragment or user name", _URL_HINT
        )
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
        check_tenant(str(tenant))
    client_id = values.get("client_id")
    if client_id is not None:
        check_client_id(str(client_id))
    object_id = values.get("object_id")
    if object_id is not None:
        check_object_id(str(object_id))
    if values.get("cloud") is not None:
        normalize_cloud(str(values["cloud"]))
    if values.get("authority_host") is not None:
        normalize_authority_host(str(values["authority_host"]))
    if values.get("graph_url") is not None:
        normalize_graph_url(str(values["graph_url"]))


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
    *,
    no_profile: bool = False,
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
        no_profile: read no profile at all (not even the default one): for a profile
            that is about to be made (``app create``).

    Returns:
        Settings with values normalised; formats are checked, files are not (see
        :func:`validate`).

    Raises:
        ConfigError: a named profile does not exist, or a value is malformed.
    """
    env = _env(env)
    path = config_path(env)
    data = read_config(path)
    name, profile_source, prof = (
        (None, "default", {}) if no_profile else _select_profile(profile, env, data, path)
    )
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
        settings.tenant = checked("tenant", check_tenant)
    if "client_id" in raw:
        settings.client_id = checked("client_id", check_client_id)
    if "object_id" in raw:
        settings.object_id = checked("object_id", check_object_id)
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
            parsed again (see :func:`graphkit.certificates.check`). None: always a
            full check.

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
    for key, check in (("tenant", check_tenant), ("client_id", check_client_id)):
        try:
            check(getattr(settings, key))
        except ConfigError as exc:
            raise ConfigError(f"{exc.message} (set by {settings.source(key)})", exc.hint) from None
    if settings.ca_bundle is not None and not Path(settings.ca_bundle).is_file():
        from graphkit.transport import is_loopback

        hosts = (urlsplit(settings.authority_host).hostname, urlsplit(settings.graph_url).hostname)
        if any(is_loopback(h or "") for h in hosts):
            # The emulator keeps its CA in a temporary directory it deletes on exit.
            raise ConfigError(
                f"CA bundle {settings.ca_bundle} (set by {settings.source('ca_bundle')}) is "
                f"gone: the graphkit emulator at {settings.authority_host} is not running",
                "start it with `graphkit emulator serve --state-dir DIR` (which keeps its "
                "CA, port and certificates across restarts), then point the profile at "
                "its new CA bundle",
            )
        raise ConfigError(
            f"CA bundle {settings.ca_bundle} (set by {settings.source('ca_bundle')}) "
            "does not exist",
            "give the PEM file of the CA that signed the servers' certificates",
        )
    from graphkit import certificates

    certificates.check(settings, cache_dir=cache_dir, now=now, strict=True)
