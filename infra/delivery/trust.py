"""Who may assume CI's AWS roles: per CI system, its OIDC issuer, the audience its tokens carry, the subjects its
tokens name, and the roles' trust policies built from them (`python -m infra bootstrap-ci`, infra/delivery/bootstrap_ci.py).

Each role's trust policy admits one federated principal (the account's IAM OIDC provider for the issuer) and
`sts:AssumeRoleWithWebIdentity` only when `<issuer host/path>:aud` equals the audience (StringEquals) and
`<issuer host/path>:sub` is one of the role's subjects (StringEquals, or StringLike when a subject holds a `*`
or `?` wildcard). The subjects are as narrow as each system's token allows, in the shape its documentation gives:

- GitHub Actions (issuer https://token.actions.githubusercontent.com, audience sts.amazonaws.com, as
  aws-actions/configure-aws-credentials requests it): `sub` is `repo:<owner>/<repo>:environment:<env>` for a job
  bound to an environment and `repo:<owner>/<repo>:pull_request` for a pull_request event
  (https://docs.github.com/actions/reference/openid-connect-reference). A deploy role admits its environment
  only, so GitHub's environment protection (required reviewers on prod) guards it; the preview role admits pull
  requests and the `preview` environment (preview stacks and the sweep, .github/workflows/preview*.yml). Forks'
  pull_request runs get no id token. A repository that customised its subject template needs other subjects.
- GitLab CI (issuer https://gitlab.com or the self-managed instance's URL; the job asks for audience
  sts.amazonaws.com in `id_tokens`): `sub` is `project_path:{group}/{project}:ref_type:{type}:ref:{branch_name}`
  (https://docs.gitlab.com/ci/secrets/id_token_authentication). The subject does not name the environment: both
  deploy roles admit the deploy branch (main), and prod is guarded by GitLab's protected branch and protected
  environment (approvals); the preview role admits every branch of the project (`ref:*`), never a tag.
- Azure DevOps, audience api://AzureADTokenExchange (the audience of workload identity federation:
  https://learn.microsoft.com/graph/api/resources/federatedidentitycredential), in one of two modes:
  - the Microsoft Entra issuer `https://login.microsoftonline.com/<tenant id>/v2.0` (`--tenant-id`), which
    workload identity federation service connections made now use: `sub` is the connection's "Subject
    identifier" as its page shows it (REST: authorization.parameters.workloadIdentityFederationSubject),
    `/eid1/c/pub/t/<tenant>/a/<app>/sc/<organization id>/<service connection id>`, `<tenant>` and `<app>` being
    the GUIDs' bytes in little-endian GUID order, base64url without padding. There is no default: each role's
    subject is given verbatim, its shape checked and its tenant decoded and compared with `--tenant-id`;
  - the issuer `https://vstoken.dev.azure.com/<organization id>` (`--organization-id`), which Azure DevOps is
    retiring: `sub` is `sc://<organization>/<project>/<service connection name>` (microsoft/azure-pipelines-tasks,
    docs/service-connections/azure-oidc).
  Either way the subject names the service connection, not the branch or pipeline: one service connection per
  role, and prod's connection restricted by its approvals and checks (branch control to main, the prod
  environment's approvals) and pipeline permissions, which are what protect prod's role.
- Jenkins (the OpenID Connect Provider plugin: issuer `https://<jenkins>/oidc` by default, or the external issuer
  it is configured with; audience sts.amazonaws.com by convention; `sub` by default the job's URL, e.g.
  `https://jenkins.example.com/job/ml-platform/job/main/`, https://plugins.jenkins.io/oidc-provider): the
  subjects are given as the plugin issues them. AWS fetches the issuer's discovery document and keys at every
  assume, so the issuer must be reachable from AWS. Its default subject does not name the environment either:
  prod is guarded by the pipeline's `input` step and who may run the job.

Thumbprints: IAM verifies an issuer's JWKS endpoint through its library of trusted root CAs and uses an OIDC
provider's thumbprints only when the certificate is not signed by one of them (IAM API reference,
CreateOpenIDConnectProvider, where ThumbprintList is optional); none are set unless given (a self-hosted
issuer with a private CA).

Session length: every role is made with MaxSessionDuration MAX_SESSION_DURATION (14400 s, 4 hours), and the CI
adapters request `--duration-seconds 14400` from `aws sts assume-role-with-web-identity` (and the like): a deploy
(`pulumi up` of an EKS cluster) can outlast IAM's default of one hour, and credentials must not expire mid-deploy.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

PROVIDERS = ("github", "gitlab", "azure", "jenkins")
STS_AUDIENCE = "sts.amazonaws.com"
AZURE_AUDIENCE = "api://AzureADTokenExchange"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GITLAB_ISSUER = "https://gitlab.com"
# Azure DevOps' issuer until it moved to Microsoft Entra ID; Azure DevOps is retiring it (--organization-id).
AZURE_ISSUER_PREFIX = "https://vstoken.dev.azure.com/"
# The Microsoft Entra issuer of workload identity federation service connections: <prefix><tenant id>/v2.0 (--tenant-id).
ENTRA_ISSUER_PREFIX = "https://login.microsoftonline.com/"
# IAM's MaxSessionDuration of every role bootstrap-ci makes (IAM's default is 3600). A deploy (`pulumi up` of an EKS
# cluster) can run past an hour, so the CI adapters request `--duration-seconds 14400` when they assume a role, and
# STS refuses a duration longer than the role's maximum. A role found with another maximum "differs".
MAX_SESSION_DURATION = 14400
DEFAULT_ENVIRONMENTS = ("staging", "prod")
DEFAULT_ROLE_PREFIX = "ml-platform-ci"
PREVIEW = "preview"
# The GitHub environment preview stacks and the sweep run in (.github/workflows/preview.yml, preview-sweep.yml).
GITHUB_PREVIEW_ENVIRONMENT = "preview"

_WILDCARDS = re.compile(r"[*?]")
_GITHUB_REPOSITORY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}\Z")
# GitLab paths: namespaces and project paths of letters, digits, '_', '-', '.', subgroups joined by '/'.
_GITLAB_PROJECT = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)+\Z")
_GIT_BRANCH = re.compile(r"^[A-Za-z0-9._/-]+\Z")
_ENVIRONMENT = re.compile(r"^[A-Za-z0-9_.-]{1,64}\Z")
_GUID_PART = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_GUID = re.compile(rf"^{_GUID_PART}\Z")
# An Azure DevOps service connection's subject under the Entra issuer: the tenant and Azure DevOps' application as
# base64url GUIDs (16 bytes: 22 characters, no padding), then the organization's and the service connection's ids.
_ENTRA_SUBJECT = re.compile(
    rf"^/eid1/c/pub/t/(?P<tenant>[A-Za-z0-9_-]{{22}})/a/(?P<app>[A-Za-z0-9_-]{{22}})/sc/(?P<organization>{_GUID_PART})/(?P<connection>{_GUID_PART})\Z"
)
_AZURE_ORGANIZATION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,48}[A-Za-z0-9]?\Z")
_THUMBPRINT = re.compile(r"^[0-9a-fA-F]{40}\Z")


class TrustError(Exception):
    """A flag whose value cannot make a trust policy; the message names the flag and what is allowed."""


def has_wildcard(subject: str) -> bool:
    return bool(_WILDCARDS.search(subject))


@dataclass(frozen=True)
class Role:
    """One CI role: its name, what it is for (`preview` or a deployment environment), the token subjects it admits."""

    name: str
    purpose: str
    subjects: tuple[str, ...]
    note: str = ""

    @property
    def is_deploy(self) -> bool:
        return self.purpose != PREVIEW

    def describe(self) -> str:
        return "preview: read-only plans, previews, preview stacks" if not self.is_deploy else f"deploy {self.purpose}"


@dataclass(frozen=True)
class CiTrust:
    """What bootstrap-ci makes for one CI system: the OIDC provider (issuer, audience, thumbprints) and the roles."""

    provider: str
    issuer: str
    audience: str
    roles: tuple[Role, ...]
    thumbprints: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def host_path(self) -> str:
        """The issuer without its scheme: the OIDC provider's name in its ARN and the prefix of its condition keys."""
        return self.issuer.removeprefix("https://")

    def provider_arn(self, account: str, partition: str = "aws") -> str:
        return f"arn:{partition}:iam::{account}:oidc-provider/{self.host_path}"

    def trust_policy(self, role: Role, provider_arn: str) -> dict:
        """The role's trust policy: this provider's tokens with this audience and one of the role's subjects."""
        sub_operator = "StringLike" if any(has_wildcard(s) for s in role.subjects) else "StringEquals"
        subjects: str | list[str] = role.subjects[0] if len(role.subjects) == 1 else list(role.subjects)
        condition: dict[str, dict[str, str | list[str]]] = {"StringEquals": {f"{self.host_path}:aud": self.audience}}
        condition.setdefault(sub_operator, {})[f"{self.host_path}:sub"] = subjects
        statement = {
            "Sid": "CiOidc" + "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", role.purpose) if part),
            "Effect": "Allow",
            "Principal": {"Federated": provider_arn},
            "Action": "sts:AssumeRoleWithWebIdentity",
            "Condition": condition,
        }
        return {"Version": "2012-10-17", "Statement": [statement]}


