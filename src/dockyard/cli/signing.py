"""``dockyard sign | verify | signatures | key``: cosign signatures of images in this registry.

IMAGE is ``REPOSITORY:TAG`` or ``REPOSITORY@DIGEST``. Commands act on the data directory (or the
database and storage ``--config`` names) as the system admin, like the other admin commands;
``sign`` writes exactly what ``cosign sign --key`` would push (docs/supply-chain.md).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from dockyard.cli.access import JSON_HELP, _show, as_admin
from dockyard.cli.options import config_options

KEY_FILE = click.Path(path_type=Path, dir_okay=False, exists=True)


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag or digest) of ``REPOSITORY:TAG`` or ``REPOSITORY@DIGEST``."""
    if "@" in image:
        repository, _, reference = image.partition("@")
    else:
        repository, _, reference = image.rpartition(":")
        if "/" in reference:
            repository, reference = "", ""
    if not repository or not reference:
        raise click.BadParameter("write it as REPOSITORY:TAG or REPOSITORY@sha256:<hex>, e.g. team-a/api:v1.2.0",
                                 param_hint="IMAGE")
    return repository, reference


def _read_key(path: Path) -> bytes:
    data = path.read_bytes()
    if len(data) > 64 * 1024:
        raise click.BadParameter(f"{path} is {len(data)} bytes: give the key file itself", param_hint="--key")
    return data


def _private_key(path: Path) -> Any:
    """The signing key; an encrypted one is opened with COSIGN_PASSWORD (asked on a terminal)."""
    from dockyard.scan import cosign

    pem = _read_key(path)
    password = os.environ.get("COSIGN_PASSWORD")
    encrypted = any(f"BEGIN {label}".encode() in pem for label in (*cosign.ENCRYPTED_LABELS, "ENCRYPTED PRIVATE KEY"))
    if password is None and encrypted and sys.stdin.isatty():
        password = click.prompt(f"Password for {path}", hide_input=True, default="", show_default=False)
    try:
        return cosign.load_private_key(pem, None if password is None else password.encode())
    except cosign.KeyInvalid as exc:
        raise click.ClickException(f"{path}: {exc.message}") from None


def _public_key(path: Path) -> Any:
    from dockyard.scan import cosign

    try:
        return cosign.load_public_key(_read_key(path))
    except cosign.KeyInvalid as exc:
        raise click.ClickException(f"{path}: {exc.message}") from None


@click.command()
@config_options
@click.argument("image")
@click.option("--key", "key_file", type=KEY_FILE, required=True,
              help="PKCS#8 PEM private key, or cosign's encrypted .key (password in COSIGN_PASSWORD)")
@click.option("--referrer", is_flag=True,
              help="store the signature as an OCI 1.1 referrer of the image instead of under the .sig tag")
@click.option("--registry", "registry_host", metavar="HOST[:PORT]",
              help="the registry name clients pull by, for the payload's docker-reference (default: auth.realm's "
                   "host, else server.host:server.port)")
def sign(config_file: Path | None, data_dir: Path | None, image: str, key_file: Path, referrer: bool,
         registry_host: str | None) -> None:
    """Sign IMAGE with a cosign key pair, stored as cosign stores it; prints the signature's tag and digest.

    Clients that check the signed identity (containers/image's sigstoreSigned policy) compare the
    docker-reference with the name they pull by: give --registry when that is not this server's
    configured address.
    """
    from dockyard.scan import cosign

    repository, reference = split_image(image)
    key = _private_key(key_file)

    async def action(parts: Any, me: Any) -> tuple[str, str]:
        digest = await parts.signatures.resolve(repository, reference)
        return digest, await parts.signatures.sign(repository, digest, key, referrer=referrer,
                                                   registry_host=registry_host)

    digest, signature = as_admin(config_file, data_dir, action)
    where = f"referrer of {digest}" if referrer else f"{repository}:{cosign.signature_tag(digest)}"
    click.echo(f"signed {repository}@{digest} with key {cosign.fingerprint(key.public_key())[:16]}")
    click.echo(f"signature: {where} ({repository}@{signature})")


