"""The vendored Cytoscape.js is the file npm published: checked against the hashes recorded from
the tarball (``scrapers.explorer.web.vendor``), and the check itself refuses a changed tarball or
file."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from scrapers.explorer.web import vendor


def test_the_vendored_files_match_the_published_tarball() -> None:
    for name, (_, digest) in vendor.FILES.items():
        data = (vendor.VENDOR_DIR / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, name
    script = (vendor.VENDOR_DIR / "cytoscape.min.js").read_bytes()
    assert script.startswith(b"/**\n * Copyright (c) 2016-") and b"Cytoscape Consortium" in script
    assert b"Permission is hereby granted" in (vendor.VENDOR_DIR / "LICENSE").read_bytes()


def test_the_integrity_is_npms_sha512_format() -> None:
    assert vendor.integrity(b"") == (
        "sha512-z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg=="
    )
    assert vendor.TARBALL_INTEGRITY.startswith("sha512-") and len(vendor.TARBALL_INTEGRITY) == 95


def tarball(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_files_are_taken_from_a_tarball_only_when_every_hash_matches(tmp_path: Path) -> None:
    script, licence = b"window.cytoscape = 1;", b"MIT licence"
    packed = tarball({"package/dist/cytoscape.min.js": script, "package/LICENSE": licence})
    files = {
        "cytoscape.min.js": ("package/dist/cytoscape.min.js", hashlib.sha256(script).hexdigest()),
        "LICENSE": ("package/LICENSE", hashlib.sha256(licence).hexdigest()),
    }
    taken = vendor.files_from_tarball(packed, vendor.integrity(packed), files)
    assert taken == {"cytoscape.min.js": script, "LICENSE": licence}
    with pytest.raises(vendor.VendorMismatchError, match="tarball integrity"):
        vendor.files_from_tarball(packed + b"\0", vendor.integrity(packed), files)
    changed = tarball({"package/dist/cytoscape.min.js": script + b"//", "package/LICENSE": licence})
    with pytest.raises(vendor.VendorMismatchError, match="has sha256"):
        vendor.files_from_tarball(changed, vendor.integrity(changed), files)


def test_the_command_refuses_a_tarball_that_is_not_the_published_one(
    tmp_path: Path, capsys
) -> None:
    fake = tmp_path / "cytoscape-3.35.0.tgz"
    fake.write_bytes(tarball({"package/LICENSE": b"x"}))
    assert vendor.main([str(fake), "--check"]) == 1
    assert "tarball integrity" in capsys.readouterr().err
