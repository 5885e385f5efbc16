"""`python -m infra ci comment`: one comment per change (pull request, merge request), found by the marker
`<!-- TEXT -->` at the start of its body and updated in place, else created; through each host's REST API:

- `github`: issue comments (every pull request is an issue).
  https://docs.github.com/en/rest/issues/comments (list: `GET /repos/{owner}/{repo}/issues/{n}/comments`, pages
  through the `Link` header's `rel="next"`; update: `PATCH /repos/{owner}/{repo}/issues/comments/{id}`; create:
  `POST /repos/{owner}/{repo}/issues/{n}/comments`; body `{"body": text}`; `Authorization: Bearer <token>`).
- `gitlab`: merge request notes. https://docs.gitlab.com/api/notes/ (list: `GET /projects/:id/merge_requests/:iid/notes`,
  pages through the `X-Next-Page` header, https://docs.gitlab.com/api/rest/#pagination; update: `PUT .../notes/:note_id`;
  create: `POST .../notes`; body `{"body": text}`; `PRIVATE-TOKEN: <token>`, a project access token: the job
  token cannot write notes). `:id` is the numeric id or the URL-encoded `group/project` path.
- `azure`: pull request threads. https://learn.microsoft.com/en-us/rest/api/azure/devops/git/pull-request-threads/list
  (`GET {org}/{project}/_apis/git/repositories/{repo}/pullRequests/{id}/threads?api-version=7.1`, answer
  `{"value": [thread], "count": n}`, each thread with `comments`, the first being the thread's own text; one page),
  .../pull-request-threads/create (`POST .../threads`, `{"comments": [{"parentCommentId": 0, "content": text,
  "commentType": 1}], "status": ...}`), .../pull-request-thread-comments/update (`PATCH
  .../threads/{threadId}/comments/{commentId}`, `{"content": text}`); `Authorization: Bearer <System.AccessToken>`
  in a pipeline, or with `--token-scheme basic` a personal access token as `Authorization: Basic base64(":" + PAT)`
  (https://learn.microsoft.com/azure/devops/organizations/accounts/use-personal-access-tokens-to-authenticate: a
  PAT is the password of Basic authentication, any user name), as Jenkins holds one.
"""

from __future__ import annotations

import base64
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

from ml_platform.infra.delivery.ci import EXIT_DONE, EXIT_FAILED, CiInputError

TOKEN_ENV = "CI_COMMENT_TOKEN"
HOSTS = ("github", "gitlab", "azure")
TOKEN_SCHEMES = ("bearer", "basic")
DEFAULT_API_URL = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
TIMEOUT_SECONDS = 30
MAX_BODY = 65_000
"""Characters of a body posted: GitHub refuses comments over 65,536; the others allow more, one cap for all."""
PER_PAGE = 100
AZURE_API_VERSION = "7.1"
AZURE_THREAD_STATUS = "closed"
"""A new thread is created closed: it informs, and never holds a pull request whose policy requires resolved comments."""
_PROJECT = {
    "github": (re.compile(r"^[A-Za-z0-9-]+/[A-Za-z0-9._-]+\Z"), "owner/repo"),
    "gitlab": (re.compile(r"^(\d+|[\w.-]+(/[\w.-]+)+)\Z"), "the numeric project id or group/project"),
    "azure": (re.compile(r"^[^/]+/[^/]+\Z"), "<project>/<repositoryId>"),
}


class CommentError(Exception):
    """The host refused a request or could not be reached (exit 1); the message carries the host's answer."""


@dataclass(frozen=True)
class Target:
    """Where the comment goes: `host` one of HOSTS, `api_url` without a trailing slash, `project` in the host's
    form (see _PROJECT), `change` the pull request, merge request or pull request id (1 or more), `token_scheme`
    how Azure DevOps takes the token (`bearer`: System.AccessToken; `basic`: a personal access token)."""

    host: str
    api_url: str
    project: str
    change: int
    token_scheme: str = "bearer"


def target(host: str, api_url: str | None, project: str, change: int, token_scheme: str = "bearer") -> Target:
    """A checked Target; `api_url` None takes the host's default (Azure has none: https://dev.azure.com/<org>).
    Raises CiInputError naming --host, --api-url, --project, --change or --token-scheme (`basic` is Azure DevOps'
    way for personal access tokens; GitHub and GitLab take theirs as they take any token)."""
    if host not in HOSTS:
        raise CiInputError(f"--host {host}: give one of {', '.join(HOSTS)}")
    if token_scheme not in TOKEN_SCHEMES:
        raise CiInputError(f"--token-scheme {token_scheme}: give one of {', '.join(TOKEN_SCHEMES)}")
    if token_scheme != "bearer" and host != "azure":
        raise CiInputError(f"--token-scheme {token_scheme} is for --host azure (a personal access token); {host} takes any token as is")
    api_url = api_url or DEFAULT_API_URL.get(host)
    if not api_url:
        raise CiInputError("--api-url: required with --host azure: the organisation's URL, e.g. https://dev.azure.com/<org>")
    if not re.match(r"^https?://[^/\s]+", api_url):
        raise CiInputError(f"--api-url {api_url}: give an http(s) URL, e.g. {DEFAULT_API_URL.get(host, 'https://dev.azure.com/<org>')}")
    pattern, shape = _PROJECT[host]
    if not pattern.match(project):
        raise CiInputError(f"--project {project!r}: with --host {host} give {shape}")
    if change < 1:
        raise CiInputError(f"--change {change}: give the pull or merge request's number (1 or more)")
    return Target(host, api_url.rstrip("/"), project, change, token_scheme)


