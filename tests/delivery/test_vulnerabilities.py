"""The vulnerability gate (`images check`) against ECR's real API model: botocore's Stubber validates every request
and every answer given here against the ecr service model (pagination, enhanced findings, image indexes)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from ml_platform.infra import config
from ml_platform.infra.delivery import vulnerabilities
from ml_platform.infra.offline import stack_files

ACCOUNT = "111122223333"
HOST = f"{ACCOUNT}.dkr.ecr.us-west-2.amazonaws.com"
DIGEST = "sha256:" + "a" * 64
AMD64 = "sha256:" + "b" * 64
ARM64 = "sha256:" + "c" * 64
TODAY = dt.date(2026, 11, 30)
ROOT = Path(__file__).resolve().parents[2]


def stack(name: str, vulnerabilities_config: dict | None = None) -> config.StackConfig:
    values = dict(stack_files.read_stack(name).values)
    if vulnerabilities_config is not None:
        values["ml-platform:vulnerabilities"] = json.dumps(vulnerabilities_config)
    return config.parse(values, name)


def enhanced(cve: str, severity: str, status: str = "ACTIVE") -> dict:
    return {
        "findingArn": f"arn:aws:inspector2:us-west-2:{ACCOUNT}:finding/{cve}",
        "severity": severity,
        "status": status,
        "title": f"{cve} - openssl",
        "packageVulnerabilityDetails": {
            "vulnerabilityId": cve,
            "vulnerablePackages": [{"name": "openssl", "version": "3.0.2"}],
        },
    }


def findings_page(findings: list[dict], status: str = "ACTIVE", next_token: str | None = None) -> dict:
    page = {
        "repositoryName": "prod/serving/vllm",
        "imageId": {"imageDigest": DIGEST},
        "imageScanStatus": {"status": status, "description": "The scan was completed successfully."},
        "imageScanFindings": {"enhancedFindings": findings},
    }
    if next_token:
        page["nextToken"] = next_token
    return page


class Ecr:
    """An ECR client whose answers are stubbed in the order the gate asks."""

    def __init__(self):
        self.client = boto3.client("ecr", region_name="us-west-2", aws_access_key_id="x", aws_secret_access_key="y")
        self.stub = Stubber(self.client)

    def described(self, repository: str, tag: str, digest: str = DIGEST, media_type: str = "application/vnd.oci.image.manifest.v1+json"):
        self.stub.add_response(
            "describe_images",
            {"imageDetails": [{"repositoryName": repository, "imageDigest": digest, "imageManifestMediaType": media_type}]},
            {"registryId": ACCOUNT, "repositoryName": repository, "imageIds": [{"imageTag": tag}]},
        )

    def findings(self, repository: str, page: dict, digest: str = DIGEST, next_token: str | None = None):
        params = {"registryId": ACCOUNT, "repositoryName": repository, "imageId": {"imageDigest": digest}}
        if next_token:
            params["nextToken"] = next_token
        self.stub.add_response("describe_image_scan_findings", page, params)

    def __call__(self, region: str):
        assert region == "us-west-2"
        return self.client


def run(cfg, images, ecr) -> tuple[int, str]:
    lines: list[str] = []
    with ecr.stub:
        status = vulnerabilities.check(cfg, images, ecr, TODAY, say=lines.append)
        ecr.stub.assert_no_pending_responses()
    return status, "\n".join(lines)


def test_a_critical_finding_on_a_later_page_refuses_the_deploy():
    ecr = Ecr()
    ecr.described("prod/serving/vllm", "v0.11.0")
    ecr.findings("prod/serving/vllm", findings_page([enhanced("CVE-2026-0001", "HIGH")], next_token="page-2"))
    ecr.findings("prod/serving/vllm", findings_page([enhanced("CVE-2026-0002", "CRITICAL")]), next_token="page-2")
    image = vulnerabilities.Image("model chat", f"{HOST}/prod/serving/vllm:v0.11.0")
    status, out = run(stack("prod"), [image], ecr)
    assert status == vulnerabilities.EXIT_REFUSED
    assert f"FAIL  model chat: prod/serving/vllm@{DIGEST} (1 CRITICAL, 1 HIGH)" in out
    assert "CRITICAL CVE-2026-0002 in openssl 3.0.2" in out and "HIGH CVE-2026-0001" not in out, "below the threshold: counted only"


def test_the_threshold_suppressed_findings_and_an_allow_list_entry():
    allow = {
        "cve": "CVE-2026-0002",
        "image": "prod/serving/vllm",
        "reason": "openssl is not reachable from the server",
        "expires": "2027-01-31",
    }
    cfg = stack("prod", {"registryScanning": {}, "threshold": "HIGH", "allow": [allow]})
    ecr = Ecr()
    ecr.described("prod/serving/vllm", "v0.11.0")
    page = findings_page(
        [enhanced("CVE-2026-0002", "CRITICAL"), enhanced("CVE-2026-0003", "HIGH", status="SUPPRESSED"), enhanced("CVE-2026-4", "LOW")]
    )
    ecr.findings("prod/serving/vllm", page)
    status, out = run(cfg, [vulnerabilities.Image("model chat", f"{HOST}/prod/serving/vllm:v0.11.0")], ecr)
    assert status == 0, out
    assert "CRITICAL CVE-2026-0002 in openssl 3.0.2: allowed until 2027-01-31 (openssl is not reachable from the server)" in out
    assert "CVE-2026-0003" not in out, "a suppressed finding does not count"


def test_an_expired_entry_fails_the_finding_and_itself():
    allow = {"cve": "CVE-2026-0002", "image": "*", "reason": "waiting for the vLLM release with the fix", "expires": "2026-11-29"}
    cfg = stack("prod", {"registryScanning": {}, "allow": [allow]})
    ecr = Ecr()
    ecr.described("prod/serving/vllm", "v0.11.0")
    ecr.findings("prod/serving/vllm", findings_page([enhanced("CVE-2026-0002", "CRITICAL")]))
    status, out = run(cfg, [vulnerabilities.Image("model chat", f"{HOST}/prod/serving/vllm:v0.11.0")], ecr)
    assert status == vulnerabilities.EXIT_REFUSED
    assert "its allow-list entry expired on 2026-11-29" in out
    assert "FAIL  vulnerabilities.allow[0]: CVE-2026-0002 for * expired on 2026-11-29" in out


@pytest.mark.parametrize(("environment", "verdict", "status"), [("prod", "FAIL", 3), ("staging", "WARN", 0)])
def test_an_image_not_scanned_yet_fails_in_prod_and_warns_elsewhere(environment, verdict, status):
    ecr = Ecr()
    ecr.described("prod/serving/vllm", "v0.11.0")
    ecr.findings("prod/serving/vllm", findings_page([], status="PENDING"))
    image = vulnerabilities.Image("model chat", f"{HOST}/prod/serving/vllm:v0.11.0")
    got, out = run(stack(environment), [image], ecr)
    assert got == status and f"{verdict}  model chat" in out and "not scanned: PENDING" in out


def test_no_scan_at_all_and_a_missing_image():
    ecr = Ecr()
    ecr.described("prod/models/custom", "1.0")
    ecr.stub.add_client_error("describe_image_scan_findings", service_error_code="ScanNotFoundException", http_status_code=400)
    ecr.stub.add_client_error("describe_images", service_error_code="ImageNotFoundException", http_status_code=400)
    images = [
        vulnerabilities.Image("model fraud", f"{HOST}/prod/models/custom:1.0"),
        vulnerabilities.Image("model gone", f"{HOST}/prod/models/custom:2.0"),
    ]
    status, out = run(stack("staging"), images, ecr)
    assert status == vulnerabilities.EXIT_REFUSED
    assert "WARN  model fraud" in out and "no scan of this image" in out
    assert "FAIL  model gone" in out and "not in ECR (ImageNotFoundException)" in out


def test_an_image_index_is_judged_by_each_linux_platform_manifest():
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": AMD64,
                "platform": {"os": "linux", "architecture": "amd64"},
            },
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": ARM64,
                "platform": {"os": "linux", "architecture": "arm64"},
            },
            {
                "mediaType": "application/vnd.in-toto+json",
                "digest": "sha256:" + "d" * 64,
                "platform": {"os": "unknown", "architecture": "unknown"},
            },
        ],
    }
    ecr = Ecr()
    ecr.described("prod/serving/vllm", "v0.11.0", media_type="application/vnd.oci.image.index.v1+json")
    ecr.stub.add_response(
        "batch_get_image",
        {"images": [{"imageId": {"imageDigest": DIGEST}, "imageManifest": json.dumps(index)}], "failures": []},
        {
            "registryId": ACCOUNT,
            "repositoryName": "prod/serving/vllm",
            "imageIds": [{"imageDigest": DIGEST}],
            "acceptedMediaTypes": ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"],
        },
    )
    ecr.findings("prod/serving/vllm", findings_page([]), digest=AMD64)
    ecr.findings("prod/serving/vllm", findings_page([enhanced("CVE-2026-0009", "CRITICAL")]), digest=ARM64)
    status, out = run(stack("prod"), [vulnerabilities.Image("model chat", f"{HOST}/prod/serving/vllm:v0.11.0")], ecr)
    assert status == vulnerabilities.EXIT_REFUSED and f"{ARM64[:19]}: CRITICAL CVE-2026-0009" in out


def test_images_outside_ecr_and_unpinned_chart_images_follow_outside_ecr():
    images = [
        vulnerabilities.Image("chart dcgm-exporter", "nvcr.io/nvidia/k8s/dcgm-exporter"),
        vulnerabilities.Image("chart metrics-server", f"{HOST}/prod/k8s/metrics-server/metrics-server"),
    ]
    status, out = run(stack("prod"), images, Ecr())
    assert status == 0 and out.count("WARN") == 2 and "mirror it (registries.mirrors), pin its digest" in out and "outside ECR" in out
    status, out = run(stack("prod", {"registryScanning": {}, "outsideEcr": "fail"}), images, Ecr())
    assert status == vulnerabilities.EXIT_REFUSED


def test_the_stacks_images_come_from_its_plan_with_the_real_account():
    outputs = {
        "versions": {
            "images": {
                "models": {"chat": "123456789012.dkr.ecr.us-west-2.amazonaws.com/prod/serving/vllm:v1"},
                "loader": "public.ecr.aws/aws-cli/aws-cli:2.37.11",
                "platform": {"monitoring": "123456789012.dkr.ecr.us-west-2.amazonaws.com/prod/platform/model-monitoring:3"},
                "charts": {"grafana": "docker.io/grafana/grafana@sha256:" + "e" * 64},
            }
        }
    }
    images = vulnerabilities.stack_images(outputs, ACCOUNT)
    assert [i.role for i in images] == ["model chat", "weights loader", "platform monitoring", "chart grafana"]
    assert images[0].reference == f"{HOST}/prod/serving/vllm:v1" and images[2].reference.startswith(HOST)


def test_allow_list_entries_are_checked_when_the_stack_is_read():
    bad = [
        ({"cve": "openssl", "image": "*", "reason": "not reachable at all", "expires": "2027-01-01"}, "is not a vulnerability id"),
        ({"cve": "CVE-2026-1", "image": "Prod/X", "reason": "not reachable at all", "expires": "2027-01-01"}, "give a repository path"),
        ({"cve": "CVE-2026-1234", "image": "*", "reason": "short", "expires": "2027-01-01"}, "at least 10 characters"),
        ({"cve": "CVE-2026-1234", "image": "*", "reason": "not reachable at all", "expires": "soon"}, "valid date"),
    ]
    for entry, message in bad:
        with pytest.raises(config.ConfigError) as err:
            stack("staging", {"allow": [entry]})
        assert "vulnerabilities.allow[0]" in err.value.render() and message in err.value.render(), err.value.render()
    far = {"cve": "CVE-2026-1234", "image": "*", "reason": "not reachable at all", "expires": "2028-06-01"}
    assert vulnerabilities.allow_problems([config.AllowEntry(**far)], TODAY)[0][1].endswith("at most 365 days ahead")


def test_the_command_judges_the_stacks_plan_in_the_callers_account(aws_server, capsys):
    """End to end against moto's ECR: the dev stack's repositories do not exist there, so every ECR image is missing
    and the gate refuses; images outside ECR warn; the account is the caller's, not the plan's mock one."""
    from ml_platform.infra import cli

    assert cli.main(["images", "check", "--stack", "dev"]) == vulnerabilities.EXIT_REFUSED
    out = capsys.readouterr().out
    assert "vulnerability gate of stack 'dev' (account 123456789012, threshold CRITICAL)" in out
    assert "FAIL  model fraud: 123456789012.dkr.ecr.us-west-2.amazonaws.com/dev/models/custom:1.4.2" in out
    assert "not in ECR (RepositoryNotFoundException): a repository of this stack is made by its first `pulumi up`" in out
    assert "WARN  model chat: docker.io/vllm/vllm-openai" in out, "outside ECR: warn (vulnerabilities.outsideEcr)"
    assert "WARN  chart dcgm-exporter: nvcr.io/nvidia/k8s/dcgm-exporter" in out
    assert cli.main(["images", "check", "--stack", "dev", "--today", "30/11/2026"]) == 2
    assert "--today 30/11/2026: give a date, YYYY-MM-DD" in capsys.readouterr().err


def test_the_owners_first_deploy_warns_on_unscanned_images_it_is_about_to_have_scanned(aws_server, capsys):
    """prod owns the account's scanning: while the account is still BASIC (before prod's first `pulumi up`), images
    without results warn instead of refusing the very deploy that turns enhanced scanning on."""
    from ml_platform.infra import cli

    ecr = aws_server("ecr", "us-west-2")
    ecr.create_repository(repositoryName="prod/models/custom")
    assert ecr.get_registry_scanning_configuration()["scanningConfiguration"]["scanType"] == "BASIC"
    cli.main(["images", "check", "--stack", "prod"])
    out = capsys.readouterr().out
    assert "note: this stack owns the account's scanning, BASIC until this deploy makes it ENHANCED: unscanned images warn" in out
    assert "FAIL  model fraud" in out, "an image missing from its repository still fails"


def test_unquoted_dates_in_the_stack_file_read_as_the_pulumi_cli_reads_them(tmp_path):
    for name in ("Pulumi.yaml", "Pulumi.prod.yaml"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    text = (
        (tmp_path / "Pulumi.prod.yaml")
        .read_text()
        .replace(
            '      repositoryFilters: ["*"]\n',
            '      repositoryFilters: ["*"]\n    allow:\n      - cve: CVE-2026-12345\n        image: prod/serving/vllm\n'
            "        reason: the parser is not reachable from the API\n        expires: 2027-01-31\n",
        )
    )
    (tmp_path / "Pulumi.prod.yaml").write_text(text)
    cfg = config.parse(stack_files.read_stack("prod", tmp_path).values, "prod")
    assert cfg.vulnerabilities.allow[0].expires == dt.date(2027, 1, 31)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"registryScanning": null}', "registryScanning is empty: give {} to own the account's scanning"),
        (
            '{"allow": [{"cve": "CVE-2026-1234", "image": "111122223333.dkr.ecr.us-west-2.amazonaws.com/prod/x", '
            '"reason": "not reachable at all", "expires": "2027-01-01"}]}',
            "give the repository path below the registry",
        ),
        ('{"allow": [{"cve": "CVE-2026-1234", "image": "*", "reason": "          ", "expires": "2027-01-01"}]}', "not blanks"),
    ],
)
def test_owner_and_allow_list_mistakes_are_config_errors(value, message):
    with pytest.raises(config.ConfigError) as err:
        config.parse({**stack_files.read_stack("staging").values, "ml-platform:vulnerabilities": value}, "staging")
    assert message in err.value.render()


def test_vendor_ids_and_strict_dates():
    entry = config.AllowEntry(cve="openSUSE-SU-2026:1234-1", image="*", reason="a vendor advisory id", expires="2027-01-01")
    assert entry.cve.startswith("openSUSE")
    from ml_platform.infra import cli

    for bad in ("20261201", "2026-W49-1"):
        assert cli.main(["images", "check", "--stack", "dev", "--today", bad]) == 2


def test_an_ecr_filter_without_a_wildcard_matches_names_containing_it():
    from ml_platform.policy.rules import ecr_wildcard_match

    assert ecr_wildcard_match("prod", "repo-prod") and ecr_wildcard_match("prod", "prod/serving/vllm")
    assert ecr_wildcard_match("prod/*", "prod/serving/vllm") and not ecr_wildcard_match("prod/*", "staging/prod")
    assert not ecr_wildcard_match("prod", "staging/serving")


def test_a_preview_of_the_owner_leaves_the_accounts_scanning_to_it():
    from ml_platform.infra.delivery import preview

    base_cfg = stack("staging", {"registryScanning": {}})
    base = {"ml-platform:vulnerabilities": {"registryScanning": {}, "threshold": "HIGH"}}
    settings = config.PreviewConfig(mode="full", baseStack="staging")
    merged, notes = preview.compose({}, settings, base, base_cfg, 7, "2026-12-01T00:00:00Z")
    assert merged["ml-platform:vulnerabilities"] == {"threshold": "HIGH"}
    assert any(note.startswith("vulnerabilities.registryScanning: left to the base stack") for note in notes)


def test_an_allow_entry_matches_whatever_the_case_of_its_id():
    allow = {"cve": "cve-2026-0002", "image": "*", "reason": "waiting for the vLLM release with the fix", "expires": "2027-01-31"}
    ecr = Ecr()
    ecr.described("prod/serving/vllm", "v0.11.0")
    ecr.findings("prod/serving/vllm", findings_page([enhanced("CVE-2026-0002", "CRITICAL")]))
    status, out = run(
        stack("prod", {"registryScanning": {}, "allow": [allow]}),
        [vulnerabilities.Image("model chat", f"{HOST}/prod/serving/vllm:v0.11.0")],
        ecr,
    )
    assert status == 0 and "allowed until 2027-01-31" in out


def test_a_basic_scans_finding_names_its_package():
    ecr = Ecr()
    ecr.described("prod/serving/vllm", "v0.11.0")
    basic = {
        "name": "CVE-2026-0007",
        "severity": "CRITICAL",
        "attributes": [{"key": "package_name", "value": "openssl"}, {"key": "package_version", "value": "3.0.2"}],
    }
    page = findings_page([])
    page["imageScanStatus"]["status"] = "COMPLETE"
    page["imageScanFindings"] = {"findings": [basic]}
    ecr.findings("prod/serving/vllm", page)
    status, out = run(stack("prod"), [vulnerabilities.Image("model chat", f"{HOST}/prod/serving/vllm:v0.11.0")], ecr)
    assert status == vulnerabilities.EXIT_REFUSED and "CRITICAL CVE-2026-0007 in openssl 3.0.2" in out
