"""Every Helm release is pinned to the chart version in ../shared/charts, and every values key the program
sets exists in that chart's default values (a misspelt key is silently ignored by Helm)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from ml_platform.infra import versions
from tests.helpers import SHARED

CHARTS = SHARED / "charts"
# Maps whose keys are the user's (label keys, resource names, config names), not the chart's.
# Subcharts whose defaults live in their own folder; the parent's section for them overrides those.
SUBCHARTS = {
    "kube-prometheus-stack": {
        "grafana": "grafana",
        "kube-state-metrics": "kube-state-metrics",
        "prometheus-node-exporter": "prometheus-node-exporter",
    }
}
FREE_FORM = {"nodeSelector", "resources", "annotations", "labels", "podAnnotations", "podLabels", "additionalLabels", "config.map"}


def chart_key(release: dict) -> str:
    return release["chart"].rsplit("/", 1)[-1]


def unknown_keys(values: Any, defaults: Any, path: str = "") -> list[str]:
    """Paths set in `values` that the chart's defaults do not have. Below an empty map, a list, a scalar or
    null default, anything goes: the chart takes the value whole."""
    if not isinstance(values, dict) or not isinstance(defaults, dict) or not defaults:
        return []
    if path.rsplit(".", 1)[-1] in FREE_FORM or path in FREE_FORM:
        return []
    found = []
    for key, value in values.items():
        here = f"{path}.{key}" if path else key
        if key not in defaults:
            found.append(here)
        else:
            found += unknown_keys(value, defaults[key], here)
    return found


def deep_merge(base: Any, override: Any) -> Any:
    """Helm's rule for a parent chart's section over a subchart's defaults: maps merge key by key, all else wins."""
    if not isinstance(base, dict) or not isinstance(override, dict):
        return override
    return {**base, **{key: deep_merge(base.get(key), value) for key, value in override.items()}}


def chart_defaults(key: str) -> dict:
    defaults = yaml.safe_load((CHARTS / key / "values.yaml").read_text())
    for section, subchart in SUBCHARTS.get(key, {}).items():
        sub = yaml.safe_load((CHARTS / subchart / "values.yaml").read_text())
        defaults[section] = deep_merge(sub, defaults.get(section) or {})
    return defaults


def test_pins_match_the_shared_chart_versions():
    for key, chart in versions.CHARTS.items():
        shipped = yaml.safe_load((CHARTS / key / "Chart.yaml").read_text())
        assert (shipped["name"], shipped["version"]) == (key, chart.version)
        assert "latest" not in chart.version
        assert chart.crd_chart in ("", f"{chart.name}-crd")


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_every_values_key_exists_in_the_pinned_chart(plans, stack):
    releases = plans[stack].by_type("kubernetes:helm.sh/v3:Release")
    assert {chart_key(r["inputs"]) for r in releases} >= {"karpenter", "nvidia-device-plugin", "dcgm-exporter"}
    for release in releases:
        inputs = release["inputs"]
        key = chart_key(inputs).removesuffix("-crd")
        assert inputs["version"] == versions.CHARTS[key].version
        if chart_key(inputs).endswith("-crd"):
            assert not inputs.get("values"), "a CRD chart takes no values"
            continue
        defaults = chart_defaults(key)
        assert unknown_keys(inputs["values"], defaults) == [], release["name"]


def test_subchart_keys_are_checked_against_the_subchart():
    defaults = chart_defaults("kube-prometheus-stack")
    assert unknown_keys({"grafana": {"nodeSelector": {"a": "b"}, "adminPasword": "x"}}, defaults) == ["grafana.adminPasword"]


def test_the_key_check_catches_a_misspelt_key():
    defaults = yaml.safe_load((CHARTS / "karpenter" / "values.yaml").read_text())
    assert unknown_keys({"settings": {"clusterNmae": "x"}, "replica": 2, "nodeSelector": {"any": "label"}}, defaults) == [
        "settings.clusterNmae",
        "replica",
    ]
