"""The controller contract: every object a plan declares that some controller must act on has that controller
in the plan, and the data the controller reads exists. A validator accepts an HPA whether or not anything
serves the metrics API it reads; a live cluster does not.

Needs and who meets them:
- HorizontalPodAutoscaler: the metrics API of each metric type (Resource: `metrics.k8s.io`, served by
  metrics-server; External: `external.metrics.k8s.io`, KEDA); its target Deployment, whose every container
  requests a resource scaled on utilisation.
- ScaledObject: KEDA; its target; each Prometheus trigger's `serverAddress` is a Prometheus the plan runs,
  and every series its query reads comes from a ServiceMonitor that Prometheus selects, scraping a Service in
  the query's namespace (and the `service` it names) that selects the scaled pods, on a port the Service
  has; kube-state-metrics series from the monitoring stack's kube-state-metrics.
- ServiceMonitor, PodMonitor, PrometheusRule: the Prometheus operator and a Prometheus whose selectors (and
  namespace selectors) select it; a ServiceMonitor's Service with the endpoint's named port.
- Ingress: a controller of its `ingressClassName`; its backend Service and port.
- PersistentVolumeClaim (also Prometheus' volume claim template in chart values): its StorageClass (or a
  default one) and the CSI driver that provisions it.
- NetworkPolicy: enforcement by the VPC CNI (`enableNetworkPolicy`).
- NodePool, EC2NodeClass: Karpenter's CRDs and controller; the NodePool's node class.
- PodIdentityAssociation: the EKS Pod Identity agent.

What each chart or add-on provides is read from the plan: releases by chart name (table `CHARTS`, facts from
each pinned chart's templates), EKS add-ons by `addonName`, StorageClasses as declared. The Prometheus
selectors follow kube-prometheus-stack 88.5.3's `templates/prometheus/prometheus.yaml`: an explicit selector
wins; else `<kind>SelectorNilUsesHelmValues` selects `release: <release name>`; else `{}` (everything).

A namespace-mode preview declares only models: its controllers are its base stack's, so `gaps` takes the base
plan's resources too. Anything this module cannot decide is a gap, never a pass.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ml_platform.infra import promql

HELM_RELEASE = "kubernetes:helm.sh/v3:Release"

# chart -> (API groups whose CRDs it installs, API groups whose objects its controller acts on, aggregated APIs)
CHARTS: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    "metrics-server": (frozenset(), frozenset(), frozenset({"metrics.k8s.io"})),
    "keda": (frozenset({"keda.sh"}), frozenset({"keda.sh"}), frozenset({"external.metrics.k8s.io"})),
    "kube-prometheus-stack": (frozenset({"monitoring.coreos.com"}), frozenset({"monitoring.coreos.com"}), frozenset()),
    "prometheus-operator-crds": (frozenset({"monitoring.coreos.com"}), frozenset(), frozenset()),
    "karpenter-crd": (frozenset({"karpenter.sh", "karpenter.k8s.aws"}), frozenset(), frozenset()),
    "karpenter": (frozenset(), frozenset({"karpenter.sh", "karpenter.k8s.aws"}), frozenset()),
    "aws-load-balancer-controller": (frozenset({"elbv2.k8s.aws"}), frozenset({"elbv2.k8s.aws"}), frozenset()),
}
# EKS add-on -> CSI driver it runs
CSI_ADDONS = {"aws-ebs-csi-driver": "ebs.csi.aws.com"}
# Metric-name prefixes of the monitoring stack's own exporters, which need no ServiceMonitor of the model's.
KUBE_STATE_METRICS_PREFIX = "kube_"
MONITOR_KINDS = ("ServiceMonitor", "PodMonitor", "PrometheusRule")
_SELECTOR_KEY = {"ServiceMonitor": "serviceMonitor", "PodMonitor": "podMonitor", "PrometheusRule": "rule"}


@dataclass(frozen=True)
class Prometheus:
    """A Prometheus the monitoring stack runs: where it answers and what it selects."""

    url: str
    selectors: Mapping[str, Mapping[str, Any]]
    """Label selector per monitor kind (ServiceMonitor, PodMonitor, PrometheusRule)."""
    namespace_selectors: Mapping[str, Mapping[str, Any]]
    """Namespace label selector per monitor kind ({} = every namespace)."""
    kube_state_metrics: bool


@dataclass
class Controllers:
    """What a plan runs that acts on other objects."""

    crds: set[str] = field(default_factory=set)
    reconciled: set[str] = field(default_factory=set)
    api_services: set[str] = field(default_factory=set)
    prometheus: list[Prometheus] = field(default_factory=list)
    ingress_classes: set[str] = field(default_factory=set)
    csi_drivers: set[str] = field(default_factory=set)
    storage_classes: dict[str, tuple[str, bool]] = field(default_factory=dict)
    """name -> (provisioner, is the default class)."""
    network_policy_enforced: bool = False
    pod_identity_agent: bool = False
    namespace_labels: dict[str, dict[str, str]] = field(default_factory=dict)

    def serves(self, group: str) -> bool:
        """Objects of `group` can be created (CRDs) and are acted on (a controller)."""
        return group in self.crds and group in self.reconciled


def chart_name(release: Mapping[str, Any]) -> str:
    return str(release["chart"]).rsplit("/", 1)[-1]


def _prometheus(release: Mapping[str, Any]) -> Prometheus | None:
    values = release.get("values") or {}
    if (values.get("prometheus") or {}).get("enabled") is False:
        return None
    spec = (values.get("prometheus") or {}).get("prometheusSpec") or {}
    # The chart's `kube-prometheus-stack.fullname` helper (templates/_helpers.tpl).
    name = values.get("nameOverride") or "kube-prometheus-stack"
    fullname = values.get("fullnameOverride") or (release["name"] if name in release["name"] else f"{release['name']}-{name}")
    fullname = fullname[:26].rstrip("-")
    selectors, namespaces = {}, {}
    for kind, key in _SELECTOR_KEY.items():
        explicit = spec.get(f"{key}Selector")
        if explicit:
            selectors[kind] = explicit
        elif spec.get(f"{key}SelectorNilUsesHelmValues", True):
            selectors[kind] = {"matchLabels": {"release": release["name"]}}
        else:
            selectors[kind] = {}
        namespaces[kind] = spec.get(f"{key}NamespaceSelector") or {}
    port = (values.get("prometheus") or {}).get("service", {}).get("port", 9090)
    ksm = values.get("kubeStateMetrics", {}).get("enabled", True) is not False
    return Prometheus(f"http://{fullname}-prometheus.{release['namespace']}.svc:{port}", selectors, namespaces, ksm)


def controllers(resources: Iterable[Mapping[str, Any]]) -> Controllers:
    """What the plan's releases, add-ons and cluster objects provide."""
    found = Controllers()
    for resource in resources:
        inputs = resource["inputs"]
        if resource["type"] == HELM_RELEASE:
            chart = chart_name(inputs)
            crds, reconciled, apis = CHARTS.get(chart, (frozenset(), frozenset(), frozenset()))
            values = inputs.get("values") or {}
            found.crds |= crds
            found.reconciled |= reconciled
            if chart == "metrics-server" and (values.get("apiService") or {}).get("create") is False:
                apis = frozenset()
            found.api_services |= apis
            if chart == "kube-prometheus-stack":
                if (values.get("crds") or {}).get("enabled") is False:
                    found.crds.discard("monitoring.coreos.com")
                prometheus = _prometheus(inputs)
                if prometheus is not None:
                    found.prometheus.append(prometheus)
            if chart == "aws-load-balancer-controller" and values.get("createIngressClassResource"):
                found.ingress_classes.add(values.get("ingressClass", "alb"))
        elif resource["type"] == "aws:eks/addon:Addon":
            name = inputs.get("addonName")
            if name in CSI_ADDONS:
                found.csi_drivers.add(CSI_ADDONS[name])
            if name == "eks-pod-identity-agent":
                found.pod_identity_agent = True
            if name == "vpc-cni":
                configuration = json.loads(inputs.get("configurationValues") or "{}")
                found.network_policy_enforced = str(configuration.get("enableNetworkPolicy", "false")).lower() == "true"
        elif resource["type"] == "kubernetes:storage.k8s.io/v1:StorageClass":
            metadata = inputs.get("metadata") or {}
            default = (metadata.get("annotations") or {}).get("storageclass.kubernetes.io/is-default-class") == "true"
            found.storage_classes[metadata["name"]] = (inputs["provisioner"], default)
        elif resource["type"] == "kubernetes:core/v1:Namespace":
            metadata = inputs.get("metadata") or {}
            found.namespace_labels[metadata["name"]] = {**(metadata.get("labels") or {}), "kubernetes.io/metadata.name": metadata["name"]}
    return found


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes' label selector rule (matchLabels and matchExpressions); {} selects everything."""
    selector = selector or {}
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


