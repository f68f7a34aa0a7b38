"""The fingerprint's definition and promised properties, on the numpy path against the pure-Python reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from goldwatch.integrity.fingerprint import (
    BLOCK_BYTES,
    BlockSums,
    TensorFingerprint,
    fingerprint_of_bytes_reference,
    key_table,
    length_keys,
)
from goldwatch.integrity.fingerprint_numpy import add_bytes, fingerprint_array, fingerprint_buffer


def _bytes(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=n, dtype=np.uint8)


def test_keys_are_odd_distinct_and_stable() -> None:
    keys = key_table()
    assert keys.shape == (2, BLOCK_BYTES // 4)
    assert bool((keys & np.uint64(1)).all())
    assert len(np.unique(keys[0])) == keys.shape[1]
    assert all(k % 2 == 1 for k in length_keys())
    # the definition is frozen: a manifest written today must verify tomorrow
    assert (int(keys[0, 0]), int(keys[1, 5])) == (0xE78075C095A94C23, 0x5C04F6F1B5D22C9B)
    assert fingerprint_of_bytes_reference(b"goldwatch").blocks == ("1cf9eb089e53cee32e867418a32017df",)


@pytest.mark.parametrize("n", [0, 1, 3, 4, 5, 1023, BLOCK_BYTES - 1, BLOCK_BYTES, BLOCK_BYTES + 3])
def test_numpy_matches_reference(n: int) -> None:
    data = _bytes(n, seed=n)
    assert fingerprint_buffer(data) == fingerprint_of_bytes_reference(data.tobytes())


def test_numpy_threads_do_not_change_the_value() -> None:
    data = _bytes(3 * BLOCK_BYTES + 17)
    assert fingerprint_buffer(data, threads=1) == fingerprint_buffer(data, threads=4)


@settings(max_examples=40)
@given(n=st.integers(0, 5000), cuts=st.lists(st.integers(0, 5000), max_size=6), seed=st.integers(0, 2**16))
def test_any_split_of_the_stream_gives_the_same_fingerprint(n: int, cuts: list[int], seed: int) -> None:
    data = _bytes(n, seed)
    bounds = sorted({0, n, *[c % (n + 1) for c in cuts]})
    sums = BlockSums(n)
    pieces = list(itertools.pairwise(bounds))
    for a, b in reversed(pieces):  # order-free too
        add_bytes(sums, data[a:b], a)
    assert sums.finalize() == fingerprint_buffer(data)


@settings(max_examples=60)
@given(n=st.integers(1, 3000), pos=st.integers(0, 10**6), bit=st.integers(0, 7), seed=st.integers(0, 2**16))
def test_every_single_bit_flip_is_detected_and_located(n: int, pos: int, bit: int, seed: int) -> None:
    data = _bytes(n, seed)
    flipped = data.copy()
    flipped[pos % n] ^= np.uint8(1 << bit)
    a, b = fingerprint_buffer(data), fingerprint_buffer(flipped)
    assert a.diff(b) == [(pos % n) // BLOCK_BYTES]
    # both lanes change (each on its own proves the single-word guarantee)
    assert a.blocks[0][:16] != b.blocks[0][:16]
    assert a.blocks[0][16:] != b.blocks[0][16:]


@settings(max_examples=60)
@given(word=st.integers(0, 2**18 - 1), new=st.integers(0, 2**32 - 1))
def test_any_change_confined_to_one_word_is_detected(word: int, new: int) -> None:
    data = np.zeros(BLOCK_BYTES, dtype=np.uint8)
    data.view("<u4")[word] = 0x8000_0001
    changed = data.copy()
    changed.view("<u4")[word] = new
    if new == 0x8000_0001:
        assert fingerprint_buffer(data) == fingerprint_buffer(changed)
    else:
        assert fingerprint_buffer(data).diff(fingerprint_buffer(changed)) == [0]


def test_the_hardest_two_word_pattern_is_detected() -> None:
    # Top bits of two words flipped: the deltas share 31 factors of two, the case the 2^-64 bound is tight for.
    data = np.zeros(4096, dtype=np.uint8)
    base = fingerprint_buffer(data)
    words = data.view("<u4")
    missed = 0
    for i in range(0, 1024, 7):
        changed = words.copy()
        changed[i] ^= 0x8000_0000
        changed[(i * 31 + 5) % 1024] ^= 0x8000_0000
        if (i * 31 + 5) % 1024 != i and fingerprint_buffer(changed.view(np.uint8)) == base:
            missed += 1
    assert missed == 0


def test_random_multi_word_corruption_is_detected() -> None:
    rng = np.random.default_rng(7)
    data = _bytes(2 * BLOCK_BYTES + 100, seed=3)
    base = fingerprint_buffer(data)
    for _ in range(30):
        bad = data.copy()
        idx = rng.choice(len(bad), size=rng.integers(2, 50), replace=False)
        bad[idx] = rng.integers(0, 256, size=len(idx), dtype=np.uint8)
        changed_blocks = sorted({int(i) // BLOCK_BYTES for i in idx if bad[i] != data[i]})
        assert base.diff(fingerprint_buffer(bad)) == changed_blocks


def test_length_is_part_of_the_fingerprint() -> None:
    # b"ab" and b"ab\0\0" have the same zero-padded words; the byte length tells them apart
    a = fingerprint_buffer(b"ab")
    b = fingerprint_buffer(b"ab\0\0")
    assert a.blocks != b.blocks
    assert a.summary != b.summary
    assert a.diff(b) == [0]


def test_blocks_locate_byte_ranges() -> None:
    fp = fingerprint_buffer(_bytes(2 * BLOCK_BYTES + 5))
    assert len(fp.blocks) == 3
    assert fp.block_range(2) == (2 * BLOCK_BYTES, 2 * BLOCK_BYTES + 5)
    assert TensorFingerprint(0, ()).summary != fp.summary


def test_arrays_fingerprint_their_logical_row_major_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from goldwatch.integrity import fingerprint_numpy

    monkeypatch.setattr(fingerprint_numpy, "PIECE_BYTES", 1000)  # force many pieces, cut at odd offsets
    a = np.random.default_rng(0).standard_normal((301, 7, 5)).astype(np.float32)
    view = a.transpose(2, 0, 1)[:, ::2]
    assert fingerprint_array(view) == fingerprint_buffer(np.ascontiguousarray(view))
    big_endian = a.astype(">f4")
    assert fingerprint_array(big_endian) == fingerprint_array(a)
    with pytest.raises(ValueError, match="dtype object"):
        fingerprint_array(np.array([object()]))
