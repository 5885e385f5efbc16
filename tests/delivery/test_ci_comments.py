"""`python -m infra ci comment` against each host's documented API, served by `responses` (the real `requests`
stack, the transport replaced): GitHub issue comments (Link pagination, PATCH, POST), GitLab merge request notes
(X-Next-Page pagination, PUT, POST, PRIVATE-TOKEN), Azure DevOps pull request threads (list, POST a thread,
PATCH its comment, Bearer); the token from CI_COMMENT_TOKEN, none with --optional; bad input exit 2."""

from __future__ import annotations

import base64
import json

import pytest
import responses
from responses import matchers

from ml_platform.infra import cli
from ml_platform.infra.delivery.ci import comments

MARKER = "<!-- ml-platform-plan-diff -->"
GITHUB = "https://api.github.com/repos/acme/platform/issues"
GITLAB = "https://gitlab.com/api/v4/projects/acme%2Fml%2Fplatform/merge_requests/5/notes"
AZURE = "https://dev.azure.com/acme/ML%20Platform/_apis/git/repositories/platform/pullRequests/9/threads"


@pytest.fixture
def body(tmp_path):
    path = tmp_path / "comment.md"
    path.write_text(f"{MARKER}\n### Plan diff of `dev`\n")
    return path


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv(comments.TOKEN_ENV, "s3cret")


def comment(*argv) -> int:
    return cli.main(["ci", "comment", *argv])


@responses.activate
def test_github_pages_through_the_comments_and_updates_the_marked_one(body, token, capsys):
    page_two = f"{GITHUB}/42/comments?per_page=100&page=2"
    responses.get(
        f"{GITHUB}/42/comments?per_page=100",
        json=[{"id": 1, "body": "looks good"}, {"id": 2, "body": None}],
        headers={"Link": f'<{page_two}>; rel="next", <{page_two}>; rel="last"'},
        match=[matchers.header_matcher({"Authorization": "Bearer s3cret", "X-GitHub-Api-Version": "2022-11-28"})],
    )
    responses.get(page_two, json=[{"id": 3, "body": "  " + MARKER}, {"id": 4, "body": MARKER + "\nold"}, {"id": 5, "body": MARKER}])
    patch = responses.patch(
        f"{GITHUB}/comments/4",
        json={"id": 4, "html_url": "https://github.com/acme/platform/pull/42#issuecomment-4"},
        match=[matchers.json_params_matcher({"body": body.read_text()})],
    )
    assert comment("--host", "github", "--project", "acme/platform", "--change", "42", "--body", str(body)) == 0
    assert patch.call_count == 1 and len(responses.calls) == 3
    assert (
        "updated the comment on github acme/platform #42: https://github.com/acme/platform/pull/42#issuecomment-4"
        in capsys.readouterr().out
    )


@responses.activate
def test_github_creates_the_comment_when_none_is_marked_adding_the_marker(tmp_path, token):
    plain = tmp_path / "preview.md"
    plain.write_text("### pulumi preview\n")
    responses.get(f"{GITHUB}/42/comments?per_page=100", json=[{"id": 1, "body": MARKER}])
    post = responses.post(
        f"{GITHUB}/42/comments",
        json={"id": 9, "html_url": "u"},
        status=201,
        match=[matchers.json_params_matcher({"body": "<!-- ml-platform-preview-dev -->\n### pulumi preview\n"})],
    )
    argv = ["--host", "github", "--project", "acme/platform", "--change", "42", "--body", str(plain), "--marker", "ml-platform-preview-dev"]
    assert comment(*argv) == 0
    assert post.call_count == 1


