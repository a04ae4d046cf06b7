"""Signing in and out: password, registration, and single sign-on through identity."""

import contextlib
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter
from fastapi.responses import Response

from services.web.api import API_PREFIX, ApiError, SignInRequired, answer, send
from services.web.pages.base import PageDep, redirect, safe_next

router = APIRouter()


async def sso_providers(page: PageDep) -> list[dict[str, Any]]:
    try:
        providers: list[dict[str, Any]] = await page.api.get("/auth/oidc/providers")
    except ApiError:
        return []
    return providers


@router.get("/login")
async def login_page(
    page: PageDep, next: str | None = None, sso_error: str | None = None
) -> Response:
    target = safe_next(next)
    if page.person is not None:
        return redirect(target)
    return await page.render(
        "auth/login.html",
        title="Sign in",
        next=target,
        providers=await sso_providers(page),
        error=sso_error[:200] if sso_error else None,
        login="",
    )


@router.post("/login")
async def login(page: PageDep) -> Response:
    form = await page.form()
    login_name = str(form.get("login", "")).strip()
    target = safe_next(str(form.get("next", "")))
    try:
        tokens = await page.api.post(
            "/auth/login", {"login": login_name, "password": str(form.get("password", ""))}
        )
    except (SignInRequired, ApiError) as exc:
        return await page.render(
            "auth/login.html",
            status=exc.status if exc.status in (401, 403, 422, 429) else 400,
            title="Sign in",
            next=target,
            providers=await sso_providers(page),
            error=exc.detail,
            login=login_name,
        )
    page.session.sign_in(tokens)
    return redirect(target, done="signed-in") if target == "/" else redirect(target)


@router.get("/register")
async def register_page(page: PageDep) -> Response:
    if page.person is not None:
        return redirect("/")
    return await page.render(
        "auth/register.html", title="Create your account", values={}, errors={}, error=None
    )


@router.post("/register")
async def register(page: PageDep) -> Response:
    form = await page.form()
    values = {name: str(form.get(name, "")).strip() for name in ("handle", "display_name", "email")}
    try:
        tokens = await page.api.post(
            "/auth/register", {**values, "password": str(form.get("password", ""))}
        )
    except ApiError as exc:
        return await page.render(
            "auth/register.html",
            status=exc.status if exc.status in (403, 409, 422, 429) else 400,
            title="Create your account",
            values=values,
            errors=exc.field_errors,
            error=exc.detail,
        )
    page.session.sign_in(tokens)
    return redirect("/", done="registered")


@router.post("/logout")
async def logout(page: PageDep) -> Response:
    await page.form()
    if page.person is not None:
        # Already ended elsewhere: signing out here is all that is left.
        with contextlib.suppress(ApiError):
            await page.api.post("/auth/logout")
    page.session.sign_out()
    return redirect("/login", done="signed-out")


# Before `/login/sso/{provider}`, which would take "done" for a provider's name.
@router.get("/login/sso/done")
async def sso_done(
    page: PageDep,
    next: str | None = None,
    sso_code: str | None = None,
    sso_error: str | None = None,
) -> Response:
    target = safe_next(next)
    if sso_error or not sso_code:
        return redirect("/login", next=target, sso_error=sso_error or "single sign-on failed")
    state = page.request.app.state
    try:
        tokens = answer(
            await send(
                state.api_client,
                "POST",
                f"{API_PREFIX}/auth/oidc/exchange",
                forwarding=page.api.forwarding,
                json={"code": sso_code[:512]},
            )
        )
    except ApiError as exc:
        return redirect("/login", next=target, sso_error=exc.detail)
    page.session.sign_in(tokens)
    return redirect(target)


@router.get("/login/sso/{provider}")
async def sso_start(provider: str, page: PageDep, next: str | None = None) -> Response:
    """To identity's single sign-on, which comes back to `sso_done` with a one-time code."""
    back = "/login/sso/done?" + urlencode({"next": safe_next(next)})
    target = f"{API_PREFIX}/auth/oidc/{quote(provider, safe='')}/login?" + urlencode(
        {"return_to": back}
    )
    return redirect(target)


@router.get("/password-reset")
async def forgotten_password_page(page: PageDep) -> Response:
    return await page.render(
        "auth/forgotten.html", title="Forgotten password", sent=False, error=None
    )


@router.post("/password-reset")
async def forgotten_password(page: PageDep) -> Response:
    form = await page.form()
    email = str(form.get("email", "")).strip()[:254]
    try:
        await page.api.post("/auth/password-reset", {"email": email})
    except ApiError as exc:
        return await page.render(
            "auth/forgotten.html",
            status=400,
            title="Forgotten password",
            sent=False,
            error=exc.detail,
        )
    # The same answer whether or not the account exists (the API never tells).
    return await page.render(
        "auth/forgotten.html", title="Forgotten password", sent=True, error=None
    )


@router.get("/reset-password")
async def reset_password_page(page: PageDep) -> Response:
    """Where the reset e-mail's link lands; the token is in the URL's fragment (never sent
    to a server), and the page's script copies it into the form."""
    return await page.render("auth/reset.html", title="Choose a new password", error=None)


@router.post("/reset-password")
async def reset_password(page: PageDep) -> Response:
    form = await page.form()
    try:
        await page.api.post(
            "/auth/password-reset/confirm",
            {
                "token": str(form.get("token", ""))[:512],
                "new_password": str(form.get("new_password", "")),
            },
        )
    except ApiError as exc:
        return await page.render(
            "auth/reset.html", status=400, title="Choose a new password", error=exc.detail
        )
    return redirect("/login", done="password-reset")
