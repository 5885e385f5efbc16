"""What the commands that call AWS say when a call fails: one line naming the cause and what to do, for the
command line to print with exit status 1 (never a traceback). Also the checks of a region name made before any
call, against botocore's own endpoint data (the list the SDK ships; no region list of our own to go stale)."""

from __future__ import annotations

import difflib

import boto3
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
)

# ClientError codes grouped by what the user does about them (codes from the AWS SDK error references).
_DENIED = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "UnauthorizedAccess", "Forbidden", "403"}
_BAD_TOKEN = {"ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId", "UnrecognizedClientException", "SignatureDoesNotMatch"}
_THROTTLED = {"Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequestsException", "SlowDown"}
_WRONG_REGION = {"AuthorizationHeaderMalformed", "PermanentRedirect", "IllegalLocationConstraintException", "301"}


def explain(err: BotoCoreError | ClientError) -> str:
    """One line for a failed AWS call: what failed, why, and what to do. Unknown errors keep AWS's own words."""
    if isinstance(err, NoCredentialsError | PartialCredentialsError | CredentialRetrievalError):
        return (
            f"no usable AWS credentials ({err}); set AWS_PROFILE, run `aws sso login` or `aws configure`, "
            "or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    if isinstance(err, NoRegionError):
        return "no AWS region; pass --region or set AWS_REGION"
    if isinstance(err, EndpointConnectionError):
        return f"cannot reach {err.kwargs.get('endpoint_url', 'the AWS endpoint')}; check the region and the network (proxy, VPC endpoint)"
    if isinstance(err, ClientError):
        error = err.response.get("Error", {})
        code, message = str(error.get("Code", "?")), error.get("Message") or ""
        operation = err.operation_name
        if code in _DENIED:
            return f"access denied to {operation} ({message or code}); the caller needs that permission, see `aws sts get-caller-identity`"
        if code in _BAD_TOKEN:
            return f"{code} on {operation}: the credentials are not valid (expired or from another partition); log in again"
        if code in _THROTTLED:
            return f"AWS throttled {operation} ({code}); wait a minute and run the command again, it is safe to repeat"
        if code in _WRONG_REGION:
            return f"{operation}: {code} ({message}); the resource is in another region than the one given, pass the right --region"
        return f"{operation} failed: {code} {message}".rstrip()
    return f"AWS call failed: {err}"


def known_regions(session: boto3.Session | None = None) -> list[str]:
    """Every region botocore knows in any partition (aws, aws-cn, aws-us-gov, ...), opt-in regions included."""
    session = session or boto3.Session()
    return sorted({r for p in session.get_available_partitions() for r in session.get_available_regions("s3", partition_name=p)})


def region_problem(region: str) -> str | None:
    """Why `region` is not a region name, with a did-you-mean, or None when botocore knows it."""
    regions = known_regions()
    if region in regions:
        return None
    close = difflib.get_close_matches(region.strip().lower(), regions, n=1)
    hint = f"; did you mean {close[0]}?" if close else f"; known regions: {', '.join(regions)}"
    return f"'{region}' is not an AWS region{hint}"
