"""`python -m infra images check --stack S`: the vulnerability gate every deploy path runs before `pulumi up`.

Every image the stack will run (its models, the weights loader, the platform's own images, and the charts' images:
the `versions.images` output of the offline plan) is resolved to a digest in ECR and its findings read:

- ECR DescribeImages turns a tag into the digest; an image index (multi-architecture) is read with BatchGetImage
  and each linux platform's manifest judged, since Inspector scans per platform manifest (and EKS nodes pull one).
- ECR DescribeImageScanFindings, every page (`nextToken`), gives `imageScanStatus` and the findings: Inspector's
  `enhancedFindings` (severity INFORMATIONAL ... CRITICAL or UNTRIAGED, status ACTIVE, SUPPRESSED or CLOSED) under
  enhanced scanning, basic scanning's `findings` otherwise. Only ACTIVE findings count.
- Scan status ACTIVE or COMPLETE means results; anything else (PENDING, IN_PROGRESS, SCAN_ELIGIBILITY_EXPIRED,
  FINDINGS_UNAVAILABLE, UNSUPPORTED_IMAGE, FAILED...) or ScanNotFoundException is "not scanned", judged by
  `vulnerabilities.unscanned` (default fail in prod). ECR API reference: DescribeImageScanFindings, ImageScanStatus.

An image outside ECR (a public registry, a chart image pinned by digest that pulls from its upstream) or a chart
image the plan knows only by repository (its tag is the chart's) cannot be checked: `vulnerabilities.outsideEcr`
says whether that fails. A finding at or above `vulnerabilities.threshold` fails unless an unexpired
`vulnerabilities.allow` entry names its vulnerability and image; an expired entry fails by itself.

Exit: 0 passed (warnings printed), 3 refused, 2 bad input, 1 an AWS call failed.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field

from botocore.exceptions import ClientError

from ml_platform.infra import config
from ml_platform.infra.config.vulnerabilities import SEVERITY_RANK, allow_problems

__all__ = ["EXIT_REFUSED", "Gate", "Image", "allow_problems", "check", "stack_images"]
from ml_platform.infra.offline.mocks import ACCOUNT_ID as PLAN_ACCOUNT

EXIT_REFUSED = 3
_ECR = re.compile(r"^(?P<account>\d{12})\.dkr\.ecr\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?/(?P<rest>.+)\Z")
_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json")
_MANIFEST_TYPES = ("application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json")
_SCANNED = ("ACTIVE", "COMPLETE")
# Basic scanning rates a finding it cannot rate UNDEFINED: judged like Inspector's UNTRIAGED.
_RANK = {**SEVERITY_RANK, "UNDEFINED": SEVERITY_RANK["UNTRIAGED"]}


@dataclass(frozen=True)
class Image:
    """One image of the stack: `role` (e.g. `model chat`, `chart prometheus`) and the reference it runs by."""

    role: str
    reference: str


@dataclass(frozen=True)
class Finding:
    vulnerability: str
    severity: str
    package: str = ""


@dataclass
class Verdict:
    """What the gate says about one image: `status` pass, warn or fail, and why (lines)."""

    image: Image
    status: str = "pass"
    digest: str | None = None
    repository: str | None = None
    lines: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seen: set[tuple[str, str]] = field(default_factory=set)
    """Vulnerabilities judged already (one found in both platform manifests of an index counts once)."""

    def worse(self, status: str, line: str) -> None:
        order = ("pass", "warn", "fail")
        if order.index(status) > order.index(self.status):
            self.status = status
        self.lines.append(line)


def stack_images(plan_outputs: dict, account: str) -> list[Image]:
    """The images of an offline plan's `versions.images` output (charts, loader, models, platform), with the plan's
    mock account replaced by `account` (the account the stack deploys to). Raises KeyError when the plan has none."""
    images = plan_outputs["versions"]["images"]
    found = [Image(f"model {name}", ref) for name, ref in sorted(images.get("models", {}).items())]
    found.append(Image("weights loader", images["loader"]))
    found += [Image(f"platform {name}", ref) for name, ref in sorted(images.get("platform", {}).items())]
    found += [Image(f"chart {name}", ref) for name, ref in sorted(images.get("charts", {}).items())]
    return [Image(i.role, re.sub(rf"^{PLAN_ACCOUNT}\.dkr\.ecr\.", f"{account}.dkr.ecr.", i.reference)) for i in found]


def split_reference(reference: str) -> tuple[str, str | None, str | None]:
    """`host/repo[:tag][@digest]` -> (host/repo, tag, digest)."""
    name, _, digest = reference.partition("@")
    slash = name.rfind("/")
    colon = name.rfind(":")
    tag = None
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
    return name, tag, digest or None


class Gate:
    """Judges images against a stack's `vulnerabilities` settings with ECR clients made by `client(region)`."""

    def __init__(self, cfg: config.StackConfig, client, today: dt.date, unscanned: str | None = None):
        self.settings, self.client, self.today = cfg.vulnerabilities, client, today
        self.threshold = SEVERITY_RANK[self.settings.threshold]
        self.unscanned = unscanned or cfg.unscanned_verdict

    def judge(self, image: Image) -> Verdict:
        verdict = Verdict(image)
        name, tag, digest = split_reference(image.reference)
        match = _ECR.match(name)
        if match is None:
            verdict.worse(
                self.settings.outsideEcr,
                "outside ECR: Inspector cannot scan it (copy it into one of the stack's repositories; a chart's: registries.mirrors)",
            )
            return verdict
        if tag is None and digest is None:
            verdict.worse(
                self.settings.outsideEcr,
                "the chart sets its tag, so the plan cannot name the image: mirror it (registries.mirrors), pin its digest (pins.images)",
            )
            return verdict
        account, region, repository = match["account"], match["region"], match["rest"]
        verdict.repository = repository
        ecr = self.client(region)
        try:
            described = ecr.describe_images(
                registryId=account, repositoryName=repository, imageIds=[{"imageDigest": digest} if digest else {"imageTag": tag}]
            )["imageDetails"]
        except ClientError as err:
            code = err.response["Error"]["Code"]
            if code == "ImageNotFoundException":
                verdict.worse("fail", f"not in ECR ({code}): push it before deploying")
                return verdict
            if code == "RepositoryNotFoundException":
                verdict.worse(
                    "fail",
                    f"not in ECR ({code}): a repository of this stack is made by its first `pulumi up`; deploy once without "
                    "the models that use it, push the image, then add them",
                )
                return verdict
            raise
        detail = described[0]
        verdict.digest = detail["imageDigest"]
        manifests = [verdict.digest]
        if detail.get("imageManifestMediaType") in _INDEX_TYPES:
            manifests = self._platform_manifests(ecr, account, repository, verdict.digest)
            if not manifests:
                verdict.worse(self.unscanned, "an image index without a linux/amd64 or linux/arm64 manifest: nothing scanned to judge")
        for manifest in manifests:
            self._judge_manifest(
                ecr, account, repository, manifest, verdict, prefix="" if manifest == verdict.digest else f"{manifest[:19]}: "
            )
        return verdict

    def _platform_manifests(self, ecr, account: str, repository: str, digest: str) -> list[str]:
        answer = ecr.batch_get_image(
            registryId=account, repositoryName=repository, imageIds=[{"imageDigest": digest}], acceptedMediaTypes=list(_INDEX_TYPES)
        )
        if not answer.get("images"):
            return []
        index = json.loads(answer["images"][0]["imageManifest"])
        return [
            m["digest"]
            for m in index.get("manifests", [])
            if m.get("mediaType", _MANIFEST_TYPES[0]) in _MANIFEST_TYPES
            and (m.get("platform") or {}).get("os") == "linux"
            and (m.get("platform") or {}).get("architecture") in ("amd64", "arm64")
        ]

    def _judge_manifest(self, ecr, account: str, repository: str, digest: str, verdict: Verdict, prefix: str) -> None:
        pages = ecr.get_paginator("describe_image_scan_findings").paginate(
            registryId=account, repositoryName=repository, imageId={"imageDigest": digest}
        )
        findings: list[Finding] = []
        try:
            for page in pages:
                status = page.get("imageScanStatus", {})
                if status.get("status") not in _SCANNED:
                    why = status.get("description") or "no results yet"
                    verdict.worse(self.unscanned, f"{prefix}not scanned: {status.get('status', 'unknown')} ({why})")
                    return
                found = page.get("imageScanFindings", {})
                findings += [_enhanced(f) for f in found.get("enhancedFindings", []) if f.get("status", "ACTIVE") == "ACTIVE"]
                findings += [_basic(f) for f in found.get("findings", [])]
        except ClientError as err:
            if err.response["Error"]["Code"] == "ScanNotFoundException":
                verdict.worse(
                    self.unscanned, f"{prefix}not scanned: no scan of this image (is the registry's scanning on? python -m infra doctor)"
                )
                return
            raise
        for finding in findings:
            if (finding.vulnerability, finding.package) in verdict.seen:
                continue
            verdict.seen.add((finding.vulnerability, finding.package))
            verdict.counts[finding.severity] = verdict.counts.get(finding.severity, 0) + 1
            if _RANK.get(finding.severity, self.threshold) < self.threshold:
                continue
            entry = next(
                (
                    e
                    for e in self.settings.allow
                    if e.cve.upper() == finding.vulnerability.upper() and e.matches(repository, verdict.digest)
                ),
                None,
            )
            what = f"{prefix}{finding.severity} {finding.vulnerability}" + (f" in {finding.package}" if finding.package else "")
            if entry is None:
                verdict.worse("fail", what)
            elif entry.expires < self.today:
                verdict.worse("fail", f"{what}: its allow-list entry expired on {entry.expires}")
            else:
                verdict.lines.append(f"{what}: allowed until {entry.expires} ({entry.reason})")


