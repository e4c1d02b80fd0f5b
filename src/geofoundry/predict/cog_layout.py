"""A Cloud-Optimized GeoTIFF assembled from tiled GeoTIFFs whose tiles are already compressed, without decoding any.

GDAL's COG driver can only start once a raster is complete, and it decodes and re-encodes every tile. Rasters
written tile by tile in the final block size and codec (the full-resolution bands and their 1-bit mask, each
overview level with its internal mask) already hold every tile a COG needs. :func:`write_cog` copies those tiles
byte for byte (``os.copy_file_range``) behind one header, in the order of GDAL's COG driver: all IFDs first (the
full-resolution image and its mask, the overviews, then their masks), then the tiles from the smallest overview to
the full resolution, each image tile followed by its mask tile.
"""

from __future__ import annotations

import errno
import os
import struct
from pathlib import Path

import numpy as np

from ..io.tiff import (
    IMAGE,
    IMAGE_LENGTH,
    IMAGE_WIDTH,
    LONG,
    LONG8,
    MASK,
    NEW_SUBFILE_TYPE,
    OVERVIEW,
    OVERVIEW_MASK,
    PHOTOMETRIC,
    PHOTOMETRIC_MASK,
    SHORT,
    TILE_BYTE_COUNTS,
    TILE_OFFSETS,
    Ifd,
)

BIG_ONLY_TYPES = {16, 17, 18}  # LONG8, SLONG8, IFD8
GEO_TAGS = {33550, 33922, 34264, 34735, 34736, 34737, 42112, 42113}  # georeferencing, GDAL metadata and nodata
GHOST = ("LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
         "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n")
INTERLEAVED = "MASK_INTERLEAVED_WITH_IMAGERY=YES\n"
LEADER = TRAILER = 4  # bytes around each tile: its size (uint32), then its last 4 bytes again
CHUNK = 8 * 2**20  # bytes a time, where the kernel cannot copy between files


def leader(size: int) -> bytes:
    """What precedes a tile of ``size`` bytes in a COG: its size."""
    return struct.pack("<I", size)


def trailer(end: bytes) -> bytes:
    """What follows a tile in a COG, given its last bytes: its last ``TRAILER`` bytes again (zeros in front for a
    shorter tile)."""
    return end[-TRAILER:].rjust(TRAILER, b"\0")


def sized(tags: dict[int, tuple[int, int, bytes]], width: int, height: int) -> dict[int, tuple[int, int, bytes]]:
    """``tags`` with the image ``width`` × ``height`` (SHORT values where they fit, as libtiff writes them)."""
    out = dict(tags)
    for code, value in ((IMAGE_WIDTH, width), (IMAGE_LENGTH, height)):
        out[code] = (SHORT, 1, struct.pack("<H", value)) if value < 2**16 else (LONG, 1, struct.pack("<I", value))
    return out


def _entries(ifd: Ifd, subfile: int, big: bool) -> dict[int, tuple[int, int, bytes]]:
    """``ifd``'s tags for its place in the COG, but for the tile offsets and sizes: its NewSubfileType, masks with the
    mask photometric interpretation, georeferencing and metadata only in the full-resolution image."""
    tags = {code: tag for code, tag in ifd.tags.items()
            if code not in (NEW_SUBFILE_TYPE, TILE_OFFSETS, TILE_BYTE_COUNTS)
            and (subfile == IMAGE or code not in GEO_TAGS)}
    if subfile != IMAGE:
        tags[NEW_SUBFILE_TYPE] = (LONG, 1, struct.pack("<I", subfile))
    if subfile in (MASK, OVERVIEW_MASK):
        tags[PHOTOMETRIC] = (SHORT, 1, struct.pack("<H", PHOTOMETRIC_MASK))
    if not big and (bad := [code for code, (k, _, _) in tags.items() if k in BIG_ONLY_TYPES]):
        raise ValueError(f"{ifd.path}: tags {bad} need a BigTIFF")
    return tags


def _ifd_bytes(tags: dict, where: int, following: int, big: bool) -> bytes:
    """One IFD written at byte ``where``, linked to the IFD at ``following`` (0: none), its out-of-line values
    right after it."""
    entry_fmt, count_fmt, value_fmt, inline = ("<HHQ", "<Q", "<Q", 8) if big else ("<HHI", "<H", "<I", 4)
    head = struct.calcsize(count_fmt) + len(tags) * (struct.calcsize(entry_fmt) + inline)
    extra = where + head + inline  # values beyond the next-IFD link
    entries, values = [], []
    for code in sorted(tags):
        kind, count, raw = tags[code]
        if len(raw) <= inline:
            entries.append(struct.pack(entry_fmt, code, kind, count) + raw.ljust(inline, b"\0"))
        else:
            entries.append(struct.pack(entry_fmt, code, kind, count) + struct.pack(value_fmt, extra))
            padded = raw + b"\0" * (len(raw) % 2)
            values.append(padded)
            extra += len(padded)
    return struct.pack(count_fmt, len(tags)) + b"".join(entries) + struct.pack(value_fmt, following) + b"".join(values)


def _ghost(masked: bool) -> bytes:
    """GDAL's structural metadata (the "ghost area" after the TIFF header) for this layout."""
    text = GHOST + (INTERLEAVED if masked else "")
    return (f"GDAL_STRUCTURAL_METADATA_SIZE={len(text):06d} bytes\n" + text).encode()


