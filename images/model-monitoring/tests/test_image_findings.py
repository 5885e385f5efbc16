"""Looking up a running image's findings in ECR (botocore's Stubber, answers validated against ECR's model): every
page counted, only ACTIVE findings, an image index resolved to its linux manifests without counting a finding twice,
unscanned and outside-ECR images reported with their reason, the allow-list honoured until it expires."""

import datetime as dt

import pytest
from botocore.exceptions import ClientError
from ecr_stubs import ACCOUNT, HOST, REGION, Ecr, digest, finding, image_id, index_manifest
from model_monitoring.image_findings import SEVERITIES, AllowRule, FindingsLookup, ImageReport, parse_image_id

TODAY = dt.date(2026, 12, 1)
REPO = "prod/serving/vllm"
A = digest("a")


def lookup(ecr: Ecr, allow=()) -> FindingsLookup:
    return FindingsLookup(ecr.client, ACCOUNT, REGION, list(allow), TODAY)


def counts(**found: int) -> dict[str, int]:
    return {**dict.fromkeys(SEVERITIES, 0), **found}


def report(ecr: Ecr, reference: str, allow=()) -> ImageReport:
    return lookup(ecr, allow).report(parse_image_id(reference))


@pytest.mark.parametrize(
    ("value", "host", "repository", "image_digest"),
    [
        (f"{HOST}/{REPO}@{digest('a')}", HOST, REPO, digest("a")),
        (f"docker-pullable://{HOST}/{REPO}@{digest('a')}", HOST, REPO, digest("a")),
        (f"docker.io/library/python@{digest('b')}", "docker.io", "library/python", digest("b")),
        (digest("c"), None, None, None),
    ],
)
def test_image_ids_as_the_kubelet_reports_them(value, host, repository, image_digest):
    image = parse_image_id(value)
    assert (image.host, image.repository, image.digest) == (host, repository, image_digest)
    assert parse_image_id("") is None, "a container whose image is not pulled yet runs nothing"
    assert parse_image_id(f"{HOST}/{REPO}@{digest('a')}").label == f"{REPO}@sha256:aaaaaaaaaaaa"


def test_every_page_counts_and_only_active_findings():
    ecr = Ecr()
    ecr.describe(REPO, digest("a"))
    ecr.findings(
        REPO,
        digest("a"),
        [finding("CVE-2026-0001", "CRITICAL"), finding("CVE-2026-0002", "HIGH"), finding("CVE-2026-0003", "CRITICAL", status="CLOSED")],
        [finding("CVE-2026-0004", "CRITICAL"), finding("CVE-2026-0005", "UNTRIAGED"), finding("CVE-2026-0006", "LOW", status="SUPPRESSED")],
    )
    found = lookup(ecr)
    image = parse_image_id(image_id(REPO, digest("a")))
    first = found.report(image)
    assert first.counts == counts(CRITICAL=2, HIGH=1, UNTRIAGED=1)
    assert first.unscanned is None and first.allowed == {}
    # Another pod of the same digest: no second lookup (the Stubber would refuse an unexpected call).
    assert found.report(parse_image_id(image_id(REPO, digest("a")))) is first
    ecr.done()


def test_basic_scanning_findings_count_undefined_as_untriaged():
    ecr = Ecr()
    ecr.describe(REPO, digest("a"))
    basic = [
        {"name": "CVE-2026-0001", "severity": "CRITICAL", "attributes": [{"key": "package_name", "value": "openssl"}]},
        {"name": "CVE-2026-0002", "severity": "UNDEFINED", "attributes": [{"key": "package_name", "value": "zlib"}]},
    ]
    ecr.findings(REPO, digest("a"), basic, status="COMPLETE", basic=True)
    assert report(ecr, image_id(REPO, digest("a"))).counts == counts(CRITICAL=1, UNTRIAGED=1)
    ecr.done()


def test_an_index_counts_its_linux_manifests_findings_once():
    ecr = Ecr()
    amd64, arm64 = digest("1"), digest("2")
    ecr.describe(REPO, digest("a"), media_type="application/vnd.oci.image.index.v1+json")
    ecr.index(REPO, digest("a"), index_manifest((amd64, "linux", "amd64"), (arm64, "linux", "arm64"), (digest("3"), "windows", "amd64")))
    # The same CVE in the same package of both platforms is one finding; an arm64-only one counts too.
    ecr.findings(REPO, amd64, [finding("CVE-2026-0001", "CRITICAL"), finding("CVE-2026-0002", "HIGH")])
    ecr.findings(REPO, arm64, [finding("CVE-2026-0001", "CRITICAL"), finding("CVE-2026-0007", "MEDIUM", package="glibc")])
    result = report(ecr, image_id(REPO, digest("a")))
    assert result.counts == counts(CRITICAL=1, HIGH=1, MEDIUM=1)
    assert result.unscanned is None
    ecr.done()


