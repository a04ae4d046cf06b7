"""A window's followed content ranked once, and each person's digest picked from it.

Most of a digest is the same for everyone who follows the same source: an item's score
depends on its kind, its replies and its age, which everyone who may read it sees alike.
So the window's threads are ranked once by that shared score and numbered best first;
each source (an author, a group, a tag, a person who replied) is the set of its threads'
numbers, kept as a bit mask when it is big. A person's section is then their source's
mask, minus what they may not read, what they were sent before, their own items and
what a stronger follow of theirs already shows; its size is a popcount and its best
items are its lowest bits. A round costs people times sources, not people times items.

A thread whose score or inclusion differs for one person is picked for that person the
exact, slow way: one that mentions them, one with replies only some may read (in a
group they are a member of), and an older thread only they replied to. The result is
the digest `rank` gives over every candidate (tested against `build_digest`).
"""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import chain
from typing import TypeVar
from uuid import UUID

from services.digests.digest import Follows, ThreadActivity, matches_for
from services.digests.ranking import (
    SECTION_CAP,
    Candidate,
    Match,
    Ranked,
    Reason,
    Section,
    item_order,
    order,
    score,
    section_order,
    strongest_match,
)

Key = TypeVar("Key")
NO_MENTIONS: frozenset[str] = frozenset()


@dataclass
class Reader:
    """What decides one person's digest, read at build time."""

    user_id: UUID
    follows: Follows = field(default_factory=lambda: Follows(frozenset(), frozenset(), frozenset()))
    member_of: frozenset[UUID] = frozenset()
    mention_keys: frozenset[str] = frozenset()
    sent_before: frozenset[UUID] = frozenset()


@dataclass(frozen=True, slots=True)
class Item:
    """A live item's columns, as the ranking needs them (no title or excerpt)."""

    content_id: UUID
    kind: str
    author_id: UUID
    group_id: UUID | None
    public: bool  # readable by anyone: public and outside private groups
    created_at: datetime
    tags: tuple[str, ...]
    mentions: frozenset[str]


@dataclass(slots=True)
class Thread:
    """A root and its live replies in the window, with what everyone may read pre-folded."""

    root: Item
    public_replies: int = 0
    # Tuples, not a dict and a list: most threads have none, the rest a few, and a window
    # holds 30,000 threads (an empty dict and list each cost 3.5 MB of a window).
    public_authors: tuple[UUID, ...] = ()  # who replied openly, first reply first
    public_mentions: frozenset[str] = frozenset()
    # Replies only some may read (in a private group, or not public): checked per person.
    gated: tuple[Item, ...] = ()

    def activity(self, reader: Reader) -> ThreadActivity:
        """The replies the reader may read, folded as `load_thread_activity` does."""
        user, follows = reader.user_id, reader.follows
        replies = self.public_replies
        others = len(self.public_authors) > 1 or (
            bool(self.public_authors) and user not in self.public_authors
        )
        mentioned = not reader.mention_keys.isdisjoint(self.public_mentions)
        repliers = set(follows.users.intersection(self.public_authors))
        for reply in self.gated:
            if reply.group_id is None or reply.group_id not in reader.member_of:
                continue
            replies += 1
            others = others or reply.author_id != user
            mentioned = mentioned or not reader.mention_keys.isdisjoint(reply.mentions)
            if reply.author_id in follows.users:
                repliers.add(reply.author_id)
        return ThreadActivity(
            replies=replies,
            replied_by_others=others,
            mentions_caller=mentioned,
            followed_repliers=frozenset(repliers),
        )

    def candidate_for(self, reader: Reader, *, since: datetime) -> Candidate | None:
        """The thread as the reader's candidate, as `build_digest` finds it; None if it is not."""
        root = self.root
        if root.content_id in reader.sent_before or root.author_id == reader.user_id:
            return None
        if not (root.public or (root.group_id is not None and root.group_id in reader.member_of)):
            return None
        info = self.activity(reader)
        if root.created_at < since and not info.replied_by_others:
            return None
        matches = tuple(matches_for(root, reader.follows, info))
        if not matches:
            return None
        return Candidate(
            content_id=root.content_id,
            kind=root.kind,
            created_at=root.created_at,
            replies=info.replies,
            mentions_caller=info.mentions_caller
            or not reader.mention_keys.isdisjoint(root.mentions),
            matches=matches,
        )


# A source with at least this many threads keeps a bit mask: picking from it is a few
# integer operations however big it is. Smaller ones are walked (a mask of a few far
# apart bits costs as much memory as a big one).
BIG = 48


def bits(positions: Iterable[int], size: int) -> int:
    """The mask with `positions` set, `size` bytes wide at most."""
    buffer = bytearray(size)
    for position in positions:
        buffer[position >> 3] |= 1 << (position & 7)
    return int.from_bytes(buffer, "little")


