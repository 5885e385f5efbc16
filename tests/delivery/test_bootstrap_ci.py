"""bootstrap-ci: for every CI system the documents IAM accepts (moto's validators and moto IAM), a dry run that
changes nothing, --apply that creates the provider and roles, a rerun that reports "exists" and writes nothing,
an existing provider or role that differs reported and left as it is (and nothing else created), flags checked
before any call (exit 2 naming the flag), AWS failures left to the command line's one-line explanation, no stored
keys; and each trust policy evaluated against the claims real tokens carry (a small StringEquals/StringLike
evaluator): a prod deploy role refuses a pull-request token and a token of another repository or project. Azure
DevOps in both modes: the Microsoft Entra issuer (--tenant-id, each connection's subject identifier given verbatim,
its tenant decoded) and the deprecated vstoken issuer. Every role is made with MaxSessionDuration 14400 (4 hours)."""

from __future__ import annotations

import argparse
import base64
import fnmatch
import json
import re
import uuid
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from moto import mock_aws
from moto.iam.policy_validation import IAMTrustPolicyDocumentValidator

from ml_platform.infra import cli
from ml_platform.infra.delivery import aws_errors, bootstrap_ci, trust

ORG_ID = "0b5e3f0c-1d2e-4f5a-8b9c-0d1e2f3a4b5c"
JENKINS = "https://jenkins.acme.com"
EXAMPLES = {
    "github": ["--repository", "acme/ml-platform"],
    "gitlab": ["--project", "acme/platform/ml-platform"],
    "azure": ["--organization", "acme", "--organization-id", ORG_ID, "--project", "ML Platform"],
    "jenkins": [
        "--issuer",
        f"{JENKINS}/oidc",
        "--subject",
        f"{JENKINS}/job/ml-platform/job/main/",
        "--preview-subject",
        f"{JENKINS}/job/ml-platform/job/PR-*",
    ],
}
ISSUERS = {
    "github": "https://token.actions.githubusercontent.com",
    "gitlab": "https://gitlab.com",
    "azure": f"https://vstoken.dev.azure.com/{ORG_ID}",
    "jenkins": f"{JENKINS}/oidc",
}
AUDIENCES = {
    "github": "sts.amazonaws.com",
    "gitlab": "sts.amazonaws.com",
    "azure": "api://AzureADTokenExchange",
    "jenkins": "sts.amazonaws.com",
}
ACCOUNT = "123456789012"  # moto's
WRITES = ("create", "attach", "detach", "put", "update", "delete", "tag", "untag", "add", "remove", "upload")


def run(argv: list[str]) -> int:
    """The command as infra/cli.py runs it: parsed by its sub-parser, AWS failures as one line with exit 1."""
    top = argparse.ArgumentParser(prog="python -m infra")
    bootstrap_ci.add_parser(top.add_subparsers(dest="command", required=True))
    try:
        args = top.parse_args(["bootstrap-ci", *argv])
    except SystemExit as exit_:
        return int(exit_.code)
    try:
        return args.handler(args)
    except (BotoCoreError, ClientError) as err:
        print(f"error: {aws_errors.explain(err)}")
        return 1


def example(provider: str, *extra: str) -> list[str]:
    return ["--provider", provider, *EXAMPLES[provider], *extra]


def wanted(provider: str, *extra: str) -> trust.CiTrust:
    top = argparse.ArgumentParser()
    bootstrap_ci.add_parser(top.add_subparsers())
    return bootstrap_ci.wanted_trust(top.parse_args(["bootstrap-ci", *example(provider, *extra)]))


