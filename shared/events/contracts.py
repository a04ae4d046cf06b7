"""One pydantic model per event type: the documented contract between services.

Content events carry the whole current state of the item (with a monotonically
increasing `version`), so a consumer can act without calling back and can ignore a
stale or replayed event by comparing versions.
"""

from typing import Literal, get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from shared.events.envelope import Audience, EventData
from shared.ids import UtcDatetime

Visibility = Literal["public", "private"]
GroupVisibility = Literal["open", "private"]
# Flow (post, reply), stock (article) and Q&A (question, answer, comment). A question's
# `thread_id` is its own id; an answer's `parent_id` and `thread_id` are its question; a
# comment's `parent_id` is the question or answer it is on and its `thread_id` the question.
ContentKind = Literal["post", "reply", "article", "question", "answer", "comment"]
VotableKind = Literal["question", "answer"]
FollowTarget = Literal["user", "tag", "group"]
# Organisation roles: an analyst reads knowledge-health data; an admin runs the organisation.
OrganisationRole = Literal["admin", "member", "analyst"]
# Group roles: a moderator manages members and hides content in the group.
GroupRole = Literal["owner", "moderator", "member"]
RevocationReason = Literal[
    "deactivated",
    "logout",
    "password_changed",
    "password_reset",
    "refresh_reuse",
    "erased",
    "role_changed",
]
AuditActorKind = Literal["user", "provisioning_client", "system"]


# --- identity -------------------------------------------------------------------------


class UserRegistered(EventData):
    event_type = "knowflow.user.registered.v1"
    user_id: UUID
    handle: str
    display_name: str

    def subject_id(self) -> str:
        return str(self.user_id)


class UserProfileUpdated(EventData):
    event_type = "knowflow.user.profile_updated.v1"
    user_id: UUID
    handle: str
    display_name: str
    bio: str
    skills: list[str]

    def subject_id(self) -> str:
        return str(self.user_id)


class UserContactUpdated(EventData):
    """Where a person is reached by e-mail: sent at registration and whenever it changes.

    Personal data, so restricted: only Knowflow's notifier uses it. `changed_at` orders
    two changes (identity stamps it; a receiver keeps the latest).
    """

    event_type = "knowflow.user.contact_updated.v1"
    user_id: UUID
    email: str
    changed_at: UtcDatetime

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.user_id)


class UserDeactivated(EventData):
    """An admin or a provisioning client ended a person's access; their content stays, shown as
    from a former member. Followed by an `AccessRevoked` for every token they hold."""

    event_type = "knowflow.user.deactivated.v1"
    user_id: UUID
    deactivated_at: UtcDatetime

    def subject_id(self) -> str:
        return str(self.user_id)


class UserReactivated(EventData):
    event_type = "knowflow.user.reactivated.v1"
    user_id: UUID
    reactivated_at: UtcDatetime

    def subject_id(self) -> str:
        return str(self.user_id)


class OrganisationRoleChanged(EventData):
    event_type = "knowflow.user.role_changed.v1"
    user_id: UUID
    role: OrganisationRole
    changed_at: UtcDatetime

    def subject_id(self) -> str:
        return str(self.user_id)


class AccessRevoked(EventData):
    """Tokens every verifier (each service replica and the gateway) refuses from now on,
    before they expire. With `session_id`, the tokens of that session (sign-in); without,
    every token of `user_id` issued at or before `not_before`. A verifier keeps a revocation
    as long as a token issued before it can live, then forgets it."""

    event_type = "knowflow.auth.access_revoked.v1"
    user_id: UUID
    session_id: UUID | None = None
    not_before: UtcDatetime
    reason: RevocationReason

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.user_id)


class PasswordResetRequested(EventData):
    """A person asked to reset their password: the notifier e-mails them a single-use link
    carrying `token`, valid until `expires_at`. Restricted: the token is a secret."""

    event_type = "knowflow.auth.password_reset_requested.v1"
    user_id: UUID
    email: str
    token: str
    expires_at: UtcDatetime

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.user_id)


class UserErasureRequested(EventData):
    """Delete on request (GDPR): every service removes or anonymises the person's personal
    data and answers with one `ErasureReported` naming what it removed."""

    event_type = "knowflow.user.erasure_requested.v1"
    erasure_id: UUID
    user_id: UUID
    requested_at: UtcDatetime
    # The name being erased, so a service can remove it where it was written (mentions,
    # credits, inbox titles), and what stands in for it from now on (the tombstone's handle,
    # which no one can register, and "Former member").
    handle: str = ""
    display_name: str = ""
    replacement_handle: str = ""
    replacement_display_name: str = ""

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.user_id)


class ErasureReported(EventData):
    event_type = "knowflow.user.erasure_reported.v1"
    erasure_id: UUID
    user_id: UUID
    service: str
    # What was removed or anonymised, by kind: {"notifications": 12, "search_documents": 3}.
    removed: dict[str, int]
    reported_at: UtcDatetime

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.erasure_id)


