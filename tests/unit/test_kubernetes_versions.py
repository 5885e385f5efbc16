"""infra/kubernetes-versions.yaml: the per-version pins as reviewed data. The file in the repository passes its
schema; each rule rejects the mistake it exists for (shown on an edited copy); and adding a version is a data
change only: an entry for a new version makes `cluster.version` accept it and the plan run its pins."""

from __future__ import annotations

import copy
import datetime

import pytest
from ruamel.yaml import YAML

from ml_platform.infra import config, versions
from ml_platform.infra.offline import plan as offline_plan
from ml_platform.infra.offline.stack_files import RawStackConfig
from tests.helpers import minimal_sections, raw_config

YAML_RW = YAML(typ="safe", pure=True)


def data() -> dict:
    return YAML_RW.load(versions.VERSIONS_FILE.read_text())


def load(tmp_path, document) -> versions.KubernetesVersions:
    path = tmp_path / "kubernetes-versions.yaml"
    with path.open("w") as handle:
        YAML_RW.dump(document, handle)
    return versions.load_versions(path)


def edited(change) -> dict:
    document = copy.deepcopy(data())
    change(document["versions"][document["default"]], document)
    return document


def test_the_repository_file_passes_and_is_what_the_program_runs():
    loaded = versions.load_versions()
    assert loaded.default == versions.DEFAULT_KUBERNETES_VERSION and loaded.default in loaded.versions
    for key, entry in loaded.versions.items():
        assert set(entry.addons) == set(versions.ADDONS)
        assert versions.EKS_RELEASES[key].addons == {name: pin.version for name, pin in entry.addons.items()}
        assert versions.EKS_RELEASES[key].ami_alias == f"al2023@v{entry.amiRelease.version.rsplit('-', 1)[1]}"


MISTAKES = [
    (
        "a version written as a number",
        lambda v, d: d["versions"].update({1.3: d["versions"][d["default"]]}),
        "the key 1.3 is a number: quote",
    ),
    ("a default written as a number", lambda v, d: d.update(default=1.36), "1.36 is a number: quote it"),
    (
        "a source asking for another version",
        lambda v, d: v["addons"]["vpc-cni"].update(source=v["addons"]["vpc-cni"]["source"].replace("1.36", "1.35")),
        "versions.1.36.addons.vpc-cni.source asks for Kubernetes 1.35",
    ),
    (
        "a source naming another add-on",
        lambda v, d: v["addons"]["vpc-cni"].update(source="aws eks describe-addon-versions --kubernetes-version 1.36 --addon-name coredns"),
        "addons.vpc-cni.source names the add-on coredns",
    ),
    (
        "an AMI source of another release",
        lambda v, d: v["amiRelease"].update(version="1.36.3-20260901"),
        "amiRelease.source is the release v20260903, not the version's v20260901",
    ),
    ("a bare https source", lambda v, d: v["addons"]["coredns"].update(source="https://"), "must be an https:// page (with a path)"),
    ("an aws command that gives nothing", lambda v, d: v["addons"]["coredns"].update(source="aws help"), "must be an https:// page"),
    (
        "an entry added after its support ended",
        lambda v, d: v.update(standardSupportUntil=datetime.date(2026, 1, 1), extendedSupportUntil=datetime.date(2027, 1, 1)),
        "is not after checked",
    ),
    (
        "a floating add-on",
        lambda v, d: v["addons"]["coredns"].update(version="latest"),
        "addons.coredns.version 'latest' is not an EKS add-on build",
    ),
    ("a missing add-on", lambda v, d: v["addons"].pop("vpc-cni"), "missing: ['vpc-cni']"),
    ("an unknown add-on", lambda v, d: v["addons"].update(metrics={**v["addons"]["coredns"]}), "unknown: ['metrics']"),
    (
        "kube-proxy of another version",
        lambda v, d: v["addons"]["kube-proxy"].update(version="v1.35.2-eksbuild.1"),
        "addons.kube-proxy.version 'v1.35.2-eksbuild.1' is not a build for Kubernetes 1.36",
    ),
    (
        "an AMI release of another version",
        lambda v, d: v["amiRelease"].update(version="1.35.3-20260903"),
        "amiRelease.version '1.35.3-20260903' is not a release of Kubernetes 1.36",
    ),
    ("an AMI alias instead of a release", lambda v, d: v["amiRelease"].update(version="al2023@latest"), "is not an AMI release"),
    ("an impossible AMI date", lambda v, d: v["amiRelease"].update(version="1.36.3-20261341"), "has no valid date"),
    ("support dates out of order", lambda v, d: v.update(extendedSupportUntil=v["standardSupportUntil"]), "must come after"),
    ("a pin without a source", lambda v, d: v["addons"]["coredns"].update(source="the console"), "must be an https:// page"),
    ("a check in the future", lambda v, d: v["amiRelease"].update(checked=datetime.date(2999, 1, 1)), "is in the future"),
    ("an unknown field", lambda v, d: v.update(notes="x"), "notes: Extra inputs are not permitted"),
    ("a default that is not listed", lambda v, d: d.update(default="1.40"), "default '1.40' is not one of the versions"),
]


