"""The mail service through smtplib against a real SMTP server (aiosmtpd) on 127.0.0.1:
plain, STARTTLS with AUTH, implicit TLS, and refusals; and its .eml outbox."""

from __future__ import annotations

import datetime as dt
import logging
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from urllib.parse import quote

import pytest

from simbi_workers.config import Settings
from simbi_workers.errors import PermanentJobError
from simbi_workers.services import Services
from simbi_workers.services import mail as mail_module
from simbi_workers.services.mail import Mail
from simbi_workers.services.provider_errors import ProviderRejected, ProviderUnavailable
from tests import provider_fixtures
from tests.conftest import free_port

FIXED_NOW = dt.datetime(2026, 12, 3, 18, 0, 0, tzinfo=dt.UTC)
USER = provider_fixtures.SMTP_USER
PASSWORD = provider_fixtures.SMTP_PASSWORD
SUBJECT = "Héllo 👋 Ada"
TO_NAME = "Zoë O'Brien"
TEXT = "Hi Zoë,\nyou have a new message on Simbi — 3 Simbi offered.\n"
HTML = "<p>Hi Zoë,</p><p>you have a new message on Simbi — 3 Simbi offered.</p>"


# Shared with the integration tests: tests/provider_fixtures.py.

no_provider_settings_from_the_shell = provider_fixtures.no_provider_settings_from_the_shell
smtp_server = provider_fixtures.smtp_server
tls = provider_fixtures.tls
Recorder = provider_fixtures.Recorder


# Helpers


def mail_service(monkeypatch, smtp_url: str | None = None, **env: str) -> Mail:
    if smtp_url:
        monkeypatch.setenv("SMTP_URL", smtp_url)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Mail(Settings(), now=lambda: FIXED_NOW)


def send_newsletter(mail: Mail, **overrides) -> dict[str, str]:
    params = {
        "to_email": "zoe@example.org",
        "to_name": TO_NAME,
        "subject": SUBJECT,
        "text": TEXT,
        "html": HTML,
        "category": "messages",
        "transactional": False,
        "user_id": 42,
    }
    return mail.send(**{**params, **overrides})


def parse(raw: bytes) -> EmailMessage:
    return message_from_bytes(raw, policy=default)