class ReadOnly:
    """A client that fails the test on any call that would change something."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        if name.split("_")[0] in WRITES:
            raise AssertionError(f"{name} called: nothing may change here")
        return getattr(self._client, name)


class ReadOnlySession:
    def __init__(self, session):
        self._session, self.region_name = session, session.region_name

    def client(self, service, region_name=None):
        return ReadOnly(self._session.client(service, region_name=region_name))


@pytest.fixture
def aws(monkeypatch):
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        monkeypatch.setattr(bootstrap_ci, "_session", lambda: session)
        yield session


@pytest.fixture
def policies(aws):
    iam = aws.client("iam")
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "*"}]}
    arns = {}
    for name in ("ci-preview", "ci-deploy"):
        arns[name] = iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(document))["Policy"]["Arn"]
    return ["--preview-policy-arn", arns["ci-preview"], "--deploy-policy-arn", arns["ci-deploy"]]


def read_only(monkeypatch, aws):
    monkeypatch.setattr(bootstrap_ci, "_session", lambda: ReadOnlySession(aws))


def snapshot(aws) -> dict:
    iam = aws.client("iam")
    roles = {r["RoleName"]: r["AssumeRolePolicyDocument"] for r in iam.list_roles()["Roles"]}
    attached = {name: iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"] for name in roles}
    providers = [
        iam.get_open_id_connect_provider(OpenIDConnectProviderArn=p["Arn"])
        for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]
    ]
    return {"roles": roles, "attached": attached, "providers": [(p["Url"], p["ClientIDList"], p["ThumbprintList"]) for p in providers]}


# IAM accepts every document.


@pytest.mark.parametrize("provider", trust.PROVIDERS)
def test_every_providers_documents_are_valid_iam(provider, aws):
    built = wanted(provider)
    iam = aws.client("iam")
    arn = iam.create_open_id_connect_provider(Url=built.issuer, ClientIDList=[built.audience])["OpenIDConnectProviderArn"]
    assert arn == built.provider_arn(ACCOUNT)
    assert built.issuer == ISSUERS[provider] and built.audience == AUDIENCES[provider]
    for role in built.roles:
        document = json.dumps(built.trust_policy(role, arn))
        IAMTrustPolicyDocumentValidator(document).validate()
        iam.create_role(
            RoleName=role.name, AssumeRolePolicyDocument=json.dumps(trust.CiTrust("x", "https://x", "y", ()).trust_policy(role, arn))
        )
        iam.update_assume_role_policy(RoleName=role.name, PolicyDocument=document)  # moto validates here
        assert len(document) < 2048  # IAM's default quota for a trust policy
    assert [r.purpose for r in built.roles] == ["preview", "staging", "prod"]


def test_the_validator_rejects_a_broken_trust_policy(aws):
    built = wanted("github")
    document = built.trust_policy(built.roles[0], built.provider_arn(ACCOUNT))
    document["Statement"][0]["Resource"] = "*"
    with pytest.raises(Exception, match=r"(?i)resource"):
        IAMTrustPolicyDocumentValidator(json.dumps(document)).validate()


def test_jenkins_subjects_per_environment():
    top = argparse.ArgumentParser()
    bootstrap_ci.add_parser(top.add_subparsers())
    argv = ["--provider", "jenkins", "--issuer", f"{JENKINS}/oidc", "--preview-subject", f"{JENKINS}/job/ml/job/PR-*"]
    argv += ["--subject", f"{JENKINS}/job/ml/job/main/", "--subject", f"prod={JENKINS}/job/ml-prod/"]
    built = bootstrap_ci.wanted_trust(top.parse_args(["bootstrap-ci", *argv]))
    assert {r.purpose: r.subjects for r in built.roles} == {
        "preview": (f"{JENKINS}/job/ml/job/PR-*",),
        "staging": (f"{JENKINS}/job/ml/job/main/",),
        "prod": (f"{JENKINS}/job/ml-prod/",),
    }


# Dry run, apply, rerun.


@pytest.mark.parametrize("provider", trust.PROVIDERS)
def test_a_dry_run_changes_nothing(provider, aws, policies, monkeypatch, capsys):
    before = snapshot(aws)
    read_only(monkeypatch, aws)
    assert run(example(provider, *policies)) == 0
    out = capsys.readouterr().out
    assert "dry run: nothing changed" in out and out.count("would be created") == 4
    # the variables each adapter reads (.gitlab-ci.yml and the workflows per environment; azure-pipelines.yml, Jenkinsfile one each)
    deploy_prod = f"arn:aws:iam::{ACCOUNT}:role/ml-platform-ci-{provider}-deploy-prod"
    scoped = provider in ("github", "gitlab")
    assert (f"AWS_ROLE_ARN={deploy_prod} scoped to environment prod" if scoped else f"AWS_PROD_ROLE_ARN={deploy_prod}") in out
    assert snapshot(aws) == before


@pytest.mark.parametrize("provider", trust.PROVIDERS)
def test_apply_creates_the_provider_and_roles(provider, aws, policies, capsys):
    assert run(example(provider, *policies, "--apply")) == 0
    assert "created OIDC provider" in capsys.readouterr().out
    iam = aws.client("iam")
    built = wanted(provider)
    arn = built.provider_arn(ACCOUNT)
    found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert found["ClientIDList"] == [AUDIENCES[provider]] and found["ThumbprintList"] == []
    for role in built.roles:
        found_role = iam.get_role(RoleName=role.name)["Role"]
        assert found_role["AssumeRolePolicyDocument"] == built.trust_policy(role, arn)
        assert found_role["MaxSessionDuration"] == 14400  # 4 hours: a deploy outlasts IAM's default hour
        attached = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName=role.name)["AttachedPolicies"]]
        assert attached == [policies[3] if role.is_deploy else policies[1]]


def test_apply_with_json_reports_what_it_created(aws, policies, capsys):
    assert run(example("gitlab", *policies, "--apply", "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["applied"] is True and len(report["created"]) == 4
    prod = next(r for r in report["roles"] if r["purpose"] == "prod")
    assert prod["trustPolicy"]["Statement"][0]["Condition"] == {
        "StringEquals": {
            "gitlab.com:aud": "sts.amazonaws.com",
            "gitlab.com:sub": "project_path:acme/platform/ml-platform:ref_type:branch:ref:main",
        }
    }


@pytest.mark.parametrize("provider", trust.PROVIDERS)
def test_a_rerun_reports_exists_and_changes_nothing(provider, aws, policies, monkeypatch, capsys):
    assert run(example(provider, *policies, "--apply")) == 0
    capsys.readouterr()
    before = snapshot(aws)
    read_only(monkeypatch, aws)
    assert run(example(provider, *policies, "--apply")) == 0
    out = capsys.readouterr().out
    assert out.count("exists, as wanted: left as it is") == 4 and "nothing to create, nothing changed" in out
    assert snapshot(aws) == before


def test_a_differing_role_is_reported_and_left_and_nothing_is_created(aws, policies, capsys):
    assert run(example("github", *policies, "--apply")) == 0
    iam = aws.client("iam")
    prod = "ml-platform-ci-github-deploy-prod"
    broad = json.loads(json.dumps(iam.get_role(RoleName=prod)["Role"]["AssumeRolePolicyDocument"]))
    broad["Statement"][0]["Condition"] = {"StringLike": {"token.actions.githubusercontent.com:sub": "repo:acme/*"}}
    iam.update_assume_role_policy(RoleName=prod, PolicyDocument=json.dumps(broad))
    iam.detach_role_policy(RoleName="ml-platform-ci-github-deploy-staging", PolicyArn=policies[3])
    iam.delete_role(RoleName="ml-platform-ci-github-deploy-staging")
    capsys.readouterr()
    assert run(example("github", *policies, "--apply")) == 2
    captured = capsys.readouterr()
    assert "EXISTS AND DIFFERS, left as it is" in captured.out
    assert f"role {prod}: trust policy admits: Allow" in captured.err and "StringLike sub=repo:acme/*" in captured.err
    assert "wanted: Allow" in captured.err and "repo:acme/ml-platform:environment:prod" in captured.err
    assert "nothing was created" in captured.err and "Traceback" not in captured.err
    assert iam.get_role(RoleName=prod)["Role"]["AssumeRolePolicyDocument"] == broad  # left as it is
    with pytest.raises(iam.exceptions.NoSuchEntityException):  # and the missing one not made meanwhile
        iam.get_role(RoleName="ml-platform-ci-github-deploy-staging")


def test_extra_permissions_on_an_existing_role_are_reported(aws, policies, capsys):
    assert run(example("jenkins", *policies, "--apply")) == 0
    iam = aws.client("iam")
    iam.attach_role_policy(RoleName="ml-platform-ci-jenkins-deploy-prod", PolicyArn=policies[1])
    iam.put_role_policy(RoleName="ml-platform-ci-jenkins-preview", PolicyName="hand-made", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))  # fmt: skip
    capsys.readouterr()
    assert run(example("jenkins", *policies)) == 2
    err = capsys.readouterr().err
    assert f"role ml-platform-ci-jenkins-deploy-prod: also attached: {policies[1]} (not asked for)" in err
    assert "role ml-platform-ci-jenkins-preview: inline policy hand-made (bootstrap-ci makes none)" in err


def test_an_existing_provider_without_the_audience_is_reported_and_left(aws, policies, capsys):
    iam = aws.client("iam")
    iam.create_open_id_connect_provider(Url=ISSUERS["azure"], ClientIDList=["something-else"])
    assert run(example("azure", *policies, "--apply")) == 2
    err = capsys.readouterr().err
    assert "its audiences ['something-else'] lack api://AzureADTokenExchange" in err
    found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=wanted("azure").provider_arn(ACCOUNT))
    assert found["ClientIDList"] == ["something-else"] and iam.list_roles()["Roles"] == []


def test_thumbprints_are_set_only_when_given(aws, policies):
    thumbprint = "9e99a48a9960b14926bb7f3b02e22da2b0ab7280"
    assert run(example("jenkins", *policies, "--apply", "--thumbprint", thumbprint.upper())) == 0
    found = aws.client("iam").get_open_id_connect_provider(OpenIDConnectProviderArn=wanted("jenkins").provider_arn(ACCOUNT))
    assert found["ThumbprintList"] == [thumbprint]


def test_a_policy_that_does_not_exist_is_exit_2_and_nothing_is_made(aws, policies, capsys):
    missing = f"arn:aws:iam::{ACCOUNT}:policy/nope"
    assert run(example("github", "--apply", "--preview-policy-arn", policies[1], "--deploy-policy-arn", missing)) == 2
    assert f"--deploy-policy-arn {missing}: no such managed policy" in capsys.readouterr().err
    assert aws.client("iam").list_open_id_connect_providers()["OpenIDConnectProviderList"] == []


# Flags: checked before any AWS call, exit 2 naming the flag.


class NoCalls:
    region_name = None

    def client(self, *args, **kwargs):
        raise AssertionError("no AWS client may be made for bad flags")


ARN = f"arn:aws:iam::{ACCOUNT}:policy/ci"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--provider", "circleci"], "argument --provider: invalid choice: 'circleci'"),
        (["--provider", "github"], "--repository is required with --provider github: OWNER/REPO"),
        (["--provider", "github", "--repository", "ml-platform"], "--repository 'ml-platform': give OWNER/REPO"),
        (example("github", "--organization", "acme"), "--organization is not read for --provider github; it is for --provider azure"),
        (example("github", "--subject", "x"), "--subject is not read for --provider github"),
        (["--provider", "gitlab", "--project", "ml-platform"], "--project 'ml-platform': give the project's full path"),
        (example("gitlab", "--branch", "release-*"), "--branch 'release-*': one branch name"),
        (example("gitlab", "--issuer", "http://gitlab.acme.com"), "--issuer 'http://gitlab.acme.com': give the issuer's https:// URL"),
        (example("gitlab", "--issuer", "https://gitlab.acme.com/"), "no trailing '/'"),
        (example("gitlab", "--issuer", "https://gitlab.acme.com:8443"), "without a port"),
        (["--provider", "azure", "--organization", "acme", "--project", "p"], "--organization-id is required with --provider azure"),
        (example("azure", "--organization-id", "42"), "--organization-id '42': the organization's id, a GUID"),
        (example("azure", "--issuer", "https://x.example"), "--issuer is not read for --provider azure"),
        (
            example("azure", "--service-connection", "qa=aws-qa"),
            "--service-connection 'qa=aws-qa': give ROLE=VALUE with ROLE one of preview, staging, prod",
        ),
        (example("azure", "--service-connection", "prod=aws-*"), "--service-connection 'aws-*': a service connection's name, without '*'"),
        (example("azure", "--service-connection", "prod=aws-staging"), "give each role its own service connection"),
        (["--provider", "jenkins", "--subject", "x", "--preview-subject", "y"], "--issuer is required with --provider jenkins"),
        (
            ["--provider", "jenkins", "--issuer", f"{JENKINS}/oidc", "--preview-subject", "x", "--subject", f"{JENKINS}/job/*"],
            "a deploy role admits one job: give its exact subject",
        ),
        (example("jenkins", "--subject", f"{JENKINS}/job/x/"), "without ROLE= is given twice"),
        (example("jenkins", "--preview-subject", "*PR-*"), "--preview-subject '*PR-*': start with the literal part"),
        (example("jenkins", "--subject", "qa=https://x"), "--subject 'qa=https://x': give ROLE=VALUE with ROLE one of staging, prod"),
        (example("github", "--thumbprint", "abc"), "--thumbprint 'abc': a thumbprint is the 40 hex digits"),
        (example("github", "--deploy-policy-arn", "ReadOnlyAccess"), "--deploy-policy-arn 'ReadOnlyAccess': give a managed policy's ARN"),
        (example("github", "--apply", "--deploy-policy-arn", ARN), "--preview-policy-arn is required with --apply"),
        (example("github", "--apply", "--preview-policy-arn", ARN), "--deploy-policy-arn is required with --apply"),
        (example("github", "--environments", "staging,preview"), "--environments 'preview'"),
        (example("github", "--environments", "prod,prod"), "give each deployment environment once"),
        (example("github", "--role-prefix", "x" * 50), "would be 72 characters; IAM allows 64"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag_before_any_call(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(bootstrap_ci, "_session", NoCalls)
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_aws_failures_reach_the_command_lines_one_line_explanation(no_credentials):
    """A failed call is not swallowed: infra/cli.py turns botocore's error into one line and exit 1."""
    with pytest.raises(NoCredentialsError) as failed:
        bootstrap_ci.handle(_args(example("github")))
    assert aws_errors.explain(failed.value).startswith("no usable AWS credentials")


