"""Fetch the browser's Socket.IO client from its npm package, checked against a pinned checksum.

The app serves this file itself so the viewer works offline (no CDN); it is
fetched at install time (``make install`` runs ``python -m logstream.web.vendor``)
and never committed.
"""

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "socket.io-client"
VERSION = "4.8.1"  # speaks Socket.IO protocol 5, as python-socketio 5 does
MEMBER = "package/dist/socket.io.min.js"
SHA256 = "b0e735814f8dcfecd6cdb8a7ce95a297a7e1e5f2727a29e6f5901801d52fa0c5"
TARGET = Path(__file__).resolve().parent.parent / "static" / "vendor" / "socket.io.min.js"


def is_present(target=TARGET):
    """Return True when the pinned client is already in place, checksum included."""
    return target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == SHA256


def fetch(target=TARGET):
    """Download the pinned npm package, verify the client script and install it."""
    if is_present(target):
        return target
    with tempfile.TemporaryDirectory() as tmp:
        # npm pack checks the tarball against the registry's integrity hash.
        subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent",
                        "--pack-destination", tmp],
                       check=True, stdout=subprocess.DEVNULL)
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as tar:
            data = tar.extractfile(MEMBER).read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise RuntimeError(f"{PACKAGE}@{VERSION} {MEMBER} has sha256 {digest}, "
                           f"expected {SHA256}: refusing to install it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return target


if __name__ == "__main__":
    path = fetch()
    print(f"{PACKAGE}@{VERSION} -> {path}", file=sys.stderr)
