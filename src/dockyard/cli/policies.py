"""``dockyard retention set|show|delete``, ``immutable``, ``naming``, ``quota``, ``policy``: a project's
policies as data, changed through the same ``PolicyService`` (checks, rights, audit events) as
``/api/v1``. Each command acts as the system admin ``admin``; events record ``cli:<OS user>``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from dockyard.cli.access import JSON_HELP, _show, as_admin
from dockyard.cli.options import config_options
from dockyard.cli.retention import retention

if TYPE_CHECKING:  # the services load only when a command runs, not for --help
    from dockyard.auth.principals import Principal
    from dockyard.policy.document import ProjectPolicy
    from dockyard.services.admission import AdmissionService
    from dockyard.services.policies import PolicyService

T = TypeVar("T")
DAYS = click.IntRange(0, 36_500)
RETENTION_COLUMNS = ["repository", "keep_last", "keep_days", "keep_pulled_days", "keep_tags", "keep_tags_invert",
                     "untagged_days", "schedule", "last_run_at"]


def _with_policies(config_file: Path | None, data_dir: Path | None,
                   action: Callable[[PolicyService, Principal], Awaitable[T]]) -> T:
    from dockyard.services.policies import PolicyService

    return as_admin(config_file, data_dir, lambda parts, me: action(PolicyService(parts.db, parts.access), me))


def _rules(values: dict[str, Any]) -> str:
    shown = [f"{k}={v!r}" if isinstance(v, str) else f"{k}={str(v).lower()}" for k, v in values.items()
             if k != "repository" and v is not None and v is not False]
    return " ".join(shown)


# -- retention set / show / delete (plan and apply are in cli/retention.py) ---------------------


@retention.command("set")
@config_options
@click.argument("project")
@click.option("--repo", "repository", default="*", show_default=True,
              help="glob over repository names after the project (api/*); one policy per glob")
@click.option("--keep-last", type=click.IntRange(0, 1_000_000), help="keep the N most recently pushed")
@click.option("--keep-days", type=DAYS, help="keep what was pushed within D days")
@click.option("--keep-pulled-days", type=DAYS, help="keep what was pulled within D days")
@click.option("--keep-tags", metavar="REGEX", help="keep tags matching REGEX (Python syntax)")
@click.option("--keep-tags-invert", is_flag=True, help="keep every tag but those matching --keep-tags")
@click.option("--untagged-days", type=DAYS, help="drop untagged manifests older than D days")
@click.option("--schedule", metavar="CRON", help="run it on this cron schedule, in UTC ('0 3 * * *')")
def retention_set(config_file: Path | None, data_dir: Path | None, project: str, repository: str,
                  keep_last: int | None, keep_days: int | None, keep_pulled_days: int | None, keep_tags: str | None,
                  keep_tags_invert: bool, untagged_days: int | None, schedule: str | None) -> None:
    """Create or replace PROJECT's retention policy for the repositories matching --repo.

    The options given are the whole policy (an option left out is no rule); at least one rule is
    needed (docs/lifecycle.md says how the rules combine). Without --schedule the policy runs only
    by hand (`dockyard retention apply`).

    \b
    Examples:
      dockyard retention set team-a --keep-last 10 --untagged-days 7 --schedule '0 3 * * *'
      dockyard retention set team-a --repo 'api/*' --keep-tags '^v\\d+' --keep-days 30
      dockyard retention set team-a --repo 'tmp/*' --keep-tags '^keep-' --keep-tags-invert
    """
    fields = {"repository": repository, "keep_last": keep_last, "keep_days": keep_days,
              "keep_pulled_days": keep_pulled_days, "keep_tags": keep_tags, "keep_tags_invert": keep_tags_invert,
              "untagged_days": untagged_days, "schedule": schedule}
    saved = _with_policies(config_file, data_dir, lambda policies, me: policies.set_retention(me, project, fields))
    click.echo(f"retention policy of {project} for repositories {saved['repository']!r}: {_rules(saved)}")


@retention.command("show")
@config_options
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def retention_show(config_file: Path | None, data_dir: Path | None, project: str, as_json: bool) -> None:
    """List PROJECT's retention policies, one per repository glob.

    \b
    Example:
      dockyard retention show team-a --json
    """
    found = _with_policies(config_file, data_dir, lambda policies, me: policies.policy(me, project))
    _show(found["retention"], RETENTION_COLUMNS, as_json, f"project {project} has no retention policy")


@retention.command("delete")
@config_options
@click.argument("project")
@click.option("--repo", "repository", default="*", show_default=True, help="the glob of the policy to delete")
def retention_delete(config_file: Path | None, data_dir: Path | None, project: str, repository: str) -> None:
    """Delete PROJECT's retention policy for the repository glob --repo.

    \b
    Example:
      dockyard retention delete team-a --repo 'api/*'
    """
    _with_policies(config_file, data_dir, lambda policies, me: policies.delete_retention(me, project, repository))
    click.echo(f"deleted the retention policy of {project} for repositories {repository!r}")


# -- immutable tags ----------------------------------------------------------------------------


@click.group()
def immutable() -> None:
    """Immutable tags: rules that stop matching tags from being overwritten or deleted."""


@immutable.command("add")
@config_options
@click.argument("project")
@click.option("--repo", "repository", default="*", show_default=True,
              help="glob over repository names after the project (api/*)")
@click.option("--tag", required=True, help="glob over tags (v*, release-*)")
def immutable_add(config_file: Path | None, data_dir: Path | None, project: str, repository: str, tag: str) -> None:
    """Make the tags matching --tag in the repositories matching --repo immutable.

    Pushing over, moving or deleting such a tag is then refused with DENIED, naming the rule.

    \b
    Examples:
      dockyard immutable add team-a --repo '*' --tag 'v*'
      dockyard immutable add team-a --repo 'api/*' --tag 'release-*'
    """
    rule = _with_policies(config_file, data_dir,
                          lambda policies, me: policies.add_immutable(me, project, repository, tag))
    click.echo(f"added immutable rule #{rule['id']} to {project}: repository {repository!r}, tag {tag!r}")


@immutable.command("list")
@config_options
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def immutable_list(config_file: Path | None, data_dir: Path | None, project: str, as_json: bool) -> None:
    """List PROJECT's immutable-tag rules with their ids.

    \b
    Example:
      dockyard immutable list team-a --json
    """
    rules = _with_policies(config_file, data_dir, lambda policies, me: policies.list_immutable(me, project))
    _show(rules, ["id", "repository", "tag", "created_by", "created_at"], as_json,
          f"project {project} has no immutable rule")


@immutable.command("delete")
@config_options
@click.argument("project")
@click.argument("rule_id", metavar="ID")
def immutable_delete(config_file: Path | None, data_dir: Path | None, project: str, rule_id: str) -> None:
    """Delete PROJECT's immutable rule ID (see `dockyard immutable list`).

    \b
    Example:
      dockyard immutable delete team-a 3
    """
    _with_policies(config_file, data_dir, lambda policies, me: policies.delete_immutable(me, project, rule_id))
    click.echo(f"deleted immutable rule #{rule_id} of {project}")


# -- naming and quota --------------------------------------------------------------------------


@click.group()
def naming() -> None:
    """Naming rules: regular expressions that repository names and tags must match."""


@naming.command("set")
@config_options
@click.argument("project")
@click.option("--repo", "repository", metavar="REGEX", help="repository names after the project must match it")
@click.option("--tag", metavar="REGEX", help="pushed tags must match it")
@click.option("--clear-repo", is_flag=True, help="remove the repository rule")
@click.option("--clear-tag", is_flag=True, help="remove the tag rule")
def naming_set(config_file: Path | None, data_dir: Path | None, project: str, repository: str | None,
               tag: str | None, clear_repo: bool, clear_tag: bool) -> None:
    """Set PROJECT's naming rules; a rule not named here stays as it is.

    Patterns are Python regular expressions; anchor them with ^ and $ (docs/lifecycle.md, "Naming
    rules", says how pushes are checked against them).

    \b
    Examples:
      dockyard naming set team-a --repo '^(api|web|worker)(/[a-z0-9-]+)?$'
      dockyard naming set team-a --tag '^v\\d+\\.\\d+\\.\\d+(-(dev|test|prod))?$'
      dockyard naming set team-a --clear-repo --clear-tag
    """
    if (repository is not None and clear_repo) or (tag is not None and clear_tag):
        raise click.UsageError("give a rule or clear it, not both")
    changes: dict[str, object] = {}
    for key, value, clear in (("repository", repository, clear_repo), ("tag", tag, clear_tag)):
        if value is not None or clear:
            changes[key] = value
    if not changes:
        raise click.UsageError("nothing to change: give --repo, --tag, --clear-repo or --clear-tag")
    rules = _with_policies(config_file, data_dir, lambda policies, me: policies.set_naming(me, project, changes))
    click.echo(f"naming rules of {project}: repository {rules['repository'] or 'any'}, tag {rules['tag'] or 'any'}")


@click.group()
def quota() -> None:
    """Storage quotas: the most a project may store (system admin)."""


@quota.command("set")
@config_options
@click.argument("project")
@click.argument("size")
def quota_set(config_file: Path | None, data_dir: Path | None, project: str, size: str) -> None:
    """Set PROJECT's storage quota to SIZE: 500MiB, 10GiB, 2GB, a number of bytes, or none.

    A push that would take the project over it is refused (DENIED, with usage and limit).

    \b
    Examples:
      dockyard quota set team-a 10GiB
      dockyard quota set team-a none
    """
    saved = _with_policies(config_file, data_dir, lambda policies, me: policies.set_quota(me, project, size))
    click.echo(f"quota of {project}: {saved['quota_size'] or 'none'}")


# -- the declarative file ----------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Policies as data: show a project's policy, or keep them all in a TOML file (docs/lifecycle.md)."""


@policy.command("show")
@config_options
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def policy_show(config_file: Path | None, data_dir: Path | None, project: str, as_json: bool) -> None:
    """Show PROJECT's whole policy: quota, naming rules, retention policies, immutable rules.

    \b
    Example:
      dockyard policy show team-a --json
    """
    found = _with_policies(config_file, data_dir, lambda policies, me: policies.policy(me, project))
    if as_json:
        click.echo(json.dumps(found, indent=2))
        return
    click.echo(f"project {project}\n  quota: {found['quota_size'] or 'none'}")
    click.echo(f"  naming: repository {found['naming']['repository'] or 'any'}, tag {found['naming']['tag'] or 'any'}")
    for rules in found["retention"]:
        click.echo(f"  retention {rules['repository']!r}: {_rules({k: rules[k] for k in RETENTION_COLUMNS[:-1]})}")
    for rule in found["immutable"]:
        click.echo(f"  immutable #{rule['id']}: repository {rule['repository']!r}, tag {rule['tag']!r}")


def _read(file: Path) -> dict[str, ProjectPolicy]:
    from dockyard.errors import RequestInvalid
    from dockyard.policy.document import parse_document

    try:
        return parse_document(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise click.ClickException(f"{file}: not UTF-8 text; a policy file is TOML") from None
    except OSError as exc:
        raise click.ClickException(f"{file}: {exc.strerror}") from None
    except RequestInvalid as exc:
        raise click.ClickException(f"{file}: {exc.message}") from None


FILE = click.Path(path_type=Path, dir_okay=False, exists=True)


@policy.command("diff")
@config_options
@click.argument("file", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="print the changes as a JSON array")
def policy_diff(config_file: Path | None, data_dir: Path | None, file: Path, as_json: bool) -> None:
    """Show what `dockyard policy apply FILE` would change, and change nothing.

    One line per change: + added, - removed (a policy of a listed project that is not in the
    file), ~ changed. Projects not in FILE are not looked at. Exit status 0 either way.

    \b
    Example:
      dockyard policy diff policies.toml
    """
    desired = _read(file)
    changes = _with_policies(config_file, data_dir, lambda policies, me: policies.diff(me, desired))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in changes], indent=2))
        return
    for change in changes:
        click.echo(change.line())
    click.echo(f"{len(changes)} change(s) in {len({c.project for c in changes})} of {len(desired)} project(s)"
               if changes else f"no changes: {len(desired)} project(s) match {file}")


