// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice Test payee that refuses every payment.
contract Reverter {
    error NoThanks();

    receive() external payable {
        revert NoThanks();
    }
}

/// @notice Test payee that burns all the gas it is given.
contract GasBurner {
    uint256 public counter;

    receive() external payable {
        while (true) {
            ++counter;
        }
    }
}

interface IEscrowCredit {
    function withdrawCredit() external;
}

/// @notice Test payee that tries to re-enter the escrow when paid.
contract Reenterer {
    address public immutable escrow;
    bool private _pulling;

    constructor(address escrow_) {
        escrow = escrow_;
    }

    receive() external payable {
        if (!_pulling) IEscrowCredit(escrow).withdrawCredit();
    }

    /// @notice Pull this contract's credit, accepting the transfer without re-entering.
    function pull() external {
        _pulling = true;
        IEscrowCredit(escrow).withdrawCredit();
        _pulling = false;
    }
}