def _basic(finding: dict) -> Finding:
    """A basic scan's finding: its package in the `package_name` and `package_version` attributes."""
    attributes = {a.get("key"): a.get("value", "") for a in finding.get("attributes", [])}
    package = f"{attributes.get('package_name', '')} {attributes.get('package_version', '')}".strip()
    return Finding(finding.get("name", "?"), finding.get("severity", "UNDEFINED"), package)


def _enhanced(finding: dict) -> Finding:
    details = finding.get("packageVulnerabilityDetails") or {}
    packages = ", ".join(sorted({f"{p.get('name')} {p.get('version', '')}".strip() for p in details.get("vulnerablePackages", [])}))
    return Finding(details.get("vulnerabilityId") or finding.get("title", "?"), finding.get("severity", "UNTRIAGED"), packages)


def check(cfg: config.StackConfig, images: list[Image], client, today: dt.date, say=print, unscanned: str | None = None) -> int:
    """Judge `images` and the allow-list, print a line per image (and its findings), return 0 or EXIT_REFUSED.
    `unscanned` overrides the stack's verdict on images without results (the scanning owner's first deploy)."""
    gate = Gate(cfg, client, today, unscanned)
    verdicts = [gate.judge(image) for image in images]
    entries = allow_problems(cfg.vulnerabilities.allow, today)
    for verdict in verdicts:
        counts = ", ".join(f"{n} {s}" for s, n in sorted(verdict.counts.items(), key=lambda item: -_RANK.get(item[0], 0)))
        where = f"{verdict.repository}@{verdict.digest}" if verdict.digest else verdict.image.reference
        say(f"{verdict.status.upper():4}  {verdict.image.role}: {where}" + (f" ({counts})" if counts else ""))
        for line in verdict.lines:
            say(f"        {line}")
    for path, message in entries:
        say(f"FAIL  {path}: {message}")
    failed = [v for v in verdicts if v.status == "fail"]
    warned = [v for v in verdicts if v.status == "warn"]
    threshold = cfg.vulnerabilities.threshold
    say(
        f"\n{len(verdicts)} images: {len(verdicts) - len(failed) - len(warned)} passed, {len(warned)} warned, {len(failed)} failed "
        f"(threshold {threshold}; allow-list problems: {len(entries)})"
    )
    if failed or entries:
        say("refused: fix or rebuild the images named FAIL, or add an allow-list entry (README, 'Vulnerabilities')")
        return EXIT_REFUSED
    return 0
