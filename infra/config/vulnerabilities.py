"""`vulnerabilities`: ECR enhanced scanning (Amazon Inspector) for the account, the gate before each deploy
(`python -m infra images check`), its allow-list, and the job that reports findings in running images.

Enum values are the APIs' own: the severities Inspector gives enhanced findings (inspector2 `Severity`:
INFORMATIONAL, LOW, MEDIUM, HIGH, CRITICAL, UNTRIAGED; botocore's inspector2 model), and Inspector's ECR rescan
durations (inspector2 UpdateConfiguration `ecrConfiguration`: `rescanDuration` LIFETIME or DAYS_3 ... DAYS_180,
`pullDateRescanDuration` the same without LIFETIME, `pullDateRescanMode` LAST_PULL_DATE or LAST_IN_USE_AT).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from ml_platform.infra.config.base import _ECR_NAME, _fail, _Model, check_cron
from ml_platform.infra.config.model_monitoring import MIN_PERIOD_SECONDS, schedule_period_seconds
from ml_platform.infra.config.models import _DIGEST

# Ordered from least to most severe (inspector2 Severity). UNTRIAGED (not yet rated by its source) sits with
# MEDIUM: unknown is not harmless, and a threshold of MEDIUM or lower takes it.
SEVERITIES = ("INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL")
SEVERITY_RANK = {**{name: rank for rank, name in enumerate(SEVERITIES)}, "UNTRIAGED": SEVERITIES.index("MEDIUM")}
RESCAN_DURATIONS = ("LIFETIME", "DAYS_3", "DAYS_7", "DAYS_14", "DAYS_30", "DAYS_60", "DAYS_90", "DAYS_180")
PULL_DATE_RESCAN_DURATIONS = RESCAN_DURATIONS[1:]
PULL_DATE_RESCAN_MODES = ("LAST_PULL_DATE", "LAST_IN_USE_AT")
# ECR repository filter (RegistryScanningConfiguration rule, filterType WILDCARD): botocore's ecr model pattern.
_REPOSITORY_FILTER = re.compile(r"^[a-z0-9*](?:[._\-/a-z0-9*]?[a-z0-9*]+)*\Z")
_CVE = re.compile(r"^(CVE-\d{4}-\d{4,}|GHSA(-[23456789cfghjmpqrvwx]{4}){3}|[A-Za-z][A-Za-z0-9]+-[A-Za-z0-9.:_-]+)\Z")
MAX_ALLOW_DAYS = 365
"""An allow-list entry may run at most a year: an exception nobody revisits is a hole."""


class RegistryScanning(_Model):
    """The account's ECR enhanced scanning in this region, declared by the one stack that owns it (present here:
    this stack is the owner). ECR keeps one scanning configuration per account and region, so a second stack
    declaring it would overwrite the first's on every `pulumi up`; `doctor` reports a stack whose account scans
    otherwise. Destroying the owner leaves the account's scanning as it is (retainOnDelete)."""

    repositoryFilters: list[str] = Field(default=["*"], min_length=1, max_length=100)
    """Repositories scanned continuously (ECR wildcard filters): every repository by default, so the platform's
    images, its pull-through caches and mirrors, and other stacks' are all covered. Unmatched repositories are not
    scanned at all."""
    rescanDuration: Literal[RESCAN_DURATIONS] = "DAYS_180"  # type: ignore[valid-type]
    """How long after push Inspector keeps rescanning an image as new vulnerabilities are published."""
    pullDateRescanDuration: Literal[PULL_DATE_RESCAN_DURATIONS] = "DAYS_180"  # type: ignore[valid-type]
    """How long after its last pull or use an image keeps being rescanned: a prod digest running for months stays
    scanned as long as it runs."""
    pullDateRescanMode: Literal[PULL_DATE_RESCAN_MODES] = "LAST_IN_USE_AT"  # type: ignore[valid-type]
    """What counts as use: LAST_IN_USE_AT (Inspector sees it running on EKS/ECS) or LAST_PULL_DATE."""

    @field_validator("repositoryFilters")
    @classmethod
    def _filters(cls, value: list[str]) -> list[str]:
        for item in value:
            if not 1 <= len(item) <= 255 or not _REPOSITORY_FILTER.match(item):
                raise _fail(f"'{item}' is not an ECR repository filter (lowercase letters, digits, . _ - / and the wildcard *)")
        return value


