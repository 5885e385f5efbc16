"""Where this stack's chart images come from: each image whose upstream registry has a pull-through cache in
`registries.pullThroughCache` pulls through it, and images pin the digests of `pins.images` (which prod
must give wherever the chart takes one).

An image pinned by digest pulls from its upstream even where a cache exists: a pull-through cache cannot
serve a digest it has not cached yet, so the first pull of a pinned image through it fails
(aws/containers-roadmap#2837, open). Karpenter's chart pins its controller's digest itself. Every image that
does not pull through this stack's registry is named in the plan's warnings, with why and what to do."""

from __future__ import annotations

from dataclasses import replace

from ml_platform.components.helm import Chart
from ml_platform.components.images import CHART_IMAGES, image_values, merge
from ml_platform.infra import config, versions

# The host a chart names for an upstream, where it differs from the one ECR's cache rule takes.
_CHART_HOSTS = {"registry-1.docker.io": "docker.io"}
NO_CACHE = {
    "nvcr.io": "ECR has no pull-through cache for nvcr.io: copy them into one of registries.repositories and list them in "
    "registries.mirrors (README, 'Images')"
}


def _advice(host: str) -> str:
    """What to do about images pulled straight from `host`."""
    if host in NO_CACHE:
        return NO_CACHE[host]
    upstream = next(key for key, (url, _) in config.PULL_THROUGH_UPSTREAMS.items() if _CHART_HOSTS.get(url, url) == host)
    needs = ", with credentialArn (a Secrets Manager secret ecr-pullthroughcache/...)" if config.PULL_THROUGH_UPSTREAMS[upstream][1] else ""
    return f"add `{{upstream: {upstream}}}` to registries.pullThroughCache{needs}"


def caches(cfg: config.StackConfig, registry_host: str) -> dict[str, str]:
    """Upstream host -> `<registry host>/<cache prefix>` of every pull-through cache the stack configures."""
    found = {}
    for rule in cfg.registries.pullThroughCache:
        upstream = config.PULL_THROUGH_UPSTREAMS[rule.upstream][0]
        found[_CHART_HOSTS.get(upstream, upstream)] = f"{registry_host}/{cfg.cache_prefix(rule)}"
    return found


def with_image_sources(
    charts: dict[str, Chart], installed: set[str], cfg: config.StackConfig, registry_host: str
) -> tuple[dict[str, Chart], dict[str, str], list[str]]:
    """The charts with their images' values laid on; each installed image's source (where it pulls from, and
    the digest it is pinned to); and warnings naming the installed images not pulled through this stack's
    registry (a mirror of `registries.mirrors`, or a pull-through cache)."""
    cached = caches(cfg, registry_host)
    sources: dict[str, str] = {}
    direct: dict[str, list[str]] = {}
    patches: dict[str, dict] = {}
    for key, image in sorted(CHART_IMAGES.items()):
        if image.chart not in installed:
            continue
        digest = cfg.pins.images.get(key)
        pinned = digest is not None or image.chart == "karpenter"
        mirror = cfg.registries.mirrors.get(key)
        cache = None if pinned else cached.get(image.upstream)
        if mirror is not None:
            location: str | None = "/".join(part for part in (registry_host, cfg.registry_prefix, mirror) if part)
        else:
            location = f"{cache}/{image.repository}" if cache else None
        patches[image.chart] = merge(patches.get(image.chart, {}), image_values(image, location, digest))
        sources[key] = (location or f"{image.upstream}/{image.repository}") + (f"@{digest}" if digest else "")
        if location is None:
            reason = "pinned" if pinned else image.upstream
            direct.setdefault(reason, []).append(key)
    warnings = [
        f"{', '.join(keys)} pull from {host} directly, not through this stack's registry: {_advice(host)}"
        for host, keys in sorted(direct.items())
        if host != "pinned"
    ]
    for chart in sorted({image.chart for key, image in CHART_IMAGES.items() if key in cfg.pins.images}):
        if chart in charts and charts[chart].version != versions.CHARTS[chart].version:
            warnings.append(
                f"pins.charts moves {chart} to {charts[chart].version}, and pins.images still pins its images' digests: "
                "make sure they are those of the tags that version runs, or its pods run the old images"
            )
    if "pinned" in direct:
        warnings.append(
            f"{', '.join(direct['pinned'])}: pinned by digest, so pulled from the upstream registry, since a pull-through cache "
            "cannot serve a digest it has not cached (aws/containers-roadmap#2837); list them in registries.mirrors to keep them "
            "in-account (README, 'Images')"
        )
    return {key: replace(chart, values=patches.get(key, {})) for key, chart in charts.items()}, sources, warnings