@click.command()
@config_options
@click.argument("image")
@click.option("--key", "key_file", type=KEY_FILE, required=True, help="PEM public key (cosign.pub)")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def verify(config_file: Path | None, data_dir: Path | None, image: str, key_file: Path, as_json: bool) -> None:
    """Check IMAGE's cosign signatures against a public key; exit code 1 when none verifies."""
    from dockyard.scan import cosign
    from dockyard.services.signatures import VerifyingKey

    repository, reference = split_image(image)
    public = _public_key(key_file)
    key = VerifyingKey(key_file.name, cosign.fingerprint(public), public)

    async def action(parts: Any, me: Any) -> tuple[str, list[Any]]:
        digest = await parts.signatures.resolve(repository, reference)
        return digest, await parts.signatures.verify_with(repository, digest, [key])

    digest, views = as_admin(config_file, data_dir, action)
    _print(repository, digest, [v.to_json() for v in views], as_json)
    if not any(v.verified for v in views):
        click.echo(f"no signature of {repository}@{digest} verifies with {key_file}", err=True)
        sys.exit(1)


@click.command()
@config_options
@click.argument("image")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def signatures(config_file: Path | None, data_dir: Path | None, image: str, as_json: bool) -> None:
    """Who signed IMAGE: each signature, the project's trusted key it verifies with, or why not."""
    repository, reference = split_image(image)
    found = as_admin(config_file, data_dir, lambda parts, me: parts.signatures.signatures_of(me, repository, reference))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    _print(repository, found["digest"], found["signatures"], False)


def _print(repository: str, digest: str, views: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"repository": repository, "digest": digest,
                               "signed": any(v["verified"] for v in views), "signatures": views}, indent=2))
        return
    click.echo(f"{repository}@{digest}: {len(views)} signature(s), "
               f"{sum(1 for v in views if v['verified'])} verified")
    rows = [{"verified": v["verified"], "key": v["key"], "source": v["tag"] or f"referrer {v['manifest'][:19]}",
             "payload": v["layer"][:19], "rekor": v["rekor_bundle"], "reason": v["reason"]} for v in views]
    if rows:
        _show(rows, ["verified", "key", "source", "payload", "rekor", "reason"], False, "")


@click.group()
def key() -> None:
    """The public keys a project trusts for cosign signatures."""


@key.command("add")
@config_options
@click.argument("project")
@click.argument("name")
@click.argument("file", type=KEY_FILE)
def key_add(config_file: Path | None, data_dir: Path | None, project: str, name: str, file: Path) -> None:
    """Trust the PEM public key in FILE (ECDSA P-256, e.g. cosign.pub) as NAME in PROJECT."""
    pem = _read_key(file).decode("ascii", "replace")
    added = as_admin(config_file, data_dir, lambda parts, me: parts.signatures.add_key(me, project, name, pem))
    click.echo(f"project {project} trusts key {added['name']} (sha256 {added['fingerprint']})")


@key.command("list")
@config_options
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def key_list(config_file: Path | None, data_dir: Path | None, project: str, as_json: bool) -> None:
    """List the keys PROJECT trusts."""
    keys = as_admin(config_file, data_dir, lambda parts, me: parts.signatures.list_keys(me, project))
    if not as_json:
        keys = [{k: v for k, v in item.items() if k != "public_key"} for item in keys]
    _show(keys, ["name", "fingerprint", "created_at", "created_by"], as_json, f"project {project} trusts no key")


@key.command("remove")
@config_options
@click.argument("project")
@click.argument("name")
def key_remove(config_file: Path | None, data_dir: Path | None, project: str, name: str) -> None:
    """Stop trusting key NAME in PROJECT."""
    as_admin(config_file, data_dir, lambda parts, me: parts.signatures.remove_key(me, project, name))
    click.echo(f"project {project} no longer trusts key {name}")


COMMANDS = [sign, verify, signatures, key]
