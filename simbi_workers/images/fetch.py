"""Reading an upload's bytes: a storage key, or an http(s) URL on the allow-list.

The URL comes from a user, so this is the SSRF boundary: only listed hosts, no other
schemes, every redirect re-checked, a size cap counted on the decoded body, and a total
deadline (requests' timeout applies per socket read, so a slow drip could outlast it).
"""

from __future__ import annotations

import time
from urllib.parse import urljoin, urlsplit

import requests

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services.storage import Storage

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 30
DOWNLOAD_DEADLINE_SECONDS = 60
MAX_REDIRECTS = 3
CHUNK_BYTES = 64 * 1024


def read_upload(source: str, storage: Storage, settings: Settings) -> bytes:
    """The upload's bytes. Permanent errors for refused or missing sources; JobError for
    failures a retry may fix (network, 5xx)."""
    data = download(source, settings) if "://" in source else storage.get_bytes(source)

    if len(data) > settings.upload_max_bytes:
        raise PermanentJobError(_too_big(source, len(data), settings.upload_max_bytes))
    return data


def download(url: str, settings: Settings) -> bytes:
    with requests.Session() as session:
        # Redirects are followed by hand so that each hop passes the allow-list.
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url, settings.upload_url_hosts)
            response = _get(session, url)
            with response:
                if not response.is_redirect:
                    _check_status(url, response)
                    return _read_capped(url, response, settings.upload_max_bytes)
                url = urljoin(url, response.headers["Location"])
    raise PermanentJobError(f"upload URL {describe(url)}: more than {MAX_REDIRECTS} redirects")


def check_url(url: str, allowed_hosts: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise PermanentJobError(f"upload URL scheme {parts.scheme!r} is not http or https")

    host = (parts.hostname or "").lower()
    if host not in {allowed.lower() for allowed in allowed_hosts}:
        raise PermanentJobError(
            f"upload URL host {host!r} is not in SIMBI_UPLOAD_URL_HOSTS ({describe(url)})"
        )


def describe(url: str) -> str:
    """The URL without query or fragment: signed URLs carry credentials there."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _get(session: requests.Session, url: str) -> requests.Response:
    try:
        return session.get(
            url,
            stream=True,
            allow_redirects=False,
            timeout=(CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS),
        )
    except requests.RequestException as exc:
        # Network trouble: the job stays retryable.
        raise JobError(f"upload URL {describe(url)} could not be fetched: {exc}") from None


def _check_status(url: str, response: requests.Response) -> None:
    status = response.status_code
    if status < 300:
        return
    message = f"upload URL {describe(url)} answered HTTP {status}"
    if status >= 500 or status == 429:
        raise JobError(message)
    raise PermanentJobError(message)


def _read_capped(url: str, response: requests.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PermanentJobError(_too_big(url, int(declared), max_bytes))

    # Counted after content decoding, so a gzip bomb is caught as well.
    deadline = time.monotonic() + DOWNLOAD_DEADLINE_SECONDS
    chunks, total = [], 0
    try:
        for chunk in response.iter_content(CHUNK_BYTES):
            total += len(chunk)
            if total > max_bytes:
                raise PermanentJobError(_too_big(url, total, max_bytes, at_least=True))
            if time.monotonic() > deadline:
                raise JobError(f"upload URL {describe(url)}: over {DOWNLOAD_DEADLINE_SECONDS}s")
            chunks.append(chunk)
    except requests.RequestException as exc:
        raise JobError(f"upload URL {describe(url)} broke off: {exc}") from None
    return b"".join(chunks)


def _too_big(source: str, size: int, max_bytes: int, at_least: bool = False) -> str:
    where = describe(source) if "://" in source else repr(source)
    size_text = f"at least {size}" if at_least else str(size)
    return (
        f"upload {where} is {size_text} bytes, over the limit of {max_bytes} "
        "(SIMBI_UPLOAD_MAX_BYTES)"
    )
