"""How the API's lists come in pages.

Lists that grow without bound (datasets, models, rounds, runs, generation jobs) come by cursor,
newest first: a page stays right while rows are added, and reading page 500 costs what page 1
does. Lists people keep short (projects, campaigns) come by page number, with a total count.
Both take ``page_size`` (at most ``MAX_PAGE_SIZE``). API views here are plain ``APIView``s, one
per operation: a list view names its ``pagination_class`` (which also puts the parameters and
the paginated shape in the OpenAPI schema) and answers with ``paginated_response``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

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
