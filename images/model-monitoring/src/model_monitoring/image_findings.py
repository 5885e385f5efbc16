"""The scan findings of a running image, from the digest the kubelet reports (`status.containerStatuses[].imageID`).

On containerd an imageID is `<registry>/<repository>@sha256:<64 hex>`: the digest of what the node pulled, which for
a multi-architecture image is the image index's. Only the stack's own ECR registry (`<account>.dkr.ecr.<region>
.amazonaws.com`, the account and region the job's role may read) is looked up, the same way the deploy gate
(`python -m infra images check`, infra/delivery/vulnerabilities.py) does:

- ECR DescribeImages gives the manifest's media type. An image index (OCI index or Docker manifest list) is read with
  BatchGetImage and its linux/amd64 and linux/arm64 manifests are looked up: Inspector scans per platform manifest.
- ECR DescribeImageScanFindings, every page, gives the scan status and the findings: Inspector's `enhancedFindings`
  (only status ACTIVE counts) or basic scanning's `findings` (UNDEFINED counts as UNTRIAGED).
- Findings of an index's platform manifests are merged, not summed: a finding is its vulnerability id and the
  packages it names, so a CVE in the same package of the amd64 and arm64 manifests counts once (at the higher
  severity, should they differ).

What cannot be looked up is reported with a reason, never dropped: `outside_ecr`, `other_registry` (another account's
or region's ECR), `no_repository_digest` (a local image), `repository_not_found`, `image_not_found`,
`no_platform_manifest` (an index without a linux amd64/arm64 manifest), `scan_not_found`, or the scan status
lower-cased (`pending`, `in_progress`, `scan_eligibility_expired`, `findings_unavailable`, `unsupported_image`,
`failed`, ...). An index whose platform manifests are partly scanned reports the scanned ones' findings and the first
missing one's reason. Any other ECR error (AccessDenied, throttling past botocore's retries) is raised.

Findings an unexpired allow-list entry covers (`vulnerabilities.allow`: the vulnerability id, and the repository,
optionally `@<digest>` of the running image, or `*`) are counted apart: the gate let them deploy, so the alert on a
running image must not page for them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL", "UNTRIAGED")
"""Inspector's severities (inspector2 Severity); basic scanning's UNDEFINED is counted as UNTRIAGED."""
_RANK = {"INFORMATIONAL": 0, "LOW": 1, "MEDIUM": 2, "UNTRIAGED": 2, "HIGH": 3, "CRITICAL": 4}
_ECR_HOST = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\Z")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
PLATFORMS = (("linux", "amd64"), ("linux", "arm64"))
_SCANNED = ("ACTIVE", "COMPLETE")


@dataclass(frozen=True)
class RunningImage:
    """An imageID split: `host`/`repository` (None for a bare `sha256:` id) and `digest` (None without one)."""

    image_id: str
    host: str | None
    repository: str | None
    digest: str | None

    @property
    def label(self) -> str:
        """`<repository>@sha256:<12 hex>` (the metrics' `image`), or the imageID for an image without both."""
        if self.repository is None or self.digest is None:
            return self.image_id
        return f"{self.repository}@{self.digest[:19]}"


def parse_image_id(image_id: str) -> RunningImage | None:
    """`<host>/<repository>@sha256:<hex>` (Docker's `docker-pullable://` prefix dropped); None for an empty id (a
    container whose image is not pulled yet runs nothing)."""
    value = image_id.strip().removeprefix("docker-pullable://")
    if not value:
        return None
    name, _, digest = value.partition("@")
    if not digest and _DIGEST.match(name):  # a local image's id, no repository digest
        return RunningImage(value, None, None, None)
    host, slash, repository = name.partition("/")
    if not slash:
        host, repository = "docker.io", name
    return RunningImage(value, host, repository, digest if _DIGEST.match(digest) else None)


@dataclass(frozen=True)
class AllowRule:
    """An allow-list entry as the job reads it: `cve`, `image` (`repository[@digest]` or `*`), `expires` (last day)."""

    cve: str
    image: str
    expires: dt.date

    def covers(self, vulnerability: str, repository: str, digest: str, today: dt.date) -> bool:
        if self.cve != vulnerability or self.expires < today:
            return False
        if self.image == "*":
            return True
        wanted, _, wanted_digest = self.image.partition("@")
        return wanted == repository and (not wanted_digest or wanted_digest == digest)


@dataclass
class ImageReport:
    """One running image: ACTIVE findings by severity (`counts`, every severity, when scanned), those an allow-list
    entry covers (`allowed`), and why it is (partly) unscanned (`unscanned`, None when fully scanned)."""

    counts: dict[str, int] | None = None
    allowed: dict[str, int] = field(default_factory=dict)
    unscanned: str | None = None


class FindingsLookup:
    """Looks up running images in the registry `registry_id` of `region` with the ECR client `ecr`, each digest once
    per run. `allow` rules apply on `today` (UTC)."""

    def __init__(self, ecr, registry_id: str, region: str, allow: list[AllowRule], today: dt.date):
        self.ecr, self.registry_id, self.region, self.allow, self.today = ecr, registry_id, region, allow, today
        self._reports: dict[str, ImageReport] = {}

    def report(self, image: RunningImage) -> ImageReport:
        """The image's report (cached by imageID). Raises botocore's ClientError for an unexpected ECR error."""
        if image.image_id not in self._reports:
            self._reports[image.image_id] = self._look_up(image)
        return self._reports[image.image_id]

    def _look_up(self, image: RunningImage) -> ImageReport:
        if image.host is None or image.digest is None:
            return ImageReport(unscanned="no_repository_digest")
        host = _ECR_HOST.match(image.host)
        if host is None:
            return ImageReport(unscanned="outside_ecr")
        if (host["account"], host["region"]) != (self.registry_id, self.region):
            return ImageReport(unscanned="other_registry")
        repository, digest = image.repository or "", image.digest
        try:
            answer = self.ecr.describe_images(registryId=self.registry_id, repositoryName=repository, imageIds=[{"imageDigest": digest}])
            (detail,) = answer["imageDetails"]
        except ClientError as e:
            reason = {"ImageNotFoundException": "image_not_found", "RepositoryNotFoundException": "repository_not_found"}
            code = e.response["Error"]["Code"]
            if code in reason:
                return ImageReport(unscanned=reason[code])
            raise
        manifests = [digest]
        if detail.get("imageManifestMediaType") in INDEX_TYPES:
            manifests = self._platform_manifests(repository, digest)
            if not manifests:
                return ImageReport(unscanned="no_platform_manifest")
        findings: dict[tuple, str] = {}
        reasons = []
        for manifest in manifests:
            found, reason = self._findings(repository, manifest)
            if reason is not None:
                reasons.append(reason)
                continue
            for key, severity in found.items():
                if _RANK[severity] >= _RANK[findings.get(key, severity)]:
                    findings[key] = severity
        report = ImageReport(unscanned=reasons[0] if reasons else None)
        if len(reasons) == len(manifests):
            return report
        report.counts = dict.fromkeys(SEVERITIES, 0)
        for (vulnerability, _packages), severity in findings.items():
            if any(rule.covers(vulnerability, repository, digest, self.today) for rule in self.allow):
                report.allowed[severity] = report.allowed.get(severity, 0) + 1
            else:
                report.counts[severity] += 1
        return report

    def _platform_manifests(self, repository: str, digest: str) -> list[str]:
        """The index's linux/amd64 and linux/arm64 image manifests (attestations and other platforms left out)."""
        answer = self.ecr.batch_get_image(
            registryId=self.registry_id, repositoryName=repository, imageIds=[{"imageDigest": digest}], acceptedMediaTypes=list(INDEX_TYPES)
        )
        if not answer.get("images"):
            return []
        index = json.loads(answer["images"][0]["imageManifest"])
        return [
            m["digest"]
            for m in index.get("manifests", [])
            if m.get("mediaType", MANIFEST_TYPES[0]) in MANIFEST_TYPES
            and ((m.get("platform") or {}).get("os"), (m.get("platform") or {}).get("architecture")) in PLATFORMS
        ]

    def _findings(self, repository: str, digest: str) -> tuple[dict[tuple, str], str | None]:
        """ACTIVE findings of one manifest, (vulnerability id, packages) -> severity; or the reason there are none."""
        pages = self.ecr.get_paginator("describe_image_scan_findings").paginate(
            registryId=self.registry_id, repositoryName=repository, imageId={"imageDigest": digest}
        )
        found: dict[tuple, str] = {}
        try:
            for page in pages:
                status = (page.get("imageScanStatus") or {}).get("status")
                if status not in _SCANNED:
                    return {}, str(status or "unknown").lower()
                results = page.get("imageScanFindings") or {}
                for finding in results.get("enhancedFindings", []):
                    if finding.get("status", "ACTIVE") == "ACTIVE":
                        found[_enhanced_key(finding)] = _severity(finding.get("severity"))
                for finding in results.get("findings", []):
                    packages = tuple(sorted(f"{a.get('key')}={a.get('value')}" for a in finding.get("attributes", [])))
                    found[(finding.get("name", "?"), packages)] = _severity(finding.get("severity"))
        except ClientError as e:
            reason = {"ScanNotFoundException": "scan_not_found", "ImageNotFoundException": "image_not_found"}
            code = e.response["Error"]["Code"]
            if code in reason:
                return {}, reason[code]
            raise
        return found, None


def _enhanced_key(finding: dict) -> tuple:
    details = finding.get("packageVulnerabilityDetails") or {}
    packages = tuple(sorted({f"{p.get('name')} {p.get('version', '')}".strip() for p in details.get("vulnerablePackages", [])}))
    return (details.get("vulnerabilityId") or finding.get("title") or finding.get("findingArn", "?"), packages)


def _severity(value: str | None) -> str:
    return value if value in SEVERITIES else "UNTRIAGED"
