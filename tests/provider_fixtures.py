"""Local stand-ins for the providers behind the mail, sms and push host services, shared by
the service tests and the integration tests that run the Ruby workers through them: an
SMTP server (aiosmtpd) with a throwaway CA for STARTTLS, Twilio's and OneSignal's REST
APIs on pytest-httpserver, and FCM answered by `responses` with a locally generated
service-account key. And the worker process those tests drive in-process, with its real
Ruby and Node children: build it, run a job through it, read what it left in the outboxes.

A test module uses a fixture by naming it at module level, e.g.
`smtp_server = provider_fixtures.smtp_server` (pytest finds fixtures among a module's
attributes; an assignment, unlike an import, does not upset ruff's F811).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any

import firebase_admin
import pytest
import responses
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from simbi_workers import catalog, keys
from simbi_workers.client import Client
from simbi_workers.config import Settings
from simbi_workers.worker import WorkerProcess
from tests.conftest import free_port

# Every setting that would send to a real provider, and those that shape a message.
PROVIDER_ENV = (
    "SMTP_URL",
    "SMTP_CA_FILE",
    "MAIL_FROM",
    "SIMBI_UNSUBSCRIBE_SECRET",
    "SIMBI_APP_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_API_URL",
    "FCM_SERVICE_ACCOUNT_FILE",
    "ONESIGNAL_APP_ID",
    "ONESIGNAL_API_KEY",
    "ONESIGNAL_API_URL",
    "MIXPANEL_TOKEN",
    "MIXPANEL_API_URL",
)


@pytest.fixture(autouse=True)
def no_provider_settings_from_the_shell(monkeypatch):
    """A developer's real provider settings must not turn these tests into real sends."""
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)


# SMTP: a server that records what it receives

SMTP_USER = "mailer"
SMTP_PASSWORD = "s3cr3t:p@ss/w0rd"  # ':', '@' and '/' must survive percent-decoding


@dataclass
class Recorder:
    """aiosmtpd handler: keeps each message, refuses recipients on request."""

    refuse_rcpt: str | None = None  # e.g. "550 5.1.1 no such user"
    received: list = field(default_factory=list)
    logins: list = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse_rcpt:
            return self.refuse_rcpt
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode() == SMTP_USER and auth_data.password.decode() == SMTP_PASSWORD
        )
        self.logins.append((mechanism, auth_data.login.decode(), ok))
        # handled=False: aiosmtpd then answers 535 itself.
        return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server():
    """Start a Controller with the given options; stops every one at the end."""
    controllers = []

    def start(recorder: Recorder, **options) -> int:
        port = free_port()
        controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@dataclass
