"""cleanup against moto with seeded leftovers: finds only this cluster's, deletes only with --apply."""

import boto3
import pytest
from moto import mock_aws

from infra import cli
from infra.delivery import cleanup

CLUSTER = "ml-platform-dev"
REGION = "us-west-2"


@pytest.fixture
def aws():
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        ec2, elbv2 = session.client("ec2"), session.client("elbv2")
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnets = [
            ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
            for i, z in enumerate("ab")
        ]
        for cluster in (CLUSTER, "someone-else"):
            tags = [{"Key": cleanup.LB_CONTROLLER_TAG, "Value": cluster}]
            sg = ec2.create_security_group(GroupName=f"k8s-{cluster}", Description="alb", VpcId=vpc)["GroupId"]
            ec2.create_tags(Resources=[sg], Tags=tags)
            elbv2.create_load_balancer(Name=f"k8s-{cluster}"[:32], Subnets=subnets, SecurityGroups=[sg], Tags=tags)
            elbv2.create_target_group(Name=f"tg-{cluster}"[:32], Protocol="HTTP", Port=80, VpcId=vpc, TargetType="ip", Tags=tags)
            eni = ec2.create_network_interface(SubnetId=subnets[0])["NetworkInterface"]["NetworkInterfaceId"]
            ec2.create_tags(Resources=[eni], Tags=[{"Key": cleanup.CNI_TAG, "Value": cluster}])
            ec2.run_instances(
                ImageId="ami-12c6146b",
                MinCount=1,
                MaxCount=1,
                InstanceType="g5.xlarge",
                SubnetId=subnets[0],
                TagSpecifications=[
                    {
                        "ResourceType": "instance",
                        "Tags": [
                            {"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"},
                            {"Key": "karpenter.sh/nodepool", "Value": "gpu"},
                        ],
                    }
                ],
            )
        # a managed node group's instance of the same cluster is Pulumi's, not a leftover
        ec2.run_instances(
            ImageId="ami-12c6146b",
            MinCount=1,
            MaxCount=1,
            SubnetId=subnets[0],
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}]}],
        )
        yield session


def test_finds_only_this_clusters_leftovers(aws):
    found = cleanup.find(aws.client("ec2"), aws.client("elbv2"), CLUSTER)
    assert len(found.instances) == 1 and len(found.load_balancers) == 1 and len(found.target_groups) == 1
    assert len(found.network_interfaces) == 1 and len(found.security_groups) == 1
    other = cleanup.find(aws.client("ec2"), aws.client("elbv2"), "someone-else")
    assert set(other.load_balancers).isdisjoint(found.load_balancers)


def test_dry_run_deletes_nothing_and_apply_deletes_everything(aws, monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(cli, "_session", lambda: aws)
    assert cli.main(["cleanup", "--stack", "dev"]) == 0
    assert "5 leftover(s); run again with --apply" in capsys.readouterr().out
    assert len(cleanup.find(aws.client("ec2"), aws.client("elbv2"), CLUSTER).items()) == 5
    assert cli.main(["cleanup", "--stack", "dev", "--apply"]) == 0
    after = cleanup.find(aws.client("ec2"), aws.client("elbv2"), CLUSTER)
    assert after.items() == []
    assert len(cleanup.find(aws.client("ec2"), aws.client("elbv2"), "someone-else").items()) == 5, "other clusters untouched"


def test_a_bad_stack_is_exit_2(aws, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_session", lambda: aws)
    assert cli.main(["cleanup", "--stack", "nosuch"]) == 2
