"""bootstrap-ci: for every CI system the documents IAM accepts (moto's validators and moto IAM), a dry run that
changes nothing, --apply that creates the provider and roles, a rerun that reports "exists" and writes nothing,
an existing provider or role that differs reported and left as it is (and nothing else created), flags checked
before any call (exit 2 naming the flag), AWS failures left to the command line's one-line explanation, no stored
keys; and each trust policy evaluated against the claims real tokens carry (a small StringEquals/StringLike
evaluator): a prod deploy role refuses a pull-request token and a token of another repository or project."""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
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
        assert iam.get_role(RoleName=role.name)["Role"]["AssumeRolePolicyDocument"] == built.trust_policy(role, arn)
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
