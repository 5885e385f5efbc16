"""Model versions from a registry (MLflow): an alias resolved into a reviewed lock file beside the stack file
(`models.<stack>.lock.yaml`), checked against the registry, and copied into the stack's own model store.

The modules by concept: mlflow (the registry's REST API), artifacts (a version's files in S3: their
fingerprint and their copy), lockfile (the lock: its format, and the stack config it resolves), commands
(`python -m infra models lock|verify|sync`)."""