@policy.command("apply")
@config_options
@click.argument("file", type=FILE)
@click.option("--json", "as_json", is_flag=True, help="print the changes made as a JSON array")
def policy_apply(config_file: Path | None, data_dir: Path | None, file: Path, as_json: bool) -> None:
    """Make each project in FILE match it exactly, and print what changed.

    A project's changes are made in one transaction, each recorded as an audit event; a listed
    project loses the policies FILE does not give it; projects not in FILE are left alone. The
    whole file is checked, and every listed project must exist, before anything changes.

    \b
    Example:
      dockyard policy diff policies.toml && dockyard policy apply policies.toml
    """
    desired = _read(file)
    changes = _with_policies(config_file, data_dir, lambda policies, me: policies.apply(me, desired))
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in changes], indent=2))
        return
    for change in changes:
        click.echo(change.line())
    click.echo(f"applied {len(changes)} change(s)" if changes else f"nothing to change: the projects match {file}")


COMMANDS = [immutable, naming, quota, policy]


# -- admission: the allow-list and explain -----------------------------------------------------


def _with_admission(config_file: Path | None, data_dir: Path | None,
                    action: Callable[[AdmissionService, Principal], Awaitable[T]]) -> T:
    return as_admin(config_file, data_dir, lambda parts, me: action(parts.services.admission, me))