def _args(argv: list[str]) -> argparse.Namespace:
    top = argparse.ArgumentParser()
    bootstrap_ci.add_parser(top.add_subparsers())
    return top.parse_args(["bootstrap-ci", *argv])


def _wired() -> bool:
    return "bootstrap-ci" in cli.parser().format_help()


@pytest.mark.skipif(not _wired(), reason="infra/cli.py does not register bootstrap-ci yet")
def test_through_the_command_line(aws_server, monkeypatch, capsys):
    assert cli.main(["bootstrap-ci", *example("github")]) == 0
    assert "would be created" in capsys.readouterr().out
    assert cli.main(["bootstrap-ci", *example("github", "--repository", "nope")]) == 2
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert cli.main(["bootstrap-ci", *example("github")]) == 1
    err = capsys.readouterr().err
    assert "no usable AWS credentials" in err and "Traceback" not in err


# No stored keys anywhere.

_KEY = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b|aws_secret_access_key|SecretAccessKey", re.IGNORECASE)


@pytest.mark.parametrize("provider", trust.PROVIDERS)
def test_no_stored_keys_anywhere(provider, aws, policies, capsys):
    assert run(example(provider, *policies, "--apply", "--json")) == 0
    out = capsys.readouterr().out
    assert not _KEY.search(out)
    iam = aws.client("iam")
    assert iam.list_users()["Users"] == []  # no IAM user, hence no access key, is ever made
    for module in (bootstrap_ci, trust):
        source = Path(module.__file__).read_text()
        assert "create_access_key" not in source and "create_user" not in source and not _KEY.search(source)
    for role in json.loads(out)["roles"]:
        statement = role["trustPolicy"]["Statement"][0]
        assert statement["Action"] == "sts:AssumeRoleWithWebIdentity" and set(statement["Principal"]) == {"Federated"}


