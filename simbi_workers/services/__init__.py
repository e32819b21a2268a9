"""The host services: one object per service, shared by Python workers (directly) and by
Ruby and Node children (through `call`, which only reaches each service's HOST_METHODS)."""

from __future__ import annotations

import inspect
from functools import cached_property
from typing import Any

import redis

from simbi_workers.config import Settings
from simbi_workers.errors import PermanentJobError


class UnknownHostCall(PermanentJobError):
    """A child asked for a service or method that does not exist."""


class Services:
    NAMES = (
        "db",
        "redis",
        "storage",
        "slack",
        "mixpanel",
        "mail",
        "sms",
        "push",
        "jobs",
        "search",
        "social",
    )

    def __init__(self, settings: Settings, connection: redis.Redis):
        self.settings = settings
        self.connection = connection

    @cached_property
    def db(self):
        from simbi_workers.services.db import Database

        return Database(self.settings.database_url_or_default)

    @cached_property
    def redis(self):
        from simbi_workers.services.redis_kv import AppRedis

        return AppRedis(self.connection)

    @cached_property
    def storage(self):
        from simbi_workers.services.storage import from_settings

        return from_settings(self.settings)

    @cached_property
    def slack(self):
        from simbi_workers.services.slack import Slack

        return Slack(self.settings, connection=self.connection)

    @cached_property
    def mixpanel(self):
        from simbi_workers.services.mixpanel import Mixpanel

        return Mixpanel(self.settings)

    @cached_property
    def mail(self):
        from simbi_workers.services.mail import Mail

        return Mail(self.settings)

    @cached_property
    def sms(self):
        from simbi_workers.services.sms import Sms

        return Sms(self.settings, connection=self.connection)

    @cached_property
    def push(self):
        from simbi_workers.services.push import Push

        return Push(self.settings, connection=self.connection)

    @cached_property
    def jobs(self):
        from simbi_workers.services.jobs import Jobs

        return Jobs(self.connection)

    @cached_property
    def search(self):
        from simbi_workers.services.search import Search

        return Search(self.db)

    @cached_property
    def social(self):
        from simbi_workers.services.social import Social

        return Social(self.settings)

    def call(self, service: str, method: str, params: dict[str, Any]) -> Any:
        """Run a child's host call. Raises JobError subclasses that become error replies."""
        if service not in self.NAMES:
            raise UnknownHostCall(
                f"unknown host service {service!r} (known: {', '.join(self.NAMES)})"
            )
        target = getattr(self, service)
        if method not in target.HOST_METHODS:
            known = ", ".join(target.HOST_METHODS)
            raise UnknownHostCall(f"unknown method {service}.{method} (known: {known})")
        if not isinstance(params, dict):
            raise UnknownHostCall(f"{service}.{method}: params must be a JSON object")
        function = getattr(target, method)
        try:
            inspect.signature(function).bind(**params)
        except TypeError as exc:
            raise UnknownHostCall(f"{service}.{method}: bad parameters: {exc}") from None
        return function(**params)
