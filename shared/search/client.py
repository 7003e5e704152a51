"""The Elasticsearch client: every request time-limited, plain JSON when asked."""

from __future__ import annotations

import re
from typing import Any

from elastic_transport import Urllib3HttpNode
from elasticsearch import Elasticsearch


class PlainJsonNode(Urllib3HttpNode):
    """Sends `application/json` (and `application/x-ndjson`) instead of the
    `application/vnd.elasticsearch+json; compatible-with=N` that elasticsearch-py 8/9 send,
    which OpenSearch-compatible servers refuse. Chosen by ES_COMPAT_HEADERS=false."""

    _VENDOR = re.compile(r"application/vnd\.elasticsearch\+([\w-]+)(\s*;.*)?")

    def perform_request(self, method, target, body=None, headers=None, **kwargs):
        if headers:
            headers = headers.copy()
            for name in ("accept", "content-type"):
                if name in headers:
                    headers[name] = self._VENDOR.sub(r"application/\1", headers[name])
        return super().perform_request(method, target, body=body, headers=headers, **kwargs)


def build_search_client(url: str, compat_headers: bool = True,
                        timeout_s: float = 10) -> Elasticsearch:
    """A client whose every request is limited to `timeout_s` (ES_TIMEOUT_S), retried
    once on a connection error but not after a timeout (a hanging node would double it)."""
    options: dict[str, Any] = {"request_timeout": timeout_s, "max_retries": 1,
                               "retry_on_timeout": False}
    if not compat_headers:
        options["node_class"] = PlainJsonNode
    return Elasticsearch(url, **options)