# The trust policies against the claims real tokens carry.


def _iam_like(pattern: str, value: str) -> bool:
    """IAM's StringLike: '*' any run of characters, '?' one; nothing else is special (fnmatch's '[' is escaped)."""
    return fnmatch.fnmatchcase(value, pattern.replace("[", "[[]"))


def admits(policy: dict, claims: dict) -> bool:
    """Whether `policy` lets a token with `claims` assume the role through AssumeRoleWithWebIdentity: an Allow
    statement whose federated principal is the OIDC provider of the token's issuer and whose every condition
    holds (StringEquals / StringLike on `<issuer host/path>:<claim>`; a missing claim fails its condition)."""
    host_path = claims["iss"].removeprefix("https://")
    provider_arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host_path}"
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow" or statement["Action"] != "sts:AssumeRoleWithWebIdentity":
            continue
        if statement["Principal"].get("Federated") != provider_arn:
            continue
        ok = True
        for operator, block in statement.get("Condition", {}).items():
            match = {"StringEquals": lambda pattern, value: pattern == value, "StringLike": _iam_like}[operator]
            for key, wanted_values in block.items():
                issuer_part, claim = key.rsplit(":", 1)
                values = [wanted_values] if isinstance(wanted_values, str) else wanted_values
                value = claims.get(claim)
                ok &= issuer_part == host_path and value is not None and any(match(v, value) for v in values)
        if ok:
            return True
    return False


