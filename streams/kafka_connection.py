"""The one Kafka connection config of every client: where the brokers are and how to
reach them (plaintext, or SASL/SCRAM over TLS with the broker verified against a CA).

``KafkaConnection.from_settings`` is pure; ``aiokafka_options`` and
``faust_credentials`` build the TLS context (reading the CA file) the first time one
asks, once per connection, so every client of a process shares it. ``check_credentials``
connects: aiokafka reports a refused login as "unable to bootstrap", which its callers
retry like an outage, so processes ask once at start and stop on a refusal.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from processors.core.errors import PermanentError
from streams.settings import Settings

if TYPE_CHECKING:
    import faust


def tls_context(ca_file: Path) -> ssl.SSLContext:
    """A client TLS context that trusts only ``ca_file`` and checks the broker's name
    against its certificate (TLS 1.2 or newer). The one place a context is made."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca_file))
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@dataclass(frozen=True)
class KafkaConnection:
    """How to reach the brokers. ``PLAINTEXT``: no authentication, no TLS (the default
    local stack). ``SASL_SSL``: TLS against ``ca_file`` and SCRAM ``username``/``password``."""

    bootstrap_servers: str
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    username: str = ""
    password: SecretStr = field(default_factory=lambda: SecretStr(""))
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> KafkaConnection:
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            ca_file=settings.kafka_ssl_ca_file,
        )

    @property
    def secure(self) -> bool:
        return self.security_protocol == "SASL_SSL"

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every client of this connection (None in plaintext)."""
        if not self.secure:
            return None
        if self.ca_file is None:  # Settings refuses this; a hand-made connection might not
            raise ValueError("SASL_SSL needs a CA file (AGENTMEM_KAFKA_SSL_CA_FILE)")
        return tls_context(self.ca_file)

    def aiokafka_options(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client (producer, consumer, admin, client)
        takes besides its own: servers, protocol and, when secure, SASL and TLS."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.secure:
            options |= {
                "sasl_mechanism": self.sasl_mechanism,
                "sasl_plain_username": self.username,
                "sasl_plain_password": self.password.get_secret_value(),
                "ssl_context": self.ssl_context,
            }
        return options

    def faust_broker_url(self) -> str:
        """faust's broker URL: ``kafka://`` and the servers, ``;``-separated (the
        scheme picks faust's aiokafka driver; security is in the credentials)."""
        servers = [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]
        return "kafka://" + ";".join(servers)

    def faust_credentials(self) -> faust.SASLCredentials | None:
        """faust's ``broker_credentials``: SASL with the TLS context (faust then speaks
        SASL_SSL to the brokers with every client it makes), or None in plaintext."""
        if not self.secure:
            return None
        import faust

        return faust.SASLCredentials(
            username=self.username,
            password=self.password.get_secret_value(),
            ssl_context=self.ssl_context,
            mechanism=self.sasl_mechanism,
        )


class KafkaAuthenticationError(PermanentError):
    """The brokers refuse these credentials, or their certificate does not verify
    against the CA: no retry can change that."""


async def check_credentials(connection: KafkaConnection, *, timeout_s: float = 15.0) -> None:
    """Log in to the first broker that answers; raise :class:`KafkaAuthenticationError`
    when one refuses the login or fails TLS verification. A broker that does not answer
    is left to the clients' own retries (an outage, not a wrong setting). No-op for
    plaintext."""
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed, UnsupportedSaslMechanismError

    if not connection.secure:
        return
    options = connection.aiokafka_options()
    del options["bootstrap_servers"]
    for server in [s.strip() for s in connection.bootstrap_servers.split(",") if s.strip()]:
        host, _, port = server.rpartition(":")
        try:
            conn = await asyncio.wait_for(create_conn(host, int(port), **options), timeout_s)
        except (SaslAuthenticationFailed, UnsupportedSaslMechanismError) as exc:
            raise KafkaAuthenticationError(
                "kafka_authentication",
                f"{server} refused {connection.sasl_mechanism} user {connection.username!r}: "
                f"{exc} (AGENTMEM_KAFKA_SASL_USERNAME / _PASSWORD)",
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            raise KafkaAuthenticationError(
                "kafka_tls",
                f"{server}'s certificate does not verify against {connection.ca_file}: "
                f"{exc.verify_message} (AGENTMEM_KAFKA_SSL_CA_FILE)",
            ) from exc
        except (OSError, KafkaError, TimeoutError):
            continue  # not answering: the next one, or the clients' retries
        conn.close()
        return
