"""`python -m infra bootstrap-backend`: the S3 state bucket and KMS key for Pulumi's state and secrets.

Reads before it writes. A new bucket (and key) is created to standard. An existing bucket is looked at first:
its region (a bucket's region never changes, and its SSE-KMS key must be in that region) must be the one
given, else nothing is done; anything it would change on it (versioning, public access block, default
encryption, the TLS-only policy statement, the key's rotation) is listed and applied only with `force`.
A bucket already to standard is left alone, so running it twice changes nothing the second time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass

from botocore.exceptions import ClientError

from ml_platform.components.model_store import tls_only_policy
from ml_platform.infra.delivery.aws_errors import region_problem

DEFAULT_KEY_ALIAS = "alias/ml-platform-pulumi-secrets"

# General purpose bucket naming rules:
# https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
# KMS alias names: https://docs.aws.amazon.com/kms/latest/APIReference/API_CreateAlias.html
_ALIAS = re.compile(r"^alias/[a-zA-Z0-9/_-]{1,250}\Z")

_PUBLIC_ACCESS_BLOCK = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}


class BackendError(Exception):
    """A request that cannot or must not be carried out (bad name, another account's bucket, another region,
    changes to an existing bucket without --force). Nothing was changed when it is raised."""


@dataclass(frozen=True)
class Backend:
    bucket: str
    region: str
    key_arn: str
    key_alias: str

    @property
    def login(self) -> str:
        return f"pulumi login 's3://{self.bucket}?region={self.region}&awssdk=v2'"

    @property
    def secrets_provider(self) -> str:
        return f"--secrets-provider 'awskms://{self.key_alias}?region={self.region}'"


@dataclass(frozen=True)
class Change:
    """One setting of an existing resource the command would change."""

    what: str
    now: str
    then: str

    def line(self) -> str:
        return f"{self.what}: {self.now} -> {self.then}"


def bucket_name_problem(bucket: str) -> str | None:
    """Why `bucket` cannot be an S3 general purpose bucket name (AWS's naming rules), or None."""
    if not _BUCKET_NAME.match(bucket):
        return (
            f"'{bucket}' is not a valid bucket name: 3-63 characters of lowercase letters, digits, '.' and '-', "
            "starting and ending with a letter or digit"
        )
    if ".." in bucket or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket):
        return f"'{bucket}' is not a valid bucket name: no two adjacent dots, not an IP address"
    if bucket.startswith(_RESERVED_PREFIXES) or bucket.endswith(_RESERVED_SUFFIXES):
        return f"'{bucket}' uses a prefix or suffix S3 reserves ({', '.join(_RESERVED_PREFIXES + _RESERVED_SUFFIXES)})"
    return None


def key_alias_problem(alias: str) -> str | None:
    """Why `alias` cannot name a customer managed KMS key's alias, or None."""
    if not _ALIAS.match(alias):
        return f"'{alias}' is not a KMS alias: 'alias/' then letters, digits, '/', '_' or '-'"
    if alias.startswith("alias/aws/"):
        return f"'{alias}': the prefix alias/aws/ is reserved for AWS managed keys"
    return None


@dataclass(frozen=True)
class BucketState:
    """What an existing bucket has now (read-only calls)."""

    region: str
    versioning: str
    public_access_block: dict
    encryption: dict | None
    policy: dict | None


def read_bucket(s3, bucket: str) -> BucketState | None:
    """The bucket's current settings, or None when there is no such bucket. Raises BackendError when the name
    belongs to another account."""
    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as err:
        code = err.response["Error"]["Code"]
        if code in ("403", "Forbidden", "AccessDenied"):
            raise BackendError(f"bucket '{bucket}' exists but this account cannot use it; choose another name") from None
        if code in ("404", "NoSuchBucket", "NotFound"):
            return None
        raise
    # GetBucketLocation answers from any region; no constraint means us-east-1, and "EU" is eu-west-1's old name.
    location = s3.get_bucket_location(Bucket=bucket).get("LocationConstraint")
    region = {None: "us-east-1", "": "us-east-1", "EU": "eu-west-1"}.get(location, location)
    versioning = s3.get_bucket_versioning(Bucket=bucket).get("Status", "never enabled")
    try:
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchPublicAccessBlockConfiguration":
            raise
        block = {}
    try:
        rule = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    except ClientError as err:
        if err.response["Error"]["Code"] != "ServerSideEncryptionConfigurationNotFoundError":
            raise
        rule = None
    try:
        policy = json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError as err:
        if err.response["Error"]["Code"] != "NoSuchBucketPolicy":
            raise
        policy = None
    return BucketState(region, versioning, block, rule, policy)


def wanted_policy(bucket: str, current: dict | None) -> dict:
    """The bucket's policy with the TLS-only statement (Sid DenyInsecureTransport) in it; every other statement
    of the current policy is kept as it is."""
    ours = tls_only_policy(f"arn:aws:s3:::{bucket}")
    if current is None:
        return ours
    statements = current.get("Statement", [])
    if isinstance(statements, dict):  # IAM's grammar allows one statement as an object
        statements = [statements]
    kept = [s for s in statements if not (isinstance(s, dict) and s.get("Sid") == "DenyInsecureTransport")]
    return {**current, "Statement": kept + ours["Statement"]}


