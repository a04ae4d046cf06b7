"""Token revocation followed from a real NATS server (shared.revocation + TokenVerifier)."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import pytest
import pytest_asyncio

from shared.auth import TokenIssuer, TokenVerifier
from shared.errors import Unauthorized
from shared.events.bus import Bus
from shared.events.contracts import AccessRevoked
from shared.events.envelope import subject_for, wrap
from shared.ids import new_id, utcnow
from shared.natsserver import free_port, start_nats_server
from shared.revocation import REVOCATION_SUBJECT, RevocationFeed, Revocations


@pytest_asyncio.fixture
async def bus(nats_url: str) -> AsyncIterator[Bus]:
    bus = await Bus.connect(nats_url, stream="KNOWFLOW", name="test-revocation")
    try:
        yield bus
    finally:
        await bus.close()


async def publish(bus: Bus, revoked: AccessRevoked) -> None:
    """As identity's outbox relay does: on the restricted subject, deduplicated by id."""
    envelope = wrap(revoked, source="/knowflow/identity")
    assert subject_for(envelope.type, envelope.audience) == REVOCATION_SUBJECT
    await bus.js.publish(
        REVOCATION_SUBJECT,
        envelope.model_dump_json().encode(),
        headers={"Nats-Msg-Id": str(envelope.id)},
    )


def verifier_for(issuer: TokenIssuer, *, keep_seconds: float | None = None) -> TokenVerifier:
    verifier = TokenVerifier(issuer=issuer.issuer, audience=issuer.audience, jwks=issuer.jwks())
    if keep_seconds is not None:
        verifier.revocations = Revocations(keep_seconds=keep_seconds)
    return verifier


