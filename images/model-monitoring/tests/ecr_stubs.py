"""ECR answers for the running-images tests, through botocore's Stubber: every expected call's parameters are
checked, and every answer is validated against the ECR API model botocore ships (a misspelt field fails the test).
A call nobody expected fails too, so a test also proves what is *not* called (a cached digest, an image outside ECR).
"""

from __future__ import annotations

import json

import boto3
from botocore.stub import Stubber

ACCOUNT = "123456789012"
REGION = "us-west-2"
HOST = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = [OCI_INDEX, DOCKER_LIST]


def digest(char: str) -> str:
    return "sha256:" + char * 64


def image_id(repository: str, image_digest: str, host: str = HOST) -> str:
    return f"{host}/{repository}@{image_digest}"


def finding(cve: str, severity: str, status: str = "ACTIVE", package: str = "openssl", version: str = "3.0.2") -> dict:
    """An Inspector finding as DescribeImageScanFindings gives it (enhancedFindings)."""
    return {
        "awsAccountId": ACCOUNT,
        "findingArn": f"arn:aws:inspector2:{REGION}:{ACCOUNT}:finding/{cve}-{package}",
        "severity": severity,
        "status": status,
        "title": f"{cve} - {package}",
        "type": "PACKAGE_VULNERABILITY",
        "packageVulnerabilityDetails": {
            "vulnerabilityId": cve,
            "source": "NVD",
            "vulnerablePackages": [{"name": package, "version": version, "packageManager": "OS"}],
        },
    }


def index_manifest(*platforms: tuple[str, str, str]) -> str:
    """An OCI image index of (digest, os, architecture) manifests, plus a BuildKit attestation manifest."""
    manifests = [
        {"mediaType": OCI_MANIFEST, "digest": d, "size": 1000, "platform": {"os": os_, "architecture": arch}} for d, os_, arch in platforms
    ]
    manifests.append(
        {
            "mediaType": OCI_MANIFEST,
            "digest": digest("f"),
            "size": 500,
            "platform": {"os": "unknown", "architecture": "unknown"},
            "annotations": {"vnd.docker.reference.type": "attestation-manifest"},
        }
    )
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})


class Ecr:
    """A boto3 ECR client (fake credentials, never reaching AWS) and its Stubber, with helpers for the calls the lookup
    makes, in the order it makes them."""

    def __init__(self):
        self.client = boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION).client("ecr")
        self.stub = Stubber(self.client)
        self.stub.activate()

    def describe(self, repository: str, image_digest: str, media_type: str = OCI_MANIFEST) -> None:
        self.stub.add_response(
            "describe_images",
            {
                "imageDetails": [
                    {
                        "registryId": ACCOUNT,
                        "repositoryName": repository,
                        "imageDigest": image_digest,
                        "imageManifestMediaType": media_type,
                        "imageTags": ["1.0"],
                    }
                ]
            },
            {"registryId": ACCOUNT, "repositoryName": repository, "imageIds": [{"imageDigest": image_digest}]},
        )

    def index(self, repository: str, image_digest: str, manifest: str) -> None:
        self.stub.add_response(
            "batch_get_image",
            {
                "images": [
                    {
                        "registryId": ACCOUNT,
                        "repositoryName": repository,
                        "imageId": {"imageDigest": image_digest},
                        "imageManifest": manifest,
                        "imageManifestMediaType": OCI_INDEX,
                    }
                ],
                "failures": [],
            },
            {
                "registryId": ACCOUNT,
                "repositoryName": repository,
                "imageIds": [{"imageDigest": image_digest}],
                "acceptedMediaTypes": INDEX_TYPES,
            },
        )

    def findings(self, repository: str, image_digest: str, *pages: list[dict], status: str = "ACTIVE", basic: bool = False) -> None:
        """One DescribeImageScanFindings call per page of findings (chained by nextToken)."""
        for number, page in enumerate(pages or ([],)):
            last = number == len(pages or ([],)) - 1
            answer = {
                "registryId": ACCOUNT,
                "repositoryName": repository,
                "imageId": {"imageDigest": image_digest},
                "imageScanStatus": {"status": status, "description": "The scan was completed successfully."},
                "imageScanFindings": {"findings": page} if basic else {"enhancedFindings": page},
            }
            if not last:
                answer["nextToken"] = f"page-{number + 1}"
            expected = {"registryId": ACCOUNT, "repositoryName": repository, "imageId": {"imageDigest": image_digest}}
            if number:
                expected["nextToken"] = f"page-{number}"
            self.stub.add_response("describe_image_scan_findings", answer, expected)

    def status(self, repository: str, image_digest: str, status: str) -> None:
        """A scan without results (PENDING, SCAN_ELIGIBILITY_EXPIRED, ...)."""
        self.stub.add_response(
            "describe_image_scan_findings",
            {
                "registryId": ACCOUNT,
                "repositoryName": repository,
                "imageId": {"imageDigest": image_digest},
                "imageScanStatus": {"status": status, "description": f"status {status}"},
            },
            {"registryId": ACCOUNT, "repositoryName": repository, "imageId": {"imageDigest": image_digest}},
        )

    def error(self, operation: str, code: str, status: int = 400) -> None:
        self.stub.add_client_error(operation, service_error_code=code, service_message=f"{code} (stubbed)", http_status_code=status)

    def done(self) -> None:
        """Every expected call was made."""
        self.stub.assert_no_pending_responses()
