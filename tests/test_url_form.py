"""The URL form: the server's decision and the served document's `url` pattern agree,
because they are the same regular expression (shared/video/urls.py). Checked with the
JSON Schema validator Schemathesis uses (jsonschema_rs), on listed cases and generated ones."""

from __future__ import annotations

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.api import ENDPOINTS
from functions.openapi import openapi_document
from shared.video.urls import URL_PATTERN, VIDEO_URL_PATTERN, url_problem, video_url_problem


def document_url_schema(model: str = "CreateTaskRequest", field: str = "url") -> dict:
    properties = openapi_document(ENDPOINTS, ("rpa",), ("develop",))["components"]["schemas"][model]
    return {key: value for key, value in properties["properties"][field].items()
            if key in ("type", "anyOf", "pattern", "maxLength")}


DOCUMENT = jsonschema_rs.Draft202012Validator(document_url_schema())

ACCEPTED = [
    "HTTP://Example.COM/v.mp4", "HtTpS://cdn.example.com/a/b.mp4?x=1&y=%E4%B8%AD#t=3",
    "http://example.com", "http://example.com?x=1", "http://localhost:8080/v.mp4",
    "http://xn--fsqu00a.xn--0zwm56d/v.mp4", "http://93.184.216.34/v.mp4",
    "http://[2001:db8::1]:8443/v.mp4", "http://[::ffff:127.0.0.1]/v", "http://a-b.c-d.io:1/",
    "http://1.2.3.4:65535/x", "http://" + "a" * 63 + ".com/",
    "http://example.com/视频/封面.mp4?标题=春节#片段", "http://example.com/%F0%9F%98%80.mp4",
]

REFUSED = [
    ("HTtp://1*", "host '1*' is not a valid host name (character '*' not allowed"),
    ("http://bad_host.example.com/v.mp4", "character '_' not allowed"),
    ("http://a..example.com/v.mp4", "(empty label)"),
    ("http://.example.com/v.mp4", "(empty label)"),
    ("http://example.com./v.mp4", "(no trailing dot)"),
    ("http://例子.测试/v.mp4", "given in their IDNA form, xn--"),
    ("http://bücher.example/v.mp4", "given in their IDNA form, xn--"),
    ("http://-a.example.com/", "must not start or end with -"),
    ("http://" + "a" * 64 + ".com/", "longer than 63 characters"),
    ("http://2130706433/v.mp4", "numbers only"),
    ("http://256.1.1.1/v.mp4", "numbers only"),
    ("http://010.0.0.1/v.mp4", "numbers only"),
    ("http://0x7f.1/v.mp4", "the last label must start with a letter"),
    ("http://[:::]/v.mp4", "not a valid IPv6 address"),
    ("http://[fe80::1%25eth0]/v.mp4", "not a valid IPv6 address"),
    ("http://example.com:0/v.mp4", "port must be a number from 1 to 65535"),
    ("http://example.com:65536/v.mp4", "port must be a number from 1 to 65535"),
    ("http://example.com:/v.mp4", "port must be a number from 1 to 65535"),
    ("http://u:p@example.com/v.mp4", "must not contain credentials"),
    ("ftp://example.com/v.mp4", "must be an http or https URL"),
    ("http:/example.com/v.mp4", "must be an http or https URL"),
    ("http:///v.mp4", "must include a host"),
    ("http://example.com/\ufeffv.mp4", "must not contain U+FEFF"),
    ("http://example.com/😀.mp4", "must not contain U+1F600"),
    ("http://example.com/a\u3000b.mp4", "must not contain whitespace"),
    ("http://example.com/a\u0085b.mp4", "must not contain whitespace"),
    ("http://example.com/a b.mp4", "must not contain whitespace"),
    ("http://example.com/v.mp4\n", "must not contain whitespace"),
    ("http://example.com/" + "a" * 2048, "must be at most 2048 characters"),
]


@pytest.mark.parametrize("url", ACCEPTED)
def test_accepted_by_server_and_document(url: str) -> None:
    assert url_problem(url) is None
    assert DOCUMENT.is_valid(url)


@pytest.mark.parametrize(("url", "reason"), REFUSED)
def test_refused_by_server_and_document_with_the_reason(url: str, reason: str) -> None:
    problem = url_problem(url)
    assert problem is not None and reason in problem, problem
    assert not DOCUMENT.is_valid(url)


def test_callback_url_has_the_same_form() -> None:
    schema = document_url_schema(field="callback_url")
    assert schema["pattern"] == URL_PATTERN
    sync = document_url_schema("SyncTagRequest")
    assert sync["pattern"] == VIDEO_URL_PATTERN and sync["maxLength"] == 2048
    assert document_url_schema()["pattern"] == VIDEO_URL_PATTERN  # a video: also gs://, upload:


@settings(max_examples=300, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.from_regex(URL_PATTERN, fullmatch=True))
def test_every_url_the_document_generates_is_accepted(url: str) -> None:
    assert url_problem(url) is None, url


NEAR_URLS = st.builds(
    lambda scheme, host, port, rest: f"{scheme}://{host}{port}{rest}",
    st.sampled_from(["http", "HTTPS", "ftp", "hTTp"]),
    st.text(alphabet="aZ09-._*[]:@é", min_size=0, max_size=20),
    st.sampled_from(["", ":80", ":0", ":65536", ":"]),
    st.text(alphabet="/?#a %é\\", max_size=6),
)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(NEAR_URLS)
def test_server_and_document_agree_on_near_misses(url: str) -> None:
    problem = url_problem(url)
    assert (problem is None) == DOCUMENT.is_valid(url), (url, problem)
    if problem is not None:
        assert problem != "is not a valid URL", (url, problem)  # every refusal explained


@settings(max_examples=200, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(st.from_regex(VIDEO_URL_PATTERN, fullmatch=True))
def test_every_video_url_the_document_generates_is_accepted(url: str) -> None:
    assert video_url_problem(url) is None, url


NEAR_VIDEO_URLS = st.builds(
    lambda scheme, bucket, rest: f"{scheme}{bucket}{rest}",
    st.sampled_from(["gs://", "GS://", "gs:/", "upload:", "Upload:"]),
    st.text(alphabet="aZ09-._/ é", min_size=0, max_size=40),
    st.sampled_from(["", "/", "/v.mp4", "/a b", "\n"]),
)


@settings(max_examples=400, derandomize=True, deadline=None)
@given(NEAR_VIDEO_URLS)
def test_server_and_document_agree_on_near_video_urls(url: str) -> None:
    """issue 35: a bucket's object or an upload, decided by the one pattern."""
    problem = video_url_problem(url)
    assert (problem is None) == DOCUMENT.is_valid(url), (url, problem)
