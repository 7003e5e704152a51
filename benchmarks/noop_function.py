"""The ceiling for create_throughput: a functions-framework handler that does nothing
but answer the same envelope shape."""

import json

import flask


def noop(request: flask.Request) -> flask.Response:
    request.get_data()
    body = {"code": 200, "message": "success", "task_id": "0" * 32, "data": {}}
    return flask.Response(json.dumps(body), status=200, mimetype="application/json")
