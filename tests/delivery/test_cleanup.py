"""cleanup against moto with seeded leftovers: finds only this cluster's, deletes only with --apply, waits,
revokes the rules that name its groups, retries DependencyViolation within a bound, reports what it could not
delete (exit 1), and only reports volumes."""

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from ml_platform.infra import cli
from ml_platform.infra.delivery import cleanup

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
            # Karpenter's instance profile for an EC2NodeClass, holding the node role
            iam = session.client("iam")
            profile = f"{cluster}_1234567890"
            iam.create_instance_profile(
                InstanceProfileName=profile,
                Tags=[
                    {"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"},
                    {"Key": cleanup.KARPENTER_PROFILE_TAG, "Value": "gpu"},
                    {"Key": "topology.kubernetes.io/region", "Value": REGION},
                ],
            )
            iam.create_role(RoleName=f"{cluster}-node", AssumeRolePolicyDocument="{}")
            iam.add_role_to_instance_profile(InstanceProfileName=profile, RoleName=f"{cluster}-node")
            # a PVC's volume the EBS CSI driver left, tagged with its cluster
            ec2.create_volume(
                AvailabilityZone=f"{REGION}a",
                Size=100,
                TagSpecifications=[
                    {
                        "ResourceType": "volume",
                        "Tags": [
                            {"Key": cleanup.EBS_CSI_TAG, "Value": "true"},
                            {"Key": f"kubernetes.io/cluster/{cluster}", "Value": "owned"},
                            {"Key": "kubernetes.io/created-for/pvc/namespace", "Value": "monitoring"},
                            {"Key": "kubernetes.io/created-for/pvc/name", "Value": "prometheus-db"},
                        ],
                    }
                ],
            )
        # the nodes' security group (Pulumi's) admits the load balancer's group: a rule naming a group to delete
        nodes = ec2.create_security_group(GroupName="nodes", Description="nodes", VpcId=vpc)["GroupId"]
        alb = ec2.describe_security_groups(Filters=[{"Name": f"tag:{cleanup.LB_CONTROLLER_TAG}", "Values": [CLUSTER]}])["SecurityGroups"]
        ec2.authorize_security_group_ingress(
            GroupId=nodes,
            IpPermissions=[{"IpProtocol": "tcp", "FromPort": 8000, "ToPort": 8000, "UserIdGroupPairs": [{"GroupId": alb[0]["GroupId"]}]}],
        )
        # a volume of the EBS CSI driver tagged with no cluster: reported as unattributed
        ec2.create_volume(
            AvailabilityZone=f"{REGION}b",
            Size=20,
            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": cleanup.EBS_CSI_TAG, "Value": "true"}]}],
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


def found(aws, cluster=CLUSTER) -> cleanup.Leftovers:
    return cleanup.find(aws.client("ec2"), aws.client("elbv2"), cluster, aws.client("iam"))


def test_finds_only_this_clusters_leftovers(aws):
    mine = found(aws)
    assert len(mine.instances) == 1 and len(mine.load_balancers) == 1 and len(mine.target_groups) == 1
    assert len(mine.network_interfaces) == 1 and len(mine.security_groups) == 1
    assert mine.instance_profiles == [f"{CLUSTER}_1234567890"]
    assert sorted(v.split(" ", 1)[1] for v in mine.volumes) == [
        "(pvc ?/?, 20 GiB, not tagged with any cluster: check it is this one's)",
        "(pvc monitoring/prometheus-db, 100 GiB)",
    ]
    other = found(aws, "someone-else")
    assert set(other.load_balancers).isdisjoint(mine.load_balancers) and other.instance_profiles == ["someone-else_1234567890"]


def test_dry_run_deletes_nothing_and_apply_deletes_all_but_volumes(aws, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_session", lambda: aws)
    assert cli.main(["cleanup", "--stack", "dev"]) == 0
    out = capsys.readouterr().out
    assert "6 leftover(s); run again with --apply" in out and "volume (reported, never deleted): vol-" in out
    assert len(found(aws).deletable()) == 6
    assert cli.main(["cleanup", "--stack", "dev", "--apply"]) == 0
    out = capsys.readouterr().out
    assert "instances terminated" in out and "load balancers deleted" in out and "revoked 1 ingress rule(s)" in out
    after = found(aws)
    assert after.deletable() == [] and len(after.volumes) == 2, "volumes are only reported"
    nodes = aws.client("ec2").describe_security_groups(GroupNames=["nodes"])["SecurityGroups"][0]
    assert nodes["IpPermissions"] == [], "the rule naming the deleted group was revoked"
    assert len(found(aws, "someone-else").deletable()) == 6, "other clusters untouched"


def test_prod_says_its_volumes_are_retained(aws, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_session", lambda: aws)
    assert cli.main(["cleanup", "--stack", "prod"]) == 0
    assert "1 volume(s) of persistent volume claims kept: prod's StorageClass retains them" in capsys.readouterr().out


def dependency_violation(times: int, real):
    calls = []

    def delete_security_group(**kwargs):
        calls.append(kwargs["GroupId"])
        if len(calls) <= times:
            raise ClientError(
                {"Error": {"Code": "DependencyViolation", "Message": "resource has a dependent object"}}, "DeleteSecurityGroup"
            )
        return real(**kwargs)

    return delete_security_group, calls


def test_a_group_still_in_use_is_retried_with_backoff_until_it_goes(aws):
    ec2 = aws.client("ec2")
    ec2.delete_security_group, calls = dependency_violation(2, ec2.delete_security_group)
    slept = []
    failed = cleanup.delete(ec2, aws.client("elbv2"), found(aws), say=lambda _: None, iam=aws.client("iam"), sleep=slept.append)
    assert failed == [] and len(calls) == 3 and slept == [1.0, 2.0]


def test_a_group_that_stays_in_use_is_reported_within_the_bound_and_exit_1(aws, monkeypatch, capsys):
    ec2 = aws.client("ec2")
    ec2.delete_security_group, calls = dependency_violation(10**6, ec2.delete_security_group)
    clock = [0.0]
    failed = cleanup.delete(
        ec2,
        aws.client("elbv2"),
        found(aws),
        say=lambda _: None,
        iam=aws.client("iam"),
        wait_seconds=60,
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
        clock=lambda: clock[0],
    )
    assert len(failed) == 1 and failed[0].startswith("security group sg-") and "DependencyViolation" in failed[0]
    assert clock[0] <= 60 and 3 <= len(calls) <= 8
    session = type(
        "S", (), {"client": lambda self, name, region_name=None: ec2 if name == "ec2" else aws.client(name, region_name=region_name)}
    )()
    monkeypatch.setattr(cli, "_session", lambda: session)
    monkeypatch.setattr(cleanup, "WAIT_SECONDS", 3)  # two real retries, 1 s and 2 s
    assert cli.main(["cleanup", "--stack", "dev", "--apply"]) == 1
    out = capsys.readouterr().out
    assert "could not delete 1:" in out and "`pulumi destroy` fails while they remain" in out


def test_a_bad_stack_is_exit_2(aws, monkeypatch, capsys):
    monkeypatch.setattr(cli, "_session", lambda: aws)
    assert cli.main(["cleanup", "--stack", "nosuch"]) == 2
