"""What identity accepts as a password and as a display name.

Passwords (NIST SP 800-63B §5.1.1.2): at least `MIN_PASSWORD_LENGTH` characters, not one of
the 30,000 most common passwords (the frequency list the `zxcvbn` package ships, compared
case-insensitively and ignoring spaces), and not containing the person's handle or the
local part of their e-mail address. Display names: no control, format (invisible or
bidirectional), private-use, unassigned or line-separator characters, and not blank.
"""

import unicodedata
from functools import lru_cache

from zxcvbn.frequency_lists import FREQUENCY_LISTS

from shared.errors import UnprocessableContent

MIN_PASSWORD_LENGTH = 8
# Shorter names or local parts ("al", "jo") would refuse too many good passwords.
MIN_PERSONAL_PART = 3
# Unicode general categories refused in names: Cc control, Cf format (U+200B zero-width
# space, U+202E right-to-left override, U+2066 isolates, U+FEFF ...), Cs surrogate,
# Co private use, Cn unassigned, Zl/Zp line and paragraph separators.
REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters that render as nothing (Lo), used to make names look blank or alike.
INVISIBLE_LETTERS = frozenset({"\u115f", "\u1160", "\u3164", "\uffa0"})


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, *, handle: str, email: str) -> str | None:
    """Why `password` is refused for this person, or None if it is acceptable."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must be at least {MIN_PASSWORD_LENGTH} characters long"
    folded = "".join(password.split()).casefold()
    if folded in common_passwords():
        return "the password is one of the most common passwords; choose another"
    local_part = email.partition("@")[0]
    for label, part in (("handle", handle), ("e-mail address", local_part)):
        part = part.casefold()
        if len(part) >= MIN_PERSONAL_PART and part in folded:
            return f"the password may not contain your {label}"
    return None


def check_password(password: str, *, handle: str, email: str, field: str = "password") -> None:
    """Refuse a password the policy does not accept with a 422 that says why."""
    problem = password_problem(password, handle=handle, email=email)
    if problem is not None:
        raise UnprocessableContent(
            problem, errors=[{"loc": ["body", field], "msg": problem, "type": "password_policy"}]
        )


def display_name_problem(name: str) -> str | None:
    """Why a display name is refused, or None."""
    for character in name:
        if unicodedata.category(character) in REFUSED_CATEGORIES or (
            character in INVISIBLE_LETTERS
        ):
            return (
                "the display name may not contain invisible or control characters "
                f"(U+{ord(character):04X})"
            )
    if not name.strip():
        return "the display name may not be blank"
    return None


def valid_display_name(name: str) -> str:
    """A pydantic validator: the name, or ValueError (a 422) saying why."""
    problem = display_name_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name
