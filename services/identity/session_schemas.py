"""Requests of the session endpoints: refresh, password change and reset."""

from pydantic import EmailStr, Field

from services.identity.schemas import Strict

Secret = Field(min_length=1, max_length=1024)
NewPassword = Field(
    min_length=8,
    max_length=256,
    description="Not a common password, and not containing the handle or e-mail name.",
)


class RefreshRequest(Strict):
    refresh_token: str = Secret


class PasswordChange(Strict):
    current_password: str = Secret
    new_password: str = NewPassword


class PasswordResetRequest(Strict):
    email: EmailStr = Field(max_length=254)


class PasswordResetConfirm(Strict):
    token: str = Secret
    new_password: str = NewPassword
