"""The tensor fingerprint: its definition, the proof of its properties, and the parts every backend shares.

Definition (algorithm ``gw-mlh64x2-v1``)
---------------------------------------
Take the raw bytes ``x[0..n)`` of a tensor in logical row-major order (what ``.contiguous()`` holds, little-endian
as stored in safetensors/ONNX/torch on every platform goldwatch supports). Pad with zeros to a multiple of 4 and
read 32-bit little-endian words ``w[j] = x[4j] + 2^8 x[4j+1] + 2^16 x[4j+2] + 2^24 x[4j+3]``. Split the words into
blocks of ``B = 2^18`` words (1 MiB). For block ``b`` and each of two lanes ``L``::

    V_L(b) = ( sum_{i < B} w[bB + i] * k_L(i)  +  len(b) * c_L )  mod 2^64

where ``len(b)`` is the number of real (unpadded) bytes in the block, ``k_L(i) = splitmix64(s_L + (i+1)·φ) | 1``
are odd 64-bit keys from a counter-based hash of the *position inside the block* (independent of the tensor's name,
so one key table of 2 x 2 MiB is reused for every block of every tensor) and ``c_L = k_L(B)``. The fingerprint of a
tensor is its byte length and the list of block values; the one-line summary is BLAKE2b-128 of those.

Properties (and why they hold)
------------------------------
1. **Any change confined to one 32-bit word is detected with certainty** (so every single bit flip). If only word
   ``j`` of block ``b`` changes, from ``w`` to ``w'``, each lane changes by ``Δ·k`` with ``0 < |Δ| = |w' - w| < 2^32``.
   ``k`` is odd, hence a unit modulo ``2^64``, so ``Δ·k ≡ 0 (mod 2^64)`` would force ``Δ ≡ 0 (mod 2^64)``, which is
   impossible for ``0 < |Δ| < 2^64``. Block ``b``'s value changes in both lanes.
2. **Random multi-word corruption is missed with probability <= 2^-64** (<= 2^-60 as required). Model the keys as
   independent uniform odd 64-bit numbers, drawn independently of the corruption (accidental corruption -- bit rot,
   bad DMA, a stray write; deliberate tampering is what the SHA-256 file digest is for). Let ``Δ_j`` be the word
   deltas of a block, not all zero, and ``t = min v2(Δ_j) <= 31`` (the 2-adic valuation; ``|Δ_j| < 2^32``) reached
   at ``j*``, with ``Δ_{j*} = 2^t·u``, ``u`` odd. Fixing all other keys, the lane misses iff
   ``2^t·u·k_{j*} ≡ -R (mod 2^64)`` for the rest ``R``: that pins ``k_{j*}`` modulo ``2^(64-t)``, i.e. to at most
   ``2^t`` of the ``2^63`` odd residues -- probability <= ``2^(t-63)`` <= ``2^-32``. The two lanes have independent
   keys, so both miss with probability <= ``2^-64``.
3. **Order-free, hence bit-identical on every backend.** ``V`` is a sum in the ring of integers modulo ``2^64``, which
   is associative and commutative, and a word's term is the sum of its bytes' terms ``(x·2^(8t))·k``. So numpy
   ``uint64`` dot products over threads, torch ``int64`` (two's complement is arithmetic mod ``2^64``) reductions in
   any order, a Triton kernel's tile partials, and a stream split at arbitrary byte offsets all give the same value.
4. **A mismatch is located** to the tensor and the block ``[b·2^20, min((b+1)·2^20, n))`` of its bytes, because each
   block keeps its own value.

>>> fp = fingerprint_of_bytes_reference(b"goldwatch")
>>> fp.nbytes, len(fp.blocks), fp.blocks[0]
(9, 1, '1cf9eb089e53cee32e867418a32017df')
>>> flipped = fingerprint_of_bytes_reference(b"goldwatcH")   # one bit (0x20) flipped in the last byte
>>> fp.diff(flipped)
[0]
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib

import numpy as np

__all__ = [
    "ALGORITHM",
    "BLOCK_BYTES",
    "WORDS_PER_BLOCK",
    "BlockSums",
    "TensorFingerprint",
    "fingerprint_of_bytes_reference",
    "key_table",
    "length_keys",
]

ALGORITHM = "gw-mlh64x2-v1"
WORD_BYTES = 4
WORDS_PER_BLOCK = 1 << 18
BLOCK_BYTES = WORDS_PER_BLOCK * WORD_BYTES  # 1 MiB
MASK64 = (1 << 64) - 1

# Nothing-up-my-sleeve lane seeds: ASCII "goldwatc" and "h-fp-v1!" read as big-endian integers.
_SEEDS = (0x676F6C6477617463, 0x682D66702D763121)
_PHI = 0x9E3779B97F4A7C15  # splitmix64's increment (2^64 / golden ratio)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's output function on a uint64 array (wrapping arithmetic is what we want here)."""
    z = x.copy()
    z ^= z >> np.uint64(30)
    z *= np.uint64(0xBF58476D1CE4E5B9)
    z ^= z >> np.uint64(27)
    z *= np.uint64(0x94D049BB133111EB)
    z ^= z >> np.uint64(31)
    return z


@functools.lru_cache(maxsize=1)
def _keys_with_length() -> np.ndarray:
    positions = np.arange(1, WORDS_PER_BLOCK + 2, dtype=np.uint64) * np.uint64(_PHI)
    lanes = np.stack([positions + np.uint64(seed) for seed in _SEEDS])
    keys = _splitmix64(lanes) | np.uint64(1)
    keys.setflags(write=False)
    return keys