def _token(provider: str, sub: str, **claims) -> dict:
    return {"iss": ISSUERS[provider], "aud": AUDIENCES[provider], "sub": sub} | claims


GH = "repo:acme/ml-platform"
GL = "project_path:acme/platform/ml-platform"
SC = "sc://acme/ML Platform"
JOB = f"{JENKINS}/job/ml-platform/job"
# (provider, token claims, the roles that must admit it; every other role must refuse it)
TOKENS = [
    ("github", _token("github", f"{GH}:environment:prod"), {"prod"}),
    ("github", _token("github", f"{GH}:environment:staging"), {"staging"}),
    ("github", _token("github", f"{GH}:pull_request"), {"preview"}),
    ("github", _token("github", f"{GH}:environment:preview"), {"preview"}),
    ("github", _token("github", f"{GH}:ref:refs/heads/main"), set()),  # a push without an environment
    ("github", _token("github", "repo:evil/ml-platform:environment:prod"), set()),
    ("github", _token("github", "repo:acme/ml-platform-fork:environment:prod"), set()),
    ("github", _token("github", f"{GH}:environment:prod", aud="https://github.com/acme"), set()),  # GitHub's default audience
    ("github", _token("github", f"{GH}:environment:prod", iss="https://token.actions.githubusercontent.com/evil"), set()),
    ("gitlab", _token("gitlab", f"{GL}:ref_type:branch:ref:main"), {"preview", "staging", "prod"}),
    ("gitlab", _token("gitlab", f"{GL}:ref_type:branch:ref:feature/new-model"), {"preview"}),  # a merge request's branch
    ("gitlab", _token("gitlab", f"{GL}:ref_type:tag:ref:main"), set()),  # a tag named like the branch
    ("gitlab", _token("gitlab", "project_path:acme/platform/ml-platform-fork:ref_type:branch:ref:main"), set()),
    ("gitlab", _token("gitlab", "project_path:evil/ml-platform:ref_type:branch:ref:main"), set()),
    ("gitlab", _token("gitlab", f"{GL}:ref_type:branch:ref:main", iss="https://gitlab.evil.com"), set()),
    ("azure", _token("azure", f"{SC}/aws-prod"), {"prod"}),
    ("azure", _token("azure", f"{SC}/aws-staging"), {"staging"}),
    ("azure", _token("azure", f"{SC}/aws-preview"), {"preview"}),  # what a pull request's pipeline uses
    ("azure", _token("azure", "sc://acme/Other Project/aws-prod"), set()),
    ("azure", _token("azure", f"{SC}/aws-prod", iss="https://vstoken.dev.azure.com/11111111-2222-3333-4444-555555555555"), set()),
    ("azure", _token("azure", f"{SC}/aws-prod", aud="sts.amazonaws.com"), set()),
    ("jenkins", _token("jenkins", f"{JOB}/main/"), {"staging", "prod"}),
    ("jenkins", _token("jenkins", f"{JOB}/PR-42/"), {"preview"}),
    ("jenkins", _token("jenkins", f"{JENKINS}/job/other/job/main/"), set()),
    ("jenkins", _token("jenkins", f"{JOB}/main/", aud="https://jenkins.acme.com"), set()),
]


@pytest.mark.parametrize(("provider", "claims", "admitted"), TOKENS, ids=[f"{p}:{c['sub']}" for p, c, _ in TOKENS])
def test_trust_policies_admit_exactly_the_documented_tokens(provider, claims, admitted):
    built = wanted(provider)
    arn = built.provider_arn(ACCOUNT)
    got = {role.purpose for role in built.roles if admits(built.trust_policy(role, arn), claims)}
    assert got == admitted