def test_an_index_partly_scanned_reports_what_it_has_and_why_not_the_rest():
    ecr = Ecr()
    amd64, arm64 = digest("1"), digest("2")
    ecr.describe(REPO, digest("a"), media_type="application/vnd.docker.distribution.manifest.list.v2+json")
    ecr.index(REPO, digest("a"), index_manifest((amd64, "linux", "amd64"), (arm64, "linux", "arm64")))
    ecr.findings(REPO, amd64, [finding("CVE-2026-0001", "CRITICAL")])
    ecr.status(REPO, arm64, "PENDING")
    result = report(ecr, image_id(REPO, digest("a")))
    assert result.counts == counts(CRITICAL=1) and result.unscanned == "pending"
    ecr.done()


def test_an_index_without_linux_manifests_is_unscanned():
    ecr = Ecr()
    ecr.describe(REPO, digest("a"), media_type="application/vnd.oci.image.index.v1+json")
    ecr.index(REPO, digest("a"), index_manifest((digest("3"), "windows", "amd64")))
    result = report(ecr, image_id(REPO, digest("a")))
    assert result.counts is None and result.unscanned == "no_platform_manifest"
    ecr.done()


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        (f"docker.io/vllm/vllm-openai@{digest('b')}", "outside_ecr"),
        (f"public.ecr.aws/aws-cli/aws-cli@{digest('b')}", "outside_ecr"),
        (f"210987654321.dkr.ecr.{REGION}.amazonaws.com/{REPO}@{digest('b')}", "other_registry"),
        (f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/{REPO}@{digest('b')}", "other_registry"),
        (digest("c"), "no_repository_digest"),
    ],
)
def test_images_the_job_cannot_look_up_are_reported_with_a_reason_and_no_call(reference, reason):
    ecr = Ecr()  # no answers queued: any ECR call fails the test
    result = report(ecr, reference)
    assert result.counts is None and result.unscanned == reason


@pytest.mark.parametrize(
    ("queue", "reason"),
    [
        (lambda ecr: ecr.error("describe_images", "ImageNotFoundException"), "image_not_found"),
        (lambda ecr: ecr.error("describe_images", "RepositoryNotFoundException"), "repository_not_found"),
        (lambda ecr: (ecr.describe(REPO, A), ecr.error("describe_image_scan_findings", "ScanNotFoundException")), "scan_not_found"),
        (lambda ecr: (ecr.describe(REPO, A), ecr.status(REPO, A, "SCAN_ELIGIBILITY_EXPIRED")), "scan_eligibility_expired"),
        (lambda ecr: (ecr.describe(REPO, A), ecr.status(REPO, A, "FINDINGS_UNAVAILABLE")), "findings_unavailable"),
    ],
)
def test_ecr_images_without_results_are_unscanned(queue, reason):
    ecr = Ecr()
    queue(ecr)
    result = report(ecr, image_id(REPO, digest("a")))
    assert result.counts is None and result.unscanned == reason
    ecr.done()


def test_other_ecr_errors_are_raised_not_reported_as_unscanned():
    ecr = Ecr()
    ecr.describe(REPO, digest("a"))
    ecr.error("describe_image_scan_findings", "AccessDeniedException", 403)
    with pytest.raises(ClientError, match="AccessDenied"):
        report(ecr, image_id(REPO, digest("a")))


def test_the_allow_list_covers_its_findings_until_it_expires():
    ecr = Ecr()
    ecr.describe(REPO, digest("a"))
    ecr.findings(
        REPO,
        digest("a"),
        [finding(f"CVE-2026-000{n}", "CRITICAL") for n in range(1, 6)],
    )
    allow = [
        AllowRule("CVE-2026-0001", REPO, TODAY),  # its last day
        AllowRule("CVE-2026-0002", "*", TODAY - dt.timedelta(days=1)),  # expired yesterday
        AllowRule("CVE-2026-0003", f"{REPO}@{digest('b')}", TODAY),  # another digest
        AllowRule("CVE-2026-0004", f"{REPO}@{digest('a')}", TODAY),  # this digest
        AllowRule("CVE-2026-0005", "prod/serving/other", TODAY),  # another repository
    ]
    result = report(ecr, image_id(REPO, digest("a")), allow)
    assert result.counts == counts(CRITICAL=3) and result.allowed == {"CRITICAL": 2}
    ecr.done()