def key_table() -> np.ndarray:
    """The ``(2, WORDS_PER_BLOCK)`` uint64 key table (read-only, computed once per process).

    >>> t = key_table()
    >>> t.shape, t.dtype.name, bool((t & 1).all())
    ((2, 262144), 'uint64', True)
    """
    return _keys_with_length()[:, :WORDS_PER_BLOCK]


def length_keys() -> tuple[int, int]:
    """The two odd keys that mix a block's byte length into its value."""
    last = _keys_with_length()[:, WORDS_PER_BLOCK]
    return int(last[0]), int(last[1])


def block_count(nbytes: int) -> int:
    """Number of 1 MiB blocks of a tensor of ``nbytes`` bytes (0 for an empty tensor)."""
    return -(-nbytes // BLOCK_BYTES)


@dataclasses.dataclass(frozen=True)
class TensorFingerprint:
    """The fingerprint of one tensor (or byte range): its length and one 128-bit value per 1 MiB block.

    ``blocks[b]`` is 32 hex digits: lane 0 then lane 1, each a 64-bit value. ``summary`` hashes them all.
    """

    nbytes: int
    blocks: tuple[str, ...]

    @property
    def summary(self) -> str:
        h = hashlib.blake2b(digest_size=16, person=b"gw-fp-v1")
        h.update(self.nbytes.to_bytes(8, "little"))
        for block in self.blocks:
            h.update(bytes.fromhex(block))
        return h.hexdigest()

    def block_range(self, index: int) -> tuple[int, int]:
        """Byte range ``[start, stop)`` of block ``index`` inside the tensor."""
        start = index * BLOCK_BYTES
        return start, min(start + BLOCK_BYTES, self.nbytes)

    def diff(self, other: TensorFingerprint) -> list[int]:
        """Indices of the blocks that differ (all blocks of the longer one past the shorter's end included)."""
        n = max(len(self.blocks), len(other.blocks))
        mine = self.blocks + ("",) * (n - len(self.blocks))
        theirs = other.blocks + ("",) * (n - len(other.blocks))
        differing = [i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b]
        if not differing and self.nbytes != other.nbytes and n:
            differing = [n - 1]  # same words, different length: only the zero-padded tail can differ
        return differing

    def to_dict(self) -> dict[str, object]:
        return {"nbytes": self.nbytes, "summary": self.summary, "blocks": list(self.blocks)}


class BlockSums:
    """Per-block lane sums modulo 2^64 of one tensor, filled piece by piece in any order, then finalized.

    Backends add the contributions of the pieces they processed with :meth:`add` (numpy ``uint64`` arrays or
    Python ints); addition modulo 2^64 makes the order and the split irrelevant (property 3).
    """

    def __init__(self, nbytes: int) -> None:
        if nbytes < 0:
            raise ValueError(f"nbytes must be >= 0, got {nbytes}")
        self.nbytes = nbytes
        self.sums = np.zeros((block_count(nbytes), 2), dtype=np.uint64)

    def add(self, first_block: int, sums: np.ndarray) -> None:
        """Add ``sums`` (shape ``(k, 2)``, uint64) to blocks ``first_block .. first_block + k``."""
        self.sums[first_block : first_block + len(sums)] += sums.astype(np.uint64, copy=False)

    def add_word(self, word_index: int, value: int) -> None:
        """Add the term ``value * key`` of (part of) the word at absolute ``word_index``; value < 2^32."""
        block, pos = divmod(word_index, WORDS_PER_BLOCK)
        keys = key_table()[:, pos]
        # a (2,) array add on a row view: wraps modulo 2^64 without numpy's scalar-overflow warning
        self.sums[block] += np.array(
            [(value * int(keys[0])) & MASK64, (value * int(keys[1])) & MASK64], dtype=np.uint64
        )

    def finalize(self) -> TensorFingerprint:
        c0, c1 = length_keys()
        blocks = []
        for b, (s0, s1) in enumerate(self.sums.tolist()):
            length = min(BLOCK_BYTES, self.nbytes - b * BLOCK_BYTES)
            v0 = (s0 + length * c0) & MASK64
            v1 = (s1 + length * c1) & MASK64
            blocks.append(f"{v0:016x}{v1:016x}")
        return TensorFingerprint(nbytes=self.nbytes, blocks=tuple(blocks))


def fingerprint_of_bytes_reference(data: bytes) -> TensorFingerprint:
    """The definition, written out with Python integers: slow, obviously correct; tests check backends against it.

    >>> fingerprint_of_bytes_reference(b"").blocks
    ()
    """
    keys = key_table()
    k0 = [int(k) for k in keys[0]]
    k1 = [int(k) for k in keys[1]]
    sums = BlockSums(len(data))
    padded = data + b"\0" * (-len(data) % WORD_BYTES)
    for b in range(block_count(len(data))):
        chunk = padded[b * BLOCK_BYTES : (b + 1) * BLOCK_BYTES]
        words = [int.from_bytes(chunk[i : i + 4], "little") for i in range(0, len(chunk), 4)]
        s0 = sum(w * k for w, k in zip(words, k0)) & MASK64
        s1 = sum(w * k for w, k in zip(words, k1)) & MASK64
        sums.add(b, np.array([[s0, s1]], dtype=np.uint64))
    return sums.finalize()