@pytest.mark.parametrize(("mistake", "change", "message"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_each_rule_rejects_its_mistake(tmp_path, mistake, change, message):
    with pytest.raises(versions.VersionsFileError) as caught:
        load(tmp_path, edited(change))
    assert message in str(caught.value) and "kubernetes-versions.yaml" in str(caught.value)


def test_a_key_given_twice_and_an_impossible_date_are_named(tmp_path):
    path = tmp_path / "kubernetes-versions.yaml"
    path.write_text(versions.VERSIONS_FILE.read_text().replace('default: "1.36"', 'default: "1.36"\ndefault: "1.36"'))
    with pytest.raises(versions.VersionsFileError, match=r"line \d+: found duplicate key \"default\"; keep one"):
        versions.load_versions(path)
    path.write_text(versions.VERSIONS_FILE.read_text().replace("checked: 2026-11-23", "checked: 2026-11-31", 1))
    with pytest.raises(versions.VersionsFileError, match=r"kubernetes-versions\.yaml: day is out of range"):
        versions.load_versions(path)


def test_a_copied_entry_keeps_its_old_support_dates_is_refused(tmp_path):
    def add(current, document):
        new = copy.deepcopy(current)
        new["amiRelease"].update(version="1.37.1-20261101", source="https://github.com/awslabs/amazon-eks-ami/releases/tag/v20261101")
        new["addons"]["kube-proxy"].update(version="v1.37.0-eksbuild.2")
        for pin in new["addons"].values():
            pin["source"] = pin["source"].replace("1.36", "1.37")
        document["versions"]["1.37"] = new

    with pytest.raises(versions.VersionsFileError, match=r"versions\.1\.37\.standardSupportUntil is not after that of 1\.36"):
        load(tmp_path, edited(add))


def test_an_unknown_version_says_how_to_add_one():
    with pytest.raises(config.ConfigError) as caught:
        config.parse(
            raw_config(**minimal_sections(cluster={"version": "1.37", "admins": [minimal_sections()["cluster"]["admins"][0]]})), "t"
        )
    (problem,) = caught.value.problems
    assert problem[0] == "cluster.version" and "add an entry '1.37' to infra/kubernetes-versions.yaml" in problem[1]
    with pytest.raises(config.ConfigError) as caught:
        config.parse(raw_config(**minimal_sections(cluster={"version": "v1.36", "admins": minimal_sections()["cluster"]["admins"]})), "t")
    assert "'v1.36' is not a Kubernetes minor version: write it as '1.<minor>'" in caught.value.problems[0][1]


def test_adding_a_version_is_a_data_change(tmp_path, monkeypatch):
    def add(current, document):
        new = copy.deepcopy(current)
        new["amiRelease"].update(version="1.37.1-20261101", source="https://github.com/awslabs/amazon-eks-ami/releases/tag/v20261101")
        new["addons"]["kube-proxy"].update(version="v1.37.0-eksbuild.2")
        for pin in new["addons"].values():
            pin["source"] = pin["source"].replace("1.36", "1.37")
        new.update(standardSupportUntil=datetime.date(2028, 1, 15), extendedSupportUntil=datetime.date(2029, 1, 15))
        document["versions"]["1.37"] = new

    loaded = load(tmp_path, edited(add))
    monkeypatch.setattr(versions, "KUBERNETES", loaded)
    monkeypatch.setattr(versions, "EKS_RELEASES", versions.releases(loaded))
    admins = minimal_sections()["cluster"]["admins"]
    plan = offline_plan.run("t", RawStackConfig(raw_config(**minimal_sections(cluster={"version": "1.37", "admins": admins})), []))
    (cluster,) = plan.by_type("aws:eks/cluster:Cluster")
    assert cluster["inputs"]["version"] == "1.37"
    assert {r["inputs"]["releaseVersion"] for r in plan.by_type("aws:eks/nodeGroup:NodeGroup")} == {"1.37.1-20261101"}
    proxy = next(r for r in plan.by_type("aws:eks/addon:Addon") if r["inputs"]["addonName"] == "kube-proxy")
    assert proxy["inputs"]["addonVersion"] == "v1.37.0-eksbuild.2"
    assert plan.outputs["versions"]["eks"]["ami_alias"] == "al2023@v20261101"


def test_the_end_of_standard_support_is_warned_about_ninety_days_ahead():
    end = versions.KUBERNETES.versions["1.36"].standardSupportUntil
    assert versions.support_warning("1.36", end - datetime.timedelta(days=91)) is None
    soon = versions.support_warning("1.36", end - datetime.timedelta(days=30))
    assert soon and f"ends on {end} (in 30 days)" in soon and "upgrades the control plane itself" in soon
    assert f"ended on {end}" in versions.support_warning("1.36", end + datetime.timedelta(days=1))