@click.group()
def allowlist() -> None:
    """The vulnerability allow-list: vulnerabilities a project's push and pull rules do not count."""


@allowlist.command("add")
@config_options
@click.argument("project")
@click.argument("vulnerability", metavar="ID")
@click.option("--reason", required=True, help="why the vulnerability is accepted (kept with the entry)")
@click.option("--expires", metavar="DATE", help="the entry stops counting at the start of DATE (UTC), e.g. 2027-01-31")
def allowlist_add(config_file: Path | None, data_dir: Path | None, project: str, vulnerability: str, reason: str,
                  expires: str | None) -> None:
    """Accept vulnerability ID (an id or alias: CVE-…, GHSA-…, DSA-…) in PROJECT.

    An entry with the same ID is replaced. The push and pull vulnerability rules then skip every
    vulnerability whose id or alias is ID, until the entry expires.

    \b
    Example:
      dockyard allowlist add team-a CVE-2023-4863 --reason 'no image decoding' --expires 2027-01-31
    """
    fields = {"id": vulnerability, "reason": reason, "expires": expires}
    saved = _with_admission(config_file, data_dir, lambda admission, me: admission.allow(me, project, fields))
    until = f" until {saved['expires']}" if saved["expires"] else ""
    click.echo(f"allowed {saved['id']} in {project}{until}: {saved['reason']}")


