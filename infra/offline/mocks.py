"""Pulumi's mock runtime, given realistic AWS answers, and a monitor that records every registration.

Used by the offline plan and by the unit tests alike, so both see the same shapes. Every value is derived
from the resource's URN, so two runs of the same program produce byte-identical plans.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs, Mocks

from ml_platform.components.eks_cluster import kubeconfig
from ml_platform.infra import program
from ml_platform.infra.offline import ec2_estate
from ml_platform.infra.offline.ec2_estate import Ec2Estate
from ml_platform.infra.offline.secrets import masked

ACCOUNT_ID = "123456789012"
PARTITION = "aws"

# Pulumi's wire markers (sdk/python/lib/pulumi/runtime/rpc.py).
_SIG_KEY = "4dabf18193072939515e22adb298388d"
_SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
_RESOURCE_SIG = "5cf8f73096256a8f31e491e813e4eb8e"
_OUTPUT_SIG = "d0e6a833031e9bbcd3f4e8bde6ca49a4"
_UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
SECRET = "[secret]"

UNKNOWN = "[unknown]"


def _digest(*parts: str, length: int = 17) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:length]


def _kms_key_id(seed: str) -> str:
    """A KMS key id's shape (a UUID), derived from `seed`."""
    return "-".join((_digest(seed)[:8], *(_digest(seed, part)[:4] for part in "234"), _digest(seed, "5", length=12)))


# Physical id prefixes AWS uses, by Pulumi type token.
_ID_PREFIX = {
    "aws:ec2/vpc:Vpc": "vpc",
    "aws:ec2/subnet:Subnet": "subnet",
    "aws:ec2/internetGateway:InternetGateway": "igw",
    "aws:ec2/natGateway:NatGateway": "nat",
    "aws:ec2/eip:Eip": "eipalloc",
    "aws:ec2/routeTable:RouteTable": "rtb",
    "aws:ec2/routeTableAssociation:RouteTableAssociation": "rtbassoc",
    "aws:ec2/securityGroup:SecurityGroup": "sg",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": "sg",
    "aws:ec2/vpcEndpoint:VpcEndpoint": "vpce",
    "aws:ec2/launchTemplate:LaunchTemplate": "lt",
    "aws:ec2/flowLog:FlowLog": "fl",
}


