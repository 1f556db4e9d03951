"""The secure local stack (`agentmem stack up --secure`): its credentials, where they
are kept, and the settings that use them.

Everything lives in ``<stack_dir>/secure/`` (a folder only its owner may read): the
certificates (certs.py), ``secrets.json`` (the Kafka client's SCRAM user and password,
the broker's own SCRAM login, Weaviate's API key; made once) and ``env.sh``, the
``export AGENTMEM_...`` lines that point any process (worker, API, CLI, loadgen, the
SDK in a script) at this stack: ``source .stack/secure/env.sh``.
"""

from __future__ import annotations

import json
import secrets
import shlex
from dataclasses import asdict, dataclass
from pathlib import Path

from pydantic import SecretStr

from streams.settings import Settings
from streams.stack.certs import StackCerts, cert_paths, ensure_certs, write_private

KAFKA_CLIENT_USER = "agentmem"
KAFKA_BROKER_USER = "agentmem-broker"
WEAVIATE_USER = "agentmem"
MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class StackSecrets:
    kafka_password: str
    broker_password: str
    weaviate_api_key: str

    @classmethod
    def new(cls) -> StackSecrets:
        # hex: safe inside Kafka's JAAS and --add-scram syntax without any quoting
        return cls(secrets.token_hex(24), secrets.token_hex(24), secrets.token_hex(24))


def secure_dir(settings: Settings) -> Path:
    return settings.stack_dir / "secure"


def env_file(settings: Settings) -> Path:
    return secure_dir(settings) / "env.sh"


def secrets_file(settings: Settings) -> Path:
    return secure_dir(settings) / "secrets.json"


def load_secrets(settings: Settings) -> StackSecrets | None:
    path = secrets_file(settings)
    if not path.is_file():
        return None
    return StackSecrets(**json.loads(path.read_text()))


def ensure_secrets(settings: Settings) -> StackSecrets:
    """The stack's secrets, made the first time (kept after that)."""
    found = load_secrets(settings)
    if found is not None:
        return found
    stale = settings.stack_dir / "kafka" / "data-sasl"
    if (stale / "meta.properties").exists():
        raise ValueError(
            f"Kafka storage {stale} was formatted with SCRAM users whose passwords are gone "
            f"({secrets_file(settings)} is missing): delete {stale} (its topics) and retry"
        )
    made = StackSecrets.new()
    secure_dir(settings).mkdir(parents=True, exist_ok=True, mode=0o700)
    write_private(secrets_file(settings), json.dumps(asdict(made)).encode())
    return made


def secure_overrides(certs: StackCerts, stack_secrets: StackSecrets) -> dict[str, object]:
    """The settings that make a client use the secure stack. Pure."""
    return {
        "kafka_security_protocol": "SASL_SSL",
        "kafka_sasl_mechanism": MECHANISM,
        "kafka_sasl_username": KAFKA_CLIENT_USER,
        "kafka_sasl_password": SecretStr(stack_secrets.kafka_password),
        "kafka_ssl_ca_file": certs.ca_file,
        "weaviate_api_key": SecretStr(stack_secrets.weaviate_api_key),
    }


def render_env(settings: Settings) -> str:
    """``export`` lines of the settings a client of this stack needs. Pure."""
    values = {
        "kafka_bootstrap_servers": settings.kafka_bootstrap_servers,
        "kafka_security_protocol": settings.kafka_security_protocol,
        "kafka_sasl_mechanism": settings.kafka_sasl_mechanism,
        "kafka_sasl_username": settings.kafka_sasl_username,
        "kafka_sasl_password": settings.kafka_sasl_password.get_secret_value(),
        "kafka_ssl_ca_file": str(settings.kafka_ssl_ca_file),
        "weaviate_host": settings.weaviate_host,
        "weaviate_http_port": str(settings.weaviate_http_port),
        "weaviate_grpc_port": str(settings.weaviate_grpc_port),
        "weaviate_api_key": settings.weaviate_api_key.get_secret_value(),
    }
    lines = ["# the secure local stack: `source` this file before agentmem, loadgen or the SDK"]
    lines += [f"export AGENTMEM_{name.upper()}={shlex.quote(v)}" for name, v in values.items()]
    return "\n".join(lines) + "\n"


ONE_BROKER = (
    "the secure local stack runs one Kafka broker; the three-broker cluster is "
    "plaintext only (drop --kafka-brokers / AGENTMEM_KAFKA_BROKERS)"
)


def secure_settings(settings: Settings) -> Settings:
    """``settings`` pointed at this stack dir's secure stack: certificates and secrets
    made if missing, and ``env.sh`` written for other processes."""
    if settings.kafka_brokers > 1:
        raise ValueError(ONE_BROKER)
    certs = ensure_certs(secure_dir(settings))
    values = settings.model_dump() | secure_overrides(certs, ensure_secrets(settings))
    secured = Settings(**values)
    path = env_file(settings)
    write_private(path, render_env(secured).encode())
    return secured


def stack_is_secure(settings: Settings) -> bool:
    """Whether these settings ask for the secure stack (Kafka over SASL_SSL)."""
    return settings.kafka_security_protocol == "SASL_SSL"


def check_stack_credentials(settings: Settings) -> None:
    """Secure settings must carry this stack's own credentials (the broker and Weaviate
    are configured from them); raise ValueError, naming the fix, when they do not."""
    if not stack_is_secure(settings):
        return
    if settings.kafka_brokers > 1:
        raise ValueError(ONE_BROKER)
    found = load_secrets(settings)
    wanted = {} if found is None else secure_overrides(cert_paths(secure_dir(settings)), found)
    if not wanted or any(getattr(settings, k) != v for k, v in wanted.items()):
        raise ValueError(
            "the settings ask for SASL_SSL but do not carry this stack's credentials: run "
            f"`agentmem stack up --secure` (it writes them to {env_file(settings)})"
        )
