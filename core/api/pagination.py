"""Lists come in pages of `page_size` (default 50, at most 200: a larger request gets 200).

`page` and `page_size` are whole numbers from 1, given at most once: anything else is refused (400, naming the
parameter) rather than quietly replaced by a default, as the schema promises."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request


class Pagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def paginate_queryset(self, queryset: Any, request: Request, view: Any = None) -> Any:
        for name in (self.page_query_param, self.page_size_query_param):
            values = request.query_params.getlist(name)
            if not values:
                continue
            if len(values) > 1:
                raise ValidationError({name: [f"give {name} once"]})
            if not (values[0].isascii() and values[0].isdigit() and int(values[0]) >= 1):
                raise ValidationError({name: [f"{name} must be a whole number from 1, not {values[0][:20]!r}"]})
        return super().paginate_queryset(queryset, request, view)