class PlatformMocks(Mocks):
    """Answers resource registrations and provider calls the way AWS would shape them."""

    def __init__(self, region: str, estate: Ec2Estate | None = None):
        self.region = region
        self.estate = estate
        """The EC2 networking that lookups of an existing VPC are answered from (infra/offline/ec2_estate.py)."""
        self.identities: dict[tuple[str, str], str] = {}
        """(type, name) -> the name of the resource it was, for resources registered with an alias."""

    def call(self, args: MockCallArgs):
        token = args.token
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT_ID,
                "arn": f"arn:{PARTITION}:iam::{ACCOUNT_ID}:user/offline-plan",
                "userId": "AIDAOFFLINEPLAN",
                "id": ACCOUNT_ID,
            }
        if token == "aws:index/getPartition:getPartition":
            return {"partition": PARTITION, "dnsSuffix": "amazonaws.com", "id": PARTITION, "reverseDnsPrefix": "com.amazonaws"}
        if token == "aws:index/getRegion:getRegion":
            return {"name": self.region, "region": self.region, "id": self.region, "endpoint": f"ec2.{self.region}.amazonaws.com"}
        if token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            letters = "abcd"
            return {
                "names": [f"{self.region}{letter}" for letter in letters],
                "zoneIds": [f"{self.region[:3]}{self.region.split('-')[-1]}-az{i + 1}" for i in range(len(letters))],
                "id": self.region,
            }
        if token in ec2_estate.TOKENS and self.estate is not None:
            return self.estate.answer(token, args.args)
        raise NotImplementedError(f"the offline plan has no mock for the call {token}; add one in infra/offline/mocks.py")

    def new_resource(self, args: MockResourceArgs):
        outputs = dict(args.inputs)
        token = args.typ
        # A resource reached through an alias keeps the identity (IDs, generated names) of the one it was.
        name = self.identities.get((token, args.name), args.name)
        seed = f"{token}/{name}"
        digest = _digest(seed)
        resource_id = f"{_ID_PREFIX[token]}-{digest}" if token in _ID_PREFIX else f"{name}-{digest[:8]}"
        region, account = self.region, ACCOUNT_ID

        def arn(service: str, resource: str, with_region: bool = True) -> str:
            return f"arn:{PARTITION}:{service}:{region if with_region else ''}:{account}:{resource}"

        if token == "pulumi:pulumi:StackReference":
            return args.resource_id or outputs["name"], {
                "name": outputs["name"],
                "outputs": self.platform_stack_outputs(outputs["name"]),
                "secretOutputNames": [],
            }
        if token == "aws:iam/role:Role":
            name = outputs.get("name") or f"{name}-{digest[:7]}"
            outputs.update(name=name, arn=arn("iam", f"role/{name}", with_region=False), uniqueId=f"AROA{digest.upper()}")
            resource_id = name
        elif token == "aws:amp/workspace:Workspace":
            workspace = f"ws-{digest[:8]}-{digest[8:12]}-{digest[12:16]}"
            outputs.update(
                arn=arn("aps", f"workspace/{workspace}"),
                prometheusEndpoint=f"https://aps-workspaces.{region}.amazonaws.com/workspaces/{workspace}/",
            )
            resource_id = workspace
        elif token == "random:index/randomPassword:RandomPassword":
            outputs.update(result=_digest(seed, "password", length=int(outputs.get("length", 32))), bcryptHash="$2a$10$offline")
        elif token == "aws:iam/policy:Policy":
            name = outputs.get("name") or f"{name}-{digest[:7]}"
            outputs.update(name=name, arn=arn("iam", f"policy/{name}", with_region=False), policyId=f"ANPA{digest.upper()}")
            resource_id = outputs["arn"]
        elif token == "aws:sagemaker/mlflowTrackingServer:MlflowTrackingServer":
            name = outputs["trackingServerName"]
            # The ARN as SageMaker forms it (the lock commands build the same); the UI's URL is opaque.
            outputs.update(
                arn=arn("sagemaker", f"mlflow-tracking-server/{name}"), trackingServerUrl=f"https://t-{digest[:12]}.studio.sagemaker.aws"
            )
            resource_id = name
        elif token == "aws:sqs/queue:Queue":
            name = outputs.get("name") or f"{name}-{digest[:7]}"
            outputs.update(name=name, arn=arn("sqs", name), url=f"https://sqs.{region}.amazonaws.com/{account}/{name}")
            resource_id = outputs["url"]
        elif token == "aws:cloudwatch/eventRule:EventRule":
            name = outputs.get("name") or f"{name}-{digest[:7]}"
            outputs.update(name=name, arn=arn("events", f"rule/{name}"))
            resource_id = name
        elif token == "aws:kms/key:Key":
            key_id = _kms_key_id(seed)
            outputs.update(keyId=key_id, arn=arn("kms", f"key/{key_id}"))
            resource_id = key_id
        elif token == "aws:kms/alias:Alias":
            outputs.update(arn=arn("kms", outputs["name"]))
        elif token == "aws:cloudwatch/logGroup:LogGroup":
            name = outputs.get("name") or f"{name}-{digest[:7]}"
            outputs.update(name=name, arn=arn("logs", f"log-group:{name}"))
            resource_id = name
        elif token == "aws:s3/bucket:Bucket":
            bucket = outputs.get("bucket") or f"{name}-{digest[:7]}"
            outputs.update(
                bucket=bucket, arn=f"arn:{PARTITION}:s3:::{bucket}", bucketRegionalDomainName=f"{bucket}.s3.{region}.amazonaws.com"
            )
            resource_id = bucket
        elif token == "aws:ecr/repository:Repository":
            name = outputs["name"]
            outputs.update(
                arn=arn("ecr", f"repository/{name}"), registryId=account, repositoryUrl=f"{account}.dkr.ecr.{region}.amazonaws.com/{name}"
            )
            resource_id = name
        elif token == "aws:eks/cluster:Cluster":
            name = outputs["name"]
            endpoint_id = digest.upper()[:32]
            outputs.update(
                arn=arn("eks", f"cluster/{name}"),
                endpoint=f"https://{endpoint_id}.gr7.{region}.eks.amazonaws.com",
                certificateAuthority={"data": base64.b64encode(f"offline-plan-ca-{name}".encode()).decode()},
                identities=[{"oidcs": [{"issuer": f"https://oidc.eks.{region}.amazonaws.com/id/{endpoint_id}"}]}],
                vpcConfig={
                    **outputs.get("vpcConfig", {}),
                    "clusterSecurityGroupId": f"sg-{_digest(seed, 'cluster-sg')}",
                    "vpcId": "vpc-offline",
                },
                status="ACTIVE",
            )
            resource_id = name
        elif token == "aws:iam/openIdConnectProvider:OpenIdConnectProvider":
            host = outputs["url"].removeprefix("https://")
            outputs.update(arn=arn("iam", f"oidc-provider/{host}", with_region=False))
        elif token == "aws:eks/nodeGroup:NodeGroup":
            name = f"{name}-{digest[:7]}"
            outputs.update(nodeGroupName=name, arn=arn("eks", f"nodegroup/{outputs['clusterName']}/{name}/{digest}"), status="ACTIVE")
        elif token == "aws:ec2/launchTemplate:LaunchTemplate":
            outputs.update(latestVersion=1, defaultVersion=1, arn=arn("ec2", f"launch-template/{resource_id}"))
        elif token.startswith("aws:ec2/"):
            outputs.setdefault("arn", arn("ec2", f"{token.split(':')[-1].lower()}/{resource_id}"))
        elif token.startswith("aws:"):
            outputs.setdefault("arn", arn(token.split(":")[1].split("/")[0], f"{name}/{digest}"))
        outputs.setdefault("id", resource_id)
        return resource_id, outputs

    def platform_stack_outputs(self, reference: str) -> dict[str, Any]:
        """What a platform stack (`dev`, `org/ml-platform/dev`) exports, as a StackReference reads it."""
        stack = reference.rsplit("/", 1)[-1]
        cluster = program.cluster_name(stack)
        endpoint = f"https://{_digest('stack', reference).upper()[:32]}.gr7.{self.region}.eks.amazonaws.com"
        authority = base64.b64encode(f"offline-plan-ca-{cluster}".encode()).decode()
        return {
            "environment": "dev",
            "region": self.region,
            "clusterName": cluster,
            "kubeconfig": json.dumps(kubeconfig(cluster, endpoint, authority, self.region), sort_keys=True),
            "modelStoreBucket": program.model_store_bucket(stack, ACCOUNT_ID),
            "dataKeyArn": f"arn:{PARTITION}:kms:{self.region}:{ACCOUNT_ID}:key/{_kms_key_id(reference)}",
        }