def assert_well_formed(message: EmailMessage, *, unsubscribe_url: str | None) -> None:
    """What every message we send must look like to a mail client."""
    assert str(message["From"]) == "Simbi <no-reply@simbi.example>"
    assert message["To"].addresses[0].display_name == TO_NAME
    assert message["To"].addresses[0].addr_spec == "zoe@example.org"
    assert str(message["Subject"]) == SUBJECT
    assert message["Date"].datetime == FIXED_NOW
    assert message["Message-ID"].startswith("<")
    assert message["Message-ID"].endswith("@simbi.example>")

    assert message.get_content_type() == "multipart/alternative"
    plain, html = message.iter_parts()
    assert (plain.get_content_type(), plain.get_content_charset()) == ("text/plain", "utf-8")
    assert (html.get_content_type(), html.get_content_charset()) == ("text/html", "utf-8")
    # MIME text is canonically CRLF-terminated; a mail client shows the same lines.
    assert plain.get_content().splitlines() == TEXT.splitlines()
    assert html.get_content().splitlines() == [HTML]

    if unsubscribe_url is None:
        assert "List-Unsubscribe" not in message
        assert "List-Unsubscribe-Post" not in message
    else:
        # A long link is folded onto its own line (legal FWS), hence strip().
        assert str(message["List-Unsubscribe"]).strip() == f"<{unsubscribe_url}>"
        assert str(message["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"


def raw_headers(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


# Unsubscribe links


def test_the_unsubscribe_url_is_signed_deterministic_and_verifiable(settings, monkeypatch):
    monkeypatch.setenv("SIMBI_APP_URL", "https://simbi.example/")
    mail = mail_service(monkeypatch, SIMBI_UNSUBSCRIBE_SECRET="k1")

    url = mail.unsubscribe_url(42, "messages")["url"]

    assert url == mail.unsubscribe_url(42, "messages")["url"]
    assert url.startswith("https://simbi.example/unsubscribe/NDI6bWVzc2FnZXM.")  # "42:messages"
    token = url.rsplit("/", 1)[1]
    assert len(token.split(".")[1]) == 22  # 16 bytes of HMAC, base64url without padding
    assert mail.verify_unsubscribe_token(token) == ("42", "messages")
    assert mail.unsubscribe_url(43, "messages")["url"] != url
    assert mail.unsubscribe_url(42, "comments")["url"] != url


def test_a_token_that_was_altered_or_signed_with_another_secret_does_not_verify(
    settings, monkeypatch
):
    mail = mail_service(monkeypatch, SIMBI_UNSUBSCRIBE_SECRET="k1")
    token = mail.unsubscribe_url(42, "messages")["url"].rsplit("/", 1)[1]
    forged_payload = "NDM6bWVzc2FnZXM." + token.split(".")[1]  # "43:messages", old signature

    other = mail_service(monkeypatch, SIMBI_UNSUBSCRIBE_SECRET="k2")

    assert mail.verify_unsubscribe_token(forged_payload) is None
    assert mail.verify_unsubscribe_token(token[:-1]) is None
    assert mail.verify_unsubscribe_token("not a token") is None
    assert other.verify_unsubscribe_token(token) is None


@pytest.mark.parametrize(("user_id", "category"), [(True, "x"), ("4:2", "x"), (7, "a:b"), (7, "")])
def test_unsubscribe_url_refuses_ids_that_would_make_the_token_ambiguous(
    settings, user_id, category
):
    with pytest.raises(PermanentJobError, match="must be"):
        Mail(settings).unsubscribe_url(user_id, category)


# Plain SMTP


def test_a_newsletter_goes_out_over_smtp_with_encoded_headers_and_unsubscribe_headers(
    settings, monkeypatch, smtp_server
):
    recorder = Recorder()
    port = smtp_server(recorder)
    mail = mail_service(monkeypatch, f"smtp://127.0.0.1:{port}?starttls=false")

    result = send_newsletter(mail)

    assert result["delivered"] == "smtp"
    [(mail_from, rcpt_tos, raw)] = recorder.received
    assert (mail_from, rcpt_tos) == ("no-reply@simbi.example", ["zoe@example.org"])
    message = parse(raw)
    assert message["Message-ID"] == result["message_id"]
    assert_well_formed(message, unsubscribe_url=mail.unsubscribe_url(42, "messages")["url"])

    # On the wire the headers are 7-bit: the UTF-8 text is RFC 2047-encoded.
    headers = raw_headers(raw)
    assert headers.isascii()
    assert b"=?utf-8?" in headers


def test_a_transactional_message_has_no_unsubscribe_headers_and_needs_no_user(
    settings, monkeypatch, smtp_server
):
    recorder = Recorder()
    port = smtp_server(recorder)
    mail = mail_service(monkeypatch, f"smtp://127.0.0.1:{port}?starttls=false")

    send_newsletter(mail, transactional=True, user_id=None, category="account")

    [(_, _, raw)] = recorder.received
    assert_well_formed(parse(raw), unsubscribe_url=None)


def test_a_refused_recipient_is_permanent(settings, monkeypatch, smtp_server):
    port = smtp_server(Recorder(refuse_rcpt="550 5.1.1 <zoe@example.org>: no such user"))
    mail = mail_service(monkeypatch, f"smtp://127.0.0.1:{port}?starttls=false")

    with pytest.raises(ProviderRejected) as caught:
        send_newsletter(mail)

    assert caught.value.retryable is False
    assert "550 5.1.1 <zoe@example.org>: no such user" in str(caught.value)


def test_a_temporary_refusal_is_retryable(settings, monkeypatch, smtp_server):
    port = smtp_server(Recorder(refuse_rcpt="451 4.7.1 greylisted, try again later"))
    mail = mail_service(monkeypatch, f"smtp://127.0.0.1:{port}?starttls=false")

    with pytest.raises(ProviderUnavailable) as caught:
        send_newsletter(mail)

    assert caught.value.retryable is True
    assert "451 4.7.1 greylisted" in str(caught.value)


def test_an_unreachable_server_is_retryable_and_the_password_stays_secret(
    settings, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    url = f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}"
    mail = mail_service(monkeypatch, url)

    with pytest.raises(ProviderUnavailable) as caught:
        send_newsletter(mail)

    message = str(caught.value)
    assert f"SMTP server 127.0.0.1:{url.rsplit(':', 1)[1]} failed: ConnectionRefusedError" in (
        message
    )
    assert "s3cr3t" not in message
    assert "s3cr3t" not in caplog.text


# STARTTLS, AUTH and implicit TLS


def test_starttls_and_login_with_a_percent_encoded_password(
    settings, monkeypatch, smtp_server, tls
):
    recorder = Recorder()
    port = smtp_server(
        recorder,
        tls_context=tls.server_context,
        require_starttls=True,
        authenticator=recorder.authenticate,
        auth_required=True,
    )
    url = f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
    mail = mail_service(monkeypatch, url, SMTP_CA_FILE=str(tls.ca_file))

    result = send_newsletter(mail)

    assert result["delivered"] == "smtp"
    assert [(login, ok) for _, login, ok in recorder.logins] == [(USER, True)]
    [(_, _, raw)] = recorder.received
    assert_well_formed(parse(raw), unsubscribe_url=mail.unsubscribe_url(42, "messages")["url"])


def test_a_wrong_password_is_permanent_and_not_in_the_message(
    settings, monkeypatch, smtp_server, tls, caplog
):
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    port = smtp_server(
        recorder,
        tls_context=tls.server_context,
        require_starttls=True,
        authenticator=recorder.authenticate,
        auth_required=True,
    )
    url = f"smtp://{USER}:wr0ngS3cr3t@127.0.0.1:{port}"
    mail = mail_service(monkeypatch, url, SMTP_CA_FILE=str(tls.ca_file))

    with pytest.raises(ProviderRejected) as caught:
        send_newsletter(mail)

    assert "SMTPAuthenticationError: 535" in str(caught.value)
    assert "wr0ngS3cr3t" not in str(caught.value)
    assert "wr0ngS3cr3t" not in caplog.text
    assert recorder.received == []


def test_a_server_certificate_we_do_not_trust_is_refused(settings, monkeypatch, smtp_server, tls):
    recorder = Recorder()
    port = smtp_server(recorder, tls_context=tls.server_context, require_starttls=True)
    mail = mail_service(monkeypatch, f"smtp://127.0.0.1:{port}")  # no SMTP_CA_FILE

    with pytest.raises(ProviderUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        send_newsletter(mail)

    assert recorder.received == []


def test_without_starttls_on_the_server_nothing_is_sent_in_clear(
    settings, monkeypatch, smtp_server
):
    recorder = Recorder()
    port = smtp_server(recorder)
    mail = mail_service(monkeypatch, f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}")

    with pytest.raises(ProviderRejected) as caught:
        send_newsletter(mail)

    assert "STARTTLS extension not supported by server" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert recorder.received == []


def test_smtps_uses_implicit_tls(settings, monkeypatch, smtp_server, tls):
    recorder = Recorder()
    port = smtp_server(recorder, ssl_context=tls.server_context)
    mail = mail_service(monkeypatch, f"smtps://127.0.0.1:{port}", SMTP_CA_FILE=str(tls.ca_file))

    assert send_newsletter(mail)["delivered"] == "smtp"
    assert len(recorder.received) == 1


# The outbox


def test_without_smtp_the_message_is_an_eml_file_in_the_outbox(settings):
    mail = Mail(settings, now=lambda: FIXED_NOW)

    result = send_newsletter(mail)

    assert result["delivered"] == "outbox"
    [path] = (settings.var_dir / "outbox" / "mail").iterdir()
    local_part = result["message_id"].strip("<>").split("@")[0]
    assert path.name == f"20261203T180000.000000Z-{local_part}.eml"
    raw = path.read_bytes()
    message = parse(raw)
    assert message["Message-ID"] == result["message_id"]
    assert_well_formed(message, unsubscribe_url=mail.unsubscribe_url(42, "messages")["url"])
    assert raw_headers(raw).isascii()


def test_a_child_reaches_send_and_unsubscribe_url_through_host_calls(settings, redis_conn):
    services = Services(settings, redis_conn)
    params = {
        "to_email": "ana@example.org",
        "to_name": "Ana",
        "subject": "Hi",
        "text": "Hello",
        "html": None,
        "category": "intro",
        "transactional": True,
        "user_id": 7,
    }

    sent = services.call("mail", "send", params)
    link = services.call("mail", "unsubscribe_url", {"user_id": 7, "category": "intro"})

    assert sent["delivered"] == "outbox"
    assert link["url"].startswith("http://localhost:3000/unsubscribe/")
    [path] = (settings.var_dir / "outbox" / "mail").iterdir()
    message = parse(path.read_bytes())
    assert message.get_content_type() == "text/plain"
    assert message.get_content().splitlines() == ["Hello"]


# Input checks


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"to_email": "zoe@example.org\r\nBcc: all@example.org"}, "to_email"),
        ({"to_email": "zoe@@example.org"}, "to_email"),
        ({"to_email": "zoe.example.org"}, "to_email"),
        ({"to_email": "Zoë <zoe@example.org>"}, "to_email"),
        ({"to_name": "Zoë\r\nBcc: all@example.org"}, "to_name may not contain line breaks"),
        ({"subject": "Hi\nBcc: all@example.org"}, "subject may not contain line breaks"),
        ({"to_email": "zoe\x7f@example.org"}, "to_email"),
        ({"subject": ""}, "subject must be a non-empty string"),
        ({"text": ""}, "text must be a non-empty string"),
        ({"transactional": "no"}, "transactional must be true or false"),
        ({"user_id": None}, "user_id is required when transactional is false"),
    ],
)
def test_bad_input_is_permanent_and_nothing_is_written(settings, overrides, expected):
    with pytest.raises(PermanentJobError, match=expected):
        send_newsletter(Mail(settings), **overrides)

    assert not (settings.var_dir / "outbox" / "mail").exists()