class Tls:
    ca_file: Path
    server_context: ssl.SSLContext


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> Tls:
    """A throwaway CA and a server certificate for 127.0.0.1 that it signed."""
    directory = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "simbi test CA")])
    ca_cert = (
        _certificate(ca_name, ca_name, ca_key.public_key(), ca_key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    cert = (
        _certificate(name, ca_name, key.public_key(), ca_key)
        .add_extension(san, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )

    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file = directory / "server.pem"
    cert_file.write_bytes(
        cert.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file)
    return Tls(ca_file=ca_file, server_context=context)


def _certificate(subject, issuer, public_key, signing_key) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
    )


# Twilio: its Messages API, served by pytest-httpserver

TWILIO_SID = "AC00000000000000000000000000000001"
TWILIO_TOKEN = "tw1l10AuthT0kenS3cr3t"
TWILIO_FROM = "+15005550006"
TWILIO_MESSAGES_PATH = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


def use_twilio(monkeypatch, api_url: str) -> None:
    """Settings read after this send SMS through the twilio library to `api_url`."""
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", TWILIO_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("TWILIO_FROM_NUMBER", TWILIO_FROM)
    monkeypatch.setenv("TWILIO_API_URL", api_url)


def twilio_error(code: int, status: int, message: str) -> str:
    # The legacy error shape the Messages API answers with.
    return json.dumps(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        }
    )


# FCM: firebase-admin with a local service account; the fixed FCM URL answered by
# `responses` at the requests layer

FCM_PROJECT = "simbi-test"
FCM_URL = f"https://fcm.googleapis.com/v1/projects/{FCM_PROJECT}/messages:send"


def fcm_error(status: int, grpc_status: str, error_code: str | None, message: str) -> dict:
    details = []
    if error_code:
        details = [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ]
    return {
        "error": {"code": status, "message": message, "status": grpc_status, "details": details}
    }


FCM_UNREGISTERED = (
    404,
    fcm_error(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found."),
)
FCM_OK = (200, {"name": f"projects/{FCM_PROJECT}/messages/0:1"})


@pytest.fixture(scope="module")
def private_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture
def fcm_env(tmp_path, httpserver, monkeypatch, private_key_pem, settings):
    """A service-account file whose token_uri is the local server, which hands out a token."""
    account = {
        "type": "service_account",
        "project_id": FCM_PROJECT,
        "private_key_id": "key-1",
        "private_key": private_key_pem,
        "client_email": f"push@{FCM_PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": httpserver.url_for("/token"),
    }
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(account))
    monkeypatch.setenv("FCM_SERVICE_ACCOUNT_FILE", str(path))
    httpserver.expect_request("/token", method="POST").respond_with_json(
        {"access_token": "ya29.local-token", "expires_in": 3600, "token_type": "Bearer"}
    )
    yield path

    # firebase-admin keeps apps in a process-wide registry.
    for app in list(firebase_admin._apps.values()):
        if app.name.startswith("simbi-push-"):
            firebase_admin.delete_app(app)


@pytest.fixture
def fcm(httpserver):
    """The FCM endpoint, answered per token: register `answers[token] = (status, body)`."""
    answers: dict[str, tuple[int, dict]] = {}
    sent: list[dict] = []

    def answer(request):
        message = json.loads(request.body)["message"]
        sent.append({"message": message, "authorization": request.headers["Authorization"]})
        status, body = answers[message["token"]]
        headers = {"Retry-After": "60"} if status == 429 else {}
        return status, headers, json.dumps(body)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        # The OAuth token (and OneSignal) go to the real local server.
        mock.add_passthru(httpserver.url_for("/"))
        mock.add_callback(responses.POST, FCM_URL, callback=answer)
        yield answers, sent


# OneSignal: its REST API, served by pytest-httpserver

ONESIGNAL_APP_ID = "5eb5a37e-b458-11e3-ac11-000c2940e62c"
ONESIGNAL_API_KEY = "os_v2_app_0neS1gnalK3yS3cr3t"


def use_onesignal(monkeypatch, api_url: str) -> None:
    """Settings read after this send OneSignal devices to `api_url`."""
    monkeypatch.setenv("ONESIGNAL_APP_ID", ONESIGNAL_APP_ID)
    monkeypatch.setenv("ONESIGNAL_API_KEY", ONESIGNAL_API_KEY)
    monkeypatch.setenv("ONESIGNAL_API_URL", api_url)


# The worker process under test: in this process, with its real Ruby and Node children


@pytest.fixture
def make_worker(worker_env, redis_conn):
    """Builds a WorkerProcess from the environment as it is now (so set provider settings
    and DATABASE_URL first), creates the app tables and starts its children."""
    made = []

    def make() -> WorkerProcess:
        settings = Settings()
        loaded = catalog.load(settings.queues_file)
        process = WorkerProcess(settings, loaded, redis_conn, "it", loaded.queue_names())
        process.services.db.create_tables()
        process.runtimes.start()
        made.append(process)
        return process

    yield make
    for process in made:
        process.runtimes.stop()
        process.services.db.engine.dispose()


def perform(process: WorkerProcess, worker: str, *args: Any) -> dict[str, bytes]:
    """Enqueues one job, runs it through the process and returns its job hash."""
    client = Client(
        connection=process.connection, catalog=process.catalog, settings=process.settings
    )
    return run_next(process, client.perform_async(worker, *args))


def run_next(process: WorkerProcess, job_id: str | None = None) -> dict[str, bytes]:
    """Runs the next waiting job (which must be `job_id` when given); its job hash, plus
    the job's id under "job_id"."""
    fetched = process.fetcher.fetch()
    assert fetched is not None, "no job was waiting"
    assert job_id in (None, fetched.job_id), f"expected job {job_id}, got {fetched.job_id}"
    process.process(fetched)
    fields = process.connection.hgetall(keys.job(fetched.job_id))
    return {"job_id": fetched.job_id, **{name.decode(): value for name, value in fields.items()}}


def redeliver(process: WorkerProcess, job_id: str) -> dict[str, bytes]:
    """Runs a finished job once more, as at-least-once delivery may (a process that died
    after the job's effects but before its acknowledgement); its job hash."""
    queue = process.connection.hget(keys.job(job_id), "origin").decode()
    # The front of the queue, where a put-back job goes: ahead of any follow-ups it made.
    process.connection.lpush(keys.queue(queue), job_id)
    return run_next(process, job_id)


def result_of(fields: dict[str, bytes]) -> Any:
    """The value of a finished job; a failed one fails the test with its error."""
    assert fields["status"] == b"finished", fields.get("simbi_error")
    return json.loads(fields["result"])


def outbox_mail(process: WorkerProcess) -> list[EmailMessage]:
    """The .eml files of var/outbox/mail/, parsed, in the order they were written."""
    directory = process.settings.outbox_dir / "mail"
    paths = sorted(directory.glob("*.eml")) if directory.exists() else []
    return [message_from_bytes(path.read_bytes(), policy=default) for path in paths]


def outbox_records(process: WorkerProcess, name: str) -> list[dict[str, Any]]:
    """The lines of var/outbox/<name>.jsonl (sms, push), parsed."""
    path = process.settings.outbox_dir / f"{name}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text and HTML of a multipart/alternative message, both checked to be UTF-8."""
    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert (plain.get_content_type(), plain.get_content_charset()) == ("text/plain", "utf-8")
    assert (html.get_content_type(), html.get_content_charset()) == ("text/html", "utf-8")
    return plain.get_content(), html.get_content()
