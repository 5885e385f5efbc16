"""Every AWS failure of every command is one line saying what to do, exit 1: the explanations by kind, and
the commands as a user runs them against moto's server on loopback (no credentials, nothing listening)."""

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError, NoRegionError

from ml_platform.infra import cli
from ml_platform.infra.delivery import aws_errors


def client_error(code: str, message: str = "msg", operation: str = "DescribeInstances") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@pytest.mark.parametrize(
    ("err", "says"),
    [
        (NoCredentialsError(), "no usable AWS credentials"),
        (NoRegionError(), "pass --region or set AWS_REGION"),
        (EndpointConnectionError(endpoint_url="https://ec2.us-west-2.amazonaws.com/"), "cannot reach https://ec2.us-west-2.amazonaws.com/"),
        (client_error("AccessDenied", "not authorized to perform s3:GetBucketLocation"), "access denied to DescribeInstances"),
        (client_error("UnauthorizedOperation"), "the caller needs that permission"),
        (client_error("ExpiredToken"), "the credentials are not valid"),
        (client_error("RequestLimitExceeded"), "AWS throttled DescribeInstances"),
        (client_error("PermanentRedirect", "use the bucket's region"), "pass the right --region"),
        (client_error("SomethingNew", "odd"), "DescribeInstances failed: SomethingNew odd"),
    ],
)
def test_each_kind_of_failure_says_what_to_do(err, says):
    line = aws_errors.explain(err)
    assert says in line and "\n" not in line


def test_region_names_come_from_botocore_with_a_did_you_mean():
    assert aws_errors.region_problem("us-west-2") is None and aws_errors.region_problem("cn-north-1") is None
    assert aws_errors.region_problem("eu-wset-1") == "'eu-wset-1' is not an AWS region; did you mean eu-west-1?"
    assert aws_errors.region_problem("US-WEST-2") == "'US-WEST-2' is not an AWS region; did you mean us-west-2?"


@pytest.mark.parametrize("argv", [["cleanup", "--stack", "dev"], ["cleanup", "--stack", "prod", "--apply"]])
def test_cleanup_without_credentials_is_one_line(argv, no_credentials, capsys):
    assert cli.main(argv) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: no usable AWS credentials") and len(captured.err.strip().splitlines()) == 1


def test_cleanup_with_nothing_listening_at_the_endpoint_is_one_line(aws_server, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert cli.main(["cleanup", "--stack", "dev"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach http://127.0.0.1:9") and "Traceback" not in err


def test_doctor_without_credentials_fails_its_check_without_a_traceback(no_credentials, capsys):
    assert cli.main(["doctor", "--stack", "dev"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  credentials: no usable AWS credentials" in out and "0 passed, 2 failed" in out  # dev ships examples


def test_doctor_with_nothing_listening_names_the_endpoint_not_credentials(aws_server, monkeypatch, capsys):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    assert cli.main(["doctor", "--stack", "dev"]) == 1
    assert "FAIL  credentials: cannot reach http://127.0.0.1:9" in capsys.readouterr().out