# Every character str.splitlines() breaks at is one the email package refuses in a header
# with a ValueError (retryable, so it burned the retry ladder); other C0/C1 controls have
# no place in a header either. All are permanent, named by field, before anything is sent.
HEADER_BREAKERS = ["\x1c", "\x1d", "\x1e", "\x0b", "\x0c", "\x85", "\u2028", "\u2029"]
OTHER_CONTROLS = ["\x00", "\x07", "\t", "\x1b", "\x7f", "\x9b"]


@pytest.mark.parametrize("field", ["subject", "to_name"])
@pytest.mark.parametrize("char", HEADER_BREAKERS + OTHER_CONTROLS)
def test_control_characters_in_header_text_are_permanent_and_name_the_field(
    settings, monkeypatch, smtp_server, field, char
):
    recorder = Recorder()
    port = smtp_server(recorder)
    mail = mail_service(monkeypatch, f"smtp://127.0.0.1:{port}?starttls=false")

    for value in (f"Hi{char}Bcc: all@example.org", f"Hi{char}"):
        with pytest.raises(PermanentJobError, match=f"{field} may not contain line breaks"):
            send_newsletter(mail, **{field: value})

    assert recorder.received == []


def test_unicode_header_text_without_control_characters_is_fine(settings):
    result = send_newsletter(Mail(settings), subject="Olá — ½ price 👋 \u200b", to_name="Zoë")

    assert result["delivered"] == "outbox"