# Validation of the flags each provider reads.


def issuer_problem(flag: str, issuer: str) -> str | None:
    """Why `issuer` cannot be an IAM OIDC provider's URL (https, a host, no port, query or fragment, no trailing
    slash since it must equal the tokens' `iss` claim), or None."""
    parts = urlsplit(issuer)
    if parts.scheme != "https" or not parts.hostname:
        return f"{flag} {issuer!r}: give the issuer's https:// URL, exactly as the tokens' iss claim names it"
    if parts.port is not None or parts.query or parts.fragment or "@" in parts.netloc:
        return f"{flag} {issuer!r}: IAM takes the issuer URL without a port, user, query or fragment"
    if issuer.endswith("/"):
        return f"{flag} {issuer!r}: no trailing '/': the URL must equal the tokens' iss claim"
    return None


def _issuer_checked(issuer: str | None) -> None:
    problem = issuer_problem("--issuer", issuer) if issuer is not None else None
    if problem:
        raise TrustError(problem)


def thumbprints_checked(thumbprints: list[str]) -> tuple[str, ...]:
    bad = [t for t in thumbprints if not _THUMBPRINT.match(t)]
    if bad:
        raise TrustError(f"--thumbprint {bad[0]!r}: a thumbprint is the 40 hex digits of the issuer CA certificate's SHA-1")
    if len(thumbprints) > 5:
        raise TrustError(f"--thumbprint given {len(thumbprints)} times: IAM keeps at most 5 thumbprints per provider")
    return tuple(t.lower() for t in thumbprints)


