"""The seam where RON moves: lock before dispatch, release per verified frame,
refund the rest. ``LedgerEscrow`` keeps the books in the database only; the
Ronin contract gateway plugs in here with the same three calls."""

from __future__ import annotations

from typing import Protocol


class EscrowGateway(Protocol):
    def lock(self, job_id: str, amount_wei: int) -> str:
        """Lock ``amount_wei`` for the job; returns a reference (a tx hash on chain)."""

    def release(self, job_id: str, frame_number: int, payee: str, amount_wei: int) -> str:
        """Pay one verified frame's price to its node provider."""

    def refund(self, job_id: str, amount_wei: int) -> str:
        """Return what was locked and not released (less fees) to the artist."""


class LedgerEscrow:
    """Records movements in the payments table without a chain (the embedded default
    until the escrow contract is wired in)."""

    def lock(self, job_id: str, amount_wei: int) -> str:
        return f"ledger:lock:{job_id}"

    def release(self, job_id: str, frame_number: int, payee: str, amount_wei: int) -> str:
        return f"ledger:release:{job_id}:{frame_number}"

    def refund(self, job_id: str, amount_wei: int) -> str:
        return f"ledger:refund:{job_id}"


def escrow_gateway() -> EscrowGateway:
    return LedgerEscrow()