# SMTP_URL


@pytest.mark.parametrize(
    "url",
    [
        "smtp://mailer:s3cr3t@[::1",
        "smtp://mailer:s3cr3t@[not-an-ip]:25",
        "smtp://mailer:s3cr3t]@host",
    ],
)
def test_a_malformed_smtp_url_is_permanent_and_hides_the_password(
    settings, monkeypatch, caplog, url
):
    caplog.set_level(logging.DEBUG)
    mail = mail_service(monkeypatch, url)

    with pytest.raises(PermanentJobError) as caught:
        send_newsletter(mail)

    assert "SMTP_URL is not a valid smtp:// or smtps:// URL" in str(caught.value)
    assert "s3cr3t" not in str(caught.value)
    assert "s3cr3t" not in caplog.text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mailer:s3/cr3t@host", "port that is not a number"),
        ("smtp://mailer:s3cr3t@host:99999", "port that is not a number"),
        ("http://mailer:s3cr3t@host", "must start with smtp:// or smtps://"),
        ("smtp://mailer:s3cr3t@:25", "names no host"),
        ("smtp://host?starttls=s3cr3t", r"\?starttls= must be true or false"),
        ("smtp://host?starttls=false&insecure_auth=s3cr3t", "insecure_auth= must be true"),
    ],
)
def test_other_bad_smtp_urls_say_what_is_wrong_without_the_url(
    settings, monkeypatch, url, expected
):
    mail = mail_service(monkeypatch, url)

    with pytest.raises(PermanentJobError, match=expected) as caught:
        send_newsletter(mail)

    assert "s3cr3t" not in str(caught.value)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mailer:pw@mail.example", "smtp to mail.example:587 (STARTTLS)"),
        ("smtps://mailer:pw@mail.example", "smtp to mail.example:465 (implicit TLS)"),
        ("smtps://[::1]:2465", "smtp to [::1]:2465 (implicit TLS)"),
        ("smtp://relay:25?starttls=false", "smtp to relay:25 (plain, no TLS, no login)"),
        (
            "smtp://mailer:pw@localhost:1025?starttls=false&insecure_auth=true",
            "smtp to localhost:1025 (plain SMTP, password sent without TLS: insecure_auth)",
        ),
    ],
)
def test_describe_says_where_mail_goes_without_the_password(settings, monkeypatch, url, expected):
    monkeypatch.setenv("SMTP_URL", url)
    monkeypatch.setenv("SIMBI_UNSUBSCRIBE_SECRET", "production-secret")

    assert mail_module.describe(Settings()) == expected