def environments_checked(environments: list[str]) -> tuple[str, ...]:
    for env in environments:
        if not _ENVIRONMENT.match(env) or env == PREVIEW:
            raise TrustError(
                f"--environments {env!r}: names of 1-64 letters, digits, '_', '.', '-' (and not '{PREVIEW}', the preview role's)"
            )
    # IAM role names are case-insensitive: prod and Prod would be one role, found only half-way through --apply.
    if len({env.lower() for env in environments}) != len(environments) or not environments:
        raise TrustError(f"--environments {','.join(environments)!r}: give each deployment environment once, e.g. staging,prod")
    return tuple(environments)


def _literal(flag: str, value: str, what: str) -> str:
    """A name that goes into a subject as is: no wildcard (StringLike would read it as one), no ':' or newline."""
    if not value or has_wildcard(value) or any(c in value for c in ":\n\r\t"):
        raise TrustError(f"{flag} {value!r}: {what}, without '*', '?', ':' or control characters")
    return value


def role_name(prefix: str, provider: str, purpose: str) -> str:
    return f"{prefix}-{provider}-{purpose if purpose == PREVIEW else 'deploy-' + purpose}"


def role_prefix_checked(prefix: str, provider: str, environments: tuple[str, ...]) -> str:
    longest = max((role_name(prefix, provider, p) for p in (PREVIEW, *environments)), key=len)
    if not re.fullmatch(r"[\w+=,.@-]+", prefix):
        raise TrustError(f"--role-prefix {prefix!r}: IAM role names take letters, digits and + = , . @ _ -")
    if len(longest) > 64:
        raise TrustError(f"--role-prefix {prefix!r}: role {longest!r} would be {len(longest)} characters; IAM allows 64")
    return prefix


# The trust of each CI system.