def _header(order: list[tuple[Ifd, int]], offsets: dict[int, np.ndarray], ghost: bytes, big: bool) -> bytes:
    """TIFF header, ghost area and every IFD (tile offsets from ``offsets``, by ``id`` of the source IFD)."""
    start = len(struct.pack("<2sHHHQ", b"", 0, 0, 0, 0) if big else struct.pack("<2sHI", b"", 0, 0)) + len(ghost)
    start += start % 2
    tiff_type, dtype = (LONG8, "<u8") if big else (LONG, "<u4")
    tags, places, where = [], [], start
    for ifd, subfile in order:
        t = _entries(ifd, subfile, big)
        t[TILE_OFFSETS] = (tiff_type, len(ifd.offsets), offsets[id(ifd)].astype(dtype).tobytes())
        t[TILE_BYTE_COUNTS] = (tiff_type, len(ifd.counts), ifd.counts.astype(dtype).tobytes())
        tags.append(t)
        places.append(where)
        where += len(_ifd_bytes(t, where, 0, big))
        where += where % 2
    head = struct.pack("<2sHHHQ", b"II", 43, 8, 0, start) if big else struct.pack("<2sHI", b"II", 42, start)
    out = bytearray(head + ghost)
    out += bytes(start - len(out))
    for n, (t, place) in enumerate(zip(tags, places)):
        out += _ifd_bytes(t, place, places[n + 1] if n + 1 < len(places) else 0, big)
        out += bytes(len(out) % 2)
    return bytes(out)


def _place(levels: list[tuple[Ifd, Ifd | None]], start: int) -> tuple[dict[int, np.ndarray], list]:
    """Where each tile goes when the data begin at ``start``: smallest overview first, each image tile followed by
    its mask tile, each with its leader and trailer. Returns the new offsets (by ``id`` of the source IFD) and the
    copies to make, ``(source path, offset, size, framed)`` in order: a framed copy holds leaders and trailers
    already (tiles of framed IFDs that lie one after the other in their file are copied at once); an unframed one
    is a tile alone, its leader and trailer to be written around it."""
    offsets, plan, pos = {}, [], start
    for pair in reversed(levels):
        ifds = [ifd for ifd in pair if ifd is not None]
        for ifd in ifds:
            offsets[id(ifd)] = np.zeros_like(ifd.offsets)
        for i in range(len(pair[0].offsets)):
            for ifd in ifds:
                n = int(ifd.counts[i])
                if n:
                    offsets[id(ifd)][i] = pos + LEADER
                    pos += LEADER + n + TRAILER
                    at = int(ifd.offsets[i])
                    if not ifd.framed:
                        plan.append((ifd.path, at, n, False))
                    elif plan and plan[-1][3] and plan[-1][0] == ifd.path and sum(plan[-1][1:3]) == at - LEADER:
                        plan[-1] = (ifd.path, plan[-1][1], plan[-1][2] + LEADER + n + TRAILER, True)
                    else:
                        plan.append((ifd.path, at - LEADER, LEADER + n + TRAILER, True))
    return offsets, plan


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _copy(src: int, dst: int, offset: int, count: int) -> None:
    """``count`` bytes of ``src`` from ``offset`` to the current position of ``dst``: inside the kernel where it can
    (Linux ``copy_file_range``), else through a buffer."""
    while count:
        try:
            done = os.copy_file_range(src, dst, count, offset)
        except (AttributeError, OSError) as e:  # not Linux, or a file system that cannot
            if isinstance(e, OSError) and e.errno not in (errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL):
                raise
            chunk = os.pread(src, min(count, CHUNK), offset)
            _write(dst, chunk)
            done = len(chunk)
        if done == 0:
            raise OSError(f"unexpected end of file after {offset} bytes")
        offset, count = offset + done, count - done


def write_cog(levels: list[tuple[Ifd, Ifd | None]], path: Path, bigtiff: bool | None = None) -> None:
    """Write ``levels`` (the full resolution first, then overviews of decreasing size; each an image IFD and its
    mask IFD or None) as one COG at ``path``; ``bigtiff`` None: only when a classic TIFF cannot address it."""
    for image, mask in levels:
        if mask is not None and len(mask.offsets) != len(image.offsets):
            raise ValueError(f"{mask.path}: {len(mask.offsets)} mask tiles for {len(image.offsets)} image tiles")
    order = [(levels[0][0], IMAGE)] + ([(levels[0][1], MASK)] if levels[0][1] else [])
    order += [(image, OVERVIEW) for image, _ in levels[1:]]
    order += [(mask, OVERVIEW_MASK) for _, mask in levels[1:] if mask]
    ghost = _ghost(levels[0][1] is not None)
    data = sum(int(ifd.counts.sum()) + (LEADER + TRAILER) * int(np.count_nonzero(ifd.counts)) for ifd, _ in order)
    zeros = {id(ifd): np.zeros_like(ifd.offsets) for ifd, _ in order}  # the header's size does not depend on them
    classic = len(_header(order, zeros, ghost, big=False))
    big = classic + data >= 2**32 if bigtiff is None else bigtiff
    offsets, plan = _place(levels, len(_header(order, zeros, ghost, big)) if big else classic)
    header = _header(order, offsets, ghost, big)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    sources: dict[Path, int] = {}
    try:
        _write(fd, header)
        for source, offset, count, framed in plan:
            if source not in sources:
                sources[source] = os.open(source, os.O_RDONLY)
            src = sources[source]
            if framed:
                _copy(src, fd, offset, count)
                continue
            _write(fd, leader(count))
            _copy(src, fd, offset, count)
            last = min(count, TRAILER)
            _write(fd, trailer(os.pread(src, last, offset + count - last)))
    finally:
        for src in [*sources.values(), fd]:
            os.close(src)