@pytest.mark.parametrize("provider", trust.PROVIDERS)
def test_prod_refuses_pull_request_and_foreign_tokens(provider):
    """The brief's two refusals, for every provider: a pull/merge request's token and another repository's."""
    built = wanted(provider)
    prod = next(r for r in built.roles if r.purpose == "prod")
    policy = built.trust_policy(prod, built.provider_arn(ACCOUNT))
    pull_request, foreign = {
        "github": (f"{GH}:pull_request", "repo:evil/ml-platform:environment:prod"),
        "gitlab": (f"{GL}:ref_type:branch:ref:feature/x", "project_path:evil/ml-platform:ref_type:branch:ref:main"),
        "azure": (f"{SC}/aws-preview", "sc://evil/ML Platform/aws-prod"),
        "jenkins": (f"{JOB}/PR-7/", f"{JENKINS}/job/evil/job/main/"),
    }[provider]
    assert not admits(policy, _token(provider, pull_request))
    assert not admits(policy, _token(provider, foreign))
    assert admits(policy, _token(provider, prod.subjects[0]))


def test_the_evaluator_follows_iam_wildcards():
    assert _iam_like("a:*", "a:b/c:d") and _iam_like("a:?", "a:b") and not _iam_like("a:?", "a:bc")
    assert not _iam_like("a:[b]", "a:b") and _iam_like("a:[b]", "a:[b]")


def test_environments_differing_only_in_case_are_one_role():
    from ml_platform.infra.delivery import trust

    with pytest.raises(trust.TrustError, match="give each deployment environment once"):
        trust.environments_checked(["prod", "Prod"])


# Session duration: every role allows the 4-hour sessions the CI adapters request.


def test_roles_allow_four_hour_sessions_and_say_so(aws, policies, monkeypatch, capsys):
    assert trust.MAX_SESSION_DURATION == 14400
    read_only(monkeypatch, aws)
    assert run(example("gitlab", *policies)) == 0
    assert capsys.readouterr().out.count("sessions up to 14400 s (MaxSessionDuration; CI requests --duration-seconds 14400)") == 3
    assert run(example("gitlab", *policies, "--json")) == 0
    assert [r["maxSessionDuration"] for r in json.loads(capsys.readouterr().out)["roles"]] == [14400] * 3


def test_a_role_with_the_default_session_duration_differs_and_is_left(aws, policies, monkeypatch, capsys):
    assert run(example("github", *policies, "--apply")) == 0
    iam = aws.client("iam")
    prod = "ml-platform-ci-github-deploy-prod"
    iam.update_role(RoleName=prod, MaxSessionDuration=3600)  # as IAM makes a role by default
    capsys.readouterr()
    read_only(monkeypatch, aws)
    assert run(example("github", *policies, "--apply", "--json")) == 2
    captured = capsys.readouterr()
    assert f"role {prod}: MaxSessionDuration 3600 s, wanted 14400 s" in captured.err
    assert f"aws iam update-role --role-name {prod} --max-session-duration 14400" in captured.err
    report = {r["purpose"]: r for r in json.loads(captured.out)["roles"]}
    assert report["prod"]["status"] == "differs" and report["staging"]["status"] == "exists"
    assert iam.get_role(RoleName=prod)["Role"]["MaxSessionDuration"] == 3600  # left as it is


# Azure DevOps with the Microsoft Entra issuer: --tenant-id and each connection's subject identifier.

TENANT = "3c1a9d2e-7b4f-4e8a-9c6d-5f2e1a0b7c93"
OTHER_TENANT = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d"
ADO_APP = "499b84ac-1321-427f-aa17-267ca6975798"  # Azure DevOps' application id, the subjects' a/ segment
CONNECTION_IDS = {
    "preview": "5d7e2a10-3b4c-4d5e-8f60-7a8b9c0d1e2f",
    "staging": "6e8f3b21-4c5d-4e6f-9071-8b9c0d1e2f30",
    "prod": "7f904c32-5d6e-4f70-a182-9c0d1e2f3041",
}
ENTRA_ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"
ENTRA_HOST_PATH = f"login.microsoftonline.com/{TENANT}/v2.0"


def b64url_guid(guid: str) -> str:
    """How Entra subjects write a GUID: its bytes in little-endian GUID order, base64url, no padding."""
    return base64.urlsafe_b64encode(uuid.UUID(guid).bytes_le).decode().rstrip("=")


def entra_subject(connection_id: str, tenant: str = TENANT) -> str:
    return f"/eid1/c/pub/t/{b64url_guid(tenant)}/a/{b64url_guid(ADO_APP)}/sc/{ORG_ID}/{connection_id}"


ENTRA_SUBJECTS = {role: entra_subject(connection) for role, connection in CONNECTION_IDS.items()}


def entra(*extra: str, subjects: dict[str, str] = ENTRA_SUBJECTS, tenant: str = TENANT) -> list[str]:
    pairs = [part for role, subject in subjects.items() for part in ("--service-connection", f"{role}={subject}")]
    return ["--provider", "azure", "--tenant-id", tenant, *pairs, *extra]


def wanted_entra(*extra: str, **kwargs) -> trust.CiTrust:
    return bootstrap_ci.wanted_trust(_args(entra(*extra, **kwargs)))


def test_the_subject_encoding_is_the_one_entra_publishes():
    """A published Entra subject's t/ segment and its tenant (not from this code): little-endian GUID bytes."""
    assert b64url_guid("975f013f-7f24-47e8-a7d3-abc4752bf346") == "PwFflyR_6Een06vEdSvzRg"
    assert trust.entra_guid_segment(TENANT) == b64url_guid(TENANT) and len(b64url_guid(TENANT)) == 22
    assert trust.entra_segment_guid(b64url_guid(OTHER_TENANT)) == OTHER_TENANT