def github(repository: str, environments: tuple[str, ...], prefix: str, issuer: str | None = None) -> CiTrust:
    """GitHub Actions: deploy roles admit `repo:<owner>/<repo>:environment:<env>`, the preview role pull requests
    and the preview environment. `issuer`: GitHub Enterprise Server's `https://HOST/_services/token`."""
    _issuer_checked(issuer)
    if not _GITHUB_REPOSITORY.match(repository):
        raise TrustError(f"--repository {repository!r}: give OWNER/REPO as GitHub spells it (the subject is case-sensitive)")
    roles = [
        Role(
            role_name(prefix, "github", PREVIEW),
            PREVIEW,
            (f"repo:{repository}:pull_request", f"repo:{repository}:environment:{GITHUB_PREVIEW_ENVIRONMENT}"),
            "pull requests of this repository (forks get no id token) and jobs in its 'preview' environment",
        )
    ]
    roles += [
        Role(role_name(prefix, "github", env), env, (f"repo:{repository}:environment:{env}",), f"jobs in the '{env}' environment only")
        for env in environments
    ]
    notes = (
        "GitHub: each deploy role admits jobs bound to its environment only; protect prod with required reviewers "
        "(and a deployment branch rule for main) in the repository's environment settings.",
        "GitHub: these subjects are GitHub's default template; a repository or organisation that customised its OIDC "
        "subject claim needs other subjects.",
    )
    return CiTrust("github", issuer or GITHUB_ISSUER, STS_AUDIENCE, tuple(roles), notes=notes)


def gitlab(project: str, environments: tuple[str, ...], prefix: str, branch: str = "main", issuer: str | None = None) -> CiTrust:
    """GitLab CI: deploy roles admit pipelines of the deploy branch, the preview role any branch of the project."""
    _issuer_checked(issuer)
    if not _GITLAB_PROJECT.match(project) or project.endswith((".git", ".atom")):
        raise TrustError(f"--project {project!r}: give the project's full path, GROUP[/SUBGROUP...]/PROJECT, as in its URL")
    if not _GIT_BRANCH.match(branch) or has_wildcard(branch):
        raise TrustError(f"--branch {branch!r}: one branch name (letters, digits, '.', '_', '-', '/'), no wildcard")
    deploy_subject = f"project_path:{project}:ref_type:branch:ref:{branch}"
    roles = [
        Role(
            role_name(prefix, "gitlab", PREVIEW),
            PREVIEW,
            (f"project_path:{project}:ref_type:branch:ref:*",),
            "pipelines of any branch of this project (merge requests run on their source branch); not tags, not other projects",
        )
    ]
    roles += [Role(role_name(prefix, "gitlab", env), env, (deploy_subject,), f"pipelines of branch {branch} only") for env in environments]
    notes = (
        f"GitLab: the token's subject names the project and branch, not the environment, so every deploy role admits "
        f"pipelines of {branch}; protect {branch} (who may push and merge) and make prod a protected environment with "
        "approvals, which the deploy job uses.",
        "GitLab: the preview role admits any branch anyone with push access creates: give it read-only and preview stack permissions only.",
    )
    return CiTrust("gitlab", issuer or GITLAB_ISSUER, STS_AUDIENCE, tuple(roles), notes=notes)


def azure(
    organization: str, organization_id: str, project: str, connections: dict[str, str], environments: tuple[str, ...], prefix: str
) -> CiTrust:
    """Azure DevOps with the issuer Azure DevOps is retiring, `https://vstoken.dev.azure.com/<organization_id>`: one
    service connection per role; each role admits `sc://<organization>/<project>/<its connection's name>`.
    `connections`: role (`preview` or an environment) -> connection name, default `aws-<role>`. TrustError naming
    the flag for a bad organization, id, project or connection name, or two roles with one connection. Connections
    made now use the Entra issuer: azure_entra()."""
    if not _AZURE_ORGANIZATION.match(organization):
        raise TrustError(f"--organization {organization!r}: the organization's name as in https://dev.azure.com/<organization>")
    if not _GUID.match(organization_id):
        raise TrustError(
            f"--organization-id {organization_id!r}: the organization's id, a GUID (the issuer is {AZURE_ISSUER_PREFIX}<id>; "
            "a workload identity service connection shows it as its issuer)"
        )
    if "/" in project:
        raise TrustError(f"--project {project!r}: the Azure DevOps project's name, without '/'")
    _literal("--project", project, "the Azure DevOps project's name")
    wanted = (PREVIEW, *environments)
    unknown = sorted(set(connections) - set(wanted))
    if unknown:
        raise TrustError(f"--service-connection {unknown[0]}=...: the role must be one of {', '.join(wanted)}")
    roles = []
    for purpose in wanted:
        name = connections.get(purpose, f"aws-{purpose}")
        if name.startswith("/eid1/"):
            raise TrustError(
                f"--service-connection {purpose}={name!r}: that is a subject identifier of the Microsoft Entra issuer: give "
                "--tenant-id (instead of --organization, --organization-id and --project) with it"
            )
        if "/" in name:
            raise TrustError(f"--service-connection {purpose}={name!r}: a service connection's name, without '/'")
        _literal("--service-connection", name, "a service connection's name")
        roles.append(
            Role(
                role_name(prefix, "azure", purpose),
                purpose,
                (f"sc://{organization}/{project}/{name}",),
                f"service connection '{name}' only",
            )
        )
    if len({r.subjects for r in roles}) != len(roles):
        raise TrustError("--service-connection: give each role its own service connection (the subject names only the connection)")
    notes = (
        "Azure DevOps: the token's subject names the service connection, not the branch or pipeline: whoever may use "
        "a connection may assume its role. Restrict prod's connection with approvals and checks (branch control: "
        "refs/heads/main; the prod environment's approvals) and allow it to the deploy pipeline only.",
        f"Azure DevOps: the issuer {AZURE_ISSUER_PREFIX}{organization_id} is the organization's; the audience is "
        f"{AZURE_AUDIENCE}, the one Azure DevOps puts in workload identity tokens.",
        f"Azure DevOps: the issuer {AZURE_ISSUER_PREFIX}<organization id> is deprecated by Azure DevOps, which is retiring "
        f"it; workload identity federation service connections made now use the Microsoft Entra issuer "
        f"{ENTRA_ISSUER_PREFIX}<tenant id>/v2.0: for them use --tenant-id, with --service-connection ROLE=SUBJECT giving "
        'each connection\'s "Subject identifier" from its page.',
    )
    return CiTrust("azure", f"{AZURE_ISSUER_PREFIX}{organization_id}", AZURE_AUDIENCE, tuple(roles), notes=notes)


