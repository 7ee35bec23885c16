"""ZIP archives: unpacked within limits, member by member, to files named by a counter.

A member's name is only ever shown, never used as a path: it cannot escape the work directory
however it is spelled. Archives that look hostile are refused as a whole — too many members,
too many bytes, a bomb-like compression ratio, nesting too deep, names that try to climb out
(``../``, ``/etc``), or a size that differs from what the directory promised.
"""

from __future__ import annotations

import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import CorruptFile, EncryptedFile, HeronError, LimitExceeded
from core.extract.sniff import ZIP, sniff
from core.extract.types import Context, Deadline, ExtractionLimits, Parsed, Source

# Members smaller than this are never bombs on their own; the total-size limit bounds many of them.
RATIO_FLOOR_BYTES = 1024 * 1024
_COPY_CHUNK = 256 * 1024
_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_DRIVE = re.compile(r"^[A-Za-z]:")
# What zipfile raises on damaged archives: its own errors, and whatever its header parsing trips on.
ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    OverflowError,
)


@dataclass(frozen=True)
class Member:
    """One file from an archive: its display name and a temporary copy of its bytes."""

    name: str
    path: Path
    size: int


class Budget:
    """What is left of the member and byte allowance, shared by an archive and the ones inside it."""

    def __init__(self, limits: ExtractionLimits) -> None:
        self.limits = limits
        self.members = limits.zip_max_members
        self.bytes = limits.zip_max_total_bytes
        self._copies = 0

    def next_copy(self, workdir: Path) -> Path:
        """A fresh file name in ``workdir``: a counter, so member names never touch the filesystem."""
        self._copies += 1
        return workdir / f"member-{self._copies:06d}"

    def take_members(self, count: int, what: str) -> None:
        self.members -= count
        if self.members < 0:
            raise LimitExceeded(
                f"{what} has more than {self.limits.zip_max_members} members (counting nested archives); "
                f"that is the limit."
            )

    def take_bytes(self, count: int, what: str) -> None:
        self.bytes -= count
        if self.bytes < 0:
            raise LimitExceeded(
                f"{what} expands to more than {_mb(self.limits.zip_max_total_bytes)} uncompressed; "
                f"that is the limit."
            )


def check_container(archive: zipfile.ZipFile, limits: ExtractionLimits, *, what: str) -> None:
    """Refuse a ZIP-based file whose directory promises a bomb, before inflating anything.

    Used for ZIP uploads and for Office files (which are ZIPs of XML).

    Raises:
        LimitExceeded: too many members, too many bytes in total, or a bomb-like ratio.
    """
    infos = [info for info in archive.infolist() if not info.is_dir()]
    if len(infos) > limits.zip_max_members:
        raise LimitExceeded(f"{what} has {len(infos)} members; the limit is {limits.zip_max_members}.")
    total = sum(info.file_size for info in infos)
    if total > limits.zip_max_total_bytes:
        raise LimitExceeded(
            f"{what} expands to {_mb(total)} uncompressed; the limit is {_mb(limits.zip_max_total_bytes)}."
        )
    for info in infos:
        _check_ratio(info.filename, info.file_size, info.compress_size, limits, what)


def unpack(
    source: Source,
    *,
    limits: ExtractionLimits,
    workdir: Path,
    deadline: Deadline | None = None,
    depth: int = 1,
    budget: Budget | None = None,
    prefix: str = "",
) -> list[Member]:
    """Copy every member of a ZIP (and of the ZIPs inside it) to ``workdir``.

    Args:
        source: The archive.
        limits: Member, size, ratio and nesting limits.
        workdir: An empty directory that the caller removes afterwards.
        deadline: Wall-time budget; None means no time limit (the upload path).
        depth: How many containers deep this archive is (1 = the uploaded ZIP itself).
        budget: Shared with nested archives; created on the first call.
        prefix: Display prefix for members of a nested archive (``inner.zip/``).

    Raises:
        LimitExceeded, CorruptFile, EncryptedFile: the whole archive is refused; files already
        copied stay in ``workdir`` for the caller to remove with it.
    """
    budget = budget or Budget(limits)
    what = f"The ZIP {prefix.rstrip('/')!r}" if prefix else "The ZIP"
    if depth > limits.max_depth:
        raise LimitExceeded(
            f"{what} is nested {depth} archives deep; the limit is {limits.max_depth} "
            f"(set HERON_MAX_NESTING_DEPTH to allow more)."
        )
    members: list[Member] = []
    try:
        with source.open() as stream, zipfile.ZipFile(stream) as archive:
            infos = _members(archive, what)
            check_container(archive, limits, what=what)
            budget.take_members(len(infos), what)
            for info in infos:
                if deadline is not None:
                    deadline.check(f"unpacking {prefix}{info.filename}")
                target = budget.next_copy(workdir)
                name = prefix + info.filename
                size = _copy_member(archive, info, target, limits, budget, name)
                if size and sniff(target) == ZIP:
                    members.extend(
                        unpack(
                            Source(path=target),
                            limits=limits,
                            workdir=workdir,
                            deadline=deadline,
                            depth=depth + 1,
                            budget=budget,
                            prefix=name + "/",
                        )
                    )
                    target.unlink()
                else:
                    members.append(Member(name=name, path=target, size=size))
    except HeronError:
        raise
    except NotImplementedError as exc:  # e.g. a compression method zipfile does not implement
        raise CorruptFile(f"{what} uses a compression method Heron cannot open ({exc}).") from exc
    except ZIP_ERRORS as exc:
        raise CorruptFile(f"{what} cannot be read: {exc}.") from exc
    return members