def test_entra_documents_are_valid_iam_and_name_the_tenants_issuer(aws):
    built = wanted_entra()
    assert built.issuer == ENTRA_ISSUER and built.audience == "api://AzureADTokenExchange"
    assert trust.issuer_problem("--tenant-id", built.issuer) is None  # a path in the issuer URL is fine
    iam = aws.client("iam")
    arn = iam.create_open_id_connect_provider(Url=built.issuer, ClientIDList=[built.audience])["OpenIDConnectProviderArn"]
    assert arn == built.provider_arn(ACCOUNT) == f"arn:aws:iam::{ACCOUNT}:oidc-provider/{ENTRA_HOST_PATH}"
    for role in built.roles:
        document = built.trust_policy(role, arn)
        IAMTrustPolicyDocumentValidator(json.dumps(document)).validate()
        assert document["Statement"][0]["Principal"] == {"Federated": arn}
        assert document["Statement"][0]["Condition"] == {
            "StringEquals": {f"{ENTRA_HOST_PATH}:aud": "api://AzureADTokenExchange", f"{ENTRA_HOST_PATH}:sub": ENTRA_SUBJECTS[role.purpose]}
        }
    assert [r.name for r in built.roles] == [f"ml-platform-ci-azure-{p}" for p in ("preview", "deploy-staging", "deploy-prod")]


def test_entra_tenant_id_in_capitals_gives_the_lower_case_issuer():
    assert wanted_entra(tenant=TENANT.upper()).issuer == ENTRA_ISSUER


def test_entra_dry_run_prints_the_issuer_provider_and_trust_policies(aws, policies, monkeypatch, capsys):
    before = snapshot(aws)
    read_only(monkeypatch, aws)
    assert run(entra(*policies)) == 0
    out = capsys.readouterr().out
    assert f"OIDC provider arn:aws:iam::{ACCOUNT}:oidc-provider/{ENTRA_HOST_PATH}" in out
    assert f"issuer {ENTRA_ISSUER}, audience api://AzureADTokenExchange" in out and out.count("would be created") == 4
    for role, subject in ENTRA_SUBJECTS.items():
        assert f"admits {ENTRA_HOST_PATH}:sub StringEquals {subject}: service connection {CONNECTION_IDS[role]} only" in out
        assert f"AWS_{role.upper()}_CONNECTION_ID={CONNECTION_IDS[role]}" in out
    assert f"AWS_PROD_ROLE_ARN=arn:aws:iam::{ACCOUNT}:role/ml-platform-ci-azure-deploy-prod" in out
    assert run(entra(*policies, "--json")) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["oidcProvider"]["url"] == ENTRA_ISSUER and report["oidcProvider"]["clientIds"] == ["api://AzureADTokenExchange"]
    prod = next(r for r in report["roles"] if r["purpose"] == "prod")
    assert prod["subjects"] == [ENTRA_SUBJECTS["prod"]]
    assert prod["trustPolicy"]["Statement"][0]["Condition"]["StringEquals"][f"{ENTRA_HOST_PATH}:sub"] == ENTRA_SUBJECTS["prod"]
    assert snapshot(aws) == before


def test_entra_apply_creates_them_and_a_rerun_changes_nothing(aws, policies, monkeypatch, capsys):
    assert run(entra(*policies, "--apply")) == 0
    iam = aws.client("iam")
    built = wanted_entra()
    arn = built.provider_arn(ACCOUNT)
    found = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    assert found["ClientIDList"] == ["api://AzureADTokenExchange"]
    for role in built.roles:
        made = iam.get_role(RoleName=role.name)["Role"]
        assert made["AssumeRolePolicyDocument"] == built.trust_policy(role, arn) and made["MaxSessionDuration"] == 14400
    capsys.readouterr()
    before = snapshot(aws)
    read_only(monkeypatch, aws)
    assert run(entra(*policies, "--apply")) == 0
    assert capsys.readouterr().out.count("exists, as wanted: left as it is") == 4
    assert snapshot(aws) == before


def _entra_token(sub: str, **claims) -> dict:
    return {"iss": ENTRA_ISSUER, "aud": "api://AzureADTokenExchange", "sub": sub} | claims


ENTRA_TOKENS = [
    (_entra_token(ENTRA_SUBJECTS["prod"]), {"prod"}),
    (_entra_token(ENTRA_SUBJECTS["staging"]), {"staging"}),  # another connection's subject: not prod
    (_entra_token(ENTRA_SUBJECTS["preview"]), {"preview"}),
    (_entra_token(entra_subject("8a015d43-6e7f-4081-b293-0d1e2f304152")), set()),  # a fourth connection of the organization
    (_entra_token(entra_subject(CONNECTION_IDS["prod"], tenant=OTHER_TENANT)), set()),
    (_entra_token(ENTRA_SUBJECTS["prod"], iss=f"https://login.microsoftonline.com/{OTHER_TENANT}/v2.0"), set()),
    (_entra_token(ENTRA_SUBJECTS["prod"], iss=f"https://vstoken.dev.azure.com/{ORG_ID}"), set()),  # the retired issuer
    (_entra_token(ENTRA_SUBJECTS["prod"], aud="sts.amazonaws.com"), set()),
    (_entra_token("sc://acme/ML Platform/aws-prod"), set()),  # a vstoken-style subject from the Entra issuer
]


