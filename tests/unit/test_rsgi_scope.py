"""The pieces of the ASGI scope the RSGI bridge derives from granian's strings (some remembered)."""

from __future__ import annotations

from urllib.parse import quote, unquote

from hypothesis import given
from hypothesis import strategies as st

from dockyard.http.rsgi import _PATH_SAFE, _address, _raw_path


@given(st.text(max_size=300))
def test_the_raw_path_is_the_decoded_path_quoted_again(path: str) -> None:
    for _ in range(2):  # the second call may come from the remembered ones: the same answer
        raw = _raw_path(path)
        assert raw == quote(path, safe=_PATH_SAFE).encode("ascii")
        assert unquote(raw.decode("ascii"), errors="surrogatepass") == path


def test_long_paths_are_quoted_but_not_remembered() -> None:
    long = "/v2/" + "a/" * 200 + "manifests/latest"
    assert _raw_path(long) == long.encode()
    assert _raw_path("/v2/x y/tags/list") == b"/v2/x%20y/tags/list"


def test_addresses() -> None:
    assert _address("127.0.0.1:5000") == ("127.0.0.1", 5000)
    assert _address("[::1]:443") == ("::1", 443)
    assert _address("/run/dockyard.sock") is None
    assert _address("127.0.0.1:5000") == ("127.0.0.1", 5000)