def entra_issuer(tenant_id: str) -> str:
    """`https://login.microsoftonline.com/<tenant_id, lower case>/v2.0`, the `iss` of the tokens Microsoft Entra ID
    issues for Azure DevOps service connections (Entra writes GUIDs in lower case)."""
    return f"{ENTRA_ISSUER_PREFIX}{tenant_id.lower()}/v2.0"


def entra_guid_segment(guid: str) -> str:
    """How Entra subjects write a GUID (the `t/` tenant and `a/` application segments): its 16 bytes in the
    little-endian GUID order (`uuid.UUID(guid).bytes_le`), base64url, without padding: 22 characters.
    ValueError when `guid` is not a GUID."""
    return base64.urlsafe_b64encode(uuid.UUID(guid).bytes_le).decode("ascii").rstrip("=")


def entra_segment_guid(segment: str) -> str:
    """The GUID (lower case, 8-4-4-4-12) a 22-character base64url segment of an Entra subject encodes, the inverse
    of entra_guid_segment(). ValueError when `segment` is not 16 bytes of base64url."""
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return str(uuid.UUID(bytes_le=raw))


def entra_connection_id(subject: str) -> str | None:
    """The service connection's id (its subject's last GUID) when `subject` has the shape of an Azure DevOps
    subject identifier under the Entra issuer, else None."""
    found = _ENTRA_SUBJECT.match(subject)
    return found["connection"] if found else None


def _entra_subject_checked(purpose: str, subject: str, tenant_id: str) -> str:
    """`subject` when it has the shape of a service connection's subject identifier and names `tenant_id`."""
    found = _ENTRA_SUBJECT.match(subject)
    if not found:
        raise TrustError(
            f"--service-connection {purpose}={subject!r}: with --tenant-id, give the connection's subject identifier verbatim, "
            '/eid1/c/pub/t/<tenant>/a/<application>/sc/<organization id>/<service connection id>: copy "Subject identifier" '
            "from the service connection's page in Azure DevOps (Project settings > Service connections)"
        )
    segment = found["tenant"]
    expected = entra_guid_segment(tenant_id)
    if segment != expected:
        named = entra_segment_guid(segment)
        raise TrustError(
            f"--service-connection {purpose}=...: the subject names tenant {named} (t/{segment}), but --tenant-id is "
            f"{tenant_id} (t/{expected}): give the tenant of the service connection's issuer, or that connection's subject"
        )
    return subject


