"""Throttling at the gateway: token buckets per client and route class, shared by replicas.

Every proxied request takes a token from its client's bucket for its route class (reads,
writes, search, auth). The client is the user of an already verified token (the verifier's
cache, so no crypto here; a token's very first request counts against its IP), else the
peer IP. A login also reserves a token per username and per IP, given back unless identity
answers 401, and a registration spends one per IP; a throttled login is answered here, so
identity never runs argon2 for it.

Sharing without a new server: buckets live in a NATS JetStream key-value bucket. A
compare-and-set per request would put a JetStream round trip on the hot path (measured in
bench/results/throttle.md), so each replica decides from its own copy of a bucket and a
background task pushes what it spent every `sync_seconds` with a revision-checked update
(on conflict: re-read, retry); a KV watch brings every replica the others' pushes as they
land. A client's first request on a replica loads its bucket (one KV get). Within one sync
round N replicas may together let through up to N times what is left: the price of not
waiting for NATS per request. NATS unreachable: each replica counts alone (fail open) and says so once in the log.

Headers follow draft-ietf-httpapi-ratelimit-headers (09), structured fields (RFC 9651):
    RateLimit-Policy: "reads";q=600;w=60
    RateLimit: "reads";r=599;t=1
No PyPI package writes these fields for a plain ASGI app without bringing its own storage
and framework, and per request they are two integers in a fixed item, so they are formatted
here; the tests parse them with http-sf.
"""

import asyncio
import base64
import hashlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from nats.aio.client import Client
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue
from prometheus_client import Counter, Gauge
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.routing import API_PREFIX, RouteTable
from shared.auth import Principal, TokenVerifier
from shared.observability import new_request_id
from shared.settings import Quota, Settings
from shared.tasks import stop_tasks

log = logging.getLogger(__name__)

THROTTLED = Counter(
    "knowflow_gateway_throttled_total", "Requests the gateway refused with 429", ["policy"]
)
SHARED = Gauge(
    "knowflow_gateway_ratelimit_shared",
    "1 while rate-limit buckets are shared through NATS, 0 while this replica counts alone",
)

LOGIN = f"{API_PREFIX}/auth/login"
REGISTER = f"{API_PREFIX}/auth/register"
SEARCH_PREFIXES = (f"{API_PREFIX}/search", f"{API_PREFIX}/experts")
AUTH_PREFIX = f"{API_PREFIX}/auth"
# A first-seen client waits at most this long for its shared bucket, then counts locally.
LOAD_TIMEOUT = 0.25
IDLE_SECONDS = 60.0


@dataclass(frozen=True)
class Policy:
    """A named token bucket: `limit` tokens, refilled evenly over `window` seconds."""

    name: str
    limit: int
    window: float

    @classmethod
    def of(cls, name: str, quota: Quota) -> "Policy":
        return cls(name, quota.limit, quota.window)

    @property
    def rate(self) -> float:
        return self.limit / self.window

    @property
    def header(self) -> bytes:
        """This policy as a RateLimit-Policy list member."""
        return f'"{self.name}";q={self.limit};w={math.ceil(self.window)}'.encode()


class Bucket:
    """One client's bucket in one policy, as this replica sees it.

    `tokens` at `stamp` is the shared level at KV `revision` (0: not stored yet); `pending`
    is what this replica spent since (negative after refunds), not yet pushed.
    """

    __slots__ = ("loading", "pending", "policy", "revision", "stamp", "tokens", "touched")

    def __init__(self, policy: Policy, now: float) -> None:
        self.policy = policy
        self.tokens = float(policy.limit)
        self.stamp = now
        self.revision = 0
        self.pending = 0.0
        self.touched = now
        self.loading: asyncio.Task[None] | None = None

    def shared_level(self, now: float) -> float:
        policy = self.policy
        return min(policy.limit, self.tokens + max(0.0, now - self.stamp) * policy.rate)

    def level(self, now: float) -> float:
        return min(self.policy.limit, self.shared_level(now) - self.pending)

    def install(self, value: bytes, revision: int) -> None:
        tokens, _, stamp = value.partition(b" ")
        self.tokens, self.stamp, self.revision = float(tokens), float(stamp), revision