@responses.activate
def test_gitlab_pages_by_x_next_page_skips_system_notes_and_puts_the_marked_note(body, token):
    auth = matchers.header_matcher({"PRIVATE-TOKEN": "s3cret"})
    first = {"per_page": "100", "page": "1", "sort": "asc", "order_by": "created_at"}
    responses.get(
        GITLAB,
        json=[{"id": 10, "body": MARKER, "system": True}],
        headers={"X-Next-Page": "2", "X-Page": "1"},
        match=[matchers.query_param_matcher(first), auth],
    )
    responses.get(
        GITLAB,
        json=[{"id": 11, "body": "lgtm", "system": False}, {"id": 12, "body": MARKER + "\nold", "system": False}],
        headers={"X-Next-Page": "", "X-Page": "2"},
        match=[matchers.query_param_matcher({**first, "page": "2"}), auth],
    )
    put = responses.put(f"{GITLAB}/12", json={"id": 12}, match=[matchers.json_params_matcher({"body": body.read_text()}), auth])
    assert comment("--host", "gitlab", "--project", "acme/ml/platform", "--change", "5", "--body", str(body)) == 0
    assert put.call_count == 1


@responses.activate
def test_gitlab_creates_a_note_on_a_self_managed_instance_by_numeric_id(body, token, capsys):
    notes = "https://git.example.com/api/v4/projects/123/merge_requests/5/notes"
    responses.get(notes, json=[], headers={"X-Next-Page": ""})
    post = responses.post(notes, json={"id": 77}, status=201, match=[matchers.json_params_matcher({"body": body.read_text()})])
    argv = ["--host", "gitlab", "--api-url", "https://git.example.com/api/v4/", "--project", "123", "--change", "5", "--body", str(body)]
    assert comment(*argv) == 0
    assert post.call_count == 1 and "created the comment on gitlab 123 #5: note 77" in capsys.readouterr().out


AZURE_ARGS = ["--host", "azure", "--api-url", "https://dev.azure.com/acme", "--project", "ML Platform/platform", "--change", "9"]


@responses.activate
def test_azure_finds_the_thread_by_its_first_comment_and_patches_that_comment(body, token):
    version = matchers.query_param_matcher({"api-version": "7.1"})
    threads = [
        {"id": 1, "comments": [{"id": 1, "content": "please rename"}, {"id": 2, "content": MARKER}], "isDeleted": False},
        {"id": 2, "comments": [{"id": 1, "content": MARKER, "isDeleted": True}], "isDeleted": False},
        {"id": 3, "comments": [{"id": 1, "content": MARKER + "\nold"}], "isDeleted": False},
    ]
    responses.get(AZURE, json={"value": threads, "count": 3}, match=[version, matchers.header_matcher({"Authorization": "Bearer s3cret"})])
    patch = responses.patch(
        f"{AZURE}/3/comments/1", json={"id": 1}, match=[version, matchers.json_params_matcher({"content": body.read_text()})]
    )
    assert comment(*AZURE_ARGS, "--body", str(body)) == 0
    assert patch.call_count == 1


@responses.activate
def test_azure_creates_a_closed_thread_when_none_is_marked(body, token):
    responses.get(AZURE, json={"value": [], "count": 0})
    thread = {"comments": [{"parentCommentId": 0, "content": body.read_text(), "commentType": 1}], "status": "closed"}
    post = responses.post(
        AZURE, json={"id": 31}, match=[matchers.query_param_matcher({"api-version": "7.1"}), matchers.json_params_matcher(thread)]
    )
    assert comment(*AZURE_ARGS, "--body", str(body)) == 0
    assert post.call_count == 1


@responses.activate
def test_azure_sends_a_personal_access_token_as_basic_authentication(body, token):
    # Azure DevOps takes a PAT as the password of Basic authentication (any user name); Jenkins holds a PAT.
    basic = "Basic " + base64.b64encode(b":s3cret").decode()
    responses.get(AZURE, json={"value": [], "count": 0}, match=[matchers.header_matcher({"Authorization": basic})])
    post = responses.post(AZURE, json={"id": 31}, match=[matchers.header_matcher({"Authorization": basic})])
    assert comment(*AZURE_ARGS, "--body", str(body), "--token-scheme", "basic") == 0
    assert post.call_count == 1


@responses.activate
def test_a_refusal_is_exit_1_with_the_hosts_message(body, token, capsys):
    responses.get(f"{GITHUB}/42/comments?per_page=100", json={"message": "Resource not accessible by integration"}, status=403)
    assert comment("--host", "github", "--project", "acme/platform", "--change", "42", "--body", str(body)) == 1
    err = capsys.readouterr().err
    assert "listing the pull request's comments: HTTP 403 (may the token write comments?): Resource not accessible by integration" in err


