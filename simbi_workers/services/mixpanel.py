"""The mixpanel host service: the official library when MIXPANEL_TOKEN is set, otherwise
the outbox var/outbox/mixpanel.jsonl.

Every message goes through `_deliver`, which picks the backend and translates the
library's errors; each kind of message (track, people_set, people_delete) is one public
method that validates its input and hands `_deliver` a record and a sender.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

import mixpanel

from simbi_workers.config import Settings
from simbi_workers.errors import JobError, PermanentJobError
from simbi_workers.services import outbox

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10

# Retries inside one request, for 5xx and connection errors on https only (the library
# mounts its retrying adapter for https). Kept low: the job's own retry policy is the
# real one, and a worker should not sit in back-off for long.
REQUEST_RETRY_LIMIT = 2

# Mixpanel's rule for $insert_id: at most 36 characters, letters, digits and '-'.
_INSERT_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")

# Set from the track parameters (or by the library); a property of the same name would
# silently override them, and "token" would send the event to another project.
_RESERVED_PROPERTIES = ("token", "distinct_id", "time", "$insert_id")


class Mixpanel:
    HOST_METHODS = ("track", "people_set", "people_delete")

    def __init__(self, settings: Settings):
        self._outbox_dir = settings.outbox_dir
        token = settings.mixpanel_token
        self._token = token.get_secret_value() if token else None
        self._client = _client(self._token, settings.mixpanel_api_url) if self._token else None

    def track(
        self,
        distinct_id: str | int,
        event: str,
        properties: dict[str, Any] | None,
        time: int | float,
        insert_id: str,
    ) -> dict[str, str]:
        """Record `event` for `distinct_id` at Unix time `time` (seconds).

        `insert_id` is required because Mixpanel drops a second event with the same one:
        derive it from the job (not at random) so that a retried job is counted once.
        NOTE: /track refuses events more than 5 days old; a job retried after that fails.
        """
        _check_track(distinct_id, event, properties, time, insert_id)

        record = {
            "distinct_id": distinct_id,
            "event": event,
            "properties": properties or {},
            "time": time,
            "insert_id": insert_id,
        }
        sent = {**record["properties"], "time": time, "$insert_id": insert_id}
        return self._deliver("track", record, lambda mp: mp.track(str(distinct_id), event, sent))

    def people_set(self, distinct_id: str | int, properties: dict[str, Any]) -> dict[str, str]:
        """Set `properties` on the profile of `distinct_id`, creating it when missing.

        Setting the same values again changes nothing, so a retried job needs no insert id.
        `$ignore_time` keeps this sync from moving the profile's "Last Seen": the person
        did nothing, a worker did.
        """
        _check_distinct_id(distinct_id)
        _check_profile(properties)

        record = {"distinct_id": distinct_id, "properties": properties}
        meta = {"$ignore_time": True}
        return self._deliver(
            "people_set",
            record,
            lambda mp: mp.people_set(str(distinct_id), properties, meta=meta),
        )

    def people_delete(self, distinct_id: str | int) -> dict[str, str]:
        """Delete the profile of `distinct_id` for good; deleting a missing one is a no-op
        at Mixpanel, so running it again is harmless."""
        _check_distinct_id(distinct_id)

        record = {"distinct_id": distinct_id}
        return self._deliver("people_delete", record, lambda mp: mp.people_delete(str(distinct_id)))

    def _deliver(
        self, kind: str, record: dict[str, Any], send: Callable[[mixpanel.Mixpanel], None]
    ) -> dict[str, str]:
        if self._client is None:
            outbox.append(self._outbox_dir, "mixpanel", {"kind": kind, **record})
            return {"delivered": "outbox"}

        try:
            send(self._client)
        except mixpanel.MixpanelException as exc:
            # Network trouble or an error status from Mixpanel: retryable. The library's
            # messages may quote the request; the token is masked and the chain dropped.
            raise JobError(f"mixpanel {kind} failed: {self._redact(str(exc))}") from None

        log.debug("mixpanel sent kind=%s", kind)
        return {"delivered": "mixpanel"}

    def _redact(self, message: str) -> str:
        return message.replace(self._token, "**********") if self._token else message


def _client(token: str, api_url: str) -> mixpanel.Mixpanel:
    # Every endpoint named, so that MIXPANEL_API_URL (a proxy, the EU residency host, a
    # test server) is honoured for each: the library's api_host is always https.
    base = api_url.rstrip("/")
    consumer = mixpanel.Consumer(
        events_url=f"{base}/track",
        people_url=f"{base}/engage",
        groups_url=f"{base}/groups",
        import_url=f"{base}/import",
        request_timeout=REQUEST_TIMEOUT_SECONDS,
        retry_limit=REQUEST_RETRY_LIMIT,
    )
    return mixpanel.Mixpanel(token, consumer=consumer)


def _check_track(distinct_id, event, properties, time, insert_id) -> None:
    _check_distinct_id(distinct_id)

    if not isinstance(event, str) or not event:
        raise PermanentJobError(f"mixpanel.track: event must be a non-empty string, got {event!r}")

    _check_properties(properties)

    if isinstance(time, bool) or not isinstance(time, int | float) or time < 0:
        raise PermanentJobError(f"mixpanel.track: time must be Unix seconds, got {time!r}")

    if not isinstance(insert_id, str) or not _INSERT_ID.match(insert_id):
        raise PermanentJobError(
            f"mixpanel.track: insert_id must be 1-36 letters, digits or '-', got {insert_id!r}"
        )


def _check_distinct_id(distinct_id: Any) -> None:
    valid = isinstance(distinct_id, str | int) and not isinstance(distinct_id, bool)
    if not valid or distinct_id == "":
        raise PermanentJobError(
            f"mixpanel: distinct_id must be a non-empty string or an integer, got {distinct_id!r}"
        )


def _check_profile(properties: Any) -> None:
    if not isinstance(properties, dict) or not properties:
        raise PermanentJobError(
            "mixpanel.people_set: properties must be a non-empty object, "
            f"got {type(properties).__name__} {_shown(properties)}"
        )

    if not all(isinstance(name, str) and name for name in properties):
        raise PermanentJobError(
            "mixpanel.people_set: property names must be non-empty strings, "
            f"got {_shown(list(properties))}"
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def _check_properties(properties: Any) -> None:
    if properties is None:
        return

    if not isinstance(properties, dict) or not all(isinstance(k, str) for k in properties):
        raise PermanentJobError(
            "mixpanel: properties must be an object with string keys, "
            f"got {type(properties).__name__}"
        )

    reserved = [name for name in _RESERVED_PROPERTIES if name in properties]
    if reserved:
        raise PermanentJobError(
            f"mixpanel: properties may not set {', '.join(reserved)}; "
            "pass distinct_id, time and insert_id as parameters"
        )