def extract_archive(source: Source, context: Context) -> Parsed:
    """The text of every readable member, in archive order (used for ZIPs attached to e-mails)."""
    parsed = Parsed()
    with tempfile.TemporaryDirectory(prefix="heron-zip-") as workdir:
        members = unpack(
            source,
            limits=context.limits,
            workdir=Path(workdir),
            deadline=context.deadline,
            depth=context.depth + 1,
        )
        inner = context.inner()
        for member in members:
            try:
                result = inner.read_nested(Source(path=member.path), filename=member.name)
            except HeronError as error:
                if context.deadline.remaining() <= 0:
                    raise
                parsed.warnings.append(f"member {member.name!r} skipped: {error.message}")
                continue
            parsed.pages.extend((page.text, page.method) for page in result.pages)
            parsed.warnings.extend(f"{member.name}: {warning}" for warning in result.warnings)
    return parsed


def is_junk(name: str) -> bool:
    """Operating-system litter that is never a document (macOS resource forks, Windows thumbnails)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return "__MACOSX" in parts or (bool(parts) and parts[-1].lower() in _JUNK_NAMES)


def _members(archive: zipfile.ZipFile, what: str) -> Sequence[zipfile.ZipInfo]:
    infos = []
    for info in archive.infolist():
        if _escapes(info.filename):
            raise CorruptFile(
                f"{what} contains a member named {info.filename!r} that points outside the archive; "
                f"archives like this are refused."
            )
        if info.is_dir() or is_junk(info.filename):
            continue
        if info.flag_bits & 0x1:
            raise EncryptedFile(
                f"{what} is password-protected ({info.filename!r} is encrypted); "
                f"upload the documents without a password."
            )
        infos.append(info)
    return infos


def _escapes(name: str) -> bool:
    normalised = name.replace("\\", "/")
    return normalised.startswith("/") or bool(_DRIVE.match(normalised)) or ".." in normalised.split("/")


def _copy_member(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    limits: ExtractionLimits,
    budget: Budget,
    name: str,
) -> int:
    """Inflate one member, counting real bytes (the directory's sizes may lie)."""
    written = 0
    with archive.open(info) as member, open(target, "wb") as out:
        for chunk in _chunks(member):
            written += len(chunk)
            budget.take_bytes(len(chunk), "The ZIP")
            _check_ratio(name, written, info.compress_size, limits, "The ZIP")
            if written > info.file_size:
                raise CorruptFile(f"The ZIP member {name!r} is larger than its directory entry says.")
            out.write(chunk)
    return written


def _chunks(member: zipfile.ZipExtFile) -> Iterator[bytes]:
    while chunk := member.read(_COPY_CHUNK):
        yield chunk


def _check_ratio(name: str, size: int, compressed: int, limits: ExtractionLimits, what: str) -> None:
    if size > RATIO_FLOOR_BYTES and size > limits.zip_max_ratio * max(compressed, 1):
        raise LimitExceeded(
            f"{what} member {name!r} expands {size // max(compressed, 1)}× ({_mb(size)} from "
            f"{compressed} bytes); the limit is {limits.zip_max_ratio}× — it looks like a zip bomb."
        )


def _mb(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB"
