"""`model-monitor run --config FILE [--now RFC3339]`: one run of a model's monitor CronJob.

Reads the model's captured traffic once, for the longer of the checks' windows, gives each check the records inside
its own window (drift: (now - windowSeconds, now]; feedback: (now - feedback.windowSeconds, now], by default the
same), runs the configured checks (drift, feedback) and publishes each check's metrics to the Pushgateway under its
own job (`model-drift`, `model-feedback`) and grouping key {namespace, model, version}.

Exit codes: 0 every configured check succeeded (too few samples is a success: it is published as such);
1 a check failed (its `last_failure` timestamp was pushed, the other check still ran); 2 bad configuration or
arguments (one line naming the field, no traceback).

`model-monitor running-images --config FILE | --config-env NAME` is the running-images report's CronJob
(running_images.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from . import drift as drift_mod
from . import feedback as feedback_mod
from . import pushgateway as pg
from .config import ConfigError, MonitorConfig, load_config
from .records import WindowStats, iter_timed_window_records

log = logging.getLogger("model_monitoring.job")

EXIT_OK, EXIT_CHECK_FAILED, EXIT_BAD_CONFIG = 0, 1, 2


def parse_now(value: str | None) -> datetime:
    """`--now` as an aware UTC datetime (the current time when None). Raises ConfigError for a value that is not
    RFC 3339 with an offset (`2026-11-30T07:00:00Z`)."""
    if value is None:
        return datetime.now(UTC)
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        t = None
    if t is None or t.tzinfo is None:
        raise ConfigError("--now", f"{value!r}: allowed: an RFC 3339 time with an offset, e.g. 2026-11-30T07:00:00Z")
    return t.astimezone(UTC)


@dataclass
class _Check:
    name: str  # "drift" | "feedback"
    job: str  # Pushgateway job
    start: datetime  # the check's window is (start, now]
    collector: object  # has .add(record)
    run: Callable[[], object]  # -> result, after the window was read
    registry: Callable[[object, float], object]
    error: BaseException | None = None
    records: int = 0  # capture records given to the collector


# Failures whose message says it all; anything else is logged with its traceback (a bug to fix).
try:
    from botocore.exceptions import BotoCoreError, ClientError

    _EXPECTED: tuple[type[BaseException], ...] = (
        drift_mod.DriftError,
        ClientError,
        BotoCoreError,
        urllib.error.URLError,
        OSError,
        ValueError,
    )
except ImportError:  # pragma: no cover - botocore comes with boto3
    _EXPECTED = (drift_mod.DriftError, urllib.error.URLError, OSError, ValueError)


def run(cfg: MonitorConfig, now: datetime, s3=None) -> int:
    """Run every configured check for the window ending at `now` (aware) and publish the results.

    `s3` defaults to a boto3 client for `cfg.region` (boto3 reads AWS_ENDPOINT_URL_S3 and credentials from the
    environment). Returns EXIT_OK or EXIT_CHECK_FAILED; never raises for a check's failure.
    """
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", region_name=cfg.region)
    drift_start = now - timedelta(seconds=cfg.window_seconds)
    key = pg.grouping_key(cfg.namespace, cfg.model, cfg.version)
    identity = {"model": cfg.model, "namespace": cfg.namespace, "version": cfg.version}
    checks: list[_Check] = []
    if cfg.drift is not None:
        features = drift_mod.FeatureCollector(cfg.drift.records_path)
        checks.append(
            _Check(
                "drift",
                drift_mod.JOB,
                drift_start,
                features,
                lambda: drift_mod.run_drift(cfg.drift, s3, cfg.bucket, features, cfg.min_samples, now),
                drift_mod.drift_registry,
            )
        )
    if cfg.feedback is not None:
        # Its own window: labels (chargebacks, reviews) can arrive days after the prediction they grade.
        feedback_start = now - timedelta(seconds=cfg.feedback.window_seconds)
        predictions = feedback_mod.PredictionCollector(cfg.feedback.join_key, cfg.feedback.prediction_path)
        checks.append(
            _Check(
                "feedback",
                feedback_mod.JOB,
                feedback_start,
                predictions,
                lambda: feedback_mod.run_feedback(
                    cfg.feedback, s3, cfg.bucket, predictions, cfg.min_samples, now, (feedback_start, now), identity
                ),
                feedback_mod.feedback_registry,
            )
        )

    # One pass over the longer window feeds both checks: the captures are read from S3 once, and each check gets
    # only the records inside its own window (by the record's `time`).
    start = min(c.start for c in checks)
    stats = WindowStats()
    try:
        for t, record in iter_timed_window_records(s3, cfg.bucket, cfg.capture_prefix, start, now, stats):
            for check in checks:
                if check.error is None and check.start < t:
                    check.records += 1
                    try:
                        check.collector.add(record)
                    except Exception as e:  # one check's bad extraction must not stop the other
                        check.error = e
    except Exception as e:
        log.error("reading captured records from s3://%s/%s failed: %s", cfg.bucket, cfg.capture_prefix, e)
        for check in checks:
            check.error = check.error or e
    log.info("captures read for (%s, %s]: %s", start.isoformat(), now.isoformat(), stats.as_dict())
    for check in checks:
        log.info("%s window (%s, %s]: %d capture records", check.name, check.start.isoformat(), now.isoformat(), check.records)

    failed = [c.name for c in checks if not _run_check(cfg, c, key)]
    configured = {c.job for c in checks}
    for job in (drift_mod.JOB, feedback_mod.JOB):
        if job not in configured:
            try:
                pg.delete_model_groups(cfg.pushgateway, job, cfg.namespace, cfg.model)
            except Exception as e:  # housekeeping only: the configured checks decide the exit code
                log.warning("could not remove %s groups of %s/%s: %s", job, cfg.namespace, cfg.model, e)
    if failed:
        log.error("checks failed: %s", ", ".join(failed))
        return EXIT_CHECK_FAILED
    return EXIT_OK


def _run_check(cfg: MonitorConfig, check: _Check, key: dict[str, str]) -> bool:
    try:
        if check.error is not None:
            raise check.error
        result = check.run()
        registry = check.registry(result, time.time())
        pg.delete_stale_groups(cfg.pushgateway, check.job, cfg.namespace, cfg.model, cfg.version)
        pg.push(cfg.pushgateway, check.job, key, registry)
        log.info("%s check published to %s (job=%s %s)", check.name, cfg.pushgateway, check.job, key)
        return True
    except Exception as e:
        if isinstance(e, _EXPECTED):
            log.error("%s check failed: %s: %s", check.name, type(e).__name__, e)
        else:
            log.exception("%s check failed unexpectedly", check.name)
    metric = f"model_{check.name}_last_failure_timestamp_seconds"
    try:
        # Old versions' groups go even when the new version's check fails, so no alert names a version gone.
        pg.delete_stale_groups(cfg.pushgateway, check.job, cfg.namespace, cfg.model, cfg.version)
    except Exception as e:
        log.warning("could not delete stale %s groups: %s", check.job, e)
    try:
        pg.push_failure(cfg.pushgateway, check.job, key, metric, time.time())
    except Exception as e:
        log.error("could not push %s to %s: %s", metric, cfg.pushgateway, e)
    return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-monitor", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run_cmd = commands.add_parser("run", help="run the configured checks once and publish them")
    run_cmd.add_argument("--config", required=True, metavar="FILE", help="the monitor's JSON config")
    run_cmd.add_argument("--now", metavar="RFC3339", help="end of the window (default: the current time)")
    images_cmd = commands.add_parser("running-images", help="publish the scan findings of the images running in model namespaces")
    source = images_cmd.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="the report's JSON config (running_images.py)")
    source.add_argument("--config-env", metavar="NAME", help="the environment variable holding it (the CronJob's way)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console entry point (`model-monitor`). `argv` defaults to sys.argv[1:]; returns the exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed its usage message
        return e.code if isinstance(e.code, int) else EXIT_BAD_CONFIG
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "running-images":
        from . import running_images

        return running_images.main(args.config, args.config_env)
    try:
        cfg = load_config(args.config)
        now = parse_now(args.now)
    except ConfigError as e:
        print(f"model-monitor: bad configuration: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    log.info(
        "monitoring %s/%s version %s, window %ss%s ending %s",
        cfg.namespace,
        cfg.model,
        cfg.version,
        cfg.window_seconds,
        f" (feedback {cfg.feedback.window_seconds}s)" if cfg.feedback is not None else "",
        now.isoformat(),
    )
    return run(cfg, now)


if __name__ == "__main__":
    sys.exit(main())