def lowest(mask: int, count: int) -> list[int]:
    """The `count` lowest set bits of `mask` (the best threads), in order."""
    out: list[int] = []
    while mask and len(out) < count:
        low = mask & -mask
        out.append(low.bit_length() - 1)
        mask ^= low
    return out


class Source:
    """A source's threads: their numbers in order and, when there are many, a mask."""

    __slots__ = ("mask", "positions")

    def __init__(self, positions: list[int], size: int) -> None:
        positions.sort()
        self.positions = positions
        self.mask = bits(positions, size) if len(positions) >= BIG else None


def union(sources: Iterable[Source], size: int) -> int:
    """The mask of every thread in `sources`."""
    mask = 0
    walked: list[list[int]] = []
    for source in sources:
        if source.mask is not None:
            mask |= source.mask
        else:
            walked.append(source.positions)
    return mask | bits(chain.from_iterable(walked), size)


@dataclass(frozen=True)
class Allowed:
    """The threads a section may show, as a mask and as bytes (for walking small sources)."""

    mask: int
    flags: bytes

    @classmethod
    def of(cls, mask: int, size: int) -> "Allowed":
        return cls(mask, mask.to_bytes(size, "little"))

    def pick(self, source: Source, cap: int) -> tuple[int, list[int]]:
        """How many of the source's threads are allowed, and the best `cap` of them."""
        if source.mask is not None:
            chosen = source.mask & self.mask
            return chosen.bit_count(), lowest(chosen, cap)
        flags = self.flags
        kept = [p for p in source.positions if flags[p >> 3] >> (p & 7) & 1]
        return len(kept), kept[:cap]


def first(pair: tuple[int, Match]) -> int:
    return pair[0]


def _sources(index: Mapping[Key, list[int]], size: int) -> dict[Key, Source]:
    return {key: Source(positions, size) for key, positions in index.items()}


