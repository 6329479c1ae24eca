"""Fetching the MNIST and CIFAR-10 archives named in the config, with checksum verification
(the files a dataset is read from are listed by :mod:`resnet_scaling.dataset_files`).

Only called when a dataset asks for it (``download: true``) and its files are not in its
``path`` yet; in the workflow by a download rule that runs on the submitting host (a local
rule: compute nodes often have no internet), never by the data job. Each archive is downloaded to a temporary file beside its destination, its
MD5 or SHA-256 is checked, and only then is it renamed into place (and, for the CIFAR-10
tarball, unpacked), so a failed or interrupted download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import tarfile
import urllib.request
from pathlib import Path

from ..dataset_files import CIFAR_TEST_FILE, CIFAR_TRAIN_FILES, IDX_FILES, archive_name, cifar_folder
from ..io import atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20


def file_digest(path: str | Path, algorithm: str) -> str:
    """Hex digest of a file (``md5`` or ``sha256``)."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_checksum(path: str | Path, entry: dict, name: str | Path | None = None) -> None:
    """Check ``path`` against the ``sha256`` or ``md5`` of a ``urls`` entry; one error naming the file."""
    name = name or path
    for algorithm in ("sha256", "md5"):
        if algorithm in entry:
            found = file_digest(path, algorithm)
            if found != str(entry[algorithm]).lower():
                raise ValueError(
                    f"checksum mismatch for {name}: {algorithm} {found}, expected {entry[algorithm]} "
                    f"(from {entry['url']}); delete it and download again"
                )
            return
    raise ValueError(f"no sha256 or md5 given for {entry['url']}; refusing to use an unverified download")


def download(entry: dict, destination: str | Path) -> Path:
    """Download ``entry['url']`` to ``destination`` and verify it before it appears there."""
    destination = Path(destination)
    with atomic_path(destination, suffix=".download") as tmp:
        log.info("downloading %s to %s", entry["url"], destination)
        with urllib.request.urlopen(entry["url"], timeout=60) as response, open(tmp, "wb") as out:
            for chunk in iter(lambda: response.read(CHUNK), b""):
                out.write(chunk)
        verify_checksum(tmp, entry, destination)
    return destination


def _unpack_cifar(archive: Path, folder: Path) -> None:
    """Extract the batch files of the python CIFAR-10 tarball into ``folder`` (flat)."""
    wanted = set(CIFAR_TRAIN_FILES) | {CIFAR_TEST_FILE}
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar.getmembers():
                name = member.name.rsplit("/", 1)[-1]
                if member.isfile() and name in wanted:
                    source = tar.extractfile(member)
                    with atomic_path(folder / name) as tmp:
                        tmp.write_bytes(source.read())
                    wanted.discard(name)
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ValueError(f"corrupt CIFAR-10 archive {archive}: {exc}; delete it and download again") from exc
    if wanted:
        raise ValueError(f"CIFAR-10 archive {archive} lacks {sorted(wanted)}")


def _present(spec: dict, folder: Path) -> bool:
    if spec["kind"] == "cifar10":
        inner = cifar_folder(folder)
        return all((inner / n).exists() for n in (*CIFAR_TRAIN_FILES, CIFAR_TEST_FILE))
    return all((folder / s).exists() or (folder / f"{s}.gz").exists() for s in IDX_FILES.values())


def fetch_dataset(spec: dict) -> None:
    """Make the files of an ``mnist`` or ``cifar10`` dataset present in ``spec['path']``.

    Nothing is fetched when they are there already. From the command line (the workflow's
    download rules): ``python -m resnet_scaling.training.fetch SPEC_JSON``. Otherwise every archive of
    ``spec['urls']`` is downloaded (or, when already downloaded, checked again) and verified;
    CIFAR-10 is then unpacked. The IDX ``.gz`` files of MNIST are read as they are.
    """
    folder = Path(spec["path"])
    if _present(spec, folder):
        return
    entries = spec.get("urls") or []
    if not entries:
        raise ValueError(f"dataset folder {folder} is incomplete and the config gives no urls to download from")
    folder.mkdir(parents=True, exist_ok=True)
    for entry in entries:
        archive = folder / archive_name(entry)
        if archive.exists():
            verify_checksum(archive, entry)
        else:
            download(entry, archive)
        if spec["kind"] == "cifar10":
            _unpack_cifar(archive, folder)


if __name__ == "__main__":
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(message)s")
    fetch_dataset(json.loads(sys.argv[1]))
