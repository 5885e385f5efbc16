"""The account's ECR enhanced scanning (Amazon Inspector) in one region, declared by the stack that owns it
(`vulnerabilities.registryScanning`).

Two settings make it, both one per account and region, neither deletable:
- the registry's scanning configuration (`aws.ecr.RegistryScanningConfiguration`): ENHANCED, one CONTINUOUS_SCAN
  rule over the configured wildcard filters. Turning ENHANCED on activates Inspector's ECR scanning for the account
  (Inspector user guide, "Integrating Amazon ECR with Amazon Inspector"). The provider's delete puts BASIC back, so
  the resource is retained on delete: destroying the owner leaves the account scanning as it was.
- Inspector's ECR rescan durations (inspector2 UpdateConfiguration `ecrConfiguration`): how long after push, and
  after the last pull or use, an image keeps being rescanned as vulnerabilities are published. The AWS provider
  has no resource for it (pulumi_aws 7.51; hashicorp/terraform-provider-aws#29014 is open), so a dynamic resource
  calls the API with the credentials `pulumi up` runs with; it has no delete either, so deleting the resource
  leaves the account's durations as they are.

The deploying role needs ecr:PutRegistryScanningConfiguration, ecr:GetRegistryScanningConfiguration,
inspector2:Enable, inspector2:UpdateConfiguration, inspector2:GetConfiguration and iam:CreateServiceLinkedRole for
inspector2.amazonaws.com (ECR user guide, "Required IAM permissions for enhanced scanning").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws
from pulumi import dynamic

TYPE = "ml-platform:registry:Scanning"
SCAN_FREQUENCY = "CONTINUOUS_SCAN"
_SETTINGS = ("rescanDuration", "pullDateRescanDuration", "pullDateRescanMode")


@dataclass(frozen=True)
class RegistryScanningArgs:
    repository_filters: tuple[str, ...]
    """ECR WILDCARD filters of the repositories scanned continuously (`*`: all)."""
    rescan_duration: str
    """Inspector `rescanDuration`: LIFETIME or DAYS_3 ... DAYS_180, counted from the push."""
    pull_date_rescan_duration: str
    """Inspector `pullDateRescanDuration`: DAYS_3 ... DAYS_180, counted from the last pull or use."""
    pull_date_rescan_mode: str
    """Inspector `pullDateRescanMode`: LAST_PULL_DATE or LAST_IN_USE_AT."""
    region: str
    """The region whose registry and Inspector are configured (the stack's `aws:region`)."""


def ecr_configuration(inputs: dict[str, Any]) -> dict[str, str]:
    """The `ecrConfiguration` of inspector2 UpdateConfiguration from the dynamic resource's inputs."""
    return {key: inputs[key] for key in _SETTINGS}


class InspectorEcrConfigurationProvider(dynamic.ResourceProvider):
    """Sets Inspector's ECR rescan durations through inspector2 UpdateConfiguration and reads them back through
    GetConfiguration (`ecrConfiguration.rescanDurationState`: the three settings and `status` SUCCESS, PENDING or
    FAILED). Inputs: `region` and the three settings. Raises on FAILED, naming the settings."""

    def _client(self, region: str):
        import boto3  # inside: the provider is pickled into the engine; boto3 is in the program's venv

        return boto3.client("inspector2", region_name=region)

    def _put(self, inputs: dict[str, Any]) -> dict[str, Any]:
        client = self._client(inputs["region"])
        client.update_configuration(ecrConfiguration=ecr_configuration(inputs))
        state = client.get_configuration().get("ecrConfiguration", {}).get("rescanDurationState", {})
        if state.get("status") == "FAILED":
            raise Exception(f"Amazon Inspector refused the ECR rescan durations {ecr_configuration(inputs)}: status FAILED")
        return {**inputs, "status": state.get("status", "")}

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        return dynamic.CreateResult(id_=f"inspector-ecr-{props['region']}", outs=self._put(props))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        return dynamic.UpdateResult(outs=self._put(news))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed = [key for key in (*_SETTINGS, "region") if olds.get(key) != news.get(key)]
        return dynamic.DiffResult(changes=bool(changed), replaces=["region"] if "region" in changed else [], delete_before_replace=False)

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        state = self._client(props["region"]).get_configuration().get("ecrConfiguration", {}).get("rescanDurationState", {})
        outs = {**props, **{key: state[key] for key in _SETTINGS if key in state}, "status": state.get("status", "")}
        return dynamic.ReadResult(id_=id_, outs=outs)

    def delete(self, _id: str, _props: dict[str, Any]) -> None:
        """Nothing: Inspector has no way back to "unset", and the account's scanning outlives the owner stack."""


class InspectorEcrConfiguration(dynamic.Resource):
    """Inspector's ECR rescan durations for the account in `region` (see InspectorEcrConfigurationProvider)."""

    status: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(InspectorEcrConfigurationProvider(), name, {**props, "status": None}, opts)


class RegistryScanning(pulumi.ComponentResource):
    """ENHANCED continuous scanning of the account's ECR repositories matching the filters, with Inspector's rescan
    durations; both retained when the stack is destroyed. Arguments: RegistryScanningArgs."""

    def __init__(self, name: str, args: RegistryScanningArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)
        self.configuration = aws.ecr.RegistryScanningConfiguration(
            name,
            scan_type="ENHANCED",
            rules=[
                aws.ecr.RegistryScanningConfigurationRuleArgs(
                    scan_frequency=SCAN_FREQUENCY,
                    repository_filters=[
                        aws.ecr.RegistryScanningConfigurationRuleRepositoryFilterArgs(filter=f, filter_type="WILDCARD")
                        for f in args.repository_filters
                    ],
                )
            ],
            opts=kept,
        )
        self.rescan = InspectorEcrConfiguration(
            f"{name}-rescan",
            {
                "region": args.region,
                "rescanDuration": args.rescan_duration,
                "pullDateRescanDuration": args.pull_date_rescan_duration,
                "pullDateRescanMode": args.pull_date_rescan_mode,
            },
            # Enhanced scanning first: it activates Inspector's ECR scanning, whose configuration this sets.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True, depends_on=[self.configuration]),
        )
        self.register_outputs({})