class RecordingMonitor(MockMonitor):
    """The mock monitor, plus a record of every registration exactly as the program sent it."""

    def __init__(self, mocks: Mocks):
        super().__init__(mocks)
        self.records: list[dict[str, Any]] = []
        self._aliases: dict[str, list[str]] = {}  # URN -> alias URNs, for children to inherit
        self._lock = threading.Lock()

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        # The engine's URN scheme: the whole qualified type of the parent, except the root stack.
        if parent:
            parent_type = parent.split("::")[2]
            if parent_type != "pulumi:pulumi:Stack":
                type_ = f"{parent_type}${type_}"
        return "urn:pulumi:" + "::".join([pulumi.get_stack(), pulumi.get_project(), type_, name])

    def RegisterResource(self, request):
        aliases = self._alias_urns(request) if request.type != "pulumi:pulumi:Stack" else []
        if aliases and isinstance(self.mocks, PlatformMocks):
            # The engine moves the aliased resource's state (its ID and outputs) to the new URN: seed the mocks with
            # the old name, so an aliased rename changes nothing real offline either.
            self.mocks.identities[(request.type, request.name)] = min(aliases).split("::")[-1]
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            record = {
                "urn": response.urn,
                "type": request.type,
                "name": request.name,
                "custom": bool(request.custom),
                "parent": request.parent,
                # A provider reference is "<urn>::<id>"; the URN is what identifies it across runs.
                "provider": request.provider.rsplit("::", 1)[0] if request.provider else "",
                "inputs": plain(json_format.MessageToDict(request.object)),
                "dependencies": sorted(set(request.dependencies)),
                "propertyDependencies": {
                    key: sorted(set(value.urns)) for key, value in sorted(request.propertyDependencies.items()) if value.urns
                },
                "protect": bool(request.protect) if request.HasField("protect") else False,
                "retainOnDelete": bool(request.retainOnDelete) if request.HasField("retainOnDelete") else False,
                "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                "ignoreChanges": sorted(request.ignoreChanges),
                "replaceOnChanges": sorted(request.replaceOnChanges),
                "customTimeouts": {
                    key: value for key in ("create", "update", "delete") if (value := getattr(request.customTimeouts, key, ""))
                },
                "aliases": aliases,
            }
            with self._lock:
                self._aliases[response.urn] = record["aliases"]
                self.records.append(record)
        return response

    def _alias_urns(self, request) -> list[str]:
        """Alias URNs as the engine resolves them: the resource's own alias specs, plus one per alias of
        its parent, with the parent's old name swapped into a child name that starts with the new one
        (pkg/resource/deploy/source_eval.go, inheritedChildAlias)."""
        found = set()
        for alias in request.aliases:
            if alias.urn:
                found.add(alias.urn)
                continue
            spec = alias.spec
            parent = "" if spec.noParent else (spec.parentUrn or request.parent)
            found.add(self.make_urn(parent, spec.type or request.type, spec.name or request.name))
        if request.parent:
            with self._lock:
                parent_aliases = list(self._aliases.get(request.parent, ()))
            parent_name = request.parent.split("::")[-1]
            for parent_alias in parent_aliases:
                name = request.name
                if name.startswith(parent_name):
                    name = parent_alias.split("::")[-1] + name[len(parent_name) :]
                found.add(self.make_urn(parent_alias, request.type, name))
        return sorted(found)


def plain(value: Any) -> Any:
    """Wire values to plain JSON: secrets masked, unknowns marked, resource references as their URN,
    whole floats back to ints (protobuf Struct carries every number as a double)."""
    if isinstance(value, dict):
        sig = value.get(_SIG_KEY)
        if sig == _SECRET_SIG:
            return masked(plain(value.get("value")))
        if sig == _RESOURCE_SIG:
            return {"$ref": value.get("urn", "")}
        if sig == _OUTPUT_SIG:
            return masked(plain(value.get("value", UNKNOWN))) if value.get("secret") else plain(value.get("value", UNKNOWN))
        return {key: plain(item) for key, item in sorted(value.items())}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if value == _UNKNOWN:
        return UNKNOWN
    return value