class _Objects:
    """The plan's Kubernetes objects, indexed by (kind, namespace, name)."""

    def __init__(self, resources: Iterable[Mapping[str, Any]]):
        self.items: list[dict[str, Any]] = []
        for resource in resources:
            if resource["type"].startswith("kubernetes:") and resource["type"] != HELM_RELEASE and resource["custom"]:
                body = resource["inputs"]
                if "kind" in body:
                    self.items.append(body)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.items if o["kind"] == kind]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        return next((o for o in self.of_kind(kind) if _ns(o) == namespace and o["metadata"]["name"] == name), None)


def _ns(body: Mapping[str, Any]) -> str:
    return (body.get("metadata") or {}).get("namespace", "")


def _where(body: Mapping[str, Any]) -> str:
    return f"{_ns(body) or '_cluster'}/{body['kind']}/{body['metadata']['name']}"


def _pod_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    return ((workload.get("spec") or {}).get("template") or {}).get("metadata", {}).get("labels") or {}


def _target(objects: _Objects, body: Mapping[str, Any], ref: Mapping[str, Any]) -> dict[str, Any] | None:
    return objects.get(ref.get("kind", "Deployment"), _ns(body), ref["name"])


def _selected_by_prometheus(ctl: Controllers, kind: str, body: Mapping[str, Any]) -> bool:
    labels = (body.get("metadata") or {}).get("labels") or {}
    namespace = ctl.namespace_labels.get(_ns(body), {"kubernetes.io/metadata.name": _ns(body)})
    return any(selects(p.selectors[kind], labels) and selects(p.namespace_selectors[kind], namespace) for p in ctl.prometheus)