class AuditReported(EventData):
    """A security-relevant action in a service other than identity (webhook configuration,
    moderation, ...), for identity's audit log, which chains and keeps it."""

    event_type = "knowflow.audit.reported.v1"
    actor_id: UUID | None
    actor_kind: AuditActorKind = "user"
    action: str
    target: str
    at: UtcDatetime
    ip: str | None = None
    request_id: str | None = None
    details: dict[str, str] = Field(default_factory=dict)

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return self.target


class AuditRecorded(EventData):
    """One entry of the audit log as chained: `hash` covers the entry and `previous_hash`."""

    event_type = "knowflow.audit.recorded.v1"
    sequence: int
    entry_id: UUID
    actor_id: UUID | None
    actor_kind: AuditActorKind
    action: str
    target: str
    at: UtcDatetime
    ip: str | None = None
    request_id: str | None = None
    service: str
    details: dict[str, str] = Field(default_factory=dict)
    previous_hash: str
    hash: str

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.entry_id)


class GroupEvent(EventData):
    group_id: UUID
    visibility: GroupVisibility

    def audience(self) -> Audience:
        return "restricted" if self.visibility == "private" else "public"

    def subject_id(self) -> str:
        return str(self.group_id)


class GroupCreated(GroupEvent):
    event_type = "knowflow.group.created.v1"
    slug: str
    name: str
    owner_id: UUID


class MembershipEvent(GroupEvent):
    """A change of one membership, numbered by identity: a projection keeps the highest.

    `version` grows with every change of the membership (group, user), removals included;
    0 means the event was recorded before memberships were numbered (see shared/projections.py).
    """

    user_id: UUID
    version: int = Field(default=0, ge=0)


class GroupUpdated(GroupEvent):
    """A group's name, description or owner changed (ownership transfer)."""

    event_type = "knowflow.group.updated.v1"
    slug: str
    name: str
    description: str
    owner_id: UUID


class GroupMemberAdded(MembershipEvent):
    """A person joined, or their role in the group changed (sent again with a higher version)."""

    event_type = "knowflow.group.member_added.v1"
    role: GroupRole
    # Who added them (themselves when joining or creating); None in events sent before.
    added_by: UUID | None = None


class GroupMemberRemoved(MembershipEvent):
    event_type = "knowflow.group.member_removed.v1"


class FollowEvent(EventData):
    follower_id: UUID
    target_type: FollowTarget
    target: str  # a user id, a tag (lower case, no '#') or a group id

    def audience(self) -> Audience:
        # Who follows what is personal: only Knowflow's services see it.
        return "restricted"

    def subject_id(self) -> str:
        return str(self.follower_id)


class FollowCreated(FollowEvent):
    event_type = "knowflow.follow.created.v1"


class FollowDeleted(FollowEvent):
    event_type = "knowflow.follow.deleted.v1"


# --- posts ----------------------------------------------------------------------------


class ContentEvent(EventData):
    content_id: UUID
    kind: ContentKind
    author_id: UUID
    group_id: UUID | None
    visibility: Visibility
    version: int = Field(ge=1)

    def audience(self) -> Audience:
        return "restricted" if self.visibility == "private" else "public"

    def subject_id(self) -> str:
        return str(self.content_id)


class ContentSnapshot(ContentEvent):
    title: str | None
    body: str
    tags: list[str]
    mentions: list[str]
    parent_id: UUID | None
    thread_id: UUID | None
    source_thread_id: UUID | None = None  # an article formalized from a thread
    created_at: UtcDatetime
    updated_at: UtcDatetime
    # Hidden by a moderator of its group: a consumer drops the item as if deleted (title,
    # body, tags and mentions come empty) until a later version comes with hidden false.
    hidden: bool = False


class PostCreated(ContentSnapshot):
    event_type = "knowflow.post.created.v1"


class PostUpdated(ContentSnapshot):
    event_type = "knowflow.post.updated.v1"


class PostDeleted(ContentEvent):
    event_type = "knowflow.post.deleted.v1"
    deleted_at: UtcDatetime


class ArticleCreated(ContentSnapshot):
    event_type = "knowflow.article.created.v1"


class ArticleUpdated(ContentSnapshot):
    event_type = "knowflow.article.updated.v1"


class ArticleDeleted(ContentEvent):
    event_type = "knowflow.article.deleted.v1"
    deleted_at: UtcDatetime


class ReactionEvent(EventData):
    """Someone reacted to a post; "thanks" is evidence of the author's expertise."""

    content_id: UUID
    author_id: UUID  # of the post reacted to
    user_id: UUID  # who reacted
    kind: Literal["like", "thanks"]
    group_id: UUID | None
    visibility: Visibility

    def audience(self) -> Audience:
        return "restricted" if self.visibility == "private" else "public"

    def subject_id(self) -> str:
        return str(self.content_id)


