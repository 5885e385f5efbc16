"""`python -m infra bootstrap-ci`: the IAM OIDC identity provider of a CI system and its roles (a preview role,
one deploy role per environment), so that CI reaches AWS with short-lived tokens and no stored keys.

Prints what it would create (default) and creates it with `--apply`. Reads before it writes: the account, the
OIDC provider, each role (its trust policy, attached and inline policies) and the permission policies given are
looked at first. An existing provider or role that is already as wanted is reported ("exists") and left alone,
so a second run changes nothing; one that differs is reported with what differs and never changed: nothing at
all is created then (exit 2), and the user fixes or removes it, or picks another `--role-prefix`. Roles are made
with MaxSessionDuration trust.MAX_SESSION_DURATION (4 hours; the CI adapters request `--duration-seconds 14400`, as
a deploy can outlast an hour); an existing role with another maximum differs.

The trust policies, per CI system, and the sources of their issuers, audiences and subjects: infra/delivery/trust.py.
The project defines no permission policy for CI's roles (nothing under infra/ or components/ declares one), so
the roles get the managed policies given by `--preview-policy-arn` and `--deploy-policy-arn`, required with
`--apply`. Exit status: 0 printed or applied; 1 an AWS call failed (one line, infra/delivery/aws_errors.py);
2 a flag is wrong (named, with what is allowed), or an existing provider or role differs (nothing changed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import boto3
from botocore.exceptions import ClientError

from ml_platform.infra.delivery import trust
from ml_platform.infra.delivery.trust import CiTrust, Role, TrustError

TAGS = [{"Key": "ml-platform:managed-by", "Value": "bootstrap-ci"}]
EXIT_REFUSED = 2

# Which provider reads which provider-specific flag (argparse dest -> providers).
_PROVIDER_FLAGS = {
    "repository": ("github",),
    "branch": ("gitlab",),
    "project": ("gitlab", "azure"),
    "organization": ("azure",),
    "organization_id": ("azure",),
    "tenant_id": ("azure",),
    "service_connection": ("azure",),
    "issuer": ("github", "gitlab", "jenkins"),
    "subject": ("jenkins",),
    "preview_subject": ("jenkins",),
}


def _session() -> boto3.Session:
    return boto3.Session()


@dataclass
class State:
    """What exists of one wanted resource: `create` (nothing), `exists` (as wanted) or `differs` (left alone)."""

    status: str
    differences: list[str] = field(default_factory=list)
    attached: list[str] = field(default_factory=list)


@dataclass
class Plan:
    trust: CiTrust
    account: str
    partition: str
    preview_policies: tuple[str, ...]
    deploy_policies: tuple[str, ...]
    provider: State
    roles: dict[str, State]

    @property
    def provider_arn(self) -> str:
        return self.trust.provider_arn(self.account, self.partition)

    def role_arn(self, role: Role) -> str:
        return f"arn:{self.partition}:iam::{self.account}:role/{role.name}"

    def policies(self, role: Role) -> tuple[str, ...]:
        return self.deploy_policies if role.is_deploy else self.preview_policies

    def differing(self) -> list[str]:
        found = [f"OIDC provider {self.provider_arn}: {d}" for d in self.provider.differences]
        return found + [f"role {name}: {d}" for name, state in self.roles.items() for d in state.differences]


# Reading.


def _canonical(document: dict) -> dict:
    """A policy document with one-element lists and lone values made alike and lists sorted, for comparison."""

    def norm(value):
        if isinstance(value, dict):
            return {k: norm(v) for k, v in sorted(value.items())}
        if isinstance(value, list):
            items = [norm(v) for v in value]
            return items[0] if len(items) == 1 else sorted(items, key=json.dumps)
        return value

    return norm(document)


def describe_trust(document: dict) -> str:
    """Who a trust policy admits, in one line: principals and the aud/sub conditions."""
    statements = document.get("Statement", [])
    statements = [statements] if isinstance(statements, dict) else statements
    parts = []
    for statement in statements:
        principal = statement.get("Principal", {})
        conditions = [
            f"{operator} {key.rsplit(':', 1)[-1]}={values}"
            for operator, block in (statement.get("Condition") or {}).items()
            for key, values in block.items()
        ]
        parts.append(
            f"{statement.get('Effect')} {json.dumps(principal)}" + (f" if {', '.join(conditions)}" if conditions else " (no conditions)")
        )
    return "; ".join(parts) or "no statements"


def _not_found(err: ClientError) -> bool:
    return err.response["Error"]["Code"] in ("NoSuchEntity", "NoSuchEntityException", "404")


def _pages(iam, operation: str, key: str, **kwargs) -> list:
    return [item for page in iam.get_paginator(operation).paginate(**kwargs) for item in page[key]]


def read_provider(iam, arn: str, wanted: CiTrust) -> State:
    try:
        found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    except ClientError as err:
        if _not_found(err):
            return State("create")
        raise
    differences = []
    if wanted.audience not in found.get("ClientIDList", []):
        differences.append(f"its audiences {found.get('ClientIDList', [])} lack {wanted.audience}")
    missing = sorted(set(wanted.thumbprints) - {t.lower() for t in found.get("ThumbprintList", [])})
    if missing:
        differences.append(f"its thumbprints {found.get('ThumbprintList', [])} lack {', '.join(missing)}")
    return State("differs" if differences else "exists", differences)


def read_role(iam, role: Role, wanted_trust: dict, policy_arns: tuple[str, ...]) -> State:
    try:
        found = iam.get_role(RoleName=role.name)["Role"]
    except ClientError as err:
        if _not_found(err):
            return State("create")
        raise
    differences = []
    duration = found.get("MaxSessionDuration", 3600)
    if duration != trust.MAX_SESSION_DURATION:
        differences.append(
            f"MaxSessionDuration {duration} s, wanted {trust.MAX_SESSION_DURATION} s (CI requests --duration-seconds "
            f"{trust.MAX_SESSION_DURATION}): aws iam update-role --role-name {role.name} "
            f"--max-session-duration {trust.MAX_SESSION_DURATION}"
        )
    document = found["AssumeRolePolicyDocument"]
    document = json.loads(document) if isinstance(document, str) else document
    if _canonical(document) != _canonical(wanted_trust):
        differences.append(f"trust policy admits: {describe_trust(document)}; wanted: {describe_trust(wanted_trust)}")
    attached = sorted(p["PolicyArn"] for p in _pages(iam, "list_attached_role_policies", "AttachedPolicies", RoleName=role.name))
    if policy_arns:
        missing, extra = sorted(set(policy_arns) - set(attached)), sorted(set(attached) - set(policy_arns))
        differences += [f"policy {arn} not attached" for arn in missing] + [f"also attached: {arn} (not asked for)" for arn in extra]
    differences += [
        f"inline policy {name} (bootstrap-ci makes none)" for name in _pages(iam, "list_role_policies", "PolicyNames", RoleName=role.name)
    ]
    return State("differs" if differences else "exists", differences, attached)


def check_policies(iam, flag: str, arns: tuple[str, ...]) -> None:
    for arn in arns:
        try:
            iam.get_policy(PolicyArn=arn)
        except ClientError as err:
            if _not_found(err):
                raise TrustError(f"{flag} {arn}: no such managed policy in this account; create it first or give another ARN") from None
            raise


def plan(session, wanted: CiTrust, preview_policies: tuple[str, ...] = (), deploy_policies: tuple[str, ...] = ()) -> Plan:
    """Read-only: the account, and what exists of the provider and roles, compared with what is wanted."""
    sts = session.client("sts", region_name=session.region_name or "us-east-1")
    identity = sts.get_caller_identity()
    account, partition = identity["Account"], identity["Arn"].split(":")[1]
    iam = session.client("iam", region_name=session.region_name or "us-east-1")
    check_policies(iam, "--preview-policy-arn", preview_policies)
    check_policies(iam, "--deploy-policy-arn", deploy_policies)
    arn = wanted.provider_arn(account, partition)
    provider = read_provider(iam, arn, wanted)
    roles = {}
    for role in wanted.roles:
        policies = deploy_policies if role.is_deploy else preview_policies
        roles[role.name] = read_role(iam, role, wanted.trust_policy(role, arn), policies)
    return Plan(wanted, account, partition, preview_policies, deploy_policies, provider, roles)


# Writing.


def apply(session, current: Plan, say: Callable[[str], None] = print) -> None:
    """Create what `current` found missing. Refuses (TrustError, nothing changed) when anything existing differs
    or a role would get no permission policy."""
    if current.differing():
        raise TrustError("existing resources differ; nothing was changed:\n" + "\n".join(f"  {d}" for d in current.differing()))
    for flag, given in (("--preview-policy-arn", current.preview_policies), ("--deploy-policy-arn", current.deploy_policies)):
        if not given:
            raise TrustError(f"{flag} is required with --apply: the managed policy (or policies) the roles get; nothing was changed")
    iam = session.client("iam", region_name=session.region_name or "us-east-1")
    wanted = current.trust
    if current.provider.status == "create":
        extra = {"ThumbprintList": list(wanted.thumbprints)} if wanted.thumbprints else {}
        iam.create_open_id_connect_provider(Url=wanted.issuer, ClientIDList=[wanted.audience], Tags=TAGS, **extra)
        say(f"created OIDC provider {current.provider_arn}")
    for role in wanted.roles:
        if current.roles[role.name].status != "create":
            continue
        iam.create_role(
            RoleName=role.name,
            AssumeRolePolicyDocument=json.dumps(wanted.trust_policy(role, current.provider_arn)),
            MaxSessionDuration=trust.MAX_SESSION_DURATION,
            Description=f"{wanted.provider} CI, {role.describe()} (python -m infra bootstrap-ci)"[:1000],
            Tags=[*TAGS, {"Key": "ml-platform:ci-role", "Value": role.purpose}],
        )
        for arn in current.policies(role):
            iam.attach_role_policy(RoleName=role.name, PolicyArn=arn)
        say(f"created role {role.name} with {', '.join(current.policies(role))}")


# Output.


def as_json(current: Plan, applied: bool) -> dict:
    wanted = current.trust
    created = [current.provider_arn] if current.provider.status == "create" else []
    created += [current.role_arn(r) for r in wanted.roles if current.roles[r.name].status == "create"]
    return {
        "provider": wanted.provider,
        "account": current.account,
        "applied": applied,
        "created": created if applied else [],
        "oidcProvider": {
            "arn": current.provider_arn,
            "url": wanted.issuer,
            "clientIds": [wanted.audience],
            "thumbprints": list(wanted.thumbprints),
            "status": current.provider.status,
            "differences": current.provider.differences,
        },
        "roles": [
            {
                "name": role.name,
                "arn": current.role_arn(role),
                "purpose": role.purpose,
                "subjects": list(role.subjects),
                "trustPolicy": wanted.trust_policy(role, current.provider_arn),
                "maxSessionDuration": trust.MAX_SESSION_DURATION,
                "policyArns": list(current.policies(role)),
                "status": current.roles[role.name].status,
                "differences": current.roles[role.name].differences,
            }
            for role in wanted.roles
        ],
        "notes": list(wanted.notes),
    }


def _status(state: State, applied: bool) -> str:
    if state.status == "create":
        return "created" if applied else "would be created"
    if state.status == "exists":
        return "exists, as wanted: left as it is"
    return "EXISTS AND DIFFERS, left as it is:\n" + "\n".join(f"      {d}" for d in state.differences)


def as_text(current: Plan, applied: bool) -> str:
    wanted = current.trust
    missing = current.provider.status == "create" or any(state.status == "create" for state in current.roles.values())
    if not applied:
        mode = "dry run: nothing changed; --apply creates what is missing"
    else:
        mode = "applied" if missing else "--apply: nothing to create, nothing changed"
    lines = [f"bootstrap-ci for {wanted.provider} in account {current.account} ({mode})", ""]
    thumbprints = ", ".join(wanted.thumbprints) or "none (IAM verifies the issuer's certificate through its trusted CAs)"
    lines += [
        f"OIDC provider {current.provider_arn}",
        f"  issuer {wanted.issuer}, audience {wanted.audience}, thumbprints: {thumbprints}",
        f"  {_status(current.provider, applied)}",
    ]
    seconds = trust.MAX_SESSION_DURATION
    for role in wanted.roles:
        operator = "StringLike" if any(trust.has_wildcard(s) for s in role.subjects) else "StringEquals"
        policies = (
            ", ".join(current.policies(role))
            or f"none given (--{'deploy' if role.is_deploy else 'preview'}-policy-arn, required with --apply)"
        )
        lines += [
            "",
            f"role {role.name} ({role.describe()})",
            f"  arn {current.role_arn(role)}",
            f"  admits {wanted.host_path}:sub {operator} {', '.join(role.subjects)}: {role.note}",
            f"  with {wanted.host_path}:aud = {wanted.audience}",
            f"  sessions up to {seconds} s (MaxSessionDuration; CI requests --duration-seconds {seconds})",
            f"  policies: {policies}",
            f"  {_status(current.roles[role.name], applied)}",
        ]
    deploy = [r for r in wanted.roles if r.is_deploy]
    preview = next(r for r in wanted.roles if not r.is_deploy)
    lines += ["", "notes:", *(f"  - {n}" for n in wanted.notes), "", "next:"]
    lines.append(f"  - the role CI assumes: AWS_PREVIEW_ROLE_ARN={current.role_arn(preview)} for plans, previews and preview stacks;")
    if wanted.provider in ("github", "gitlab"):  # a variable scoped to each environment
        lines += [f"    AWS_ROLE_ARN={current.role_arn(r)} scoped to environment {r.purpose}" for r in deploy]
    else:  # one variable per environment (azure-pipelines.yml's variable group, the Jenkinsfile's environment)
        lines += [f"    AWS_{_variable(r.purpose)}_ROLE_ARN={current.role_arn(r)}" for r in deploy]
    connection_ids = [trust.entra_connection_id(r.subjects[0]) for r in wanted.roles] if wanted.provider == "azure" else []
    if connection_ids and all(connection_ids):  # the Entra issuer: each subject ends with its connection's id
        ids = ", ".join(f"AWS_{_variable(r.purpose)}_CONNECTION_ID={i}" for r, i in zip(wanted.roles, connection_ids, strict=True))
        lines.append(f"  - the service connections' ids (each subject's last GUID): {ids}; their names in azure-pipelines.yml")
    elif wanted.provider == "azure":
        connections = ", ".join(f"{r.subjects[0].rsplit('/', 1)[-1]} ({r.purpose})" for r in wanted.roles)
        lines.append(f"  - service connections {connections}; their ids in AWS_<ROLE>_CONNECTION_ID")
    lines += [f"  - list {current.role_arn(r)} in Pulumi.{r.purpose}.yaml's cluster.admins with access cluster-admin" for r in deploy]
    return "\n".join(lines)


def _variable(purpose: str) -> str:
    """A role's part of a CI variable's name: AWS_<this>_ROLE_ARN, AWS_<this>_CONNECTION_ID."""
    return purpose.upper().replace("-", "_").replace(".", "_")


# Command line.


def _pairs(flag: str, values: list[str], allowed: tuple[str, ...], bare: bool = False) -> dict[str, str]:
    """`ROLE=VALUE` flags as a dict; with `bare`, one value without `ROLE=` is the default of every role in `allowed`."""
    found: dict[str, str] = {}
    default: str | None = None
    for value in values:
        role, sep, rest = value.partition("=")
        if sep and role in allowed:
            if role in found:
                raise TrustError(f"{flag} {value!r}: {flag} {role}=... is given twice ({found[role]!r}); give each role once")
            found[role] = rest
        elif bare and not (sep and role.isidentifier()) and default is None:
            default = value
        elif bare and default is not None and not (sep and role.isidentifier()):
            raise TrustError(f"{flag} {value!r}: {flag} without ROLE= is given twice ({default!r}); give it once, or as ROLE=VALUE")
        else:
            raise TrustError(f"{flag} {value!r}: give ROLE=VALUE with ROLE one of {', '.join(allowed)}")
    if default is not None and all(role in found for role in allowed):
        raise TrustError(f"{flag} {default!r}: every role has its own {flag} ROLE=VALUE, so this one would apply to none; drop it")
    return {role: found.get(role, default) for role in allowed if role in found or default is not None}


def wanted_trust(args: argparse.Namespace) -> CiTrust:
    """The CiTrust the flags ask for; TrustError naming the flag when one is missing, misplaced or wrong."""
    provider = args.provider
    for dest, providers in _PROVIDER_FLAGS.items():
        if getattr(args, dest) not in (None, []) and provider not in providers:
            flag = "--" + dest.replace("_", "-")
            raise TrustError(f"{flag} is not read for --provider {provider}; it is for --provider {' or '.join(providers)}")
    environments = trust.environments_checked([e.strip() for e in args.environments.split(",")])
    prefix = trust.role_prefix_checked(args.role_prefix, provider, environments)

    def required(dest: str, what: str) -> str:
        value = getattr(args, dest)
        if not value:
            raise TrustError(f"--{dest.replace('_', '-')} is required with --provider {provider}: {what}")
        return value

    if provider == "github":
        built = trust.github(required("repository", "OWNER/REPO"), environments, prefix, args.issuer)
    elif provider == "gitlab":
        built = trust.gitlab(
            required("project", "GROUP/PROJECT"), environments, prefix, "main" if args.branch is None else args.branch, args.issuer
        )
    elif provider == "azure" and args.tenant_id:
        built = _azure_entra(args, environments, prefix)
    elif provider == "azure":
        if not (args.organization or args.organization_id or args.project):
            raise TrustError(
                f"--tenant-id is required with --provider azure: the Microsoft Entra tenant's id (GUID) of the service connections "
                f"(issuer {trust.ENTRA_ISSUER_PREFIX}<tenant id>/v2.0), with --service-connection ROLE=SUBJECT for every role; or, "
                f"for the deprecated issuer {trust.AZURE_ISSUER_PREFIX}<organization id>, --organization, --organization-id and --project"
            )
        connections = _pairs("--service-connection", args.service_connection or [], (trust.PREVIEW, *environments))
        built = trust.azure(
            required("organization", "the Azure DevOps organization's name"),
            required("organization_id", "the organization's id (a GUID)"),
            required("project", "the Azure DevOps project's name"),
            connections,
            environments,
            prefix,
        )
    else:
        subjects = _pairs(
            "--subject", required("subject", "the deploy job's subject as the plugin issues it") or [], environments, bare=True
        )
        built = trust.jenkins(
            required("issuer", "the plugin's issuer URL"),
            subjects,
            required("preview_subject", "the preview job's subject pattern"),
            environments,
            prefix,
        )
    thumbprints = trust.thumbprints_checked(args.thumbprint or [])
    policies = [
        (flag, arn)
        for flag, arns in (("--preview-policy-arn", args.preview_policy_arn), ("--deploy-policy-arn", args.deploy_policy_arn))
        for arn in arns or []
    ]
    for flag, arn in policies:
        if not _policy_arn_ok(arn):
            raise TrustError(f"{flag} {arn!r}: give a managed policy's ARN, arn:aws:iam::<account id or aws>:policy/<path/name>")
    return CiTrust(built.provider, built.issuer, built.audience, built.roles, thumbprints, built.notes)


def _azure_entra(args: argparse.Namespace, environments: tuple[str, ...], prefix: str) -> CiTrust:
    """--provider azure --tenant-id: the Entra issuer; refuses the vstoken mode's flags (the subjects name the
    organization and the connections by id, so --organization and --project would be checked against nothing)."""
    if args.organization_id:
        raise TrustError(
            "--tenant-id and --organization-id: give one: --tenant-id for service connections with the Microsoft Entra issuer "
            f"({trust.ENTRA_ISSUER_PREFIX}<tenant id>/v2.0), --organization-id for the deprecated one ({trust.AZURE_ISSUER_PREFIX}<id>)"
        )
    for dest in ("organization", "project"):
        if getattr(args, dest):
            raise TrustError(
                f"--{dest} is not read with --tenant-id: the subject identifiers (--service-connection ROLE=SUBJECT) name the "
                "organization and the service connection by id; leave it out"
            )
    subjects = _pairs("--service-connection", args.service_connection or [], (trust.PREVIEW, *environments))
    return trust.azure_entra(args.tenant_id, subjects, environments, prefix)


def _policy_arn_ok(arn: str) -> bool:
    parts = arn.split(":", 5)
    return (
        len(parts) == 6
        and parts[0] == "arn"
        and parts[1].startswith("aws")
        and parts[2] == "iam"
        and parts[3] == ""
        and (parts[4] == "aws" or (parts[4].isdigit() and len(parts[4]) == 12))
        and parts[5].startswith("policy/")
        and len(parts[5]) > len("policy/")
    )


def handle(args: argparse.Namespace) -> int:
    """The command: validate every flag before any call, read, print, and with --apply create what is missing
    (only when nothing existing differs)."""
    try:
        wanted = wanted_trust(args)
        for flag, given in (("--preview-policy-arn", args.preview_policy_arn), ("--deploy-policy-arn", args.deploy_policy_arn)):
            if args.apply and not given:
                raise TrustError(f"{flag} is required with --apply: the managed policy (or policies) its roles get; nothing was changed")
        session = _session()
        current = plan(session, wanted, tuple(args.preview_policy_arn or ()), tuple(args.deploy_policy_arn or ()))
        applied = args.apply and not current.differing()
        if applied:
            apply(session, current, say=(lambda _: None) if args.json else (lambda line: print(f"  {line}")))
    except TrustError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_REFUSED
    print(json.dumps(as_json(current, applied), indent=2) if args.json else as_text(current, applied))
    if current.differing():
        print(
            "error: existing resources differ from what is wanted and were left as they are"
            + ("; nothing was created" if args.apply else "")
            + ". Fix or remove them, or choose another --role-prefix:\n"
            + "\n".join(f"  {d}" for d in current.differing()),
            file=sys.stderr,
        )
        return EXIT_REFUSED
    return 0


def add_parser(subparsers) -> argparse.ArgumentParser:
    """The `bootstrap-ci` command on `subparsers` (the top parser's add_subparsers())."""
    command = subparsers.add_parser(
        "bootstrap-ci",
        help="print (or with --apply create) the IAM OIDC provider and roles a CI system assumes",
        description="Print, or with --apply create, the IAM OIDC identity provider of a CI system (GitHub Actions, GitLab CI, "
        "Azure DevOps, Jenkins) and its roles: a preview role and a deploy role per environment, each trusting only "
        "that system's tokens for this repository (subjects as narrow as its tokens allow), sessions up to 4 hours. "
        "Azure DevOps: --tenant-id with each connection's subject identifier (the Microsoft Entra issuer), or the "
        "deprecated vstoken issuer with --organization, --organization-id and --project. Existing ones are "
        "reported and never changed. Exit 0 done, 1 an AWS call failed, 2 a wrong flag or an existing resource differs.",
    )
    command.add_argument("--provider", required=True, choices=trust.PROVIDERS, help="the CI system")
    command.add_argument("--apply", action="store_true", help="create what is missing (without it nothing is changed)")
    command.add_argument("--json", action="store_true", help="print the plan and every document as JSON")
    command.add_argument(
        "--environments",
        default=",".join(trust.DEFAULT_ENVIRONMENTS),
        help="deployment environments, one deploy role each (default staging,prod)",
    )
    command.add_argument(
        "--role-prefix",
        default=trust.DEFAULT_ROLE_PREFIX,
        help=f"roles are <prefix>-<provider>-preview|deploy-<env> (default {trust.DEFAULT_ROLE_PREFIX})",
    )
    command.add_argument(
        "--preview-policy-arn",
        action="append",
        metavar="ARN",
        help="managed policy for the preview role (repeatable; required with --apply)",
    )
    command.add_argument(
        "--deploy-policy-arn",
        action="append",
        metavar="ARN",
        help="managed policy for the deploy roles (repeatable; required with --apply)",
    )
    command.add_argument(
        "--thumbprint",
        action="append",
        metavar="SHA1",
        help="issuer CA thumbprint, only for an issuer whose certificate no public CA signed",
    )
    command.add_argument(
        "--issuer",
        help=f"github: GitHub Enterprise Server's https://HOST/_services/token (default {trust.GITHUB_ISSUER}); gitlab: the "
        f"instance's URL (default {trust.GITLAB_ISSUER}); jenkins (required): the OIDC provider plugin's issuer URL",
    )
    command.add_argument("--repository", metavar="OWNER/REPO", help="github (required): the repository")
    command.add_argument(
        "--project", help="gitlab (required): GROUP/PROJECT path; azure with --organization-id (required): the project's name"
    )
    command.add_argument("--branch", help="gitlab: the branch deployments run from (default main)")
    command.add_argument(
        "--tenant-id",
        metavar="GUID",
        help=f"azure, for service connections with the Microsoft Entra issuer ({trust.ENTRA_ISSUER_PREFIX}<tenant id>/v2.0, "
        "the mode for new connections): the tenant's id; then --service-connection ROLE=SUBJECT is required for every role",
    )
    command.add_argument(
        "--organization",
        help="azure, deprecated vstoken issuer (required with --organization-id): the organization's name",
    )
    command.add_argument(
        "--organization-id",
        metavar="GUID",
        help=f"azure, deprecated issuer {trust.AZURE_ISSUER_PREFIX}<id> that Azure DevOps is retiring: the organization's id; "
        "new connections use --tenant-id",
    )
    command.add_argument(
        "--service-connection",
        action="append",
        metavar="ROLE=SUBJECT|NAME",
        help="azure, per role (preview or an environment), repeatable: with --tenant-id (required for every role) the "
        'connection\'s "Subject identifier" from its page, verbatim; with --organization-id its name (default aws-<role>)',
    )
    command.add_argument(
        "--subject",
        action="append",
        metavar="[ENV=]SUBJECT",
        help="jenkins (required): the deploy job's exact subject, for every environment or per ENV",
    )
    command.add_argument(
        "--preview-subject",
        metavar="PATTERN",
        help="jenkins (required): the preview job's subject; '*' and '?' allowed after its first characters",
    )
    command.set_defaults(handler=handle)
    return command