@allowlist.command("list")
@config_options
@click.argument("project")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
def allowlist_list(config_file: Path | None, data_dir: Path | None, project: str, as_json: bool) -> None:
    """List PROJECT's allow-list (expired entries stay listed, marked, and no longer count).

    \b
    Example:
      dockyard allowlist list team-a
    """
    entries = _with_admission(config_file, data_dir, lambda admission, me: admission.allowlist(me, project))
    _show(entries, ["id", "reason", "expires", "expired", "created_by"], as_json,
          f"project {project} has no allow-list entry")


@allowlist.command("remove")
@config_options
@click.argument("project")
@click.argument("vulnerability", metavar="ID")
def allowlist_remove(config_file: Path | None, data_dir: Path | None, project: str, vulnerability: str) -> None:
    """Remove ID from PROJECT's allow-list.

    \b
    Example:
      dockyard allowlist remove team-a CVE-2023-4863
    """
    _with_admission(config_file, data_dir, lambda admission, me: admission.disallow(me, project, vulnerability))
    click.echo(f"removed {vulnerability} from the allow-list of {project}")


def split_image(image: str) -> tuple[str, str]:
    """(repository, tag or digest) of ``[HOST:PORT/]REPOSITORY[:TAG|@DIGEST]`` (tag default ``latest``)."""
    first, _, rest = image.partition("/")
    if rest and (":" in first or first == "localhost"):
        image = rest
    if "@" in image:
        repository, _, digest = image.partition("@")
        return repository, digest
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, "latest"
    return repository, tag


@policy.command("explain")
@config_options
@click.argument("image")
@click.option("--json", "as_json", is_flag=True, help="print the verdicts as JSON")
def policy_explain(config_file: Path | None, data_dir: Path | None, image: str, as_json: bool) -> None:
    """Print every push and pull rule's verdict on IMAGE, and why.

    IMAGE is REPOSITORY:TAG or REPOSITORY@DIGEST (a leading HOST:PORT/ is ignored). Push rules are
    evaluated against the stored scan result (a push would wait for one); nothing is refused or
    recorded. Exit status 0 whatever the verdicts.

    \b
    Examples:
      dockyard policy explain team-a/api:v1.2.3
      dockyard policy explain team-a/api@sha256:… --json
    """
    repository, reference = split_image(image)
    found = _with_admission(config_file, data_dir, lambda admission, me: admission.explain(repository, reference))
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2))
        return
    click.echo(f"{repository}:{reference} ({found.digest})" if "@" not in image else f"{repository}@{found.digest}")
    if not found.gated:
        click.echo("  an artifact (signature, SBOM or other non-image manifest): no rule applies")
    elif not found.verdicts:
        click.echo(f"  project {repository.split('/', 1)[0]} has no push or pull rules")
    width = max((len(v.rule) for v in found.verdicts), default=0)
    for verdict in found.verdicts:
        outcome = verdict.to_json()["outcome"]
        click.echo(f"  {verdict.rule.ljust(width)}  {verdict.mode.ljust(7)}  {outcome.ljust(6)}  {verdict.message}")


COMMANDS.append(allowlist)