@responses.activate
def test_without_a_token_optional_says_so_and_posts_nothing_else_exit_2(body, monkeypatch, capsys):
    monkeypatch.delenv(comments.TOKEN_ENV, raising=False)
    argv = ["--host", "github", "--project", "acme/platform", "--change", "42", "--body", str(body)]
    assert comment(*argv, "--optional") == 0
    assert capsys.readouterr().out.strip() == "no token: not posted"
    assert comment(*argv) == 2
    assert "error: no token: not posted: set CI_COMMENT_TOKEN" in capsys.readouterr().err
    assert len(responses.calls) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "azure", "--project", "p/r"], "--api-url: required with --host azure"),
        (["--host", "github", "--project", "platform"], "--project 'platform': with --host github give owner/repo"),
        (["--host", "azure", "--api-url", "dev.azure.com/acme", "--project", "p/r"], "--api-url dev.azure.com/acme: give an http(s) URL"),
        (["--host", "gitlab", "--project", "acme/x", "--change", "0"], "--change 0: give the pull or merge request's number"),
        (["--host", "gitlab", "--project", "acme/x", "--marker", "a -- b"], "--marker 'a -- b': give a non-empty text without '--'"),
        (["--host", "gitlab", "--project", "acme/x", "--body", "/nowhere.md"], "--body /nowhere.md: cannot read it (No such file"),
        (["--host", "github", "--project", "acme/x", "--token-scheme", "basic"], "--token-scheme basic is for --host azure"),
        (["--host", "github", "--project", "acme/x\n"], "with --host github give owner/repo"),
    ],
)
@responses.activate
def test_bad_input_exits_2_naming_the_flag_before_any_request(body, token, capsys, argv, message):
    given = dict(zip(argv[::2], argv[1::2], strict=True))
    full = {"--change": "1", "--body": str(body), **given}
    assert comment(*[part for pair in full.items() for part in pair]) == 2
    assert message in capsys.readouterr().err
    assert len(responses.calls) == 0


def test_a_long_body_is_cut_to_what_every_host_takes():
    text = comments.prepared("x" * 100_000, "m")
    assert len(text) == comments.MAX_BODY and text.startswith("<!-- m -->\n") and text.endswith("the full text is in the job's log.")
    assert json.dumps(comments.prepared("<!-- m -->\nok", "m")) == json.dumps("<!-- m -->\nok")


AZURE_ARGS = ("--host", "azure", "--api-url", "https://dev.azure.com/acme", "--project", "ML Platform/platform", "--change", "9")


@responses.activate
@pytest.mark.parametrize(
    ("host", "url", "answer", "said"),
    [
        # a token Azure DevOps does not accept: its sign-in page, HTTP 203
        ("azure", AZURE, {"body": "<html>Sign in</html>", "status": 203, "content_type": "text/html"}, "HTTP 203"),
        ("github", f"{GITHUB}/42/comments", {"body": "<html>proxy</html>", "status": 200, "content_type": "text/html"}, "no JSON"),
        ("gitlab", GITLAB, {"json": {"message": "moved"}, "status": 200}, "not the expected list"),
        ("azure", AZURE, {"json": {"count": 0}, "status": 200}, "no `value` list"),
    ],
)
def test_an_answer_that_is_not_the_apis_is_exit_1_never_a_traceback_or_a_new_comment(body, token, capsys, host, url, answer, said):
    responses.get(url, **answer)
    argv = {
        "github": ("--host", "github", "--project", "acme/platform", "--change", "42"),
        "gitlab": ("--host", "gitlab", "--project", "acme/ml/platform", "--change", "5"),
        "azure": AZURE_ARGS,
    }[host]
    assert comment(*argv, "--body", str(body)) == 1
    assert said in capsys.readouterr().err
    assert all(call.request.method == "GET" for call in responses.calls), "nothing posted"
