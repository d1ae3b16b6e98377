"""Which URLs a browser may be sent to: public http(s) hosts, in whatever spelling they come."""

from __future__ import annotations

import pytest

from pingpost.urls import UnsafeUrl, host_of, public_url


@pytest.mark.parametrize(
    ("sent", "url"),
    [
        ("www.example.com/thanks", "https://www.example.com/thanks"),
        ("//example.org/p?q=1", "https://example.org/p?q=1"),
        ("example.com:8080/x", "https://example.com:8080/x"),
        ("http://www.example.com/", "http://www.example.com/"),
        ("https://Example.COM./a#top", "https://Example.COM./a#top"),
        ("https://8.8.8.8/x", "https://8.8.8.8/x"),
        ("https://bücher.example/", "https://bücher.example/"),
    ],
)
def test_public_urls_are_accepted_and_a_missing_scheme_means_https(sent: str, url: str) -> None:
    assert public_url(sent) == url


def test_host_of_is_lower_case_without_the_root_dot() -> None:
    assert host_of(public_url("https://Example.COM./a")) == "example.com"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("javascript:alert(1)", "http or https"),
        ("JavaScript:alert(1)", "http or https"),
        ("data:text/html,hi", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("ftp://example.com/", "http or https"),
        ("http://2130706433/", "private, loopback"),
        ("http://0x7f.1/", "private, loopback"),
        ("http://0177.0.0.1/", "private, loopback"),
        ("http://127.1/", "private, loopback"),
        ("http://0/", "private, loopback"),
        ("https://127.0.0.1/", "private, loopback"),
        ("http://[::1]/", "private, loopback"),
        ("http://[::ffff:127.0.0.1]/", "private, loopback"),
        ("http://[fd00:ec2::254]/", "private, loopback"),
        ("http://169.254.169.254/latest", "private, loopback"),
        ("http://10.0.0.5/", "private, loopback"),
        ("http://192.168.1.1/", "private, loopback"),
        ("http://1.2.3.4.5/", "neither a host name nor an IP"),
        ("http://256.1.1.1/", "neither a host name nor an IP"),
        ("https://localhost/", "public host name"),
        ("https://app.localhost/", "this machine or a private network"),
        ("http://metadata.google.internal/", "this machine or a private network"),
        ("https://printer.local/", "this machine or a private network"),
        ("https://intranet/", "public host name"),
        ("https://www.example.com@evil.example/", "user name or password"),
        ("https://exa mple.com/", "spaces"),
        ("https:\\\\evil.example\\", "backslashes"),
        ("https://example.com:99999/", "port"),
        ("https:///nohost", "no host name"),
    ],
)
def test_unsafe_urls_are_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        public_url(url)
