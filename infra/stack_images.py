"""The images a stack runs besides its charts': the models', the weights loader's and the platform's own, as its
config names them. The stack's `versions` output lists them (with the charts' images), which `reproduce` and the
vulnerability gate (infra/delivery/vulnerabilities.py) read."""

from __future__ import annotations

from ml_platform.infra import config, models, registry_server


def stack_images(cfg: config.StackConfig, ecr_host: str, preview: bool = False) -> dict:
    """`{"loader": ref, "models": {name: ref}, "platform": {role: ref}}`; a namespace preview (`preview`) runs
    only its models, their loader and, where a model captures traffic, the monitoring image."""
    prefix = cfg.image_registry_prefix
    found = {
        "loader": models.image_reference(cfg.serving.loaderImage, ecr_host, prefix),
        "models": {name: models.image_reference(model.image, ecr_host, prefix) for name, model in sorted(cfg.models.items())},
        "platform": platform_images(cfg, ecr_host),
    }
    if preview:
        captures = any(model.capture is not None for model in cfg.models.values())
        found["platform"] = {k: v for k, v in found["platform"].items() if k == "monitoring" and captures}
    return found


def platform_images(cfg: config.StackConfig, ecr_host: str) -> dict[str, str]:
    """The platform's own images the stack runs, by role: the self-hosted registry server's, and the monitoring image
    (capture proxy, drift and running-images jobs) where set."""
    found = {}
    if registry_server.declares_server(cfg) and cfg.modelRegistry.mode == "selfHosted":
        found["registry-server"] = models.image_reference(cfg.modelRegistry.selfHosted.image, ecr_host, cfg.image_registry_prefix)
    if cfg.serving.monitoringImage is not None:
        found["monitoring"] = models.image_reference(cfg.serving.monitoringImage, ecr_host, cfg.image_registry_prefix)
    return found
