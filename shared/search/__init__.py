"""Search: completed tasks in Elasticsearch (or OpenSearch), searchable by tag and text.

`client` builds the Elasticsearch client and its time limits, `query` holds the request
and reply models of GET /api/v1/search, `index` the `TagIndex` (mapping, documents, search,
reindex).
"""