async def refused_within(verify: Callable[[], object], timeout: float) -> float:
    """Seconds until `verify()` raises Unauthorized; fails after `timeout`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            verify()
        except Unauthorized:
            return time.perf_counter() - started
        await asyncio.sleep(0.01)
    raise AssertionError(f"still accepted after {timeout} s")


@pytest.mark.asyncio
async def test_revoking_a_user_refuses_their_earlier_tokens_even_cached_and_not_later_ones(
    bus: Bus, token_issuer: TokenIssuer
) -> None:
    verifier = verifier_for(token_issuer)
    feed = RevocationFeed(bus, verifier.revocations, name="test")
    await feed.start()
    try:
        user = new_id()
        earlier = token_issuer.issue(user_id=user, handle="ada")
        other = token_issuer.issue(user_id=new_id(), handle="bob")
        assert verifier.verify(earlier).user_id == user  # now cached
        await asyncio.sleep(0.005)
        await publish(bus, AccessRevoked(user_id=user, not_before=utcnow(), reason="deactivated"))
        elapsed = await refused_within(lambda: verifier.verify(earlier), timeout=5)
        print(f"revocation by user applied in {elapsed * 1000:.0f} ms")
        assert verifier.cached(earlier) is None
        assert verifier.verify(other).handle == "bob"
        # A sign-in a moment after the revocation, in the same second: accepted.
        await asyncio.sleep(0.005)
        later = token_issuer.issue(user_id=user, handle="ada")
        assert verifier.verify(later).user_id == user
    finally:
        await feed.stop()


@pytest.mark.asyncio
async def test_revoking_a_session_refuses_that_sessions_tokens_only(
    bus: Bus, token_issuer: TokenIssuer
) -> None:
    verifier = verifier_for(token_issuer)
    feed = RevocationFeed(bus, verifier.revocations, name="test")
    await feed.start()
    try:
        user, ended, kept = new_id(), new_id(), new_id()
        in_ended = token_issuer.issue(user_id=user, handle="ada", session_id=ended)
        in_kept = token_issuer.issue(user_id=user, handle="ada", session_id=kept)
        verifier.verify(in_ended)
        await publish(
            bus,
            AccessRevoked(user_id=user, session_id=ended, not_before=utcnow(), reason="logout"),
        )
        await refused_within(lambda: verifier.verify(in_ended), timeout=5)
        assert verifier.verify(in_kept).session_id == kept
    finally:
        await feed.stop()


@pytest.mark.asyncio
async def test_a_revocation_is_forgotten_once_no_token_it_names_can_be_alive(
    bus: Bus, token_issuer: TokenIssuer
) -> None:
    verifier = verifier_for(token_issuer, keep_seconds=1.5)
    feed = RevocationFeed(bus, verifier.revocations, name="test")
    await feed.start()
    try:
        user = new_id()
        # Older than any live token: not even kept.
        long_ago = utcnow() - timedelta(seconds=10)
        await publish(bus, AccessRevoked(user_id=new_id(), not_before=long_ago, reason="logout"))
        await publish(bus, AccessRevoked(user_id=user, not_before=utcnow(), reason="deactivated"))
        await _until(lambda: len(verifier.revocations) == 1, 5)
        assert verifier.revocations.refuses(user_id=user, session_id=None, issued_at=0.0)
        await _until(lambda: len(verifier.revocations) == 0, 5)
        assert not verifier.revocations.refuses(user_id=user, session_id=None, issued_at=0.0)
    finally:
        await feed.stop()


@pytest.mark.asyncio
async def test_a_verifier_that_starts_later_learns_the_revocations_still_in_force(
    bus: Bus, token_issuer: TokenIssuer
) -> None:
    user, session = new_id(), new_id()
    before = token_issuer.issue(user_id=user, handle="ada")
    in_session = token_issuer.issue(user_id=new_id(), handle="bob", session_id=session)
    await publish(bus, AccessRevoked(user_id=user, not_before=utcnow(), reason="deactivated"))
    await publish(
        bus,
        AccessRevoked(user_id=new_id(), session_id=session, not_before=utcnow(), reason="logout"),
    )
    # Published before it existed, and older than a token lives: not learnt.
    stale_user = new_id()
    stale = utcnow() - timedelta(seconds=3700)
    await publish(bus, AccessRevoked(user_id=stale_user, not_before=stale, reason="logout"))

    restarted = verifier_for(token_issuer)
    feed = RevocationFeed(bus, restarted.revocations, name="restarted")
    await feed.start()  # returns once caught up: no request may come before
    try:
        with pytest.raises(Unauthorized):
            restarted.verify(before)
        with pytest.raises(Unauthorized):
            restarted.verify(in_session)
        assert len(restarted.revocations) == 2
    finally:
        await feed.stop()


@pytest.mark.asyncio
async def test_a_follower_whose_consumer_vanished_resumes_without_missing_a_revocation(
    bus: Bus, token_issuer: TokenIssuer
) -> None:
    verifier = verifier_for(token_issuer)
    feed = RevocationFeed(bus, verifier.revocations, name="test")
    await feed.start()
    try:
        assert feed._consumer is not None
        await bus.js.delete_consumer(bus.stream, feed._consumer)  # as after a NATS restart
        user = new_id()
        token = token_issuer.issue(user_id=user, handle="ada")
        await asyncio.sleep(0.005)
        await publish(bus, AccessRevoked(user_id=user, not_before=utcnow(), reason="deactivated"))
        await refused_within(lambda: verifier.verify(token), timeout=15)
    finally:
        await feed.stop()


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def test_a_later_revocation_of_a_user_covers_the_earlier_one() -> None:
    revocations = Revocations(keep_seconds=3600)
    user: UUID = new_id()
    first = utcnow()
    second = first + timedelta(seconds=5)
    revocations.add(AccessRevoked(user_id=user, not_before=second, reason="logout"))
    revocations.add(AccessRevoked(user_id=user, not_before=first, reason="logout"))
    at_four = first.timestamp() + 4
    assert revocations.refuses(user_id=user, session_id=None, issued_at=at_four)
    assert not revocations.refuses(user_id=user, session_id=None, issued_at=second.timestamp() + 1)


@pytest.mark.asyncio
async def test_a_follower_rides_out_a_nats_restart_and_learns_what_was_published_meanwhile(
    tmp_path: Path, token_issuer: TokenIssuer
) -> None:
    port = free_port()
    server = start_nats_server(tmp_path / "nats", port=port)
    url = f"nats://127.0.0.1:{port}"
    verifier = verifier_for(token_issuer)
    follower_bus = await Bus.connect(url, stream="KNOWFLOW", name="follower")
    feed = RevocationFeed(follower_bus, verifier.revocations, name="test")
    try:
        await feed.start()
        server.terminate()
        server.wait(timeout=10)
        server = start_nats_server(tmp_path / "nats", port=port)  # same store: the stream stays
        user = new_id()
        token = token_issuer.issue(user_id=user, handle="ada")
        await asyncio.sleep(0.005)
        publisher = await Bus.connect(url, stream="KNOWFLOW", name="publisher")
        try:
            await publish(
                publisher, AccessRevoked(user_id=user, not_before=utcnow(), reason="logout")
            )
        finally:
            await publisher.close()
        elapsed = await refused_within(lambda: verifier.verify(token), timeout=15)
        print(f"after a NATS restart the revocation was applied in {elapsed * 1000:.0f} ms")
    finally:
        await feed.stop()
        await follower_bus.close()
        server.terminate()
        server.wait(timeout=10)
