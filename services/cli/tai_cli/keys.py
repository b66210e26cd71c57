"""Approval key files: generated once, stored with owner-only permissions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tai_core.files import ensure_private_directory, ensure_private_file, write_private_file
from tai_core.signing import generate_private_key_pem, public_key_pem

PRIVATE_KEY_FILE = "approval-private.pem"
PUBLIC_KEY_FILE = "approval-public.pem"
OPERATOR_PRIVATE_KEY_FILE = "operator-private.pem"
"""The break-glass key: signs `trading-ai control halt` (operators only, mode 0600)."""
OPERATOR_PUBLIC_KEY_FILE = "operator-public.pem"


@dataclass(frozen=True, slots=True)
class ApprovalKeyFiles:
    """Where an approval key pair lives."""

    private_key: Path
    public_key: Path


def generate_key_files(
    directory: Path,
    *,
    overwrite: bool = False,
    private_name: str = PRIVATE_KEY_FILE,
    public_name: str = PUBLIC_KEY_FILE,
) -> ApprovalKeyFiles:
    """Write a new Ed25519 key pair (private key mode 0600); refuse to overwrite by default."""
    ensure_private_directory(directory)
    private_path = directory / private_name
    public_path = directory / public_name
    if private_path.exists() and not overwrite:
        raise FileExistsError(f"{private_path} exists; pass --overwrite to replace it")
    private_pem = generate_private_key_pem()
    write_private_file(private_path, private_pem)
    public_path.write_bytes(public_key_pem(private_pem))
    return ApprovalKeyFiles(private_path, public_path)


def ensure_key_files(
    directory: Path,
    *,
    private_name: str = PRIVATE_KEY_FILE,
    public_name: str = PUBLIC_KEY_FILE,
) -> ApprovalKeyFiles:
    """Return the key pair in a directory, generating it on first use (modes enforced)."""
    private_path = directory / private_name
    if private_path.exists():
        ensure_private_directory(directory)
        ensure_private_file(private_path)
        return ApprovalKeyFiles(private_path, directory / public_name)
    return generate_key_files(directory, private_name=private_name, public_name=public_name)


def read_secret_file(path: Path) -> str:
    """Return a secret file's text."""
    return path.read_text(encoding="ascii")


def ensure_secret(path: Path, generate: object) -> str:
    """Return the secret stored in a file, creating it (mode 0600) with ``generate()``."""
    if path.exists():
        ensure_private_file(path)
        return path.read_text(encoding="utf-8").strip()
    value = str(generate() if callable(generate) else generate)
    ensure_private_directory(path.parent)
    write_private_file(path, value.encode("utf-8"))
    return value