def test_describe_without_smtp_names_the_outbox(settings):
    assert mail_module.describe(settings) == f"outbox {settings.var_dir / 'outbox' / 'mail'}"


def test_describe_fails_on_an_unreadable_ca_file_and_warns_of_the_development_secret(
    settings, monkeypatch, tmp_path
):
    monkeypatch.setenv("SMTP_URL", "smtp://mailer:pw@mail.example")
    assert mail_module.describe(Settings()).endswith(
        "; warning: unsubscribe links are signed with the development secret; "
        "set SIMBI_UNSUBSCRIBE_SECRET"
    )

    monkeypatch.setenv("SMTP_CA_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(PermanentJobError, match="cannot load SMTP_CA_FILE"):
        mail_module.describe(Settings())


# No password over plain SMTP


def plain_server_with_auth(smtp_server, recorder: Recorder) -> int:
    """A server that offers no STARTTLS but takes AUTH in clear (as mailpit can)."""
    return smtp_server(recorder, authenticator=recorder.authenticate, auth_require_tls=False)


def test_a_login_over_plain_smtp_is_refused_before_connecting(
    settings, monkeypatch, smtp_server, caplog
):
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    port = plain_server_with_auth(smtp_server, recorder)
    url = f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}?starttls=false"
    mail = mail_service(monkeypatch, url)

    with pytest.raises(ProviderRejected) as caught:
        send_newsletter(mail)

    message = str(caught.value)
    assert caught.value.retryable is False
    assert "refusing to send the SMTP password without TLS: use smtps:// or STARTTLS" in message
    assert "insecure_auth=true" in message
    assert "s3cr3t" not in message
    assert "s3cr3t" not in caplog.text
    assert recorder.logins == []
    assert recorder.received == []


