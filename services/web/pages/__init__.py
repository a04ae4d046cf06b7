"""The pages, one module per part of Knowflow; each has one router."""

from fastapi import APIRouter

from services.web.pages import (
    admin,
    articles,
    auth,
    groups,
    home,
    inbox,
    lookups,
    people,
    posts,
    questions,
    search,
    settings,
)

ROUTERS: tuple[APIRouter, ...] = (
    auth.router,
    home.router,
    inbox.router,
    lookups.router,
    questions.router,
    posts.router,
    articles.router,
    search.router,
    people.router,
    groups.router,
    settings.router,
    admin.router,
)