class AllowEntry(_Model):
    """One accepted finding: `cve` in images of repository `image`, for `reason`, until `expires`."""

    cve: str
    """The vulnerability id as Inspector gives it (CVE-2024-3094, GHSA-..., or a vendor id such as ALAS2023-...)."""
    image: str
    """The repository as `images check` prints it (e.g. `prod/serving/vllm`), optionally `@sha256:<digest>` for one
    image only, or `*` for every image."""
    reason: str = Field(min_length=10)
    """Why it is accepted (not reachable, no fix yet, ...), for whoever reads the stack file next."""
    # Not strict: Pulumi hands structured config over as JSON, where a date is the string YYYY-MM-DD.
    expires: Annotated[dt.date, Field(strict=False)]
    """The last day it applies (YYYY-MM-DD); after it the gate fails on the finding and on the entry itself."""

    @field_validator("cve")
    @classmethod
    def _cve(cls, value: str) -> str:
        if not _CVE.match(value):
            raise _fail(
                f"'{value}' is not a vulnerability id (CVE-YYYY-NNNN, GHSA-xxxx-xxxx-xxxx, or a vendor id such as ALAS2023-2024-123)"
            )
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        if len(value.strip()) < 10:
            raise _fail("say why it is accepted, in at least 10 characters (not blanks)")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if ".amazonaws.com" in value or value.startswith(("http:", "https:")):
            raise _fail(f"'{value}': give the repository path below the registry (e.g. prod/serving/vllm), as `images check` prints it")
        repository, _, digest = value.partition("@")
        if value != "*" and (not _ECR_NAME.match(repository) or (digest and not re.fullmatch(_DIGEST, digest))):
            raise _fail(f"'{value}': give a repository path (e.g. prod/serving/vllm), optionally @sha256:<64 hex>, or '*'")
        return value

    def matches(self, repository: str, digest: str | None) -> bool:
        """Whether this entry covers an image of `repository` (path below the registry host) and `digest`."""
        if self.image == "*":
            return True
        wanted, _, wanted_digest = self.image.partition("@")
        return wanted == repository and (not wanted_digest or wanted_digest == digest)


class RunningImages(_Model):
    """The in-cluster job that reports findings in the images running in model namespaces."""

    enabled: bool = True
    schedule: str = "23 * * * *"
    """When it runs (cron, UTC): hourly by default; ModelImageVulnerable fires from its results."""

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        check_cron(value, "the CronJob controller", "the running-images report would never run")
        # components/running_images.py refuses a shorter period: each run lists every model namespace and reads ECR.
        if schedule_period_seconds(value) < MIN_PERIOD_SECONDS:
            raise _fail(f"'{value}' runs more often than every {MIN_PERIOD_SECONDS // 60} minutes: findings change far slower than that")
        return value


class VulnerabilitiesConfig(_Model):
    registryScanning: RegistryScanning | None = None
    """Set in exactly one stack per account and region: that stack declares ECR enhanced scanning."""
    threshold: Literal[SEVERITIES] = "CRITICAL"  # type: ignore[valid-type]
    """The gate fails on an active finding of this severity or above that no allow-list entry covers."""
    unscanned: Literal["fail", "warn"] | None = None
    """Verdict on an ECR image without scan results (not scanned yet, scan failed, eligibility expired): default fail
    in prod, warn elsewhere."""
    outsideEcr: Literal["fail", "warn"] = "warn"
    """Verdict on an image Inspector cannot scan (another registry, or a chart's tag the plan cannot resolve): pull
    it through a cache or mirror, and pin its digest, to have it checked."""
    allow: list[AllowEntry] = []
    runningImages: RunningImages = RunningImages()

    @model_validator(mode="before")
    @classmethod
    def _owner_stated(cls, data):
        if isinstance(data, dict) and "registryScanning" in data and data["registryScanning"] is None:
            raise _fail("registryScanning is empty: give {} to own the account's scanning with the defaults, or leave the key out")
        return data

    @model_validator(mode="after")
    def _allow_list(self) -> VulnerabilitiesConfig:
        seen = set()
        for index, entry in enumerate(self.allow):
            key = (entry.cve, entry.image)
            if key in seen:
                raise _fail(f"allow[{index}]: {entry.cve} for {entry.image} is listed twice")
            seen.add(key)
        return self


def allow_problems(allow: list[AllowEntry], today: dt.date) -> list[tuple[str, str]]:
    """Allow-list entries the gate refuses on `today`: expired ones (after `expires`) and ones reaching more than
    MAX_ALLOW_DAYS ahead. Returns (key path, message) pairs."""
    problems = []
    for index, entry in enumerate(allow):
        if entry.expires < today:
            problems.append(
                (
                    f"vulnerabilities.allow[{index}]",
                    f"{entry.cve} for {entry.image} expired on {entry.expires}: fix it, or renew the entry with a new reason",
                )
            )
        elif (entry.expires - today).days > MAX_ALLOW_DAYS:
            problems.append(
                (
                    f"vulnerabilities.allow[{index}]",
                    f"{entry.cve} for {entry.image} runs to {entry.expires}: at most {MAX_ALLOW_DAYS} days ahead",
                )
            )
    return problems
