"""How every Kafka client of the project connects: brokers, TLS and SASL, from the settings.

One place, so the Faust app and every aiokafka producer, consumer and admin client (publish,
topic admin, replay, tests) reach a secured cluster alike. The password is read from its
SecretStr only here, into the client's arguments; nothing here logs it.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any, NoReturn

from aiokafka.helpers import create_ssl_context

from handoff.config import WorkerSettings


def ssl_context(settings: WorkerSettings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL (system CAs unless HANDOFF_SSL_CAFILE), else None."""
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    password = settings.ssl_key_password
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None,
        certfile=str(settings.ssl_certfile) if settings.ssl_certfile else None,
        keyfile=str(settings.ssl_keyfile) if settings.ssl_keyfile else None,
        password=password.get_secret_value() if password is not None else None,
    )
    return context


def client_kwargs(settings: WorkerSettings) -> dict[str, Any]:
    """Keyword arguments for any aiokafka client: `AIOKafkaProducer(**client_kwargs(s), ...)`."""
    kwargs: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers,
                              "security_protocol": settings.security_protocol}
    context = ssl_context(settings)
    if context is not None:
        kwargs["ssl_context"] = context
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None  # the settings refuse SASL without one
        kwargs.update(sasl_mechanism=settings.sasl_mechanism,
                      sasl_plain_username=settings.sasl_username,
                      sasl_plain_password=settings.sasl_password.get_secret_value())
    return kwargs


def broker_credentials(settings: WorkerSettings) -> Any:
    """The same connection for a Faust app (`faust.App(broker_credentials=...)`), or None."""
    import faust

    context = ssl_context(settings)
    if settings.security_protocol.startswith("SASL_"):
        assert settings.sasl_password is not None
        return faust.SASLCredentials(username=settings.sasl_username,
                                     password=settings.sasl_password.get_secret_value(),
                                     mechanism=settings.sasl_mechanism, ssl_context=context)
    if context is not None:
        return faust.SSLCredentials(context)
    return None


class BrokerUnreachable(SystemExit):
    """The brokers cannot be reached with these settings: says why and which settings to check."""


def describe_connection(settings: WorkerSettings) -> str:
    """Where and how the clients connect, for messages (never the password)."""
    text = f"{settings.bootstrap_servers} over {settings.security_protocol}"
    if settings.security_protocol.startswith("SASL_"):
        text += f" (SASL {settings.sasl_mechanism} as {settings.sasl_username!r})"
    return text


async def check_connection(settings: WorkerSettings, timeout_s: float = 15.0) -> None:
    """Connect to each bootstrap broker once and authenticate; raise `BrokerUnreachable` with
    the broker's own reason (refused, TLS, authentication failed) when none accepts us."""
    from aiokafka.conn import create_conn

    kwargs = client_kwargs(settings)
    del kwargs["bootstrap_servers"]
    reasons = []
    for address in settings.bootstrap_servers.split(","):
        host, _, port = address.rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(host, int(port), request_timeout_ms=int(timeout_s * 1000),
                            **kwargs), timeout_s)
        except Exception as exc:  # each failure is one reason in the message
            reasons.append(f"{address}: {type(exc).__name__}: {exc}")
            continue
        conn.close()
        break
    else:
        _unreachable(settings, reasons)
    # Connected and authenticated; a listener of another protocol only refuses real requests.
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**client_kwargs(settings),
                                request_timeout_ms=int(timeout_s * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        await asyncio.wait_for(admin.describe_cluster(), timeout_s)
    except Exception as exc:
        _unreachable(settings, [f"the broker refused a metadata request ({type(exc).__name__}: "
                                f"{exc}); does HANDOFF_SECURITY_PROTOCOL match its listener?"])
    finally:
        await admin.close()


def _unreachable(settings: WorkerSettings, reasons: list[str]) -> NoReturn:
    hint = ("check HANDOFF_SASL_USERNAME / HANDOFF_SASL_PASSWORD / HANDOFF_SASL_MECHANISM"
            if any("Authentication" in r for r in reasons) else
            "check KAFKA_BOOTSTRAP_SERVERS, HANDOFF_SECURITY_PROTOCOL and the HANDOFF_SSL_* files")
    raise BrokerUnreachable(f"cannot connect to Kafka at {describe_connection(settings)}: "
                            + "; ".join(reasons) + f"; {hint}")
