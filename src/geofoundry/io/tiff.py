"""The structure of a little-endian tiled TIFF or BigTIFF, read without decoding any tile: its image file
directories (IFDs), their tags, and where each tile lies."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
SHORT, LONG, LONG8 = 3, 4, 16
NEW_SUBFILE_TYPE, IMAGE_WIDTH, IMAGE_LENGTH, PHOTOMETRIC = 254, 256, 257, 262
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS = 322, 323, 324, 325
PHOTOMETRIC_MASK = 4
IMAGE, OVERVIEW, MASK, OVERVIEW_MASK = 0, 1, 4, 5  # NewSubfileType values


@dataclass
class Ifd:
    """One image file directory of ``path``: its tags' raw little-endian values, and where its tiles lie."""

    path: Path
    tags: dict[int, tuple[int, int, bytes]]  # code -> (TIFF type, count, value bytes)
    offsets: np.ndarray  # uint64, one per tile (0 for a tile never written)
    counts: np.ndarray
    framed: bool = False  # each tile in ``path`` already has its COG leader before it and trailer after it

    def value(self, code: int) -> int:
        """The first value of the SHORT, LONG or LONG8 tag ``code``."""
        return int(_array(self.tags[code])[0])


def _array(tag: tuple[int, int, bytes]) -> np.ndarray:
    kind, count, raw = tag
    return np.frombuffer(raw, {SHORT: "<u2", LONG: "<u4", LONG8: "<u8"}[kind], count).astype(np.uint64)


def read_ifds(path: Path) -> list[Ifd]:
    """The IFDs of a little-endian tiled TIFF or BigTIFF, in file order."""
    with open(path, "rb") as f:
        head = f.read(16)
        if head[:2] != b"II" or struct.unpack_from("<H", head, 2)[0] not in (42, 43):
            raise ValueError(f"{path}: not a little-endian TIFF")
        big = struct.unpack_from("<H", head, 2)[0] == 43
        entry, count_fmt, value_fmt = (20, "<Q", "<Q") if big else (12, "<H", "<I")
        inline = 8 if big else 4
        offset = struct.unpack_from(value_fmt, head, 8 if big else 4)[0]
        ifds = []
        while offset:
            f.seek(offset)
            n = struct.unpack(count_fmt, f.read(struct.calcsize(count_fmt)))[0]
            block = f.read(n * entry + inline)
            tags = {}
            for i in range(n):
                code, kind = struct.unpack_from("<HH", block, i * entry)
                count = struct.unpack_from(value_fmt, block, i * entry + 4)[0]
                size = TYPE_SIZES[kind] * count
                value = block[i * entry + 4 + inline: (i + 1) * entry]
                if size > inline:
                    here = f.tell()
                    f.seek(struct.unpack(value_fmt, value)[0])
                    value = f.read(size)
                    f.seek(here)
                tags[code] = (kind, count, value[:size])
            if TILE_OFFSETS not in tags:
                raise ValueError(f"{path}: IFD at byte {offset} is not tiled")
            ifds.append(Ifd(Path(path), tags, _array(tags[TILE_OFFSETS]), _array(tags[TILE_BYTE_COUNTS])))
            offset = struct.unpack_from(value_fmt, block, n * entry)[0]
    return ifds