class SharedBuckets:
    """Token buckets decided locally, synchronised through a NATS KV bucket in the background."""

    def __init__(
        self,
        nats_url: str,
        *,
        kv_bucket: str,
        ttl: float,
        sync_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.nats_url = nats_url
        self.kv_bucket = kv_bucket
        self.ttl = ttl
        self.sync_seconds = sync_seconds
        # Wall clock: the levels are shared with other processes.
        self.clock = clock
        self.buckets: dict[str, Bucket] = {}
        self.client: Client | None = None
        self.kv: KeyValue | None = None
        self.shared = False
        self._reported_outage = False
        self._task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._next_eviction = 0.0

    async def take(self, policy: Policy, client: str, cost: float = 1.0) -> tuple[bool, float]:
        """Spend `cost` tokens if the bucket holds them; returns (allowed, level afterwards)."""
        key = f"{policy.name}.{client}"
        now = self.clock()
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = Bucket(policy, now)
            if self.shared and self.kv is not None:
                bucket.loading = asyncio.create_task(self._load(key, bucket, self.kv))
        if bucket.loading is not None:
            if not bucket.loading.done():
                await asyncio.shield(bucket.loading)
            bucket.loading = None
            now = self.clock()
        bucket.touched = now
        level = bucket.level(now)
        if level < cost:
            return False, level
        bucket.pending += cost
        return True, level - cost

    def refund(self, policy: Policy, client: str, cost: float = 1.0) -> None:
        """Give back tokens taken for a request that turned out not to count."""
        bucket = self.buckets.get(f"{policy.name}.{client}")
        if bucket is not None:
            bucket.pending -= cost

    async def _load(self, key: str, bucket: Bucket, kv: KeyValue) -> None:
        try:
            entry = await asyncio.wait_for(kv.get(key), LOAD_TIMEOUT)
        except KeyNotFoundError:
            return
        except Exception as exc:  # NATS slow or gone: this replica counts alone for now
            self._outage(exc)
            return
        if entry.value is not None and entry.revision is not None:
            bucket.install(entry.value, entry.revision)

    async def start(self) -> None:
        """Connect and sync in the background: until NATS answers, this replica counts alone."""
        self._task = asyncio.create_task(self._run(), name="ratelimit-sync")

    async def stop(self) -> None:
        await stop_tasks([self._task, self._watch_task])
        try:
            await self.sync()
        except Exception as exc:
            log.debug("last rate-limit sync failed: %s", exc)
        if self.client is not None and self.client.is_connected:
            self._reported_outage = True  # closing is no outage to report
            await self.client.close()

    async def _run(self) -> None:
        while self.kv is None:
            try:
                await self._connect()
            except Exception as exc:
                self._outage(exc)
                await asyncio.sleep(2)
        while True:
            await asyncio.sleep(self.sync_seconds)
            try:
                self._ensure_watch()
                await self.sync()
            except Exception as exc:
                self._outage(exc)

    def _ensure_watch(self) -> None:
        """Keep a watch on the KV bucket while connected (it ends when the connection drops)."""
        running = self._watch_task is not None and not self._watch_task.done()
        if not running and self.kv is not None and self.client and self.client.is_connected:
            self._watch_task = asyncio.create_task(self._watch(self.kv), name="ratelimit-watch")

    async def _watch(self, kv: KeyValue) -> None:
        """Install the other replicas' pushes into the buckets this replica holds."""
        try:
            watcher = await kv.watchall()
            async for entry in watcher:
                if entry is None or entry.operation is not None:
                    continue  # end of the initial values, or a delete/expiry marker
                bucket = self.buckets.get(entry.key)
                revision = entry.revision or 0
                if bucket is not None and entry.value and revision > bucket.revision:
                    bucket.install(entry.value, revision)
        except Exception as exc:
            log.info("rate-limit KV watch ended (%s); restarted while connected", exc)

    async def _connect(self) -> None:
        async def on_error(exc: Exception) -> None:
            # Called on every failed (re)connect attempt: log the outage once, not each time.
            self._outage(exc)

        async def on_disconnect() -> None:
            self._outage(ConnectionError("disconnected from NATS"))

        async def on_reconnect() -> None:
            self._recovered()

        # Retries until NATS answers (max_reconnect_attempts=-1 covers the first connect too).
        self.client = client = Client()
        await client.connect(
            self.nats_url,
            name="gateway-ratelimit",
            connect_timeout=1,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            error_cb=on_error,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
        )
        js = client.jetstream()
        try:
            kv = await js.create_key_value(bucket=self.kv_bucket, ttl=self.ttl, history=1)
        except Exception:
            # Another replica made it already (possibly with other settings): use it.
            kv = await js.key_value(self.kv_bucket)
        self.kv = kv
        self._recovered()
        self._ensure_watch()

    def _outage(self, exc: BaseException) -> None:
        self.shared = False
        SHARED.set(0)
        if not self._reported_outage:
            self._reported_outage = True
            log.warning(
                "rate limits are counted per gateway replica until NATS is reachable (%s)", exc
            )

    def _recovered(self) -> None:
        if self._reported_outage:
            log.warning("rate limits are shared through NATS again")
        self._reported_outage = False
        self.shared = True
        SHARED.set(1)

    async def sync(self) -> None:
        """Push what this replica spent and read back the shared levels (one CAS per bucket)."""
        now = self.clock()
        if now >= self._next_eviction:
            self._evict(now)
        kv = self.kv
        if kv is None or not self.shared:
            if kv is not None and self.client is not None and self.client.is_connected:
                self._recovered()  # connected again: try pushing this round
            else:
                return
        due = [(key, bucket) for key, bucket in self.buckets.items() if bucket.pending]
        if not due:
            return
        results = await asyncio.gather(
            *(self._push(kv, key, bucket) for key, bucket in due), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                self._outage(result)
                return

    async def _push(self, kv: KeyValue, key: str, bucket: Bucket) -> None:
        spent = bucket.pending
        for _ in range(5):
            now = self.clock()
            floor = -float(bucket.policy.limit)  # overspent by racing replicas: a bounded debt
            tokens = max(floor, bucket.shared_level(now) - spent)
            value = f"{tokens:.4f} {now:.6f}".encode()
            try:
                if bucket.revision:
                    revision = await kv.update(key, value, last=bucket.revision)
                else:
                    revision = await kv.create(key, value)
            except KeyWrongLastSequenceError:
                try:
                    entry = await kv.get(key)
                except KeyNotFoundError:
                    bucket.revision = 0
                    continue
                if entry.value is not None and entry.revision is not None:
                    bucket.install(entry.value, entry.revision)
                continue
            bucket.tokens, bucket.stamp, bucket.revision = tokens, now, revision
            bucket.pending -= spent
            return
        log.info("rate-limit bucket %s still contended after 5 updates; next round", key)

    def _evict(self, now: float) -> None:
        """Forget buckets idle for a while; their shared state stays in the KV bucket."""
        self._next_eviction = now + 5.0
        idle = [
            key
            for key, bucket in self.buckets.items()
            if not bucket.pending and bucket.loading is None and now - bucket.touched > IDLE_SECONDS
        ]
        for key in idle:
            del self.buckets[key]


@dataclass(frozen=True)
class Policies:
    """Which buckets a request spends from."""

    reads: Policy
    writes: Policy
    search: Policy
    auth: Policy
    login_user: Policy
    login_ip: Policy
    register_ip: Policy

    @classmethod
    def from_settings(cls, settings: Settings) -> "Policies":
        return cls(
            reads=Policy.of("reads", settings.rate_limit_reads),
            writes=Policy.of("writes", settings.rate_limit_writes),
            search=Policy.of("search", settings.rate_limit_search),
            auth=Policy.of("auth", settings.rate_limit_auth),
            login_user=Policy.of("login-user", settings.rate_limit_login_user),
            login_ip=Policy.of("login-ip", settings.rate_limit_login_ip),
            register_ip=Policy.of("register-ip", settings.rate_limit_register_ip),
        )

    def route_class(self, method: str, path: str) -> Policy:
        if path.startswith(AUTH_PREFIX):
            return self.auth
        if path.startswith(SEARCH_PREFIXES):
            return self.search
        return self.reads if method in ("GET", "HEAD") else self.writes

    @property
    def longest_window(self) -> float:
        return max(
            policy.window
            for policy in (
                self.reads,
                self.writes,
                self.search,
                self.auth,
                self.login_user,
                self.login_ip,
                self.register_ip,
            )
        )


Check = tuple[Policy, str, float]  # policy, client key, level after taking


class RateLimiter:
    """ASGI wrapper around the proxy: spend tokens, answer 429 or forward with RateLimit headers."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        policies: Policies,
        buckets: SharedBuckets,
        verifier: TokenVerifier,
        table: RouteTable,
        max_body_bytes: int,
        observe: Callable[[str, int, float], None],
        refusal_delay: float = 0.0,
        exempt_admins: bool = False,
    ) -> None:
        self.app = app
        self.exempt_admins = exempt_admins
        self.policies = policies
        self.buckets = buckets
        self.verifier = verifier
        self.table = table
        self.max_body_bytes = max_body_bytes
        self.observe = observe
        self._throttled: dict[str, Any] = {}
        self.refusal_delay = refusal_delay

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        app: ASGIApp,
        *,
        verifier: TokenVerifier,
        table: RouteTable,
        observe: Callable[[str, int, float], None],
    ) -> "RateLimiter":
        policies = Policies.from_settings(settings)
        buckets = SharedBuckets(
            settings.nats_url,
            kv_bucket=settings.rate_limit_kv_bucket,
            ttl=policies.longest_window,
            sync_seconds=settings.rate_limit_sync_seconds,
        )
        return cls(
            app,
            policies=policies,
            buckets=buckets,
            verifier=verifier,
            table=table,
            max_body_bytes=settings.max_body_bytes,
            observe=observe,
            refusal_delay=settings.rate_limit_refusal_delay_seconds,
            exempt_admins=settings.rate_limit_exempt_admins,
        )

    async def start(self) -> None:
        await self.buckets.start()

    async def stop(self) -> None:
        await self.buckets.stop()

    def principal(self, authorization: bytes | None) -> Principal | None:
        """The verified caller (a dict hit in the verifier's cache), if already seen."""
        if authorization is not None:
            scheme, _, token = authorization.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer":
                return self.verifier.cached(token.strip())
        return None

    def client_key(self, scope: Scope, authorization: bytes | None) -> str:
        """The verified user, else the peer IP."""
        principal = self.principal(authorization)
        return f"u-{principal.user_id}" if principal is not None else ip_key(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        method: str = scope["method"]
        path: str = scope["path"]
        authorization: bytes | None = None
        request_id = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"x-request-id":
                request_id = value
        if self.exempt_admins:
            principal = self.principal(authorization)
            if principal is not None and principal.is_admin:
                await self.app(scope, receive, send)
                return
        wanted = [(self.policies.route_class(method, path), self.client_key(scope, authorization))]
        login = method == "POST" and path == LOGIN
        if login:
            body, receive = await peek_body(receive, self.max_body_bytes)
            username = login_name(body)
            if username is not None:
                wanted.append((self.policies.login_user, username_key(username)))
            wanted.append((self.policies.login_ip, ip_key(scope)))
        elif method == "POST" and path == REGISTER:
            wanted.append((self.policies.register_ip, ip_key(scope)))

        taken: list[Check] = []
        for policy, client in wanted:
            allowed, level = await self.buckets.take(policy, client)
            if not allowed:
                for earlier, earlier_client, _ in taken:
                    self.buckets.refund(earlier, earlier_client)
                checks = [*taken, (policy, client, level)]
                await self._refuse(scope, send, policy, level, checks, request_id, started)
                return
            taken.append((policy, client, level))

        limit_headers = rate_limit_headers(taken)
        status = 0

        async def send_with_limits(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), *limit_headers]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_limits)
        finally:
            if login and status != 401:
                # Only failed logins spend the per-username and per-IP login budgets.
                for policy, client, _ in taken[1:]:
                    self.buckets.refund(policy, client)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        policy: Policy,
        level: float,
        checks: list[Check],
        request_id: bytes,
        started: float,
    ) -> None:
        """429 problem+json, written straight to ASGI: a flood is mostly these, keep them cheap."""
        counter = self._throttled.get(policy.name)
        if counter is None:
            counter = self._throttled[policy.name] = THROTTLED.labels(policy.name)
        counter.inc()
        retry_after = max(1, math.ceil((1.0 - level) / policy.rate))
        if policy is self.policies.login_user:
            detail = "too many failed logins for this account"
        elif policy is self.policies.login_ip:
            detail = "too many failed logins from this address"
        elif policy is self.policies.register_ip:
            detail = "too many registrations from this address"
        else:
            detail = f"rate limit for {policy.name} exceeded"
        request_id = request_id[:128] or new_request_id().encode()
        if self.refusal_delay:
            # A client over its limit waits a moment for its 429: a flood over a few
            # connections slows to connections/delay requests a second instead of as fast as
            # the gateway can refuse, which is what the other clients' latency pays for.
            await asyncio.sleep(self.refusal_delay)
        body = orjson.dumps(
            {
                "type": "about:blank",
                "title": "Too Many Requests",
                "status": 429,
                "detail": f"{detail}; retry in {retry_after} s",
                "instance": scope["path"],
                "request_id": request_id.decode("latin-1"),
                "policy": policy.name,
            }
        )
        headers = [
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
            *rate_limit_headers(checks),
            (b"x-request-id", request_id),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        matched = self.table.match(scope["path"])
        self.observe(matched[0].public if matched else "unmatched", 429, started)


def rate_limit_headers(checks: list[Check]) -> list[tuple[bytes, bytes]]:
    """RateLimit and RateLimit-Policy fields, one list member per policy spent from."""
    items = []
    for policy, _, level in checks:
        remaining = max(0, math.floor(level))
        reset = max(0, math.ceil((policy.limit - level) / policy.rate))
        items.append(f'"{policy.name}";r={remaining};t={reset}'.encode())
    return [
        (b"ratelimit", b", ".join(items)),
        (b"ratelimit-policy", b", ".join(policy.header for policy, _, _ in checks)),
    ]


def ip_key(scope: Scope) -> str:
    client = scope.get("client")
    address = client[0] if client else "unknown"
    # KV keys allow [-/_=.A-Za-z0-9]: IPv6 colons would not do.
    return "ip-" + base64.urlsafe_b64encode(address.encode()).decode().rstrip("=")


def username_key(username: str) -> str:
    # Hashed: the KV bucket needs a bounded key and has no business holding e-mail addresses.
    return "n-" + hashlib.sha256(username.encode()).hexdigest()[:32]


def login_name(body: bytes | None) -> str | None:
    """The login a sign-in names, normalised as identity does (trimmed, lower-cased)."""
    if not body:
        return None
    try:
        payload: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    login = payload.get("login") if isinstance(payload, dict) else None
    if not isinstance(login, str) or not login.strip():
        return None
    return login.strip().lower()


async def peek_body(receive: Receive, limit: int) -> tuple[bytes | None, Receive]:
    """Read a request body (up to `limit`) and a `receive` that replays it to the proxy."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and size <= limit:
        message = await receive()
        if message["type"] != "http.request":
            pending: list[Message] = [message]
            return None, _replay(pending, receive)
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    replayed: list[Message] = [{"type": "http.request", "body": body, "more_body": more}]
    return (None if more else body), _replay(replayed, receive)


def _replay(messages: list[Message], receive: Receive) -> Receive:
    async def replaying() -> Message:
        if messages:
            return messages.pop(0)
        return await receive()

    return replaying