@dataclass
class Window:
    """The threads of a `[since, until)` window, best first by the score everyone sees."""

    since: datetime
    until: datetime
    threads: list[Thread]
    position: dict[UUID, int]
    size: int  # bytes of a mask
    base: list[Candidate]  # the candidate as anyone who may read it sees it
    scores: list[float]
    usable: int  # threads anyone may get (an old thread needs someone's reply)
    gated_roots: int  # roots only members of their group may read
    by_author: dict[UUID, Source]
    by_group: dict[UUID, Source]
    by_tag: dict[str, Source]
    # tag -> an earlier tag of the same threads -> those threads: shown under the earlier.
    tag_after: dict[str, dict[str, Source]]
    replied_by: dict[UUID, Source]  # threads with a reply anyone may read, by its author
    mentioned: dict[str, list[int]]  # threads whose root or open replies mention the key
    gated_in: dict[UUID, list[int]]  # threads with replies only the group's members read
    only_replier: dict[UUID, list[int]]  # older threads one person alone replied to openly
    private_groups: frozenset[UUID] = field(default_factory=frozenset)
    # The ranked items one build's digests share (`build_digests` clears it after each).
    shared: dict[tuple[int, str, str], Ranked] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        threads: Iterable[Thread],
        *,
        since: datetime,
        until: datetime,
        private_groups: frozenset[UUID],
    ) -> "Window":
        scored: list[tuple[float, Thread, Candidate]] = []
        for thread in threads:
            root = thread.root
            candidate = Candidate(
                content_id=root.content_id,
                kind=root.kind,
                created_at=root.created_at,
                replies=thread.public_replies,
            )
            scored.append((score(candidate, since=since, until=until), thread, candidate))
        scored.sort(key=lambda s: order(s[0], s[2]))
        size = max((len(scored) + 7) // 8, 1)
        by_author: dict[UUID, list[int]] = defaultdict(list)
        by_group: dict[UUID, list[int]] = defaultdict(list)
        by_tag: dict[str, list[int]] = defaultdict(list)
        tag_after: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        replied_by: dict[UUID, list[int]] = defaultdict(list)
        mentioned: dict[str, list[int]] = defaultdict(list)
        gated_in: dict[UUID, list[int]] = defaultdict(list)
        only_replier: dict[UUID, list[int]] = defaultdict(list)
        usable: list[int] = []
        gated_roots: list[int] = []
        for position, (_score, thread, _candidate) in enumerate(scored):
            root = thread.root
            old = root.created_at < since
            if not old or thread.public_authors:
                usable.append(position)
            if old and len(thread.public_authors) == 1:
                only_replier[next(iter(thread.public_authors))].append(position)
            if not root.public:
                gated_roots.append(position)
            by_author[root.author_id].append(position)
            if root.group_id is not None:
                by_group[root.group_id].append(position)
            for k, tag in enumerate(root.tags):
                by_tag[tag].append(position)
                for earlier in root.tags[:k]:
                    tag_after[tag][earlier].append(position)
            for author in thread.public_authors:
                replied_by[author].append(position)
            for key in root.mentions | thread.public_mentions:
                mentioned[key].append(position)
            for group in {reply.group_id for reply in thread.gated}:
                if group is not None:
                    gated_in[group].append(position)
        return cls(
            since=since,
            until=until,
            threads=[s[1] for s in scored],
            position={s[1].root.content_id: k for k, s in enumerate(scored)},
            size=size,
            base=[s[2] for s in scored],
            scores=[s[0] for s in scored],
            usable=bits(usable, size),
            gated_roots=bits(gated_roots, size),
            by_author=_sources(by_author, size),
            by_group=_sources(by_group, size),
            by_tag=_sources(by_tag, size),
            tag_after={tag: _sources(after, size) for tag, after in tag_after.items()},
            replied_by=_sources(replied_by, size),
            mentioned=dict(mentioned),
            gated_in=dict(gated_in),
            only_replier=dict(only_replier),
            private_groups=private_groups,
        )

    def ranked(self, position: int, match: Match) -> Ranked:
        """The thread under `match` as anyone sees it: made once, shared by the build's digests."""
        key = (position, match.via, match.key)
        ranked = self.shared.get(key)
        if ranked is None:
            ranked = self.shared[key] = Ranked(self.base[position], match, self.scores[position])
        return ranked

    def personal(self, reader: Reader) -> set[int]:
        """Threads the reader sees differently from everyone else: picked the exact way."""
        out: set[int] = set()
        for key in reader.mention_keys:
            out.update(self.mentioned.get(key, ()))
        for group in reader.member_of:
            out.update(self.gated_in.get(group, ()))
        out.update(self.only_replier.get(reader.user_id, ()))
        return out

    def sections_for(self, reader: Reader, *, cap: int = SECTION_CAP) -> list[Section]:
        """The reader's ranked sections: `rank` over their candidates, picked by source."""
        follows, size = reader.follows, self.size
        personal = self.personal(reader)
        left_out = [self.position[c] for c in reader.sent_before if c in self.position]
        left_out.extend(personal)
        own = self.by_author.get(reader.user_id)
        readable = self.usable & ~(
            self.gated_roots
            & ~union((self.by_group[g] for g in reader.member_of if g in self.by_group), size)
        )
        ok = readable & ~bits(left_out, size) & ~(union([own], size) if own else 0)
        authors = [self.by_author[u] for u in follows.users if u in self.by_author]
        groups = [self.by_group[g] for g in follows.groups if g in self.by_group]
        tags = [t for t in follows.tags if t in self.by_tag]
        after_authors = ok & ~union(authors, size)
        after_groups = after_authors & ~union(groups, size)
        after_tags = after_groups & ~union((self.by_tag[t] for t in tags), size)

        # A section's count, its best threads (by number) and what was picked the exact way.
        picked: dict[tuple[Reason, str], tuple[int, list[tuple[int, Match]], list[Ranked]]] = {}

        def keep(reason: Reason, match: Match, count: int, top: list[int]) -> None:
            if not count:
                return
            before, best, exact = picked.get((reason, match.key), (0, [], []))
            best.extend((position, match) for position in top)
            picked[(reason, match.key)] = (before + count, best, exact)

        allowed = Allowed.of(ok, size)
        for user in follows.users:
            if user in self.by_author:
                keep("person", Match("author", str(user)), *allowed.pick(self.by_author[user], cap))
        allowed = Allowed.of(after_authors, size)
        for group in follows.groups:
            if group in self.by_group:
                keep("group", Match("group", str(group)), *allowed.pick(self.by_group[group], cap))
        for tag in tags:
            earlier = self.tag_after.get(tag, {})
            shown_earlier = [earlier[t] for t in follows.tags if t in earlier]
            mask = after_groups & ~union(shown_earlier, size) if shown_earlier else after_groups
            keep("tag", Match("tag", tag), *Allowed.of(mask, size).pick(self.by_tag[tag], cap))
        # A thread only a followed person's reply brings in is shown under the first of
        # them (by id, as `matches_for` orders them).
        for user in sorted(follows.users, key=str):
            source = self.replied_by.get(user)
            if source is None:
                continue
            chosen = union([source], size) & after_tags
            after_tags &= ~chosen
            keep("person", Match("reply", str(user)), chosen.bit_count(), lowest(chosen, cap))

        for position in personal:
            candidate = self.threads[position].candidate_for(reader, since=self.since)
            if candidate is None:
                continue
            match = strongest_match(candidate.matches)
            ranked = Ranked(candidate, match, score(candidate, since=self.since, until=self.until))
            before, best, exact = picked.get((match.reason, match.key), (0, [], []))
            exact.append(ranked)
            picked[(match.reason, match.key)] = (before + 1, best, exact)

        sections: list[Section] = []
        for (reason, key), (count, best, exact) in picked.items():
            best.sort(key=first)  # numbered best first
            items = [self.ranked(position, match) for position, match in best[:cap]]
            if exact:
                items.extend(exact)
                items.sort(key=item_order)
            sections.append(
                Section(reason=reason, key=key, items=items[:cap], omitted=max(count - cap, 0))
            )
        return sorted(sections, key=section_order)
