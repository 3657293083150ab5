"""The examples every command's help ends with (two or three, as az's help does).

Each line is a command a user can copy; ``tests/test_cli_help.py`` checks that every
command has them and that each parses (the command and its options exist).
"""

from __future__ import annotations

__all__ = ["EXAMPLES", "epilog"]

EXAMPLES: dict[str, tuple[str, ...]] = {
    "keygen": (
        "graphkit keygen --out reports.key",
        "graphkit keygen --out reports.key --size 3072 --passphrase-file pass.txt",
    ),
    "csr": (
        "graphkit csr --key reports.key --cn reports-app --out reports.csr",
        "graphkit csr --key reports.key --subject 'CN=reports-app,O=Contoso' "
        "--san DNS:reports.contoso.com --out reports.csr",
    ),
    "selfsign": (
        "graphkit selfsign --key reports.key --csr reports.csr --out reports.crt",
        "graphkit selfsign --key reports.key --cn reports-app --days 180 --der --out reports.cer",
    ),
    "thumbprint": (
        "graphkit thumbprint reports.crt",
        "graphkit thumbprint --sha1 reports.crt",
        "graphkit thumbprint -o json reports.pfx --passphrase-file pass.txt",
    ),
    "export": (
        "graphkit export --key reports.key --cert reports.crt --pfx reports.pfx "
        "--passphrase-file pass.txt",
        "graphkit export --key reports.key --cert reports.crt --pem reports.pem --no-passphrase",
    ),
    "query": (
        "graphkit query /users --all --select displayName,mail -o csv > users.csv",
        "graphkit query /users -X POST --body @ada.json",
        "graphkit query 'users/{id}/photo/$value' --output-file ada.jpg",
    ),
    "batch": (
        "graphkit batch requests.jsonl --ordered > results.jsonl",
        "graphkit batch requests.jsonl --concurrency 4 -o csv",
    ),
    "token": (
        "graphkit token",
        "graphkit token --resource https://contoso.sharepoint.com -o json --profile reports",
        'curl -H "Authorization: Bearer $(graphkit token --raw)" '
        "https://graph.microsoft.com/v1.0/organization",
    ),
    "init": (
        "graphkit init",
        "graphkit init --profile reports --tenant contoso.onmicrosoft.com "
        "--client-id 00000000-0000-0000-0000-000000000000 --no-test -o json",
        "graphkit init --profile reports --yes",
    ),
    "app create": (
        "graphkit app create --name reports --permission User.Read.All "
        "--tenant contoso.onmicrosoft.com",
        "graphkit app create --name reports --permission User.Read.All --dry-run",
        "graphkit app create --profile reports --client-id 00000000-0000-0000-0000-000000000000 "
        "--permission User.Read.All",
    ),
    "demo": (
        "graphkit demo",
        "graphkit demo --home ./graphkit-demo --propagation-delay 5",
    ),
    "doctor": (
        "graphkit doctor",
        "graphkit doctor --profile reports --path /users",
        "graphkit doctor -o json",
    ),
    "config show": (
        "graphkit config show",
        "graphkit config show --profile reports -o json",
    ),
    "config list": (
        "graphkit config list",
        "graphkit config list -o tsv",
    ),
    "config use": ("graphkit config use reports",),
    "config set": (
        "graphkit config set reports --tenant contoso.onmicrosoft.com "
        "--client-id 00000000-0000-0000-0000-000000000000 --certificate reports.pem",
        "graphkit config set reports --cloud usgov",
    ),
    "config delete": ("graphkit config delete lab",),
    "cert list": (
        "graphkit cert list",
        "graphkit cert list --profile reports -o json",
    ),
    "cert add": (
        "graphkit cert add next.crt",
        "graphkit cert add next.crt --profile reports --object-id "
        "11111111-1111-1111-1111-111111111111",
    ),
    "cert remove": (
        "graphkit cert remove 4809D6EA89A7C43F69FFAC84656F8CBCB571B1F9",
        "graphkit cert remove 4809D6EA89A7C43F69FFAC84656F8CBCB571B1F9 --force",
    ),
    "rotate": (
        "graphkit rotate --profile reports",
        "graphkit rotate --if-expiring-within 30 --json",
        "graphkit rotate --profile reports --keep-old --dry-run",
    ),
    "emulator serve": (
        "graphkit emulator serve",
        "graphkit emulator serve --port 9443 --users 1000 --certificate reports.crt",
    ),
}


def epilog(name: str) -> str:
    """The help's closing "Examples:" block for command ``name`` (``config show``...)."""
    lines = EXAMPLES[name]
    # \b: Click keeps the block's lines as they are (no rewrapping).
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)
