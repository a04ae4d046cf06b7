"""The routing table: which public path goes to which service, and which need no token.

The table is data: adding a service or a path family is a new `Route` line, nothing else.
Prefixes match whole path segments (`/api/v1/users` matches `/api/v1/users` and
`/api/v1/users/me`, never `/api/v1/usersx`).
"""

from dataclasses import dataclass

from shared.settings import Settings

API_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Route:
    """One public path family served by one upstream service."""

    public: str
    service: str
    upstream: str = ""  # defaults to `public` without API_PREFIX
    exact: bool = False

    @property
    def upstream_prefix(self) -> str:
        return self.upstream or self.public.removeprefix(API_PREFIX)

    @property
    def forwarded_prefix(self) -> bytes:
        """What the gateway strips, so a service can name the public URL (problem `instance`)."""
        if self.public.endswith(self.upstream_prefix):
            return self.public[: len(self.public) - len(self.upstream_prefix)].encode("latin-1")
        return b""


ROUTES: tuple[Route, ...] = (
    Route("/api/v1/auth/jwks", "identity", "/.well-known/jwks.json", exact=True),
    Route("/api/v1/auth", "identity"),
    # One's own data, part by part: each service exports what it holds (README, "Your data").
    Route("/api/v1/users/me/export/posts", "posts", "/export/me", exact=True),
    Route("/api/v1/users/me/export/notifications", "notifications", "/export/me", exact=True),
    Route("/api/v1/users", "identity"),
    Route("/api/v1/groups", "identity"),
    Route("/api/v1/follows", "identity"),
    Route("/api/v1/scim-clients", "identity"),
    # SCIM 2.0: provisioning clients authenticate with their own tokens, checked by identity.
    Route("/scim/v2", "identity"),
    Route("/api/v1/audit", "identity"),
    Route("/api/v1/posts", "posts"),
    Route("/api/v1/articles", "posts"),
    # Similar questions are a search; the rest of the Q&A family lives in posts.
    Route("/api/v1/questions/similar", "search", exact=True),
    Route("/api/v1/questions", "posts"),
    Route("/api/v1/answers", "posts"),
    Route("/api/v1/comments", "posts"),
    Route("/api/v1/knowledge-health", "posts"),
    Route("/api/v1/search", "search"),
    Route("/api/v1/experts", "search"),
    Route("/api/v1/tags", "search"),
    Route("/api/v1/routing", "search"),
    Route("/api/v1/digests", "digests"),
    Route("/api/v1/feed", "digests"),
    Route("/api/v1/notifications", "notifications"),
    Route("/api/v1/webhooks", "notifications"),
)

# Every path outside the API families is a page of the web app (services/web), which
# signs people in with its own session cookie: the gateway forwards pages without a token.
API_FAMILIES = (API_PREFIX + "/", "/scim/")
PAGES = Route("/", "web", "/")

# (method, public path) pairs that are forwarded without a token.
PUBLIC_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        # The refresh token, or the reset link's token, is the credential (access may be over).
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/password-reset"),
        ("POST", "/api/v1/auth/password-reset/confirm"),
        ("GET", "/api/v1/auth/jwks"),
        # Single sign-on's one-time hand-off code is the credential (the web app trades it).
        ("POST", "/api/v1/auth/oidc/exchange"),
        # One-click unsubscribe from an e-mail (RFC 8058): the signed token is the credential.
        ("GET", "/api/v1/notifications/unsubscribe"),
        ("POST", "/api/v1/notifications/unsubscribe"),
        # An erasure's report: the erased person has no token left; the random id is the key.
        ("GET", "/api/v1/users/erasure-report"),
    }
)

# Public path families, by method: single sign-on (the provider list, the redirect to a
# provider and its callback) is how people without a token get one.
PUBLIC_PREFIXES: frozenset[tuple[str, str]] = frozenset({("GET", "/api/v1/auth/oidc/")})

# OPTIONS too: the service answers it (405 with the path's own `Allow`).
FORWARDED_METHODS = frozenset({"GET", "POST", "PATCH", "PUT", "DELETE", "OPTIONS"})


def upstream_urls(settings: Settings) -> dict[str, str]:
    """Base URL of each service, from settings."""
    return {
        "identity": settings.identity_url.rstrip("/"),
        "posts": settings.posts_url.rstrip("/"),
        "search": settings.search_service_url.rstrip("/"),
        "digests": settings.digests_url.rstrip("/"),
        "notifications": settings.notifications_url.rstrip("/"),
        "web": settings.web_url.rstrip("/"),
    }


# The gateway's own paths, never a page, whether or not it serves them (/metrics only with
# a token configured).
GATEWAY_PATHS = frozenset({"/metrics", "/healthz", "/readyz", "/openapi.json", "/asyncapi.json"})


def is_page(path: str) -> bool:
    """Whether a path is the web app's (anything outside the API families)."""
    return (
        path != API_PREFIX
        and path != "/scim"
        and not path.startswith(API_FAMILIES)
        and path not in GATEWAY_PATHS
    )


class RouteTable:
    """Resolves public paths to (route, upstream path) and upstream paths back to public ones."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.exact = {route.public: route for route in routes if route.exact}
        # Longest prefix first, so a specific family wins over a general one.
        self.prefixes = sorted(
            (route for route in routes if not route.exact),
            key=lambda route: len(route.public),
            reverse=True,
        )
        self.routes = routes

    def match(self, path: str) -> tuple[Route, str] | None:
        """The route for a public path and the path to request upstream, or None."""
        route = self.exact.get(path)
        if route is not None:
            return route, route.upstream_prefix
        for route in self.prefixes:
            prefix = route.public
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return route, route.upstream_prefix + path[len(prefix) :]
        if is_page(path):
            return PAGES, path
        return None

    def public_path(self, service: str, upstream_path: str) -> str | None:
        """Where a service's own path is exposed publicly, or None if it is not routed."""
        for route in self.routes:
            if route.service != service:
                continue
            prefix = route.upstream_prefix
            if route.exact:
                if upstream_path == prefix:
                    return route.public
            elif upstream_path == prefix or upstream_path.startswith(prefix + "/"):
                candidate = route.public + upstream_path[len(prefix) :]
                # Only if the public path routes back here (a more specific route may shadow it).
                matched = self.match(candidate)
                if matched is not None and matched[0] == route:
                    return candidate
        return None


def has_dot_segment(path: str) -> bool:
    """`.` or `..` as a segment: such a path could climb out of its route upstream."""
    return "/." in path and any(segment in (".", "..") for segment in path.split("/"))


PUBLIC_PATHS = frozenset(path for _method, path in PUBLIC_OPERATIONS)


def is_public(method: str, path: str) -> bool:
    return (method, path) in PUBLIC_OPERATIONS or any(
        method == public_method and path.startswith(prefix)
        for public_method, prefix in PUBLIC_PREFIXES
    )


# Path families whose bearer token is not a user JWT: the service checks it (SCIM clients).
SERVICE_AUTHENTICATED = ("/scim/v2",)


def needs_token_at_gateway(path: str) -> bool:
    """Whether the gateway checks the token before forwarding.

    Not on public paths, whatever the method: another method there is the service's 405
    (with its `Allow`), not a 401. Not under SCIM, whose provisioning tokens only identity
    knows. Services verify tokens themselves on every operation.
    """
    if any(path == prefix or path.startswith(prefix + "/") for prefix in SERVICE_AUTHENTICATED):
        return False
    if is_page(path):
        return False
    return path not in PUBLIC_PATHS and not any(
        path.startswith(prefix) for _method, prefix in PUBLIC_PREFIXES
    )
