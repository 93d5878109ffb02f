"""Finding dataset files: ``RECFORGE_DATA_DIR``, then a user cache, then the publisher's URL.

Downloads are verified against SHA-256 checksums shipped with recforge (``data/checksums``), and
written atomically, so a failed or corrupted download never leaves a half file in the cache.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from recforge.errors import DataError
from recforge.io import atomic_path


@dataclass(frozen=True)
class Source:
    """Where a dataset's files come from.

    Attributes:
        folder: Folder name under the data directory (``ml-100k``).
        files: Files the reader needs.
        url: Publisher URL of a zip holding the files, or a base URL the files hang under.
        zip_prefix: Path of the files inside the zip.
        homepage: Where a person can get the data by hand.
        terms: One line on the data's licence terms.
    """

    folder: str
    files: tuple[str, ...]
    url: str | None = None
    zip_prefix: str = ""
    homepage: str = ""
    terms: str = ""
    optional: tuple[str, ...] = field(default=())


def data_dir() -> Path | None:
    """The directory named by ``RECFORGE_DATA_DIR``, if set."""
    env = os.environ.get("RECFORGE_DATA_DIR")
    return Path(env).expanduser() if env else None


def cache_dir() -> Path:
    """The user cache (``RECFORGE_CACHE_DIR``, else ``$XDG_CACHE_HOME/recforge``, else ``~/.cache/recforge``)."""
    env = os.environ.get("RECFORGE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "recforge"


def checksums(folder: str) -> dict[str, str]:
    """Known SHA-256 sums of a dataset's files."""
    try:
        text = resources.files("recforge.data").joinpath("checksums", f"{folder}.txt").read_text()
    except FileNotFoundError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.strip().lstrip("*")] = digest
    return out


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def locate(source: Source, *, download: bool = True, verify: bool = True) -> Path:
    """The folder that holds ``source``'s files, downloading into the cache if needed.

    Raises:
        DataError: naming the missing or corrupted file and how to get it.
    """
    candidates = []
    if (d := data_dir()) is not None:
        candidates.append(d / source.folder)
    candidates.append(cache_dir() / source.folder)
    for folder in candidates:
        if all((folder / f).exists() for f in source.files):
            if verify:
                _verify(folder, source)
            return folder
    if not download or source.url is None:
        raise DataError(_missing_message(source, candidates))
    target = cache_dir() / source.folder
    _download(source, target)
    _verify(target, source)
    return target


def _verify(folder: Path, source: Source) -> None:
    sums = checksums(source.folder)
    for name in source.files:
        want = sums.get(name)
        if want is None:
            continue
        path = folder / name
        got = _cached_digest(path)
        if got != want:
            raise DataError(
                f"{path}: checksum mismatch (sha256 {got[:12]}..., expected {want[:12]}...); "
                f"the file is corrupted or a different version: delete it and "
                f"{'re-run to download it again' if source.url else 'get it again from ' + source.homepage}"
            )


_DIGESTS: dict[tuple[str, float, int], str] = {}


def _cached_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime, st.st_size)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256(path)
    return _DIGESTS[key]


def _missing_message(source: Source, looked: list[Path]) -> str:
    where = ", ".join(str(p) for p in looked)
    how = f"download it from {source.homepage}" if source.homepage else "obtain it"
    missing = source.files[0]
    for folder in looked:
        absent = [f for f in source.files if not (folder / f).exists()]
        if absent:
            missing = absent[0]
            break
    return (
        f"dataset {source.folder!r}: file {missing!r} not found (looked in {where}); "
        f"{how} and put its files in $RECFORGE_DATA_DIR/{source.folder}/"
    )


def _download(source: Source, target: Path) -> None:
    assert source.url is not None
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        tmp_path = Path(tmp)
        try:
            if source.url.endswith(".zip"):
                archive = tmp_path / "archive.zip"
                _fetch(source.url, archive)
                with zipfile.ZipFile(archive) as zf:
                    for name in source.files + source.optional:
                        member = f"{source.zip_prefix}{name}"
                        try:
                            with zf.open(member) as src, open(tmp_path / name, "wb") as dst:
                                shutil.copyfileobj(src, dst)
                        except KeyError:
                            if name in source.files:
                                raise DataError(f"{source.url}: archive has no {member}") from None
            else:
                for name in source.files:
                    _fetch(f"{source.url.rstrip('/')}/{name}", tmp_path / name)
        except DataError:
            raise
        except Exception as exc:
            raise DataError(
                f"dataset {source.folder!r}: download from {source.url} failed ({exc}); "
                f"set RECFORGE_DATA_DIR to a folder holding {source.folder}/ "
                f"(see {source.homepage or source.url})"
            ) from exc
        sums = checksums(source.folder)
        for name in source.files:
            if name in sums and sha256(tmp_path / name) != sums[name]:
                raise DataError(f"{source.url}: downloaded {name} fails its SHA-256 check; nothing was saved")
        for name in source.files + source.optional:
            if (tmp_path / name).exists():
                with atomic_path(target / name) as dst:
                    shutil.copyfile(tmp_path / name, dst)


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as resp, open(dest, "wb") as fh:  # noqa: S310
        shutil.copyfileobj(resp, fh)
