"""The graph library the track page draws with, vendored from npm and checked.

Cytoscape.js comes from npm at a pinned version: its tarball's integrity (the ``dist.integrity``
npm publishes, a sha512 of the tarball) and the sha256 of each file taken from it are recorded
here. ``tests/test_explorer_vendor.py`` checks the vendored files against these hashes; to
re-derive them (or to upgrade, after changing ``VERSION`` and the hashes), run::

    npm view cytoscape@3.35.0 dist.integrity dist.tarball   # the published integrity
    npm pack cytoscape@3.35.0                                # downloads cytoscape-3.35.0.tgz
    python -m scrapers.explorer.web.vendor cytoscape-3.35.0.tgz

which checks the tarball against ``TARBALL_INTEGRITY``, then each file inside it against its
recorded sha256, and writes them into ``static/vendor/cytoscape/`` (``--check`` only compares).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import sys
import tarfile
from pathlib import Path

PACKAGE = "cytoscape"
VERSION = "3.35.0"
TARBALL_URL = "https://registry.npmjs.org/cytoscape/-/cytoscape-3.35.0.tgz"
TARBALL_INTEGRITY = (
    "sha512-sMvBIXiGMnhkCaWz2R06FwF/27MNlS+Tqvi17foO9UhnUg3XGZccKjxsvEqQFAQYMSSZmN5Sx"
    "YzUYlQ0DOJJ3g=="
)
# Each vendored file: its path inside the tarball and its sha256.
FILES = {
    "cytoscape.min.js": (
        "package/dist/cytoscape.min.js",
        "71fa9ebec21a7ca2c40cff6aacc30d1f6464e363662ad4b2c197e1adc770cd94",
    ),
    "LICENSE": (
        "package/LICENSE",
        "eb319c6e6f233607f71e8e2f450391751883cfc0eeb3ca7ef574c13d1d9c2203",
    ),
}
VENDOR_DIR = Path(__file__).parent / "static" / "vendor" / PACKAGE


class VendorMismatchError(ValueError):
    """A tarball or a file is not what the recorded hash says."""


def integrity(data: bytes) -> str:
    """npm's ``dist.integrity`` of a tarball: ``sha512-`` and the base64 digest."""
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_from_tarball(
    tarball: bytes,
    expected_integrity: str = TARBALL_INTEGRITY,
    files: dict[str, tuple[str, str]] = FILES,
) -> dict[str, bytes]:
    """The vendored files taken from ``tarball``, each checked; ``VendorMismatchError`` if the
    tarball or a file does not match its recorded hash."""
    found = integrity(tarball)
    if found != expected_integrity:
        raise VendorMismatchError(f"tarball integrity {found} is not {expected_integrity}")
    taken = {}
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name, (member, digest) in files.items():
            extracted = archive.extractfile(member)
            if extracted is None:
                raise VendorMismatchError(f"{member} is not a file in the tarball")
            data = extracted.read()
            if sha256(data) != digest:
                raise VendorMismatchError(f"{member} has sha256 {sha256(data)}, not {digest}")
            taken[name] = data
    return taken


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check (and write) the vendored Cytoscape.js.")
    parser.add_argument("tarball", type=Path, help=f"npm pack {PACKAGE}@{VERSION}")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    try:
        taken = files_from_tarball(args.tarball.read_bytes())
    except (OSError, VendorMismatchError, tarfile.TarError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for name, data in taken.items():
        target = VENDOR_DIR / name
        if args.check:
            same = target.is_file() and target.read_bytes() == data
            print(f"{target}: {'matches' if same else 'DIFFERS'} the tarball")
            if not same:
                return 1
        else:
            target.write_bytes(data)
            print(f"{target}: written from {args.tarball}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
