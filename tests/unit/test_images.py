"""Where chart images come from: through the stack's pull-through caches, from a mirror, or (named in the
plan's warnings) straight from their upstream; prod pins them by digest wherever the chart takes one."""

from __future__ import annotations

import pytest

from ml_platform.components import images
from ml_platform.components.helm import Chart
from ml_platform.infra import config, versions
from ml_platform.infra import images as sources
from tests.helpers import minimal_sections, prod_sections, raw_config

HOST = "123456789012.dkr.ecr.us-west-2.amazonaws.com"
DIGEST = "sha256:" + "ab" * 32
ALL = {image.chart for image in images.CHART_IMAGES.values()}


def parse(sections):
    return config.parse(raw_config(**sections), "test")


def test_the_image_map_is_written_the_way_each_chart_reads_it():
    prometheus, karpenter, node_exporter = (images.CHART_IMAGES[k] for k in ("prometheus", "karpenter", "node-exporter"))
    assert images.image_values(prometheus, f"{HOST}/dev/quay/prometheus/prometheus", DIGEST) == {
        "prometheus": {"prometheusSpec": {"image": {"registry": HOST, "repository": "dev/quay/prometheus/prometheus", "sha": "ab" * 32}}}
    }
    # repository with the host in it; the digest with its algorithm where the chart wants it so
    assert images.image_values(karpenter, f"{HOST}/mirror/karpenter", None) == {
        "controller": {"image": {"repository": f"{HOST}/mirror/karpenter"}}
    }
    assert images.image_values(node_exporter, None, DIGEST) == {"prometheus-node-exporter": {"image": {"digest": DIGEST}}}
    assert images.image_values(prometheus, None, None) == {}


def test_images_pull_through_the_caches_the_stack_has():
    cfg = parse(minimal_sections(registries={"pullThroughCache": [{"upstream": "quay"}, {"upstream": "k8s"}, {"upstream": "ecr-public"}]}))
    charts, where, warnings = sources.with_image_sources(versions.CHARTS, ALL, cfg, HOST)
    assert where["prometheus"] == f"{HOST}/test/quay/prometheus/prometheus"
    assert where["metrics-server"] == f"{HOST}/test/k8s/metrics-server/metrics-server"
    assert where["fluent-bit"] == f"{HOST}/test/ecr-public/aws-observability/aws-for-fluent-bit"
    stack = charts["kube-prometheus-stack"].values
    assert stack["prometheusOperator"]["image"] == {"registry": HOST, "repository": "test/quay/prometheus-operator/prometheus-operator"}
    assert charts["metrics-server"].values == {"image": {"repository": f"{HOST}/test/k8s/metrics-server/metrics-server"}}
    # what does not go through it is said, with what to do
    said = "\n".join(warnings)
    assert "dcgm-exporter, nvidia-device-plugin pull from nvcr.io directly" in said and "registries.mirrors" in said
    assert "grafana pull from docker.io directly" in said and "`{upstream: docker-hub}`" in said and "credentialArn" in said
    assert "karpenter: pinned by digest, so pulled from the upstream registry" in said and "containers-roadmap#2837" in said
    assert where["karpenter"] == "public.ecr.aws/karpenter/controller"


def test_a_digest_pinned_image_never_pulls_through_a_cache_that_has_not_cached_it():
    sections = minimal_sections(registries={"pullThroughCache": [{"upstream": "quay"}]}, pins={"images": {"prometheus": DIGEST}})
    charts, where, _ = sources.with_image_sources(versions.CHARTS, ALL, parse(sections), HOST)
    assert where["prometheus"] == f"quay.io/prometheus/prometheus@{DIGEST}"
    assert charts["kube-prometheus-stack"].values["prometheus"]["prometheusSpec"]["image"] == {"sha": "ab" * 32}


def test_a_mirror_serves_an_image_no_cache_can():
    repositories = {"repositories": ["mirror/dcgm-exporter"], "mirrors": {"dcgm-exporter": "mirror/dcgm-exporter"}}
    charts, where, warnings = sources.with_image_sources(versions.CHARTS, ALL, parse(minimal_sections(registries=repositories)), HOST)
    assert where["dcgm-exporter"] == f"{HOST}/test/mirror/dcgm-exporter"
    assert charts["dcgm-exporter"].values == {"image": {"repository": f"{HOST}/test/mirror/dcgm-exporter"}}
    assert not any(w.startswith("dcgm-exporter,") for w in warnings)


