"""NodePool: one EKS managed node group with its launch template (IMDSv2 only, encrypted gp3 root volume),
labels and taints; GPU pools get the NVIDIA AMI."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from ml_platform.components.options import inherited_depends_on

TYPE = "mlplatform:aws:NodePool"

CPU_DISK_GIB = 50
GPU_DISK_GIB = 200  # vLLM/Triton images are 10-20 GB compressed; unpacked layers need the room
ROOT_DEVICE = "/dev/xvda"  # every AL2023 EKS AMI, NVIDIA included

_EKS_TAINT_EFFECTS = {"NoSchedule": "NO_SCHEDULE", "NoExecute": "NO_EXECUTE", "PreferNoSchedule": "PREFER_NO_SCHEDULE"}


def ami_type(architecture: str, gpu: bool) -> str:
    """EKS managed node group AMI type for an architecture and GPU-ness (AL2023 only)."""
    arch = {"x86_64": "x86_64", "arm64": "ARM_64"}[architecture]
    return f"AL2023_{arch}_{'NVIDIA' if gpu else 'STANDARD'}"


def eks_taint_effect(effect: str) -> str:
    """The EKS API spells taint effects NO_SCHEDULE etc."""
    return _EKS_TAINT_EFFECTS[effect]


def kubernetes_taint_effect(effect: str) -> str:
    """An EKS node group's taint effect (NO_SCHEDULE) in Kubernetes' spelling (NoSchedule): eks_taint_effect reversed."""
    return {eks: kubernetes for kubernetes, eks in _EKS_TAINT_EFFECTS.items()}[effect]


def node_config(local_nvme: bool, fast_image_pull: bool, gpu: bool = False) -> str | None:
    """MIME multi-part user data holding one nodeadm NodeConfig (amazon-eks-ami, node.eks.aws/v1alpha1), or None
    when there is nothing to set. `local_nvme`: stripe the NVMe instance store (RAID0) and move containerd, the
    kubelet's directory and pod logs onto it (`spec.instance.localStorage`; a node without NVMe disks boots on its
    root volume as before). `fast_image_pull`: the FastImagePull feature gate, containerd's SOCI parallel pull and
    unpack of one large image (experimental in nodeadm; needs 4 vCPUs and 7 GiB of memory, which GPU nodes have).
    `gpu`: the kubelet pulls images in parallel (`serializeImagePulls: false`, no `maxParallelImagePulls` limit),
    so a model's multi-GB image and the GPU DaemonSets' images on a fresh node do not queue behind each other.
    AL2023's nodeadm sets the same today (amazon-eks-ami nodeadm/internal/kubelet/config.go); the upstream
    kubelet's default is serial, so GPU nodes say it rather than rely on the AMI's choice. EKS (managed node
    groups) and Karpenter merge it with their own NodeConfig, theirs last; neither sets this field."""
    if not (local_nvme or fast_image_pull or gpu):
        return None
    spec = ""
    if gpu:
        spec += "  kubelet:\n    config:\n      serializeImagePulls: false\n"
    if fast_image_pull:
        spec += "  featureGates:\n    FastImagePull: true\n"
    if local_nvme:
        spec += "  instance:\n    localStorage:\n      strategy: RAID0\n"
    boundary = "MLPLATFORM"
    return (
        "MIME-Version: 1.0\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
        f"--{boundary}\n"
        "Content-Type: application/node.eks.aws\n\n"
        "apiVersion: node.eks.aws/v1alpha1\n"
        "kind: NodeConfig\n"
        f"spec:\n{spec}\n"
        f"--{boundary}--\n"
    )


@dataclass
class NodePoolArgs:
    cluster_name: pulumi.Input[str]
    """Cluster the node group joins."""
    node_role_arn: pulumi.Input[str]
    """IAM role of the nodes."""
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets only: nodes never get public addresses."""
    instance_types: Sequence[str]
    """EC2 instance types."""
    architecture: str
    """`x86_64` or `arm64`."""
    gpu: bool
    """Whether the instance types carry NVIDIA GPUs."""
    release_version: str
    """Pinned AMI release version (e.g. `1.36.3-20260903`)."""
    min_size: int
    """Fewest nodes (0 scales to zero)."""
    max_size: int
    """Most nodes."""
    desired_size: int | None = None
    """Initial size (default min_size); left to an autoscaler afterwards (`ignore_changes`), when one is installed."""
    capacity_type: str = "ON_DEMAND"
    """`ON_DEMAND` or `SPOT`."""
    local_nvme: bool = False
    """Put the container runtime, the kubelet's pod storage and pod logs on the nodes' local NVMe, striped: a
    nodeadm NodeConfig (`spec.instance.localStorage.strategy: RAID0`) in the launch template's MIME user data,
    which EKS merges with its own (EKS user guide, "Customize managed nodes with launch templates")."""
    fast_image_pull: bool = False
    """Turn on nodeadm's FastImagePull (SOCI parallel pull and unpack) on the nodes (node_config)."""
    disk_size_gib: int | None = None
    """Root volume size; default CPU_DISK_GIB or GPU_DISK_GIB."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """Node labels (components.scheduling.node_labels: pool name, GPU presence, sharing config, extras)."""
    taints: Sequence[Mapping[str, str]] = ()
    """Node taints in Kubernetes spelling (components.scheduling.node_taints: the GPU taint, extras)."""
    max_unavailable: int = 1
    """Nodes replaced at once during an update."""

    protect: bool = False
    """Protect the node group from deletion and replacement (prod)."""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Tags for the node group, its instances and volumes."""


