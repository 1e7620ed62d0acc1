"""Wearable ids for Home Assistant: always [A-Za-z0-9_-], never two wearables on one id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imu_har.protocol.errors import PayloadError
from imu_har.protocol.topics import validate_device_id, validate_root
from services.homeassistant.ids import SAFE, escape, node_id, split_node, unescape, unique_id

DEVICE_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-"


def device_ids() -> st.SearchStrategy[str]:
    """Every id the protocol accepts (docs/protocol.md, "Device ids")."""

    def valid(text: str) -> bool:
        try:
            validate_device_id(text)
        except PayloadError:
            return False
        return True

    return st.text(DEVICE_CHARS, min_size=1, max_size=64).filter(valid)


roots = st.from_regex(r"[A-Za-z0-9_\-]{1,8}(/[A-Za-z0-9_\-]{1,8}){0,2}", fullmatch=True)


@pytest.mark.parametrize(
    ("device", "escaped"),
    [
        ("wrist-1", "wrist-1"),
        ("aa:bb:cc", "aa_3abb_3acc"),
        ("left.wrist_2", "left_2ewrist_5f2"),
        ("A_b", "A_5fb"),
    ],
)
def test_the_documented_examples(device: str, escaped: str) -> None:
    assert escape(device) == escaped
    assert node_id("har", device) == f"imuhar__har__{escaped}"


@given(device_ids(), device_ids(), roots, roots)
def test_different_wearables_never_share_a_node_id(
    a: str, b: str, root_a: str, root_b: str
) -> None:
    validate_root(root_a), validate_root(root_b)
    node_a, node_b = node_id(root_a, a), node_id(root_b, b)
    assert SAFE.fullmatch(node_a) and SAFE.fullmatch(node_b)
    assert (node_a == node_b) == ((root_a, a) == (root_b, b))
    assert split_node(node_a) == (root_a, a)


@given(device_ids())
def test_escaping_is_reversible_and_safe(device: str) -> None:
    assert unescape(escape(device)) == device
    assert "__" not in escape(device) and not escape(device).endswith("_")
    uid = unique_id(node_id("har", device), "reps_today")
    assert SAFE.fullmatch(uid)


@given(st.text(min_size=1, max_size=20))
def test_any_text_escapes_to_safe_characters(text: str) -> None:
    assert SAFE.fullmatch(escape(text)) and unescape(escape(text)) == text


@pytest.mark.parametrize("key", ["", "a__b", "_x", "a/b", "a b"])
def test_entity_keys_must_be_plain_words(key: str) -> None:
    with pytest.raises(ValueError, match="entity key"):
        unique_id("imuhar__har__x", key)


def test_split_node_refuses_foreign_ids() -> None:
    for foreign in ("0x00158d0001", "imuhar__har", "other__har__x"):
        with pytest.raises(ValueError, match="not an imu-har node id"):
            split_node(foreign)