class ReactionAdded(ReactionEvent):
    event_type = "knowflow.reaction.added.v1"


class ReactionRemoved(ReactionEvent):
    event_type = "knowflow.reaction.removed.v1"


# --- questions and answers -------------------------------------------------------------


class QuestionSnapshot(ContentSnapshot):
    """A question's whole current state; `version` grows with every change of it.

    Accepting an answer and closing as a duplicate change the question, so each also
    sends `question.updated` with the new state (besides `answer.accepted` or
    `question.closed`). Answer counts and scores are not part of it: they follow from
    `answer.*` and `vote.cast`.
    """

    accepted_answer_id: UUID | None = None
    duplicate_of: UUID | None = None  # closed as a duplicate of this question


class QuestionCreated(QuestionSnapshot):
    event_type = "knowflow.question.created.v1"


class QuestionUpdated(QuestionSnapshot):
    event_type = "knowflow.question.updated.v1"


class QuestionDeleted(ContentEvent):
    event_type = "knowflow.question.deleted.v1"
    deleted_at: UtcDatetime


class AnswerCreated(ContentSnapshot):
    """An answer: `parent_id` and `thread_id` are its question."""

    event_type = "knowflow.answer.created.v1"


class AnswerUpdated(ContentSnapshot):
    event_type = "knowflow.answer.updated.v1"


class AnswerDeleted(ContentEvent):
    event_type = "knowflow.answer.deleted.v1"
    deleted_at: UtcDatetime


class CommentCreated(ContentSnapshot):
    """A short comment: `parent_id` is its question or answer, `thread_id` the question."""

    event_type = "knowflow.comment.created.v1"


class CommentUpdated(ContentSnapshot):
    event_type = "knowflow.comment.updated.v1"


class CommentDeleted(ContentEvent):
    event_type = "knowflow.comment.deleted.v1"
    deleted_at: UtcDatetime


class QAEvent(EventData):
    """Something happened to a question or answer; visible as its question is."""

    question_id: UUID
    group_id: UUID | None
    visibility: Visibility

    def audience(self) -> Audience:
        return "restricted" if self.visibility == "private" else "public"

    def subject_id(self) -> str:
        return str(self.question_id)


class VoteCast(QAEvent):
    """A person's vote on a question or answer changed; `value` 0 means withdrawn."""

    event_type = "knowflow.vote.cast.v1"
    content_id: UUID
    kind: VotableKind
    author_id: UUID  # of the item voted on
    voter_id: UUID
    value: Literal[-1, 0, 1]
    score: int  # the item's score after this vote
    version: int = Field(ge=1)  # grows with every vote change on the item


class AnswerAccepted(QAEvent):
    """The accepted answer of a question changed (`answer_id` None: no longer any)."""

    event_type = "knowflow.answer.accepted.v1"
    answer_id: UUID | None
    answer_author_id: UUID | None
    previous_answer_id: UUID | None
    asker_id: UUID
    accepted_by: UUID
    version: int = Field(ge=1)  # the question's version after the change


class QuestionClosed(QAEvent):
    """A question was closed as a duplicate of another (linked both ways)."""

    event_type = "knowflow.question.closed.v1"
    duplicate_of: UUID
    closed_by: UUID
    version: int = Field(ge=1)


class RoutedEvidence(BaseModel):
    """One item that shows why a person was asked; only what the asker may see."""

    model_config = ConfigDict(frozen=True)

    content_id: UUID
    kind: ContentKind
    title: str | None
    why: str


class QuestionRouted(EventData):
    """A question was put to one person ("you were asked because …"), in a routing round.

    Addressed to `user_id` and personal, so always restricted; a notifier delivers it only
    to `user_id`. Round 1 is at creation; later rounds are escalations.
    """

    event_type = "knowflow.question.routed.v1"
    question_id: UUID
    title: str
    user_id: UUID
    asker_id: UUID
    round: int = Field(ge=1)
    reason: str
    evidence: list[RoutedEvidence]
    group_id: UUID | None
    visibility: Visibility

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.question_id)


# --- digests --------------------------------------------------------------------------


class DigestReadyItem(BaseModel):
    """One item of a delivered digest, with why it was chosen for the recipient."""

    model_config = ConfigDict(frozen=True)

    content_id: UUID
    kind: ContentKind
    title: str | None
    excerpt: str
    why: str


class DigestReadySection(BaseModel):
    """A group of items brought in by one follow (a person, a group or a tag)."""

    model_config = ConfigDict(frozen=True)

    reason: Literal["person", "tag", "group"]
    label: str
    items: list[DigestReadyItem]


