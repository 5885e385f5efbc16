"""The Prometheus Pushgateway (chart prometheus-pushgateway, pinned in infra/versions.py), where the models'
monitor jobs publish their results: a CronJob's pod is gone before Prometheus could scrape it, so it pushes, and
Prometheus scrapes the Pushgateway with the pushed labels kept (honorLabels: `job`, `namespace`, `model`,
`version` stay the job's, so the alerts route like the models' own).

What it holds survives a restart on a small gp3 volume (`--persistence.file`): without it, a restart would empty
every group until each job ran again, and "last success" alerts would read absence. Only pods of the monitor
jobs (label app.kubernetes.io/component=model-monitor in namespaces labelled ml-platform/monitoring=true) and
Prometheus's namespace (where the running-images report, components/running_images.py, runs too) reach it. A job
deletes the groups of its model's older versions; groups never pushed again otherwise stay (README, "Drift and
feedback": how to delete one by hand).
"""

from __future__ import annotations

from collections.abc import Mapping

RELEASE = "prometheus-pushgateway"
PORT = 9091
DATA_DIR = "/data"
STORAGE_GIB = 2
"""The volume outside dev: a few kB per model and version."""
MONITOR_COMPONENT = "model-monitor"
"""The app.kubernetes.io/component label of the monitor jobs' pods, which the Pushgateway admits."""


def url(namespace: str) -> str:
    """The Pushgateway's in-cluster URL (the release name is the Service's: the chart's fullname)."""
    return f"http://{RELEASE}.{namespace}.svc:{PORT}"


def values(monitoring_namespace: str, node_selector: Mapping[str, str], storage_gib: int | None, resources: Mapping[str, dict]) -> dict:
    """The release's values (keys checked against ../shared/charts/prometheus-pushgateway/values.yaml).
    `storage_gib` None: no volume (dev; a restart empties it until the jobs run again)."""
    persistence = {"enabled": storage_gib is not None}
    args = []
    if storage_gib is not None:
        # No storageClass: the cluster's default, gp3 (encrypted with the data key: cluster_addons.py).
        persistence.update({"size": f"{storage_gib}Gi", "mountPath": DATA_DIR})
        args = [f"--persistence.file={DATA_DIR}/pushgateway.data", "--persistence.interval=1m"]
    return {
        "serviceMonitor": {"enabled": True, "namespace": monitoring_namespace, "honorLabels": True, "interval": "30s"},
        "persistentVolume": persistence,
        "extraArgs": args,
        # The volume is ReadWriteOnce: the old pod lets go of it before the new one mounts it (the chart's default).
        "strategy": {"type": "Recreate"},
        "automountServiceAccountToken": False,
        "nodeSelector": dict(node_selector),
        "resources": resources,
        "containerSecurityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "networkPolicy": {
            "customSelectors": [
                {
                    "namespaceSelector": {"matchLabels": {"ml-platform/monitoring": "true"}},
                    "podSelector": {"matchLabels": {"app.kubernetes.io/component": MONITOR_COMPONENT}},
                },
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": monitoring_namespace}}},
            ]
        },
    }
