"""The social host service: a user's friend list from the Facebook Graph API or the Google
People API, read with the user's own access token through `requests`.

The token is the user's credential. It goes only to the configured API host (a
`paging.next` URL on any other host is refused), and never into an error message, a log
line or a traceback: provider answers and network errors are redacted before they are
quoted, and raised `from None` so no frame holding the token is printed.

Answers become the provider errors of docs/protocol.md: an expired or invalid token
(Facebook error code 190, Google 401 UNAUTHENTICATED) is InvalidToken, permanent; 429
RateLimited and 5xx ProviderUnavailable retry; any other refusal is ProviderRejected.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

import requests

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services.provider_errors import (
    ProviderRejected,
    ProviderUnavailable,
    for_http_status,
)

log = logging.getLogger(__name__)

PROVIDERS = ("facebook", "google")
REQUEST_TIMEOUT_SECONDS = 15
PAGE_SIZE = 100
# 50 pages of 100: far more friends than either API hands an app, and a bound on a job's
# run time should an API page forever.
MAX_PAGES = 50
MAX_BODY_CHARS_IN_ERRORS = 200
FACEBOOK_INVALID_TOKEN_CODE = 190  # OAuthException: expired, revoked or malformed token
REDACTED_TOKEN = "[redacted]"

_QUERY_TOKEN = re.compile(r"(access_token=)[^&\s\"']+")


class InvalidToken(PermanentJobError):
    """The access token is expired, revoked or not a token: the user must sign in again."""


class _QueryTokenFilter(logging.Filter):
    """urllib3 logs each request line at DEBUG, query string included, and a Facebook URL
    carries the token there. setup_logging quiets urllib3, but a DEBUG run that lifts it
    must still not print the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.args:
            record.args = tuple(
                _QUERY_TOKEN.sub(rf"\1{REDACTED_TOKEN}", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


_URLLIB3_LOGGER = logging.getLogger("urllib3.connectionpool")
if not any(isinstance(f, _QueryTokenFilter) for f in _URLLIB3_LOGGER.filters):
    _URLLIB3_LOGGER.addFilter(_QueryTokenFilter())


class Social:
    HOST_METHODS = ("friends",)

    def __init__(self, settings: Settings, *, max_pages: int = MAX_PAGES):
        self._bases = {
            "facebook": settings.social_facebook_api_url.rstrip("/"),
            "google": settings.social_google_api_url.rstrip("/"),
        }
        self._max_pages = max_pages
        self._session = requests.Session()

    def friends(self, provider: str, access_token: str) -> list[dict[str, str]]:
        """The user's friends at `provider` (facebook | google), each {uid, name}."""
        provider, base = self._base(provider)
        _check_token(access_token)
        pages = _Pages(self._session, provider, base, access_token)

        if provider == "facebook":
            friends = self._facebook(pages, base)
        else:
            friends = self._google(pages, base)

        log.debug("social friends provider=%s count=%d", provider, len(friends))
        return friends

    def _base(self, provider: Any) -> tuple[str, str]:
        if provider not in PROVIDERS:
            raise PermanentJobError(
                f"social.friends: provider must be one of {', '.join(PROVIDERS)}, got {provider!r}"
            )
        base = self._bases[provider]
        if not base:
            variable = f"SOCIAL_{provider.upper()}_API_URL"
            raise PermanentJobError(
                f"social.friends: {provider} is switched off ({variable} is empty); "
                f"set it to the API's base URL"
            )
        return provider, base

    def _facebook(self, pages: _Pages, base: str) -> list[dict[str, str]]:
        url = f"{base}/me/friends"
        params: dict[str, Any] = {"fields": "id,name", "limit": PAGE_SIZE}
        friends: list[dict[str, str]] = []
        for _ in range(self._max_pages):
            body = pages.get(url, {**params, "access_token": pages.token})
            friends += _friends(
                _friend(item.get("id"), item.get("name")) for item in _list(body, "data")
            )

            following = (body.get("paging") or {}).get("next")
            if not following:
                return friends
            url, params = pages.same_host(following)
        return self._capped("facebook", friends)

    def _google(self, pages: _Pages, base: str) -> list[dict[str, str]]:
        url = f"{base}/v1/people/me/connections"
        params: dict[str, Any] = {"personFields": "names", "pageSize": PAGE_SIZE}
        headers = {"Authorization": f"Bearer {pages.token}"}
        friends: list[dict[str, str]] = []
        for _ in range(self._max_pages):
            body = pages.get(url, params, headers)
            friends += _friends(_google_friend(person) for person in _list(body, "connections"))

            token = body.get("nextPageToken")
            if not token:
                return friends
            params = {**params, "pageToken": token}
        return self._capped("google", friends)

    def _capped(self, provider: str, friends: list[dict[str, str]]) -> list[dict[str, str]]:
        log.warning(
            "social: stopped reading the %s friend list after %d pages (%d friends)",
            provider,
            self._max_pages,
            len(friends),
        )
        return friends


class _Pages:
    """GETs of one friend list: answers checked, errors redacted of the token."""

    def __init__(self, session: requests.Session, provider: str, base: str, token: str):
        self.session = session
        self.provider = provider
        self.base = urlsplit(base)
        self.token = token

    def get(
        self, url: str, params: dict[str, Any], headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            response = self.session.get(
                url, params=params, headers=headers, timeout=REQUEST_TIMEOUT_SECONDS
            )
        except requests.RequestException as exc:
            # `from None`: the exception's URL, and the frames' locals, hold the token.
            reason = self._redact(f"{type(exc).__name__}: {exc}")
            raise ProviderUnavailable(
                f"social: could not reach the {self.provider} API: {reason}"
            ) from None
        if response.status_code >= 400:
            raise self._failure(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ProviderUnavailable(
                f"social: the {self.provider} API answered status {response.status_code} "
                f"with something that is not a JSON object ({self._excerpt(response)})"
            )
        return body

    def same_host(self, url: Any) -> tuple[str, dict[str, Any]]:
        """A paging.next URL split into URL and params, if it is on the configured host."""
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or (parts.scheme, parts.netloc) != (self.base.scheme, self.base.netloc):
            where = f"{parts.scheme}://{parts.hostname}" if parts else repr(type(url).__name__)
            raise ProviderRejected(
                f"social: the {self.provider} API's paging.next points at {where}, not "
                f"{self.base.scheme}://{self.base.netloc}; refused, the token goes nowhere else"
            )
        # The token is added back by the caller; whatever the URL carries is dropped.
        params = {k: v for k, v in parse_qsl(parts.query) if k != "access_token"}
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), params

    def _failure(self, response: requests.Response) -> JobError:
        status = response.status_code
        message = (
            f"social: the {self.provider} API refused the friend list "
            f"(status {status}, body {self._excerpt(response)})"
        )
        if _invalid_token(self.provider, status, response):
            return InvalidToken(
                f"{message}; the access token is expired or invalid, the user must "
                f"connect {self.provider} again"
            )
        return for_http_status(status, message, response.headers)

    def _excerpt(self, response: requests.Response) -> str:
        # Whitespace collapsed: an indented JSON error would spend the excerpt on spaces.
        text = " ".join((response.text or "").split())
        return repr(self._redact(text)[:MAX_BODY_CHARS_IN_ERRORS])

    def _redact(self, text: str) -> str:
        # As sent, and as it appears percent-encoded in a quoted URL.
        for form in (self.token, quote(self.token, safe="")):
            text = text.replace(form, REDACTED_TOKEN)
        return _QUERY_TOKEN.sub(rf"\1{REDACTED_TOKEN}", text)


def _invalid_token(provider: str, status: int, response: requests.Response) -> bool:
    if provider == "google":
        return status == 401
    if status not in (400, 401):
        return False
    try:
        error = response.json().get("error") or {}
        return error.get("code") == FACEBOOK_INVALID_TOKEN_CODE
    except (ValueError, AttributeError):
        return False


def _check_token(token: Any) -> None:
    # Never echo the value: it is a credential.
    if not isinstance(token, str) or not token.strip():
        kind = "an empty string" if isinstance(token, str) else f"a {type(token).__name__}"
        raise PermanentJobError(f"social.friends: access_token must be a token, got {kind}")
    if any(ch.isspace() for ch in token):
        raise PermanentJobError("social.friends: access_token must not contain whitespace")


def _list(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key) or []
    if not isinstance(items, list):
        raise ProviderUnavailable(f"social: the answer's {key!r} is not a list")
    return [item for item in items if isinstance(item, dict)]


def _friend(uid: Any, name: Any) -> dict[str, str]:
    return {"uid": str(uid or ""), "name": str(name or "")}


def _friends(found: Iterable[dict[str, str]]) -> list[dict[str, str]]:
    # An entry without an id cannot be stored or linked.
    return [friend for friend in found if friend["uid"]]


def _google_friend(person: dict[str, Any]) -> dict[str, str]:
    # A contact's resourceName is "people/c…", its own id; a contact who is a Google
    # account also has a PROFILE source whose id is the account's, which a user's
    # social_accounts row records. Prefer that, so such friends can be linked.
    sources = (person.get("metadata") or {}).get("sources") or []
    profile = next((s.get("id") for s in sources if s.get("type") == "PROFILE"), None)
    uid = profile or str(person.get("resourceName") or "").removeprefix("people/")
    names = person.get("names") or []
    primary = next((n for n in names if (n.get("metadata") or {}).get("primary")), None)
    chosen = primary or (names[0] if names else {})
    return _friend(uid, chosen.get("displayName"))