class DigestReady(EventData):
    """A person's periodic digest is ready to deliver; a notifier (email, chat) consumes it.

    The digest is built for its recipient at send time, so it may list items of private
    groups they belong to: the event is `restricted`, and a notifier must be granted
    `events.restricted.digest.ready.v1` and deliver each event only to `user_id`. There is
    at most one per person, period and window (`until`); redeliveries share the event id.
    """

    event_type = "knowflow.digest.ready.v1"
    user_id: UUID
    period: Literal["daily", "weekly"]
    since: UtcDatetime
    until: UtcDatetime
    total_items: int = Field(ge=1)
    sections: list[DigestReadySection]

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.user_id)


# --- notifications --------------------------------------------------------------------

# Why something is in a person's inbox. `routed`: a question was put to me (its `round`
# says whether it is an escalation); `escalated`: my own question went to more people.
NotificationKind = Literal[
    "mention",  # someone @mentioned me where I can read it
    "reply",  # a reply to my post
    "answer",  # an answer on my question
    "comment",  # a comment on my question or my answer
    "accepted",  # my answer was accepted
    "routed",  # a question was routed to me
    "escalated",  # my unanswered question was routed to more people
    "group_added",  # I was added to a group
    "role_changed",  # my role in a group changed
    "digest",  # my digest is ready
]
NOTIFICATION_KINDS: tuple[str, ...] = get_args(NotificationKind)
NotificationChannel = Literal["inbox", "email", "off"]  # "email" also puts it in the inbox
DigestFrequency = Literal["daily", "weekly", "never"]


class NotificationCreated(EventData):
    """A notification reached a person's inbox (personal, so restricted).

    Every replica of the notifications service listens to these to push them to the
    person's open live streams; other Knowflow services may react too.
    """

    event_type = "knowflow.notification.created.v1"
    notification_id: UUID
    user_id: UUID
    kind: NotificationKind
    title: str
    url: str  # the item, as a public API path
    item_id: UUID | None
    group_id: UUID | None
    created_at: UtcDatetime

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.user_id)


class NotificationPreferencesUpdated(EventData):
    """A person's digest schedule changed; the digests service builds theirs accordingly.

    `version` grows with every change of the person's preferences; keep the highest.
    """

    event_type = "knowflow.notification.preferences_updated.v1"
    user_id: UUID
    digest_frequency: DigestFrequency
    digest_hour: int = Field(ge=0, le=23)  # local hour in `timezone`
    timezone: str  # an IANA zone name, e.g. "Europe/Berlin"
    version: int = Field(ge=1)

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.user_id)


class WebhookEndpointDisabled(EventData):
    """A webhook endpoint failed persistently and was disabled; an admin must re-enable it."""

    event_type = "knowflow.webhook.endpoint_disabled.v1"
    endpoint_id: UUID
    url: str
    reason: str
    disabled_at: UtcDatetime

    def audience(self) -> Audience:
        return "restricted"

    def subject_id(self) -> str:
        return str(self.endpoint_id)


ALL_EVENTS: tuple[type[EventData], ...] = (
    UserRegistered,
    UserProfileUpdated,
    UserContactUpdated,
    UserDeactivated,
    UserReactivated,
    OrganisationRoleChanged,
    AccessRevoked,
    PasswordResetRequested,
    UserErasureRequested,
    ErasureReported,
    AuditReported,
    AuditRecorded,
    GroupCreated,
    GroupUpdated,
    GroupMemberAdded,
    GroupMemberRemoved,
    FollowCreated,
    FollowDeleted,
    PostCreated,
    PostUpdated,
    PostDeleted,
    ArticleCreated,
    ArticleUpdated,
    ArticleDeleted,
    ReactionAdded,
    ReactionRemoved,
    QuestionCreated,
    QuestionUpdated,
    QuestionDeleted,
    AnswerCreated,
    AnswerUpdated,
    AnswerDeleted,
    CommentCreated,
    CommentUpdated,
    CommentDeleted,
    VoteCast,
    AnswerAccepted,
    QuestionClosed,
    QuestionRouted,
    DigestReady,
    NotificationCreated,
    NotificationPreferencesUpdated,
    WebhookEndpointDisabled,
)

EVENT_TYPES: dict[str, type[EventData]] = {model.event_type: model for model in ALL_EVENTS}

CONTENT_UPSERTS: tuple[type[ContentSnapshot], ...] = (
    PostCreated,
    PostUpdated,
    ArticleCreated,
    ArticleUpdated,
    QuestionCreated,
    QuestionUpdated,
    AnswerCreated,
    AnswerUpdated,
    CommentCreated,
    CommentUpdated,
)
CONTENT_DELETES: tuple[type[ContentEvent], ...] = (
    PostDeleted,
    ArticleDeleted,
    QuestionDeleted,
    AnswerDeleted,
    CommentDeleted,
)
