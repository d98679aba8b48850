"""Certificates for tests, made with the openssl command."""

from __future__ import annotations

import subprocess
from pathlib import Path


def openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=60)


def make_certificates(directory: Path) -> dict[str, Path]:
    """A CA (`ca`, `ca-key`), a server certificate for 127.0.0.1 (`server`,
    `server-key`) and a client certificate (`client`, `client-key`), both
    signed by the CA; PEM files in `directory`, valid for two days."""
    names = ("ca", "ca-key", "server", "server-key", "client", "client-key")
    paths = {name: directory / f"{name}.pem" for name in names}
    openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        "-subj", "/CN=test CA", "-keyout", paths["ca-key"], "-out", paths["ca"],
    )  # fmt: skip
    extensions = {
        "server": "subjectAltName=IP:127.0.0.1",
        "client": "extendedKeyUsage=clientAuth",
    }
    for name, extension in extensions.items():
        request = directory / f"{name}.csr"
        openssl(
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
            "-keyout", paths[f"{name}-key"], "-out", request,
        )  # fmt: skip
        extension_file = directory / f"{name}.ext"
        extension_file.write_text(extension + "\n")
        openssl(
            "x509", "-req", "-in", request, "-CA", paths["ca"], "-CAkey", paths["ca-key"],
            "-CAcreateserial", "-days", "2", "-extfile", extension_file, "-out", paths[name],
        )  # fmt: skip
    return paths
