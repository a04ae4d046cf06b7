"""One settings class for every Knowflow process, read from `KNOWFLOW_*` variables."""

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Quota(BaseModel):
    """A token bucket: `limit` requests, refilled evenly over `window` seconds."""

    limit: int
    window: float


class OidcProvider(BaseModel):
    """One external OpenID Provider people may sign in with (single sign-on)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,100}$")  # in URLs: /auth/oidc/{name}/login
    issuer: str  # discovery is {issuer}/.well-known/openid-configuration
    client_id: str
    client_secret: str = ""  # empty: a public client (PKCE alone)
    display_name: str = ""
    scopes: list[str] = ["openid", "email", "profile"]
    # Groups claim → Knowflow groups: claim value → group slug. Mapped groups are joined
    # and left at each sign-in to match the claim; unmapped groups are never touched.
    groups_claim: str = "groups"
    group_map: dict[str, str] = {}


class Settings(BaseSettings):
    """Settings shared by all services; each process sets the ones it uses."""

    model_config = SettingsConfigDict(env_prefix="KNOWFLOW_", env_file=".env", extra="ignore")

    service_name: str = "knowflow"
    database_url: str = "sqlite:///./var/knowflow.db"
    nats_url: str = "nats://127.0.0.1:4222"
    stream_name: str = "KNOWFLOW"
    log_level: str = "INFO"
    log_json: bool = True

    # Tokens: identity signs with the private key; everyone else verifies with the JWKS.
    jwt_issuer: str = "knowflow-identity"
    jwt_audience: str = "knowflow"
    jwt_private_key_file: Path = Path("./var/identity/jwt-ed25519.pem")
    access_token_ttl_seconds: int = 900
    # Verifiers refuse tokens meant to live longer (exp - iat), whoever signed them.
    access_token_max_lifetime_seconds: int = 3600
    jwt_leeway_seconds: int = 30  # clock skew allowed on exp, nbf and iat
    jwks_refetch_seconds: float = 10.0  # an unknown kid refetches the JWKS at most this often
    identity_url: str = "http://127.0.0.1:8001"
    jwks_url: str = ""  # defaults to {identity_url}/.well-known/jwks.json

    # Requests larger than this are refused before they are read.
    max_body_bytes: int = 1_048_576

    # Consumers: deliveries before a message is parked on the dead-letter subject.
    max_deliveries: int = 5

    # Search backend: empty means the embedded engine; an http(s) URL means OpenSearch.
    search_url: str = ""
    search_index_prefix: str = "knowflow"
    # Semantic search: the embedding model (services/search/semantic/model.py, fetched at
    # setup), or "off" for keyword-only; threads one model call may use.
    semantic_model: str = "all-minilm-l6-v2-q"
    semantic_threads: int = 1
    # Downloads made at setup (the embedding model; OpenSearch for tests, by its script).
    cache: Path = Path.home() / ".cache" / "knowflow"

    # Gateway upstreams.
    posts_url: str = "http://127.0.0.1:8002"
    search_service_url: str = "http://127.0.0.1:8003"
    digests_url: str = "http://127.0.0.1:8004"
    notifications_url: str = "http://127.0.0.1:8005"
    # The web app (pages for people), routed by the gateway at every path outside the API.
    web_url: str = "http://127.0.0.1:8006"

    # Where people reach Knowflow: links in e-mails and webhooks are made from it.
    public_url: str = "http://127.0.0.1:8000"

    # Notifications: e-mail. An empty SMTP URL writes each message to a file under
    # `mail_dir` instead (see `knowflow-admin mail`), so `make run` needs no mail server.
    smtp_url: str = ""  # smtp://user:pass@host:587?starttls=true, smtps://host:465
    mail_from: str = "Knowflow <knowflow@localhost>"
    mail_dir: Path = Path("./var/mail")
    # Signs one-click unsubscribe links; created on first use.
    signing_key_file: Path = Path("./var/notifications/signing.key")
    # --- notifications e-mail: sending (the mail slice) ---
    mail_send_interval_seconds: float = 5.0  # how often the sender looks for due e-mails
    mail_batch_size: int = 50  # e-mails claimed at once by one sender
    mail_claim_seconds: float = 300.0  # a claim's lease; longer than a batch takes to send
    mail_max_attempts: int = 8  # temporary failures before an e-mail is given up
    mail_backoff_seconds: float = 60.0  # first retry delay; doubles with every attempt
    mail_backoff_max_seconds: float = 6 * 3600.0
    smtp_timeout_seconds: float = 10.0  # connect and each SMTP command
    smtp_ca_file: Path | None = None  # trust this CA (PEM) for SMTP TLS, besides the system's
    mail_sender_enabled: bool = True

    # Notifications: live streams (Server-Sent Events).
    sse_heartbeat_seconds: float = 15.0
    sse_streams_per_user: int = 5  # open streams per person and gateway; more get 429

    # Notifications: the inbox. Content older than this notifies nobody, so an import of
    # history (e.g. the Stack Exchange importer) does not flood inboxes.
    notify_content_newer_than_hours: float = 24.0

    # Notifications: webhooks (services/notifications/webhooks/). Seconds unless named.
    # Waits after the 1st, 2nd, ... failed attempt; once spent, the delivery is `failed`.
    # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over about 27.6 hours.
    webhook_retry_schedule: list[float] = [5, 300, 1800, 7200, 18000, 36000, 36000]
    # An endpoint failing without a single success for this long is disabled (5 days).
    webhook_disable_after_seconds: float = 432_000
    webhook_timeout_seconds: float = 10.0
    webhook_concurrency_per_endpoint: int = 4  # deliveries in flight to one endpoint
    webhook_dispatch_tick_seconds: float = 1.0
    webhook_max_response_bytes: int = 65_536  # read at most this much of an answer
    webhook_retention_seconds: float = 604_800  # events kept for replay (7 days)
    # A fetched event not acknowledged (the service stopped mid-batch) comes again after this.
    webhook_consumer_ack_wait_seconds: float = 30.0
    # Refuse endpoints that are (or resolve to) loopback, private or link-local addresses.
    webhook_refuse_private_networks: bool = False
    # Encrypts endpoint secrets at rest (Fernet); created on first use.
    webhook_secret_key_file: Path = Path("./var/notifications/webhook-secrets.key")

    # Gateway throttling (gateway/ratelimit.py): token buckets per client (user, else IP) and
    # route class, shared by gateway replicas through a NATS JetStream key-value bucket.
    # Quotas read from the environment as JSON: KNOWFLOW_RATE_LIMIT_READS='{"limit":600,"window":60}'.
    rate_limit_enabled: bool = True
    rate_limit_reads: Quota = Quota(limit=600, window=60)
    rate_limit_writes: Quota = Quota(limit=120, window=60)
    rate_limit_search: Quota = Quota(limit=120, window=60)
    rate_limit_auth: Quota = Quota(limit=30, window=60)
    # Failed logins per username and per IP, and registrations per IP.
    rate_limit_login_user: Quota = Quota(limit=5, window=900)
    rate_limit_login_ip: Quota = Quota(limit=30, window=3600)
    rate_limit_register_ip: Quota = Quota(limit=20, window=3600)
    rate_limit_kv_bucket: str = "knowflow_ratelimit"
    rate_limit_sync_seconds: float = 0.1
    rate_limit_refusal_delay_seconds: float = 0.1  # a 429 is held this long (slows floods)
    # Admin tokens (ops jobs such as `knowflow-admin import`) spend no tokens.
    rate_limit_exempt_admins: bool = True

    # Identity: concurrent argon2 hashes (64 MiB each), how many may wait for one and how
    # long; beyond that a login or registration is answered 503 with Retry-After.
    password_hash_concurrency: int = 2
    password_hash_queue: int = 16
    password_hash_wait_seconds: float = 5.0
    # Identity: sessions. A refresh token unused this long is refused (each use rotates it);
    # a password reset link works once, within `password_reset_ttl_seconds`.
    refresh_token_ttl_seconds: int = 14 * 86400
    password_reset_ttl_seconds: int = 3600
    # The first account registered becomes the admin: only for `make run` (deploy/launch.py
    # sets it); a deployment creates its first admin with `knowflow-admin create-admin`.
    first_user_is_admin: bool = False

    # Gateway edge: request head caps (431 beyond), CORS allow-list (empty: closed),
    # bearer token for the gateway's /metrics (empty: not served), HSTS max-age (0: off;
    # set it only when clients reach the gateway over HTTPS).
    max_header_bytes: int = 16_384
    max_header_count: int = 100
    cors_origins: Annotated[list[str], NoDecode] = []  # comma-separated in the environment
    metrics_token: str = ""
    hsts_max_age: int = 0

    # Single sign-on (services/identity/oidc.py): OpenID Providers as a JSON list, e.g.
    # KNOWFLOW_OIDC_PROVIDERS='[{"name":"corp","issuer":"https://id.example.com",
    # "client_id":"knowflow","client_secret":"...","group_map":{"eng":"engineering"}}]'.
    # Their redirect URI is {public_url}/api/v1/auth/oidc/{name}/callback.
    oidc_providers: list[OidcProvider] = []
    oidc_state_ttl_seconds: int = 600  # a sign-in must come back from the provider by then
    oidc_http_timeout_seconds: float = 10.0
    # Signs the short-lived cookie that binds a sign-in's state to the browser.
    oidc_state_key_file: Path = Path("./var/identity/oidc-state.key")
    # False: only single sign-on; /auth/login and /auth/register answer 403.
    password_login_enabled: bool = True

    # The web app calls the public API here, with the signed-in person's token (the
    # gateway, reached directly: not through a proxy in front of it).
    web_api_url: str = "http://127.0.0.1:8000"
    # Signs the web app's session cookie (the person's tokens and the CSRF secret).
    web_session_key_file: Path = Path("./var/web/session.key")
    # Shared by the gateway and the web app: with it the web app's API calls name the
    # person's address (X-Forwarded-For), which the gateway's per-address throttles and
    # the services' audit log then use instead of the web app's own.
    forwarding_key_file: Path = Path("./var/gateway/forwarding.key")
    web_api_timeout_seconds: float = 10.0

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("oidc_providers")
    @classmethod
    def _unique_provider_names(cls, value: list[OidcProvider]) -> list[OidcProvider]:
        names = [provider.name for provider in value]
        if len(set(names)) != len(names):
            raise ValueError("two OpenID Providers have the same name")
        return value

    @property
    def resolved_jwks_url(self) -> str:
        return self.jwks_url or f"{self.identity_url.rstrip('/')}/.well-known/jwks.json"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return Settings()