def _scraped_services(objects: _Objects, ctl: Controllers, namespace: str) -> list[tuple[dict, dict]]:
    """(ServiceMonitor, Service) pairs Prometheus scrapes in a namespace, on a port the Service has."""
    pairs = []
    for monitor in objects.of_kind("ServiceMonitor"):
        if _ns(monitor) != namespace or not _selected_by_prometheus(ctl, "ServiceMonitor", monitor):
            continue
        ports = {e.get("port") for e in monitor["spec"].get("endpoints", [])}
        for svc in objects.of_kind("Service"):
            labels = svc["metadata"].get("labels") or {}
            named = {p.get("name") for p in svc["spec"].get("ports", [])}
            if _ns(svc) == namespace and selects(monitor["spec"].get("selector"), labels) and ports & named:
                pairs.append((monitor, svc))
    return pairs


def _check_query(objects: _Objects, ctl: Controllers, scaled: Mapping[str, Any], target: Mapping[str, Any], query: str) -> list[str]:
    try:
        series = promql.series(query)
        invented = promql.functions(query) & promql.INVENTS_VALUES
    except ValueError as error:
        return [str(error)]
    problems = [f"{', '.join(sorted(invented))}() makes a value out of missing series, so an outage would read as load"] if invented else []
    pods = _pod_labels(target)
    own = [(metric, matchers) for metric, matchers in series if not metric.startswith(KUBE_STATE_METRICS_PREFIX)]
    if not own:
        problems.append("the query reads no series of the scaled model, only kube-state-metrics or constants")
    if len(own) < len(series) and not any(p.kube_state_metrics for p in ctl.prometheus):
        problems.append("the query reads kube-state-metrics, which no Prometheus here runs")
    for metric, matchers in own:
        namespace = matchers.get("namespace")
        if namespace != _ns(scaled):
            problems.append(f'{metric}: the query must select the model\'s own namespace (namespace="{_ns(scaled)}"), not {namespace!r}')
            continue
        services = _scraped_services(objects, ctl, namespace)
        if "service" not in matchers and len({svc["metadata"]["name"] for _, svc in services}) > 1:
            problems.append(f"{metric}: the namespace is shared; select the model's own Service (service=...)")
        scraped = [
            svc
            for _, svc in services
            if matchers.get("service", svc["metadata"]["name"]) == svc["metadata"]["name"]
            and selects({"matchLabels": svc["spec"].get("selector") or {}}, pods)
        ]
        if not scraped:
            problems.append(
                f"{metric}{{namespace={namespace!r}{', service=' + repr(matchers['service']) if 'service' in matchers else ''}}}: "
                "no ServiceMonitor that Prometheus selects scrapes a Service of the scaled pods there, so the series never exist"
            )
    return problems