def marker_line(marker: str) -> str:
    """`ml-platform-plan-diff` -> `<!-- ml-platform-plan-diff -->`; CiInputError naming --marker when the text is
    empty or would end the HTML comment early."""
    if not marker.strip() or "--" in marker or "\n" in marker:
        raise CiInputError(f"--marker {marker!r}: give a non-empty text without '--' or a line break, e.g. ml-platform-plan-diff")
    return f"<!-- {marker.strip()} -->"


def prepared(body: str, marker: str) -> str:
    """The body as posted: starting with the marker line (added when it does not), at most MAX_BODY characters
    (cut with a note saying so)."""
    line = marker_line(marker)
    text = body if body.startswith(line) else f"{line}\n{body}"
    if len(text) > MAX_BODY:
        note = "\n\n… cut here: the full text is in the job's log."
        text = text[: MAX_BODY - len(note)] + note
    return text


def _failed(response: requests.Response, what: str) -> CommentError:
    try:
        answer = response.json()
        message = str((answer.get("message") or answer.get("error") or answer) if isinstance(answer, dict) else answer)
    except ValueError:
        message = response.text.strip()[:300]
    hint = {401: " (is the token valid?)", 403: " (may the token write comments?)", 404: " (are --project and --change right?)"}
    return CommentError(f"{what}: HTTP {response.status_code}{hint.get(response.status_code, '')}: {message}")


class _Host:
    """One host's three calls: the id of the first comment starting with a marker line, update it, create one."""

    def __init__(self, target: Target, token: str, session: requests.Session):
        self.target, self.session = target, session
        self.session.headers.update(self.headers(token))

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def call(self, method: str, url: str, what: str, **kwargs) -> requests.Response:
        try:
            response = self.session.request(method, url, timeout=TIMEOUT_SECONDS, **kwargs)
        except requests.RequestException as err:
            raise CommentError(f"{what}: {self.target.api_url} cannot be reached ({err})") from None
        # 203: Azure DevOps answers a token it does not accept with its sign-in page, "non-authoritative".
        if not response.ok or response.status_code == 203:
            raise _failed(response, what)
        return response

    def answer(self, response: requests.Response, what: str, shape: type) -> Any:
        """The response's JSON, which must be a `shape` (list or dict): anything else (an HTML page, an error object
        with a 2xx status) is the host's refusal, said in one line, never a traceback or a silent new comment."""
        try:
            document = response.json()
        except ValueError:
            raise CommentError(f"{what}: HTTP {response.status_code} but no JSON: {response.text.strip()[:200]}") from None
        if not isinstance(document, shape):
            raise CommentError(f"{what}: HTTP {response.status_code} but not the expected {shape.__name__}: {str(document)[:200]}")
        return document

    def find(self, line: str) -> object | None:
        raise NotImplementedError

    def update(self, found: object, body: str) -> str:
        raise NotImplementedError

    def create(self, body: str) -> str:
        raise NotImplementedError


class GitHub(_Host):
    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

    @property
    def _issue(self) -> str:
        return f"{self.target.api_url}/repos/{self.target.project}/issues"

    def find(self, line: str) -> int | None:
        url: str | None = f"{self._issue}/{self.target.change}/comments?per_page={PER_PAGE}"
        while url:
            response = self.call("GET", url, "listing the pull request's comments")
            for comment in self.answer(response, "listing the pull request's comments", list):
                if (comment.get("body") or "").startswith(line):
                    return comment["id"]
            url = response.links.get("next", {}).get("url")
        return None

    def update(self, found: object, body: str) -> str:
        response = self.call("PATCH", f"{self._issue}/comments/{found}", "updating the comment", json={"body": body})
        return self.answer(response, "updating the comment", dict).get("html_url", "")

    def create(self, body: str) -> str:
        url = f"{self._issue}/{self.target.change}/comments"
        response = self.call("POST", url, "creating the comment", json={"body": body})
        return self.answer(response, "creating the comment", dict).get("html_url", "")