def test_insecure_auth_logs_in_over_plain_smtp_for_a_local_test_server(
    settings, monkeypatch, smtp_server
):
    recorder = Recorder()
    port = plain_server_with_auth(smtp_server, recorder)
    password = quote(PASSWORD, safe="")
    url = f"smtp://{USER}:{password}@127.0.0.1:{port}?starttls=false&insecure_auth=true"
    mail = mail_service(monkeypatch, url)

    assert send_newsletter(mail)["delivered"] == "smtp"
    assert [(login, ok) for _, login, ok in recorder.logins] == [(USER, True)]
    assert len(recorder.received) == 1


# The unsubscribe secret


def warnings_of(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "simbi_workers.services.mail" and r.levelno == logging.WARNING
    ]


def test_smtp_with_the_development_secret_warns_once_at_construction(settings, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    mail = mail_service(monkeypatch, f"smtp://127.0.0.1:{free_port()}?starttls=false")

    assert warnings_of(caplog) == [
        "mail: unsubscribe links are signed with the development secret; "
        "set SIMBI_UNSUBSCRIBE_SECRET"
    ]
    mail.unsubscribe_url(42, "messages")
    assert len(warnings_of(caplog)) == 1


@pytest.mark.parametrize(
    ("smtp_url", "secret"),
    [(None, None), (None, ""), ("smtp://127.0.0.1:25?starttls=false", "production-secret")],
)
def test_no_warning_for_the_outbox_or_a_real_secret(
    settings, monkeypatch, caplog, smtp_url, secret
):
    caplog.set_level(logging.DEBUG)
    env = {} if secret is None else {"SIMBI_UNSUBSCRIBE_SECRET": secret}

    mail_service(monkeypatch, smtp_url, **env)

    assert warnings_of(caplog) == []


def test_an_empty_secret_signs_nothing_but_transactional_mail_still_goes(
    settings, monkeypatch, smtp_server, caplog
):
    caplog.set_level(logging.DEBUG)
    recorder = Recorder()
    port = smtp_server(recorder)
    url = f"smtp://127.0.0.1:{port}?starttls=false"
    mail = mail_service(monkeypatch, url, SIMBI_UNSUBSCRIBE_SECRET="")

    assert warnings_of(caplog) == [
        "mail: SIMBI_UNSUBSCRIBE_SECRET is empty: mail with unsubscribe links will fail; "
        "set SIMBI_UNSUBSCRIBE_SECRET"
    ]
    with pytest.raises(PermanentJobError, match="SIMBI_UNSUBSCRIBE_SECRET is empty"):
        send_newsletter(mail)
    with pytest.raises(PermanentJobError, match="SIMBI_UNSUBSCRIBE_SECRET is empty"):
        mail.unsubscribe_url(42, "messages")
    assert recorder.received == []

    send_newsletter(mail, transactional=True, user_id=None)
    assert len(recorder.received) == 1

    signed = Mail(settings).unsubscribe_url(42, "messages")["url"].rsplit("/", 1)[1]
    assert mail.verify_unsubscribe_token(signed) is None
    with pytest.raises(PermanentJobError, match="SIMBI_UNSUBSCRIBE_SECRET is empty"):
        mail_module.describe(Settings())
