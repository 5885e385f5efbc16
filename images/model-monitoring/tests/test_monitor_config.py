"""The monitor job's config validation: every mistake names its field and what is allowed."""

import copy
import json

import pytest
from model_monitoring.config import DRIFT_METHODS, STATTESTS, ConfigError, load_config, parse_config

CONTRACT_EXAMPLE = {
    "model": "fraud",
    "namespace": "fraud",
    "version": "3",
    "bucket": "ml-platform-dev-models",
    "region": "us-west-2",
    "capturePrefix": "capture/fraud/3/",
    "windowSeconds": 86400,
    "minSamples": 500,
    "pushgateway": "http://prometheus-pushgateway.monitoring.svc:9091",
    "drift": {
        "referencePrefix": "reference/fraud/",
        "method": "psi",
        "threshold": 0.1,
        "driftShare": 0.5,
        "recordsPath": "$.instances[*]",
        "reportPrefix": "drift/fraud/3/",
    },
    "feedback": {
        "labelsPrefix": "feedback/fraud/",
        "joinKey": "requestId",
        "predictionPath": "$.predictions[0]",
        "labelField": "label",
        "metric": "accuracy",
        "reportPrefix": "feedback/reports/fraud/3/",
    },
}


def with_change(path: str, value):
    doc = copy.deepcopy(CONTRACT_EXAMPLE)
    *parents, last = path.split(".")
    target = doc
    for p in parents:
        target = target[p]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return doc


def test_contract_example_parses():
    cfg = parse_config(CONTRACT_EXAMPLE)
    assert (cfg.model, cfg.namespace, cfg.version, cfg.window_seconds, cfg.min_samples) == ("fraud", "fraud", "3", 86400, 500)
    assert cfg.drift.method == "psi" and cfg.drift.drift_share == 0.5 and cfg.drift.records_path == "$.instances[*]"
    assert cfg.feedback.label_key_field == "requestId" and cfg.feedback.metric == "accuracy"
    # Without feedback.windowSeconds the feedback window is the drift window.
    assert cfg.feedback.window_seconds == 86400


def test_each_check_is_optional_but_one_is_required():
    assert parse_config(with_change("feedback", KeyError)).feedback is None
    assert parse_config(with_change("drift", KeyError)).drift is None
    doc = with_change("drift", KeyError)
    del doc["feedback"]
    with pytest.raises(ConfigError, match="at least one of `drift` and `feedback`"):
        parse_config(doc)


@pytest.mark.parametrize(
    "path, value, field, allowed",
    [
        ("drift.method", "tvd", "drift.method", "TVD"),  # Evidently's name is upper case
        ("drift.method", "perc_text_content_drift", "drift.method", "psi"),
        ("drift.driftShare", 1.5, "drift.driftShare", "0 < driftShare <= 1"),
        ("drift.threshold", 0, "drift.threshold", "> 0"),
        ("drift.threshold", "0.1", "drift.threshold", "a number"),
        ("drift.recordsPath", "$.instances[", "drift.recordsPath", "not a valid JSONPath"),
        ("drift.reportPrefix", "drift/fraud/3", "drift.reportPrefix", 'ends in "/"'),
        ("feedback.metric", "f1", "feedback.metric", "accuracy, mae, rmse"),
        ("feedback.joinKey", "txn_id", "feedback.joinKey", '"requestId" or a JSONPath'),
        ("feedback.joinKey", "$.ids[0]", "feedback.joinKey", "single field name"),
        ("feedback.labelField", "", "feedback.labelField", "non-empty string"),
        ("feedback.labelField", "requestId", "feedback.labelField", "join column"),
        ("feedback.windowSeconds", 3599, "feedback.windowSeconds", "an integer >= 3600"),
        ("feedback.windowSeconds", "7d", "feedback.windowSeconds", "an integer >= 3600"),
        ("feedback.windowSeconds", 604800.5, "feedback.windowSeconds", "an integer >= 3600"),
        ("feedback.windowSeconds", False, "feedback.windowSeconds", "an integer >= 3600"),
        ("feedback.windowSecond", 3600, "feedback.windowSecond", "unknown field; allowed here:"),
        ("windowSeconds", 0, "windowSeconds", "integer >= 1"),
        ("minSamples", True, "minSamples", "integer >= 1"),
        ("version", 3, "version", "non-empty string"),
        ("pushgateway", "prometheus-pushgateway:9091", "pushgateway", "http:// or https:// URL"),
        ("capturePrefix", KeyError, "capturePrefix", "required field is missing"),
        ("drift.thresold", 0.1, "drift.thresold", "unknown field; allowed here: driftShare, method"),
    ],
)
def test_mistakes_name_the_field_and_what_is_allowed(path, value, field, allowed):
    with pytest.raises(ConfigError) as e:
        parse_config(with_change(path, value))
    assert e.value.field == field
    assert str(e.value).startswith(field + ": ")
    assert allowed in str(e.value)


def test_method_error_lists_every_allowed_stattest():
    with pytest.raises(ConfigError) as e:
        parse_config(with_change("drift.method", "psi2"))
    for name in DRIFT_METHODS:
        assert name in str(e.value)
    assert set(DRIFT_METHODS) == set(STATTESTS) - {"perc_text_content_drift", "abs_text_content_drift"}


def test_jsonpath_join_key_names_its_last_field():
    cfg = parse_config(with_change("feedback.joinKey", "$.meta.transactionId"))
    assert cfg.feedback.label_key_field == "transactionId"


def test_label_field_must_not_be_the_join_column():
    doc = with_change("feedback.joinKey", "$.meta.label")  # label rows' key column: `label`, as is labelField
    with pytest.raises(ConfigError) as e:
        parse_config(doc)
    assert e.value.field == "feedback.labelField"
    assert str(e.value).startswith('feedback.labelField: "label" is the label rows\' join column')
    doc["feedback"]["labelField"] = "outcome"
    assert parse_config(doc).feedback.label_key_field == "label"
    # A key column named like the label field elsewhere in the request does not matter: only the last field does.
    assert parse_config(with_change("feedback.joinKey", "$.label.id")).feedback.label_key_field == "id"


def test_feedback_window_is_its_own_and_may_be_shorter_or_longer():
    week = parse_config(with_change("feedback.windowSeconds", 7 * 86400))
    assert week.window_seconds == 86400 and week.feedback.window_seconds == 7 * 86400
    assert parse_config(with_change("feedback.windowSeconds", 3600)).feedback.window_seconds == 3600
    # The default follows the top-level window, whatever it is (even under the 3600 an explicit value needs).
    short = with_change("windowSeconds", 900)
    assert parse_config(short).feedback.window_seconds == 900


def test_unreadable_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_config(str(bad))
    good = tmp_path / "good.json"
    good.write_text(json.dumps(CONTRACT_EXAMPLE))
    assert load_config(str(good)).bucket == "ml-platform-dev-models"


def test_threshold_is_optional_and_means_evidentlys_default():
    # The platform leaves it out unless drift.threshold is set; Evidently's DataDriftPreset takes None as the method's default.
    assert parse_config(with_change("drift.threshold", KeyError)).drift.threshold is None
    with pytest.raises(ConfigError, match=r"drift\.threshold"):
        parse_config(with_change("drift.threshold", 0))