def azure_entra(tenant_id: str, subjects: dict[str, str], environments: tuple[str, ...], prefix: str) -> CiTrust:
    """Azure DevOps with the Microsoft Entra issuer `https://login.microsoftonline.com/<tenant_id>/v2.0`: one service
    connection per role; each role admits exactly its connection's subject identifier.

    `tenant_id`: the tenant's GUID (any case; the issuer has it in lower case). `subjects`: role (`preview` and every
    environment, all required, no default) -> the subject verbatim, `/eid1/c/pub/t/<tenant>/a/<app>/sc/<GUID>/<GUID>`.
    TrustError naming the flag when the tenant is not a GUID, a role has no subject or an unknown role one, a subject
    has another shape or names another tenant than `tenant_id` (its `t/` segment decoded), or two roles share one."""
    if not _GUID.match(tenant_id):
        raise TrustError(
            f"--tenant-id {tenant_id!r}: the Microsoft Entra tenant's id, a GUID (a workload identity service connection "
            f"shows its issuer as {ENTRA_ISSUER_PREFIX}<tenant id>/v2.0)"
        )
    tenant = tenant_id.lower()
    wanted = (PREVIEW, *environments)
    unknown = sorted(set(subjects) - set(wanted))
    if unknown:
        raise TrustError(f"--service-connection {unknown[0]}=...: the role must be one of {', '.join(wanted)}")
    roles = []
    for purpose in wanted:
        subject = subjects.get(purpose)
        if not subject:
            raise TrustError(
                f"--service-connection {purpose}=SUBJECT is missing: with --tenant-id every role ({', '.join(wanted)}) needs "
                f"its own service connection's subject; copy \"Subject identifier\" from the service connection's page in "
                "Azure DevOps (Project settings > Service connections)"
            )
        _entra_subject_checked(purpose, subject, tenant)
        note = f"service connection {entra_connection_id(subject)} only (the subject identifier on its page)"
        roles.append(Role(role_name(prefix, "azure", purpose), purpose, (subject,), note))
    if len({r.subjects for r in roles}) != len(roles):
        raise TrustError("--service-connection: give each role its own service connection (the subject names only the connection)")
    issuer = entra_issuer(tenant)
    notes = (
        "Azure DevOps: the token's subject names the service connection, not the branch or pipeline: whoever may use "
        "a connection may assume its role. Restrict prod's connection with approvals and checks (branch control: "
        "refs/heads/main; the prod environment's approvals) and allow it to the deploy pipeline only.",
        f"Azure DevOps: the issuer {issuer} is the tenant's Microsoft Entra ID, which issues the tokens of workload "
        f"identity federation service connections; the audience is {AZURE_AUDIENCE}. The OIDC provider accepts every "
        "token of that tenant with this audience: each role's exact subject is what admits one connection only.",
    )
    return CiTrust("azure", issuer, AZURE_AUDIENCE, tuple(roles), notes=notes)


def jenkins(issuer: str, deploy_subjects: dict[str, str], preview_subject: str, environments: tuple[str, ...], prefix: str) -> CiTrust:
    """Jenkins's OpenID Connect Provider plugin: subjects as its claim templates issue them (by default the job's URL).
    `deploy_subjects`: per environment; a deploy role admits one exact subject, the preview role may use wildcards."""
    _issuer_checked(issuer)
    for env in environments:
        subject = deploy_subjects.get(env)
        if not subject:
            raise TrustError(
                f"--subject: no subject for deploy role {env}; give --subject PATTERN (every environment) or --subject {env}=PATTERN"
            )
        if has_wildcard(subject) or not subject.strip():
            raise TrustError(
                f"--subject {subject!r}: a deploy role admits one job: give its exact subject (by default the job's URL, "
                "e.g. https://jenkins.example.com/job/ml-platform/job/main/), no '*' or '?'"
            )
    if not preview_subject.strip() or preview_subject.lstrip("*?") != preview_subject:
        raise TrustError(
            f"--preview-subject {preview_subject!r}: start with the literal part that names the job "
            "(e.g. https://jenkins.example.com/job/ml-platform/job/PR-*), not with a wildcard"
        )
    roles = [Role(role_name(prefix, "jenkins", PREVIEW), PREVIEW, (preview_subject,), "the preview job(s) matching the pattern")]
    roles += [Role(role_name(prefix, "jenkins", env), env, (deploy_subjects[env],), "this job only") for env in environments]
    notes = (
        f"Jenkins: AWS reads {issuer}/.well-known/openid-configuration and the keys it names at every assume: the "
        "issuer must be reachable from AWS over HTTPS (or served as the plugin's external issuer).",
        "Jenkins: the default subject (the job's URL) does not name the environment; where staging and prod run in the "
        "same job, prod is guarded by the pipeline's `input` step and by who may run or replay that job.",
    )
    return CiTrust("jenkins", issuer, STS_AUDIENCE, tuple(roles), notes=notes)
