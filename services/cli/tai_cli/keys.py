"""Approval key files: generated once, stored with owner-only permissions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from tai_core.signing import generate_private_key_pem, public_key_pem

PRIVATE_KEY_FILE = "approval-private.pem"
PUBLIC_KEY_FILE = "approval-public.pem"


@dataclass(frozen=True, slots=True)
class ApprovalKeyFiles:
    """Where an approval key pair lives."""

    private_key: Path
    public_key: Path


def generate_key_files(directory: Path, *, overwrite: bool = False) -> ApprovalKeyFiles:
    """Write a new Ed25519 key pair (private key mode 0600); refuse to overwrite by default."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path = directory / PRIVATE_KEY_FILE
    public_path = directory / PUBLIC_KEY_FILE
    if private_path.exists() and not overwrite:
        raise FileExistsError(f"{private_path} exists; pass --overwrite to replace it")
    private_pem = generate_private_key_pem()
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(private_pem)
    public_path.write_bytes(public_key_pem(private_pem))
    return ApprovalKeyFiles(private_path, public_path)


def ensure_key_files(directory: Path) -> ApprovalKeyFiles:
    """Return the key pair in a directory, generating it on first use."""
    private_path = directory / PRIVATE_KEY_FILE
    if private_path.exists():
        return ApprovalKeyFiles(private_path, directory / PUBLIC_KEY_FILE)
    return generate_key_files(directory)


def read_secret_file(path: Path) -> str:
    """Return a secret file's text."""
    return path.read_text(encoding="ascii")


def ensure_secret(path: Path, generate: object) -> str:
    """Return the secret stored in a file, creating it (mode 0600) with ``generate()``."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    value = str(generate() if callable(generate) else generate)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value)
    return value