@pytest.mark.parametrize(("claims", "admitted"), ENTRA_TOKENS, ids=[f"{c['iss'][8:30]}:{c['sub'][-12:]}" for c, _ in ENTRA_TOKENS])
def test_entra_trust_policies_admit_exactly_their_connections_tokens(claims, admitted):
    built = wanted_entra()
    arn = built.provider_arn(ACCOUNT)
    assert {role.purpose for role in built.roles if admits(built.trust_policy(role, arn), claims)} == admitted


def _with(role: str, subject: str | None) -> dict[str, str]:
    subjects = dict(ENTRA_SUBJECTS)
    if subject is None:
        del subjects[role]
    else:
        subjects[role] = subject
    return subjects


ENTRA_PROD = ENTRA_SUBJECTS["prod"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            entra(subjects=_with("prod", "aws-prod")),
            "--service-connection prod='aws-prod': with --tenant-id, give the connection's subject",
        ),
        (entra(subjects=_with("prod", ENTRA_PROD.replace("/sc/", "/sc/x"))), "--service-connection prod='/eid1/c/pub/t/"),
        (entra(subjects=_with("prod", ENTRA_PROD + "/")), "give the connection's subject identifier verbatim"),
        (entra(subjects=_with("prod", ENTRA_PROD.replace(b64url_guid(TENANT), b64url_guid(TENANT)[:21]))), "subject identifier verbatim"),
        (
            entra(subjects=_with("prod", entra_subject(CONNECTION_IDS["prod"], tenant=OTHER_TENANT))),
            f"--service-connection prod=...: the subject names tenant {OTHER_TENANT} (t/{b64url_guid(OTHER_TENANT)}), "
            f"but --tenant-id is {TENANT} (t/{b64url_guid(TENANT)})",
        ),
        (entra(subjects=_with("staging", None)), "--service-connection staging=SUBJECT is missing: with --tenant-id every role"),
        (
            entra(subjects={}),
            "preview=SUBJECT is missing: with --tenant-id every role (preview, staging, prod) needs its own service "
            "connection's subject; copy \"Subject identifier\" from the service connection's page",
        ),
        (entra(subjects=_with("prod", ENTRA_SUBJECTS["staging"])), "give each role its own service connection"),
        (entra(subjects=_with("qa", ENTRA_PROD)), "--service-connection 'qa=/eid1/"),
        (entra("--organization-id", ORG_ID), "--tenant-id and --organization-id: give one"),
        (entra("--organization", "acme"), "--organization is not read with --tenant-id"),
        (entra("--project", "ML Platform"), "--project is not read with --tenant-id"),
        (entra(tenant="42"), "--tenant-id '42': the Microsoft Entra tenant's id, a GUID"),
        (example("github", "--tenant-id", TENANT), "--tenant-id is not read for --provider github; it is for --provider azure"),
        (example("jenkins", "--tenant-id", TENANT), "--tenant-id is not read for --provider jenkins"),
        (["--provider", "azure"], "--tenant-id is required with --provider azure"),
        (example("azure", "--service-connection", f"prod={ENTRA_PROD}"), "that is a subject identifier of the Microsoft Entra issuer"),
        # a value pasted with its line end is refused, never taken into a policy no token matches (or a traceback)
        (entra(tenant=TENANT + "\n"), "--tenant-id"),
        (entra(subjects=_with("prod", ENTRA_PROD + "\n")), "--service-connection prod="),
        (example("github", "--repository", "acme/platform\n"), "--repository"),
        (example("gitlab", "--branch", "main\n"), "--branch"),
        # a role given twice is refused, naming the flag, not the last one silently kept
        (
            entra("--service-connection", f"prod={ENTRA_PROD}"),
            "--service-connection prod=... is given twice",
        ),
    ],
)
def test_bad_entra_flags_exit_2_naming_the_flag(argv, message, monkeypatch, capsys):
    monkeypatch.setattr(bootstrap_ci, "_session", NoCalls)
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_vstoken_mode_is_kept_and_says_it_is_deprecated(aws, policies, monkeypatch, capsys):
    read_only(monkeypatch, aws)
    assert run(example("azure", *policies)) == 0
    out = capsys.readouterr().out
    assert f"issuer https://vstoken.dev.azure.com/{ORG_ID}" in out and "admits vstoken.dev.azure.com/" in out
    assert "is deprecated by Azure DevOps" in out and "use --tenant-id" in out
    assert "service connections aws-preview (preview), aws-staging (staging), aws-prod (prod)" in out
    top = argparse.ArgumentParser()
    command = bootstrap_ci.add_parser(top.add_subparsers())
    text = " ".join(command.format_help().split())
    assert "--tenant-id GUID" in text and "Microsoft Entra issuer" in text and "deprecated" in text and "vstoken" in text
