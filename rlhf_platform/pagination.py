"""How lists come in pages: the API's, and the server-rendered pages'.

Lists that grow without bound (datasets, models, rounds, runs, generation jobs) come by cursor,
newest first: a page stays right while rows are added, and reading page 500 costs what page 1
does. Lists people keep short (projects, campaigns) come by page number, with a total count.
Both take ``page_size`` (at most ``MAX_PAGE_SIZE``). API views here are plain ``APIView``s, one
per operation: a list view names its ``pagination_class`` (which also puts the parameters and
the paginated shape in the OpenAPI schema) and answers with ``paginated_response``.

Pages show numbered pages of ``PAGE_SIZE`` (``list_page``), with ``_pagination.html`` below the list.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.paginator import Page, Paginator
from django.http import HttpRequest
from rest_framework import pagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500


class PagePagination(pagination.PageNumberPagination):
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


class NewestFirstCursorPagination(pagination.CursorPagination):
    # The primary key: unique and in creation order, as a cursor needs.
    ordering = "-id"
    page_size = PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


def paginated_response(
    *, view: APIView, request: Request, items: Sequence[Any], serialize: Callable[[list[Any]], Any]
) -> Response:
    """One page of ``items`` (a queryset, or a list for page-number pagination) in the view's pagination."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response(serialize(page))


# --- pages ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListPage:
    """One page of a list on a server-rendered page, with the query strings of its neighbours.

    ``param`` names the page's query parameter, so a page with several lists pages each on its
    own; the links keep every other parameter of the request.
    """

    page: Page
    param: str
    previous_query: str | None
    next_query: str | None

    def __iter__(self):
        return iter(self.page)

    def __len__(self) -> int:
        return len(self.page)


def list_page(
    request: HttpRequest, items: Sequence[Any], *, per_page: int = PAGE_SIZE, param: str = "page"
) -> ListPage:
    """The page of ``items`` that ``request.GET[param]`` asks for (the first, or the last, for an odd value)."""
    page = Paginator(items, per_page).get_page(request.GET.get(param))

    def query(number: int | None) -> str | None:
        if number is None:
            return None
        params = request.GET.copy()
        params[param] = str(number)
        return params.urlencode()

    return ListPage(
        page=page,
        param=param,
        previous_query=query(page.previous_page_number() if page.has_previous() else None),
        next_query=query(page.next_page_number() if page.has_next() else None),
    )
