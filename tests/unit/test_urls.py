"""Which URLs a browser may be sent to: public http(s) hosts, in whatever spelling they come."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pingpost.urls import UnsafeUrl, host_of, is_host_name, location, public_url


@pytest.mark.parametrize(
    ("sent", "url"),
    [
        ("www.example.com/thanks", "https://www.example.com/thanks"),
        ("example.com/r?u=http://x.example", "https://example.com/r?u=http://x.example"),
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


@pytest.mark.parametrize(
    "url",
    [
        "https://[www.example.com/",
        "http://[",
        "]212",
        "[[",
        "https://www.example.com]/",
        "https://[v1.fe]/",  # IPvFuture: urlsplit takes it, browsers do not
        "https://a[2001:4860::1]/",
        "https://[2001:4860::1%25eth0]/",  # a zone
        "https://www.example.com\uff20evil.example/",  # NFKC makes the @ (urlsplit raises)
        "http://8_8.8.8.8/",  # int() reads 8_8, the URL standard does not
        "http://+8.8.8.8/",
        "http://08.8.8.8/",
        "http://" + "1" * 5000 + "/",
    ],
)
def test_hosts_no_parser_reads_are_refused_never_a_value_error(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="neither a host name nor an IP address"):
        public_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127。0。0。1/",
        "http://127\uff0e0\uff0e0\uff0e1/",
        "http://127｡0｡0｡1/",
        "http://127.0.0.1\u200b/",
        "http://127.0.0.1\u00ad/",
        "http://127\u20240\u20240\u20241/",  # one dot leader: NFKC makes it a dot
        "http://127.0.0.\u2488/",  # "1." in one character
        "http://\uff10x7f.1/",
        "http://\uff11\uff12\uff17.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
    ],
)
def test_a_host_is_mapped_as_browsers_map_it_before_its_address_is_judged(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="private, loopback"):
        public_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1\u180f/",  # ignored by today's tables, unassigned in Unicode 3.2
        "http://127.0.0.\U0001fbf1/",  # segmented digit one (Unicode 13)
        "https://\u00ad.example/",  # nothing left of the label
        "https://a。。example/",
    ],
)
def test_a_host_the_idna_codec_cannot_map_faithfully_is_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="not a valid host name"):
        public_url(url)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://\uff37\uff37\uff37.Example.com/", "www.example.com"),
        ("https://www.ex\u00adample.com/", "www.example.com"),
        ("https://www\u200b.example.com/", "www.example.com"),
        ("https://www。example。com。/", "www.example.com"),
        ("https://Bücher.example:8443/x", "xn--bcher-kva.example"),
        ("https://[2001:4860::1]:8443/", "2001:4860::1"),
    ],
)
def test_host_of_is_the_host_a_browser_uses(url: str, host: str) -> None:
    assert public_url(url) == url
    assert host_of(url) == host


@pytest.mark.parametrize(
    "url",
    [
        "http://[::127.0.0.1]/",
        "http://[::10.0.0.1]/",
        "http://[::]/",
        "http://0.0.0.0/",
        "http://[64:ff9b::7f00:1]/",
        "http://[64:ff9b::169.254.169.254]/",
        "http://[2002:7f00:1::]/",
        "http://[2002:a9fe:a9fe::1]/",
        "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
        "http://[fec0::1]/",  # site-local
        "http://240.0.0.1/",
        "http://255.255.255.255/",
    ],
)
def test_unspecified_and_wrapped_private_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="private, loopback or link-local"):
        public_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://224.0.0.1/",
        "http://239.255.255.250/",
        "http://[ff02::1]/",
        "http://[ff0e::1]/",
        "http://[::ffff:224.0.0.1]/",
        "http://[64:ff9b::e000:1]/",
        "http://[::ffff:0:7f00:1]/",  # IPv4-translated
        "http://[4000::1]/",  # not yet assigned
    ],
)
def test_multicast_and_reserved_addresses_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl, match="multicast or reserved"):
        public_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://[2001:4860:4860::8888]/",
        "https://[::ffff:8.8.8.8]/",
        "https://[64:ff9b::8.8.8.8]/",
        "https://1.1.1.1:8443/",
    ],
)
def test_public_addresses_stay_accepted(url: str) -> None:
    assert public_url(url) == url


@pytest.mark.parametrize("port", ["0", "00", "65536", "-1", "+80", "\uff18\uff10", "x"])
def test_a_port_outside_1_to_65535_is_refused(port: str) -> None:
    with pytest.raises(UnsafeUrl, match="its port is not a number from 1 to 65535"):
        public_url(f"https://www.example.com:{port}/x")


def test_a_lone_surrogate_is_refused() -> None:
    with pytest.raises(UnsafeUrl, match="not valid Unicode"):
        public_url("https://www.example.com/\ud800")


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(["", "https://", "http://", "//", "https://www.example.com", "x:"]).flatmap(
        lambda start: st.text(
            st.sampled_from(list("[]:@%./?#&=;0x7f1aé。\uff0e\uff20\u200b\u00ad"))
            | st.characters(),
            max_size=30,
        ).map(lambda rest: start + rest)
    )
)
def test_any_text_is_a_url_or_an_unsafe_url_and_its_location_is_ascii(text: str) -> None:
    try:
        url = public_url(text)
    except UnsafeUrl:
        return
    assert host_of(url) == host_of(location(url, {}))
    sent = location(url, {"status": "Matched"})
    assert sent.isascii() and sent.isprintable() and " " not in sent


@pytest.mark.parametrize(
    ("target", "outcome", "sent"),
    [
        (
            "https://www.example.com/thanks?src=form",
            {"status": "Matched", "lead_id": "7"},
            "https://www.example.com/thanks?src=form&status=Matched&lead_id=7",
        ),
        (
            "https://www.example.com/€?a=1&b&c=%zz;d=1",
            {"status": "Matched"},
            "https://www.example.com/%E2%82%AC?a=1&b&c=%zz;d=1&status=Matched",
        ),
        (
            "https://bücher.example/dänke#top",
            {"status": "Rejected"},
            "https://xn--bcher-kva.example/d%C3%A4nke?status=Rejected#top",
        ),
        (
            "https://www.example.com/a%20b/ü?q=ü%C3%BC#ß",
            {"status": "Matched"},
            "https://www.example.com/a%20b/%C3%BC?q=%C3%BC%C3%BC&status=Matched#%C3%9F",
        ),
        (
            'https://www.example.com/"<>^`{|}?x=[1]',
            {},
            "https://www.example.com/%22%3C%3E%5E%60%7B%7C%7D?x=[1]",
        ),
        ("www.example.com", {"status": "Matched"}, "https://www.example.com/?status=Matched"),
        (
            "https://www.example.com/#",
            {"status": "Matched"},
            "https://www.example.com/?status=Matched#",
        ),
        (
            "https://[2001:4860::1]:8443/",
            {"lead_id": "7"},
            "https://[2001:4860::1]:8443/?lead_id=7",
        ),
        (
            "https://\uff37\uff37\uff37.example.com:8443",
            {"lead_id": "7"},
            "https://www.example.com:8443/?lead_id=7",
        ),
    ],
)
def test_location_is_ascii_with_the_outcome_added_to_the_query_as_written(
    target: str, outcome: dict[str, str], sent: str
) -> None:
    assert location(target, outcome) == sent


@pytest.mark.parametrize(
    "query",
    [
        "status=Matched",
        "status=Matched&status=Matched",
        "%73tatus=Matched",
        "Status=Matched",
        "lead_id=1;status=Matched",
        "status",
        "status=",
    ],
)
def test_the_targets_own_query_cannot_shadow_the_outcome(query: str) -> None:
    sent = location(
        f"https://www.example.com/t?src=a&{query}&b=2", {"status": "Rejected", "lead_id": ""}
    )
    assert sent == "https://www.example.com/t?src=a&b=2&status=Rejected&lead_id="


def test_an_outcome_with_spaces_separators_and_newlines_stays_in_its_value() -> None:
    error = "Invalid value for Email: a b & c=d\r\nSet-Cookie: x=1 é #frag"
    sent = location("https://www.example.com/t?src=form", {"status": "Error", "error": error})
    assert sent.isascii() and sent.isprintable() and " " not in sent
    parts = urlsplit(sent)
    assert parts.fragment == ""
    assert parse_qsl(parts.query, keep_blank_values=True) == [
        ("src", "form"),
        ("status", "Error"),
        ("error", error),
    ]


def test_location_refuses_what_public_url_refuses() -> None:
    with pytest.raises(UnsafeUrl, match="private, loopback"):
        location("http://127。0。0。1/", {"status": "Matched"})


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("www.example.com", True),
        ("example.com", True),
        ("xn--bcher-kva.example", True),
        ("a-b.example", True),
        ("example", False),
        ("Example.com", False),
        ("bücher.example", False),
        ("example.com.", False),
        ("www.example.com\n", False),
        ("-a.example", False),
        ("a-.example", False),
        ("a..example", False),
        ("a" * 64 + ".example", False),
        ("printer.local", False),
        ("app.localhost", False),
        ("8.8.8.8", False),
        ("example.0x1f", False),
        ("", False),
    ],
)
def test_is_host_name_is_the_grammar_public_url_accepts(name: str, answer: bool) -> None:
    assert is_host_name(name) is answer


def test_a_host_the_operator_trusts_is_accepted_at_a_private_address_by_its_name_only() -> None:
    trusted = {"127.0.0.1", "localhost"}
    assert public_url("http://127.0.0.1:3000/thanks", trusted) == "http://127.0.0.1:3000/thanks"
    assert public_url("LOCALHOST:8080/t", trusted) == "https://LOCALHOST:8080/t"
    told = location("http://127.0.0.1:3000/thanks", {"status": "Matched"}, trusted)
    assert told == "http://127.0.0.1:3000/thanks?status=Matched"
    # The same address written otherwise is not the name trusted, nor is any other private host
    for url in ("http://2130706433/", "http://10.0.0.1/", "http://[::1]/"):
        with pytest.raises(UnsafeUrl, match="private, loopback or link-local"):
            public_url(url, trusted)
    with pytest.raises(UnsafeUrl, match="private, loopback or link-local"):
        public_url("http://127.0.0.1:3000/thanks")