def _encryption_rule(key_arn: str) -> dict:
    return {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": key_arn}, "BucketKeyEnabled": True}


def _describe_rule(rule: dict | None) -> str:
    if rule is None:
        return "none"
    default = rule.get("ApplyServerSideEncryptionByDefault", {})
    key = default.get("KMSMasterKeyID")
    return f"{default.get('SSEAlgorithm')}" + (f" with {key}" if key else "") + (", bucket key" if rule.get("BucketKeyEnabled") else "")


def bucket_changes(state: BucketState, bucket: str, key_ids: set[str], key_label: str) -> list[Change]:
    """What bringing an existing bucket to standard would change. `key_ids`: every name of the wanted key
    (its ARN, ID, alias, alias ARN) as a bucket's encryption may name it; `key_label` how to show it."""
    changes = []
    if state.versioning != "Enabled":
        changes.append(Change("versioning", state.versioning, "Enabled"))
    if not all(state.public_access_block.get(k) for k in _PUBLIC_ACCESS_BLOCK):
        now = ", ".join(k for k in _PUBLIC_ACCESS_BLOCK if state.public_access_block.get(k)) or "none blocked"
        changes.append(Change("public access block", now, "all four blocked"))
    default = (state.encryption or {}).get("ApplyServerSideEncryptionByDefault", {})
    if (
        default.get("SSEAlgorithm") != "aws:kms"
        or default.get("KMSMasterKeyID") not in key_ids
        or not state.encryption.get("BucketKeyEnabled")
    ):
        changes.append(Change("default encryption", _describe_rule(state.encryption), f"aws:kms with {key_label}, bucket key"))
    wanted = wanted_policy(bucket, state.policy)
    if state.policy != wanted:
        others = len(wanted["Statement"]) - 1
        now = "none" if state.policy is None else f"{others} statement(s), TLS-only one missing or different"
        changes.append(Change("bucket policy", now, f"statement DenyInsecureTransport added, {others} other statement(s) kept"))
    return changes


def find_key(kms, alias: str) -> dict | None:
    """The key's metadata behind `alias` in the client's region, or None when the alias does not exist."""
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]
    except ClientError as err:
        if err.response["Error"]["Code"] != "NotFoundException":
            raise
        return None


def bootstrap(
    session, bucket: str, region: str, key_alias: str = DEFAULT_KEY_ALIAS, say: Callable[[str], None] = print, force: bool = False
) -> Backend:
    """Create or bring to standard the state bucket and the secrets key; see the module's docstring.

    Raises BackendError (before any change) for a bad bucket name or alias, a bucket of another account or in
    another region than `region`, and changes to an existing bucket or key without `force`; botocore's errors
    pass through for the command line to explain (infra/delivery/aws_errors.py)."""
    for problem in (bucket_name_problem(bucket), key_alias_problem(key_alias), region_problem(region)):
        if problem:
            raise BackendError(problem)
    s3, kms = session.client("s3", region_name=region), session.client("kms", region_name=region)

    # Read everything first: nothing is created or changed until the whole request is known to be allowed.
    state = read_bucket(s3, bucket)
    if state is not None and state.region != region:
        raise BackendError(
            f"bucket '{bucket}' is in {state.region}, not {region}: a bucket's region cannot change and its SSE-KMS key "
            f"must be in the bucket's region; run again with --region {state.region}"
        )
    key = find_key(kms, key_alias)
    changes: list[Change] = []
    rotate = key is None  # a new key is created without rotation
    if key is not None:
        if key.get("KeyState") != "Enabled":
            raise BackendError(f"key {key_alias} ({key['KeyId']}) is {key.get('KeyState')}; enable it or pass another --key-alias")
        rotate = not kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]
        if rotate:
            changes.append(Change(f"key {key_alias} rotation", "off", "on"))
    if state is not None:
        ids = {key_alias, f"arn:aws:kms:{region}:{key['Arn'].split(':')[4]}:{key_alias}", key["Arn"], key["KeyId"]} if key else set()
        changes += bucket_changes(state, bucket, ids, key_alias if key else f"a new key {key_alias}")
    if changes and not force:
        lines = "\n".join(f"  {c.line()}" for c in changes)
        raise BackendError(f"existing resources would change; nothing was changed. Run again with --force to apply:\n{lines}")

    if key is None:
        key = kms.create_key(Description="Pulumi state secrets of ml-platform")["KeyMetadata"]
        kms.create_alias(AliasName=key_alias, TargetKeyId=key["KeyId"])
        say(f"created key {key_alias} ({key['KeyId']})")
    else:
        say(f"key {key_alias} exists ({key['KeyId']})")
    if rotate:
        kms.enable_key_rotation(KeyId=key["KeyId"])
        say("turned on key rotation")

    if state is None:
        create = {"Bucket": bucket}
        if region != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            s3.create_bucket(**create)
        except ClientError as err:
            if err.response["Error"]["Code"] == "BucketAlreadyExists":
                raise BackendError(f"bucket name '{bucket}' is taken by another account; choose another name") from None
            raise
        say(f"created bucket {bucket} in {region}")
        state = BucketState(region, "never enabled", {}, None, None)
        changes = bucket_changes(state, bucket, set(), key_alias)
    else:
        say(f"bucket {bucket} exists in {region}")
    apply_bucket(s3, bucket, key["Arn"], state, {c.what for c in changes}, say)
    return Backend(bucket=bucket, region=region, key_arn=key["Arn"], key_alias=key_alias)


def apply_bucket(s3, bucket: str, key_arn: str, state: BucketState, what: set[str], say: Callable[[str], None]) -> None:
    """Make the listed settings (`what`: Change.what values) of the bucket what the standard wants."""
    if "public access block" in what:
        s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=_PUBLIC_ACCESS_BLOCK)
        say("public access blocked")
    if "versioning" in what:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        say("versioning enabled")
    if "default encryption" in what:
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [_encryption_rule(key_arn)]})
        say(f"default encryption SSE-KMS with {key_arn}")
    if "bucket policy" in what:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(wanted_policy(bucket, state.policy)))
        say("TLS-only statement in the bucket policy")
    if not what:
        say("already to standard: nothing changed")