def test_only_installed_charts_are_warned_about():
    _, where, warnings = sources.with_image_sources(versions.CHARTS, {"kube-prometheus-stack"}, parse(minimal_sections()), HOST)
    assert set(where) == {k for k, image in images.CHART_IMAGES.items() if image.chart == "kube-prometheus-stack"}
    assert not any("nvcr.io" in w for w in warnings)


@pytest.mark.parametrize(
    ("registries", "pins", "path", "fragment"),
    [
        ({"mirrors": {"dcgm-exporter": "mirror/dcgm"}}, {}, "registries", "'mirror/dcgm' is not in repositories"),
        ({"repositories": ["mirror/dcgm"], "mirrors": {"dcgm": "mirror/dcgm"}}, {}, "registries", "'dcgm' is not a chart image"),
        ({}, {"images": {"grafanna": DIGEST}}, "pins.images", "'grafanna' is not a chart image"),
        ({}, {"images": {"metrics-server": DIGEST}}, "pins.images", "takes no digest for 'metrics-server'"),
        ({}, {"images": {"grafana": "sha256:abc"}}, "pins.images.grafana", "should match pattern"),
    ],
)
def test_bad_image_sources_name_the_key(registries, pins, path, fragment):
    with pytest.raises(config.ConfigError) as caught:
        parse(minimal_sections(registries=registries, pins=pins))
    assert any(p == path and fragment in m for p, m in caught.value.problems), caught.value.problems


def test_prod_pins_every_chart_image_that_takes_a_digest():
    with pytest.raises(config.ConfigError) as caught:
        parse(prod_sections(pins={}))
    ((message,),) = [[m for p, m in caught.value.problems if p == "pins.images"]]
    assert message.startswith("prod runs chart images by digest; missing: alertmanager, grafana, grafana-sidecar, kube-state-metrics")
    digests = {k: DIGEST for k, image in images.CHART_IMAGES.items() if image.digest_key and image.chart != "karpenter"}
    parse(prod_sections(pins={"images": digests}))


def test_a_release_lays_the_image_values_over_the_components():
    assert images.merge({"image": {"tag": "1", "pullPolicy": "Always"}, "a": 1}, {"image": {"repository": "r"}}) == {
        "image": {"tag": "1", "pullPolicy": "Always", "repository": "r"},
        "a": 1,
    }
    assert Chart("c", "", "1").values == {}


def test_digest_pinned_images_are_never_told_to_add_a_cache_and_moved_charts_are_flagged():
    sections = minimal_sections(pins={"images": {"grafana": DIGEST}, "charts": {"kube-prometheus-stack": "88.6.0"}})
    cfg = parse(sections)
    _, charts = versions.resolve(cfg.cluster.version, {}, None, cfg.pins.charts)
    _, _, warnings = sources.with_image_sources(charts, ALL, cfg, HOST)
    said = "\n".join(warnings)
    assert "docker-hub" not in said and "grafana, karpenter: pinned by digest" in said
    assert "pins.charts moves kube-prometheus-stack to 88.6.0, and pins.images still pins its images' digests" in said


def test_a_moved_chart_pin_is_said_in_the_plan(tmp_path):
    import shutil
    from pathlib import Path

    from ml_platform.infra.offline import plan as offline_plan
    from ml_platform.infra.offline import stack_files

    root = Path(__file__).resolve().parents[2]
    for path in root.glob("Pulumi*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    (tmp_path / "Pulumi.dev.yaml").write_text((root / "Pulumi.dev.yaml").read_text() + "  ml-platform:pins:\n    charts: {keda: 2.20.1}\n")
    plan = offline_plan.run("dev", stack_files.read_stack("dev", tmp_path))
    assert any(w.startswith("pins.charts.keda is 2.20.1; the platform's facts about it") for w in plan.warnings)