class GitLab(_Host):
    def headers(self, token: str) -> dict[str, str]:
        return {"PRIVATE-TOKEN": token}

    @property
    def _notes(self) -> str:
        return f"{self.target.api_url}/projects/{quote(self.target.project, safe='')}/merge_requests/{self.target.change}/notes"

    def find(self, line: str) -> int | None:
        page: str | None = "1"
        while page:
            params = {"per_page": PER_PAGE, "page": page, "sort": "asc", "order_by": "created_at"}
            response = self.call("GET", self._notes, "listing the merge request's notes", params=params)
            for note in self.answer(response, "listing the merge request's notes", list):
                if not note.get("system") and (note.get("body") or "").startswith(line):
                    return note["id"]
            page = response.headers.get("X-Next-Page", "").strip()
        return None

    def update(self, found: object, body: str) -> str:
        self.call("PUT", f"{self._notes}/{found}", "updating the note", json={"body": body})
        return f"note {found}"

    def create(self, body: str) -> str:
        response = self.call("POST", self._notes, "creating the note", json={"body": body})
        return f"note {self.answer(response, 'creating the note', dict).get('id')}"


class Azure(_Host):
    def headers(self, token: str) -> dict[str, str]:
        if self.target.token_scheme == "basic":
            return {"Authorization": "Basic " + base64.b64encode(f":{token}".encode()).decode()}
        return super().headers(token)

    @property
    def _threads(self) -> str:
        project, repository = self.target.project.split("/")
        return (
            f"{self.target.api_url}/{quote(project)}/_apis/git/repositories/{quote(repository)}/pullRequests/{self.target.change}/threads"
        )

    def find(self, line: str) -> tuple[int, int] | None:
        response = self.call("GET", self._threads, "listing the pull request's threads", params={"api-version": AZURE_API_VERSION})
        threads = self.answer(response, "listing the pull request's threads", dict).get("value")
        if not isinstance(threads, list):
            raise CommentError(f"listing the pull request's threads: HTTP {response.status_code} but no `value` list")
        for thread in threads:
            comments = [c for c in thread.get("comments") or [] if not c.get("isDeleted")]
            if not thread.get("isDeleted") and comments and (comments[0].get("content") or "").startswith(line):
                return thread["id"], comments[0]["id"]
        return None

    def update(self, found: object, body: str) -> str:
        thread, comment = found  # type: ignore[misc]
        url = f"{self._threads}/{thread}/comments/{comment}"
        self.call("PATCH", url, "updating the thread's comment", params={"api-version": AZURE_API_VERSION}, json={"content": body})
        return f"thread {thread}"

    def create(self, body: str) -> str:
        thread = {"comments": [{"parentCommentId": 0, "content": body, "commentType": 1}], "status": AZURE_THREAD_STATUS}
        answer = self.call("POST", self._threads, "creating the thread", params={"api-version": AZURE_API_VERSION}, json=thread)
        return f"thread {self.answer(answer, 'creating the thread', dict).get('id')}"


HOST_CLASSES: dict[str, type[_Host]] = {"github": GitHub, "gitlab": GitLab, "azure": Azure}


def upsert(target: Target, body: str, marker: str, token: str, session: requests.Session | None = None) -> tuple[str, str]:
    """Update the change's comment whose body starts with `<!-- marker -->` (the first one, paging through all),
    else create one; the body gets the marker line when it lacks it (see prepared). Returns ("updated" or
    "created", the comment's URL or id). Raises CommentError when the host refuses or cannot be reached."""
    text = prepared(body, marker)
    host = HOST_CLASSES[target.host](target, token, session or requests.Session())
    found = host.find(marker_line(marker))
    if found is not None:
        return "updated", host.update(found, text)
    return "created", host.create(text)


def post(target: Target, body_file: Path, marker: str, token: str | None, optional: bool = False, say=print) -> int:
    """The `comment` step: read `body_file`, then upsert it (above) with `token`. Without a token: with `optional`
    (a change from a fork, whose token cannot comment) say "no token: not posted" and return 0, else raise
    CiInputError. Returns 0 when posted, 1 when the host refused (its answer said); raises CiInputError naming
    --body or --marker before any request."""
    marker_line(marker)
    try:
        body = body_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise CiInputError(f"--body {body_file}: cannot read it ({getattr(err, 'strerror', None) or err})") from None
    if not (token or "").strip():
        if optional:
            say("no token: not posted")
            return EXIT_DONE
        raise CiInputError(
            f"no token: not posted: set {TOKEN_ENV} to a token that may write comments, or pass --optional where none is "
            "expected (a change from a fork)"
        )
    try:
        action, where = upsert(target, body, marker, token.strip())
    except CommentError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_FAILED
    say(f"{action} the comment on {target.host} {target.project} #{target.change}: {where}")
    return EXIT_DONE