class NodePool(pulumi.ComponentResource):
    """One EKS managed node group with its launch template (IMDSv2 only, encrypted gp3 root volume), labels and
    taints; GPU pools get the NVIDIA AMI.

    Arguments: NodePoolArgs, documented field by field."""

    node_group_name: pulumi.Output[str]
    """The managed node group's name."""

    def __init__(self, name: str, args: NodePoolArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(TYPE, name, None, opts)
        tags = dict(args.tags)
        disk = args.disk_size_gib or (GPU_DISK_GIB if args.gpu else CPU_DISK_GIB)

        user_data = node_config(args.local_nvme, args.fast_image_pull, args.gpu)
        template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            description=f"EKS node pool {name}",
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                # Hop limit 1 keeps pods off the node's instance role; pods get AWS access through Pod Identity.
                http_put_response_hop_limit=1,
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name=ROOT_DEVICE,
                    # Encrypted with the account's AWS-managed EBS key: Auto Scaling launches the nodes with its
                    # service-linked role, which cannot use a customer-managed key without a key-policy grant
                    # to a role that may not exist yet. Persistent volumes use the platform key (ClusterAddons).
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=disk,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(resource_type=kind, tags={**tags, "Name": name})
                for kind in ("instance", "volume", "network-interface")
            ],
            update_default_version=True,
            user_data=base64.b64encode(user_data.encode()).decode() if user_data else None,
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )

        group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=args.cluster_name,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            instance_types=list(args.instance_types),
            capacity_type=args.capacity_type,
            ami_type=ami_type(args.architecture, args.gpu),
            release_version=args.release_version,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.min_size,
                max_size=args.max_size,
                desired_size=args.desired_size if args.desired_size is not None else args.min_size,
            ),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=args.max_unavailable),
            launch_template=aws.eks.NodeGroupLaunchTemplateArgs(id=template.id, version=template.latest_version.apply(str)),
            labels=dict(args.labels),
            taints=[
                aws.eks.NodeGroupTaintArgs(key=t["key"], value=t.get("value") or None, effect=eks_taint_effect(t["effect"]))
                for t in args.taints
            ],
            tags=tags,
            opts=pulumi.ResourceOptions(
                parent=self,
                # A component's depends_on does not reach its children: the nodes themselves must wait.
                depends_on=inherited_depends_on(opts),
                # The cluster autoscaler owns the desired size; a `pulumi up` must not reset it.
                ignore_changes=["scalingConfig.desiredSize"],
                # A replaced node group drains every node at once (pulumi-eks #385): prod refuses it.
                protect=args.protect,
            ),
        )
        self.node_group_name = group.node_group_name
        self.register_outputs({"node_group_name": self.node_group_name})