def gaps(resources: Iterable[Mapping[str, Any]], base: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """Every object of `resources` whose controller or data is missing, as `<namespace>/<Kind>/<name>: why`.
    `base`: the resources of the stack whose cluster this plan deploys into (a namespace preview's base)."""
    resources = list(resources)
    ctl = controllers([*base, *resources])
    objects = _Objects([*base, *resources])
    own = _Objects(resources)
    problems: list[str] = []

    def gap(body: Mapping[str, Any], why: str) -> None:
        problems.append(f"{_where(body)}: {why}")

    for body in own.items:
        kind = body["kind"]
        group = body.get("apiVersion", "").split("/")[0] if "/" in body.get("apiVersion", "") else ""
        if group in {g for c in CHARTS.values() for g in c[0] | c[1]} and not ctl.serves(group):
            gap(body, f"nothing here installs and runs the {group} controller")
        if kind == "HorizontalPodAutoscaler":
            spec = body["spec"]
            target = _target(objects, body, spec["scaleTargetRef"])
            if target is None:
                gap(body, f"its target {spec['scaleTargetRef']['name']} is not declared")
            for metric in spec.get("metrics", []):
                api = {"Resource": "metrics.k8s.io", "ContainerResource": "metrics.k8s.io", "External": "external.metrics.k8s.io"}.get(
                    metric["type"], "custom.metrics.k8s.io"
                )
                if api not in ctl.api_services:
                    gap(body, f"a {metric['type']} metric reads {api}, which nothing here serves (FailedGetResourceMetric)")
                source = metric.get("resource") or metric.get("containerResource") or {}
                resource = source.get("name")
                if target is not None and resource and source["target"]["type"] == "Utilization":
                    pod = target["spec"]["template"]["spec"]
                    # Resource: the pod's usage over the sum of its containers' requests (native sidecars included);
                    # ContainerResource: one container's, which must exist.
                    sidecars = [c for c in pod.get("initContainers", []) if c.get("restartPolicy") == "Always"]
                    containers = [*pod["containers"], *sidecars]
                    if "container" in source:
                        containers = [c for c in containers if c["name"] == source["container"]]
                        if not containers:
                            gap(body, f"its container {source['container']!r} is not in its target's pods")
                    if any(resource not in ((c.get("resources") or {}).get("requests") or {}) for c in containers):
                        gap(body, f"utilisation of {resource} needs a {resource} request on every container it measures")
        elif kind == "ScaledObject":
            target = _target(objects, body, body["spec"]["scaleTargetRef"])
            if target is None:
                gap(body, f"its target {body['spec']['scaleTargetRef']['name']} is not declared")
                continue
            for trigger in body["spec"].get("triggers", []):
                if trigger["type"] != "prometheus":
                    continue
                address = trigger["metadata"]["serverAddress"]
                if address not in {p.url for p in ctl.prometheus}:
                    known = ", ".join(sorted(p.url for p in ctl.prometheus)) or "none"
                    gap(body, f"its Prometheus {address} is not one the plan runs ({known})")
                    continue
                for why in _check_query(objects, ctl, body, target, trigger["metadata"]["query"]):
                    gap(body, why)
        elif kind in MONITOR_KINDS:
            if not _selected_by_prometheus(ctl, kind, body):
                gap(body, "no Prometheus here selects it (labels or namespace)")
            if kind == "ServiceMonitor":
                ports = {e.get("port") for e in body["spec"].get("endpoints", [])}
                services = [
                    s
                    for s in objects.of_kind("Service")
                    if _ns(s) == _ns(body) and selects(body["spec"].get("selector"), s["metadata"].get("labels") or {})
                ]
                if not any(ports & {p.get("name") for p in s["spec"].get("ports", [])} for s in services):
                    gap(body, f"selects no Service with a port named {sorted(p for p in ports if p)}")
        elif kind == "Ingress":
            ingress_class = body["spec"].get("ingressClassName")
            if ingress_class not in ctl.ingress_classes:
                gap(body, f"no controller here serves ingress class {ingress_class!r}")
            for rule in body["spec"].get("rules", []):
                for path in rule.get("http", {}).get("paths", []):
                    backend = path["backend"]["service"]
                    svc = objects.get("Service", _ns(body), backend["name"])
                    port = backend["port"].get("name") or backend["port"].get("number")
                    known = {p.get("name") for p in svc["spec"]["ports"]} | {p.get("port") for p in svc["spec"]["ports"]} if svc else set()
                    if port not in known:
                        gap(body, f"its backend {backend['name']}:{port} is not a declared Service port")
        elif kind == "PersistentVolumeClaim":
            problems += [f"{_where(body)}: {why}" for why in _storage_gaps(ctl, body["spec"].get("storageClassName"))]
        elif kind == "NetworkPolicy":
            if not ctl.network_policy_enforced:
                gap(body, "the VPC CNI does not enforce network policies here (enableNetworkPolicy)")
        elif kind == "NodePool":
            ref = body["spec"]["template"]["spec"]["nodeClassRef"]
            if objects.get(ref["kind"], "", ref["name"]) is None:
                gap(body, f"its node class {ref['name']} is not declared")

    for resource in resources:
        monitor = ((resource["inputs"].get("values") or {}).get("serviceMonitor") or {}) if resource["type"] == HELM_RELEASE else {}
        if monitor.get("enabled"):
            # A chart's own ServiceMonitor carries the chart's labels plus `additionalLabels`: only those are known here.
            where = f"{resource['inputs']['namespace']}/ServiceMonitor ({resource['inputs']['name']} chart)"
            labels = monitor.get("additionalLabels") or monitor.get("labels") or {}
            if not ctl.serves("monitoring.coreos.com"):
                problems.append(f"{where}: nothing here installs and runs the monitoring.coreos.com controller")
            elif not any(selects(p.selectors["ServiceMonitor"], labels) for p in ctl.prometheus):
                problems.append(f"{where}: no Prometheus here selects it by the labels its values set")
        if resource["type"] == HELM_RELEASE and chart_name(resource["inputs"]) == "kube-prometheus-stack":
            spec = ((resource["inputs"].get("values") or {}).get("prometheus") or {}).get("prometheusSpec") or {}
            claim = ((spec.get("storageSpec") or {}).get("volumeClaimTemplate") or {}).get("spec")
            if claim is not None:
                where = f"{resource['inputs']['namespace']}/Prometheus (chart values)"
                problems += [f"{where}: {why}" for why in _storage_gaps(ctl, claim.get("storageClassName"))]
        if resource["type"] == "aws:eks/podIdentityAssociation:PodIdentityAssociation" and not ctl.pod_identity_agent:
            inputs = resource["inputs"]
            account = f"{inputs['namespace']}/ServiceAccount/{inputs['serviceAccount']}"
            problems.append(f"{account}: no EKS Pod Identity agent hands it credentials")
    return sorted(set(problems))


def _storage_gaps(ctl: Controllers, storage_class: str | None) -> list[str]:
    if storage_class is None:
        defaults = [name for name, (_, default) in ctl.storage_classes.items() if default]
        if not defaults:
            return ["names no StorageClass and the cluster has no default one"]
        storage_class = defaults[0]
    if storage_class not in ctl.storage_classes:
        return [f"StorageClass {storage_class!r} is not declared"]
    provisioner = ctl.storage_classes[storage_class][0]
    if provisioner not in ctl.csi_drivers:
        return [f"StorageClass {storage_class!r} is provisioned by {provisioner}, which no add-on here runs"]
    return []
