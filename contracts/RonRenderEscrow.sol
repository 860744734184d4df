// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @title RonRender escrow for native RON
/// @notice Artists deposit RON and approve a spending cap; the operator locks a job's budget
/// against that cap, pays node providers per verified frame and closes the job, refunding what
/// was not spent. Every frame is paid at most once (a bitmap per job), so a retried release is
/// harmless. The fee is a fixed number of basis points of each frame's price, accrued per paid
/// frame and credited to the fee recipient when the job is closed or reclaimed.
/// @dev Trust model: the owner can pause, change the operator and the release cap, but holds no
/// path to artists' free balances. The operator can only spend what an artist both deposited and
/// approved, and only up to the release cap per period. Artists can always withdraw their free
/// balance and reclaim a job after its deadline, even while the contract is paused.
/// Money moves in this order everywhere: checks, then effects, then interactions, under a
/// transient-storage reentrancy guard.
contract RonRenderEscrow {
    // ------------------------------------------------------------------ constants

    /// @notice Denominator of `feeBps`.
    uint256 public constant BPS_DENOMINATOR = 10_000;
    /// @notice Gas forwarded to a payee with each payout. A payee that needs more (or reverts)
    /// is credited instead and pulls the money with `withdrawCredit`.
    uint256 public constant PAYOUT_GAS = 10_000;
    /// @dev Seed of the transient slots that sum a batch's payouts per payee.
    bytes32 private constant PAYOUT_SLOT_SEED = keccak256("ronrender.escrow.payout");

    // ------------------------------------------------------------------ types

    struct Job {
        // slot 0
        address artist;
        uint32 frameCount;
        uint32 framesPaid;
        bool closed;
        // slot 1
        uint128 pricePerFrame;
        uint64 deadline;
    }

    // ------------------------------------------------------------------ storage

    /// @notice Receives the fee of every paid frame (as a credit).
    address public immutable feeRecipient;
    /// @notice Fee per paid frame, in basis points of the frame price (rounded down per frame).
    uint16 public immutable feeBps;

    address public owner;
    address public operator;
    uint64 public periodSeconds;
    bool public paused;
    uint256 public releaseCapPerPeriod;
    /// @notice Start of the current release window (0 before the first release).
    uint64 public periodStart;
    /// @notice Wei paid to payees in the current release window.
    uint192 public releasedInPeriod;

    mapping(address => uint256) private _balances;
    mapping(address => uint256) private _spendingCaps;
    /// @notice Money owed to an account that it pulls with `withdrawCredit`: failed payouts and fees.
    mapping(address => uint256) public credits;
    mapping(bytes32 => Job) private _jobs;
    mapping(bytes32 => mapping(uint256 => uint256)) private _paidFrames;

    bool private transient _entered;

    // ------------------------------------------------------------------ events

    event Deposited(address indexed artist, uint256 amount);
    event SpendingCapSet(address indexed artist, uint256 cap);
    event Withdrawn(address indexed artist, uint256 amount);
    event Locked(
        bytes32 indexed jobId,
        address indexed artist,
        uint256 amount,
        uint128 pricePerFrame,
        uint32 frameCount,
        uint64 deadline
    );
    event FrameReleased(bytes32 indexed jobId, uint32 frame, address indexed payee, uint256 amount);
    event FrameAlreadySettled(bytes32 indexed jobId, uint32 frame);
    event PaymentCredited(bytes32 indexed jobId, address indexed payee, uint256 amount);
    event JobClosed(bytes32 indexed jobId, uint256 paid, uint256 fee, uint256 refunded);
    event Reclaimed(bytes32 indexed jobId, address indexed artist, uint256 paid, uint256 fee, uint256 refunded);
    event CreditWithdrawn(address indexed account, uint256 amount);
    event Paused(address account);
    event Unpaused(address account);
    event OperatorChanged(address indexed previousOperator, address indexed newOperator);
    event ReleaseCapChanged(uint256 capPerPeriod, uint64 periodSeconds);

    // ------------------------------------------------------------------ errors

    error NotOwner();
    error NotOperator();
    error NotJobArtist();
    error EnforcedPause();
    error ExpectedPause();
    error ReentrantCall();
    error ZeroAddress();
    error ZeroAmount();
    error FeeTooHigh(uint16 feeBps);
    error InvalidPeriod();
    error InvalidPayee(address payee);
    error JobExists(bytes32 jobId);
    error JobNotFound(bytes32 jobId);
    error JobAlreadyClosed(bytes32 jobId);
    error InsufficientBalance(uint256 available, uint256 required);
    error SpendingCapExceeded(uint256 available, uint256 required);
    error ZeroFrames();
    error ZeroPrice();
    error DeadlineInPast(uint64 deadline, uint256 nowTimestamp);
    error DeadlineNotReached(uint64 deadline, uint256 nowTimestamp);
    error LengthMismatch(uint256 frames, uint256 payees);
    error EmptyBatch();
    error FrameOutOfRange(uint32 frame, uint32 frameCount);
    error ReleaseCapExceeded(uint256 requested, uint256 available);
    error NothingToWithdraw();
    error TransferFailed();

    // ------------------------------------------------------------------ modifiers

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    modifier onlyOperator() {
        if (msg.sender != operator) revert NotOperator();
        _;
    }

    modifier whenNotPaused() {
        if (paused) revert EnforcedPause();
        _;
    }

    modifier nonReentrant() {
        if (_entered) revert ReentrantCall();
        _entered = true;
        _;
        _entered = false;
    }

    // ------------------------------------------------------------------ setup and admin

    constructor(
        address operator_,
        address feeRecipient_,
        uint16 feeBps_,
        uint256 releaseCapPerPeriod_,
        uint64 periodSeconds_
    ) {
        if (operator_ == address(0) || feeRecipient_ == address(0)) revert ZeroAddress();
        if (feeBps_ > BPS_DENOMINATOR) revert FeeTooHigh(feeBps_);
        if (periodSeconds_ == 0) revert InvalidPeriod();
        owner = msg.sender;
        operator = operator_;
        feeRecipient = feeRecipient_;
        feeBps = feeBps_;
        releaseCapPerPeriod = releaseCapPerPeriod_;
        periodSeconds = periodSeconds_;
        emit OperatorChanged(address(0), operator_);
        emit ReleaseCapChanged(releaseCapPerPeriod_, periodSeconds_);
    }

    function pause() external onlyOwner {
        if (paused) revert EnforcedPause();
        paused = true;
        emit Paused(msg.sender);
    }

    function unpause() external onlyOwner {
        if (!paused) revert ExpectedPause();
        paused = false;
        emit Unpaused(msg.sender);
    }

    function setOperator(address newOperator) external onlyOwner {
        if (newOperator == address(0)) revert ZeroAddress();
        emit OperatorChanged(operator, newOperator);
        operator = newOperator;
    }

    /// @notice Change the release cap. The current window keeps what it has released; a new
    /// window starts once `periodSeconds` (the new value) have passed since its start.
    function setReleaseCap(uint256 capPerPeriod, uint64 periodSeconds_) external onlyOwner {
        if (periodSeconds_ == 0) revert InvalidPeriod();
        releaseCapPerPeriod = capPerPeriod;
        periodSeconds = periodSeconds_;
        emit ReleaseCapChanged(capPerPeriod, periodSeconds_);
    }

    // ------------------------------------------------------------------ artist wallet

    function deposit() external payable whenNotPaused nonReentrant {
        if (msg.value == 0) revert ZeroAmount();
        _balances[msg.sender] += msg.value;
        emit Deposited(msg.sender, msg.value);
    }

    /// @notice Set how much the operator may still lock from the caller's balance (an allowance:
    /// each lock consumes it; `type(uint256).max` means unlimited). Refunds do not restore it.
    function setSpendingCap(uint256 cap) external {
        _spendingCaps[msg.sender] = cap;
        emit SpendingCapSet(msg.sender, cap);
    }

    /// @notice Withdraw free (unlocked) balance. Works while paused.
    function withdraw(uint256 amount) external nonReentrant {
        if (amount == 0) revert ZeroAmount();
        uint256 available = _balances[msg.sender];
        if (available < amount) revert InsufficientBalance(available, amount);
        unchecked {
            _balances[msg.sender] = available - amount;
        }
        emit Withdrawn(msg.sender, amount);
        _sendAll(msg.sender, amount);
    }

    /// @notice Withdraw what the caller is owed from failed payouts and fees. Works while paused.
    function withdrawCredit() external nonReentrant {
        uint256 amount = credits[msg.sender];
        if (amount == 0) revert NothingToWithdraw();
        credits[msg.sender] = 0;
        emit CreditWithdrawn(msg.sender, amount);
        _sendAll(msg.sender, amount);
    }

    // ------------------------------------------------------------------ jobs

    /// @notice Lock `frameCount * (pricePerFrame + fee per frame)` of the artist's free balance
    /// for a job, consuming as much of the artist's spending cap.
    function lock(bytes32 jobId, address artist, uint128 pricePerFrame, uint32 frameCount, uint64 deadline)
        external
        onlyOperator
        whenNotPaused
        nonReentrant
    {
        if (artist == address(0)) revert ZeroAddress();
        if (_jobs[jobId].artist != address(0)) revert JobExists(jobId);
        if (frameCount == 0) revert ZeroFrames();
        if (pricePerFrame == 0) revert ZeroPrice();
        if (deadline <= block.timestamp) revert DeadlineInPast(deadline, block.timestamp);

        uint256 amount = _lockAmount(pricePerFrame, frameCount);
        uint256 available = _balances[artist];
        if (available < amount) revert InsufficientBalance(available, amount);
        uint256 cap = _spendingCaps[artist];
        if (cap < amount) revert SpendingCapExceeded(cap, amount);

        unchecked {
            _balances[artist] = available - amount;
            if (cap != type(uint256).max) _spendingCaps[artist] = cap - amount;
        }
        _jobs[jobId] = Job({
            artist: artist,
            frameCount: frameCount,
            framesPaid: 0,
            closed: false,
            pricePerFrame: pricePerFrame,
            deadline: deadline
        });
        emit Locked(jobId, artist, amount, pricePerFrame, frameCount, deadline);
    }

    /// @notice Pay `pricePerFrame` for each frame index in `frames` (0-based, < frameCount) to
    /// the payee at the same position. A frame already paid is skipped with
    /// `FrameAlreadySettled`, so a retried batch pays nothing twice. Payouts to the same payee in
    /// one batch are summed into one transfer; a transfer that fails becomes a credit. Allowed
    /// until the job is closed, also after its deadline (the artist's reclaim closes it).
    function releaseFrames(bytes32 jobId, uint32[] calldata frames, address[] calldata payees)
        external
        onlyOperator
        whenNotPaused
        nonReentrant
    {
        uint256 count = frames.length;
        if (count != payees.length) revert LengthMismatch(count, payees.length);
        if (count == 0) revert EmptyBatch();
        Job storage job = _jobs[jobId];
        if (job.artist == address(0)) revert JobNotFound(jobId);
        if (job.closed) revert JobAlreadyClosed(jobId);

        uint256 price = job.pricePerFrame;
        (uint256 newlyPaid, address[] memory distinct) = _markFrames(jobId, job.frameCount, price, frames, payees);
        if (newlyPaid == 0) return;

        uint256 released = newlyPaid * price;
        _consumeReleaseCap(released);
        // newlyPaid <= frameCount - framesPaid: each index < frameCount is paid at most once.
        job.framesPaid += uint32(newlyPaid);

        _payOut(jobId, distinct);
    }

    /// @notice Close a job: refund the unpaid frames (with their fees) to the artist's free
    /// balance and credit the fees of the paid frames to the fee recipient. Works while paused:
    /// it moves money only inside the contract, towards its owners.
    function closeJob(bytes32 jobId) external onlyOperator nonReentrant {
        (uint256 paid, uint256 fee, uint256 refunded) = _settle(jobId);
        emit JobClosed(jobId, paid, fee, refunded);
    }

    /// @notice After the deadline the artist closes the job themselves, with the same
    /// accounting as `closeJob`. Works while paused.
    function reclaimAfterDeadline(bytes32 jobId) external nonReentrant {
        Job storage job = _jobs[jobId];
        if (job.artist == address(0)) revert JobNotFound(jobId);
        if (msg.sender != job.artist) revert NotJobArtist();
        if (block.timestamp <= job.deadline) revert DeadlineNotReached(job.deadline, block.timestamp);
        (uint256 paid, uint256 fee, uint256 refunded) = _settle(jobId);
        emit Reclaimed(jobId, msg.sender, paid, fee, refunded);
    }

    // ------------------------------------------------------------------ views

    function balanceOf(address artist) external view returns (uint256) {
        return _balances[artist];
    }

    function spendingCap(address artist) external view returns (uint256) {
        return _spendingCaps[artist];
    }

    /// @notice A job's terms and progress; all zero for an unknown job id.
    function getJob(bytes32 jobId)
        external
        view
        returns (
            address artist,
            uint128 pricePerFrame,
            uint32 frameCount,
            uint32 framesPaid,
            uint64 deadline,
            uint256 locked,
            uint256 paid,
            uint256 fee,
            bool closed
        )
    {
        Job storage job = _jobs[jobId];
        artist = job.artist;
        pricePerFrame = job.pricePerFrame;
        frameCount = job.frameCount;
        framesPaid = job.framesPaid;
        deadline = job.deadline;
        closed = job.closed;
        uint256 feePer = _feePerFrame(pricePerFrame);
        locked = uint256(frameCount) * (pricePerFrame + feePer);
        paid = uint256(framesPaid) * pricePerFrame;
        fee = uint256(framesPaid) * feePer;
    }

    function isFramePaid(bytes32 jobId, uint32 frame) external view returns (bool) {
        return _paidFrames[jobId][frame >> 8] & (uint256(1) << (frame & 0xff)) != 0;
    }

    /// @notice What closing the job now would refund to the artist (0 once closed).
    function remainder(bytes32 jobId) external view returns (uint256) {
        Job storage job = _jobs[jobId];
        if (job.closed) return 0;
        return _lockAmount(job.pricePerFrame, job.frameCount - job.framesPaid);
    }

    /// @notice What `lock` takes from the artist for a job of these terms.
    function quoteLock(uint128 pricePerFrame, uint32 frameCount) external view returns (uint256) {
        return _lockAmount(pricePerFrame, frameCount);
    }

    /// @notice The fee charged per paid frame at this price.
    function feePerFrame(uint128 pricePerFrame) external view returns (uint256) {
        return _feePerFrame(pricePerFrame);
    }

    /// @notice Wei that may still be released in the current window, counting a window that
    /// has expired as fresh.
    function remainingReleaseCap() external view returns (uint256) {
        uint256 released = block.timestamp >= uint256(periodStart) + periodSeconds ? 0 : releasedInPeriod;
        uint256 cap = releaseCapPerPeriod;
        return released >= cap ? 0 : cap - released;
    }

    // ------------------------------------------------------------------ internals

    function _feePerFrame(uint256 price) private view returns (uint256) {
        return (price * feeBps) / BPS_DENOMINATOR;
    }

    function _lockAmount(uint256 price, uint256 frameCount) private view returns (uint256) {
        return frameCount * (price + _feePerFrame(price));
    }

    /// @dev Marks each new frame paid and sums its price per payee in transient storage.
    /// Returns how many frames were newly paid and the distinct payees, in first-seen order.
    function _markFrames(
        bytes32 jobId,
        uint32 frameCount,
        uint256 price,
        uint32[] calldata frames,
        address[] calldata payees
    ) private returns (uint256 newlyPaid, address[] memory distinct) {
        mapping(uint256 => uint256) storage paidFrames = _paidFrames[jobId];
        distinct = new address[](frames.length);
        uint256 distinctCount;
        for (uint256 i; i < frames.length; ++i) {
            uint32 frame = frames[i];
            if (!_markFrame(paidFrames, jobId, frame, frameCount)) continue;
            unchecked {
                ++newlyPaid;
            }
            address payee = payees[i];
            if (payee == address(0) || payee == address(this)) revert InvalidPayee(payee);
            emit FrameReleased(jobId, frame, payee, price);
            if (_addPayout(payee, price)) {
                distinct[distinctCount] = payee;
                unchecked {
                    ++distinctCount;
                }
            }
        }
        assembly ("memory-safe") {
            mstore(distinct, distinctCount)
        }
    }

    /// @dev Marks one frame index paid; false (with `FrameAlreadySettled`) when it already was.
    function _markFrame(
        mapping(uint256 => uint256) storage paidFrames,
        bytes32 jobId,
        uint32 frame,
        uint32 frameCount
    ) private returns (bool newlyPaid) {
        if (frame >= frameCount) revert FrameOutOfRange(frame, frameCount);
        uint256 word = paidFrames[frame >> 8];
        uint256 bit = uint256(1) << (frame & 0xff);
        if (word & bit != 0) {
            emit FrameAlreadySettled(jobId, frame);
            return false;
        }
        paidFrames[frame >> 8] = word | bit;
        return true;
    }

    /// @dev Adds to a payee's transient payout sum; true when this is its first payout in the batch.
    function _addPayout(address payee, uint256 amount) private returns (bool first) {
        bytes32 slot = _payoutSlot(payee);
        uint256 owed;
        assembly ("memory-safe") {
            owed := tload(slot)
            tstore(slot, add(owed, amount))
        }
        first = owed == 0;
    }

    /// @dev Sends each payee its summed payout with limited gas, clearing the transient sums;
    /// a payout that fails is credited to the payee instead.
    function _payOut(bytes32 jobId, address[] memory distinct) private {
        for (uint256 i; i < distinct.length; ++i) {
            address payee = distinct[i];
            bytes32 slot = _payoutSlot(payee);
            uint256 amount;
            bool ok;
            assembly ("memory-safe") {
                amount := tload(slot)
                tstore(slot, 0)
                ok := call(PAYOUT_GAS, payee, amount, 0, 0, 0, 0)
            }
            if (!ok) {
                credits[payee] += amount;
                emit PaymentCredited(jobId, payee, amount);
            }
        }
    }

    function _payoutSlot(address payee) private pure returns (bytes32 slot) {
        bytes32 seed = PAYOUT_SLOT_SEED;
        assembly ("memory-safe") {
            mstore(0x00, payee)
            mstore(0x20, seed)
            slot := keccak256(0x00, 0x40)
        }
    }

    function _consumeReleaseCap(uint256 amount) private {
        uint256 start = periodStart;
        uint256 released = releasedInPeriod;
        if (block.timestamp >= start + periodSeconds) {
            start = block.timestamp;
            released = 0;
        }
        uint256 cap = releaseCapPerPeriod;
        uint256 available = released >= cap ? 0 : cap - released;
        if (amount > available) revert ReleaseCapExceeded(amount, available);
        released += amount;
        // released <= cap; a cap above uint192 (about 6e57 wei) cannot be reached by real money.
        if (released > type(uint192).max) revert ReleaseCapExceeded(amount, available);
        periodStart = uint64(start);
        releasedInPeriod = uint192(released);
    }

    /// @dev Closes the job: refund unpaid frames to the artist, credit fees once.
    function _settle(bytes32 jobId) private returns (uint256 paid, uint256 fee, uint256 refunded) {
        Job storage job = _jobs[jobId];
        address artist = job.artist;
        if (artist == address(0)) revert JobNotFound(jobId);
        if (job.closed) revert JobAlreadyClosed(jobId);
        uint256 price = job.pricePerFrame;
        uint256 feePer = _feePerFrame(price);
        uint256 framesPaid = job.framesPaid;
        job.closed = true;
        paid = framesPaid * price;
        fee = framesPaid * feePer;
        refunded = (uint256(job.frameCount) - framesPaid) * (price + feePer);
        if (refunded != 0) _balances[artist] += refunded;
        if (fee != 0) credits[feeRecipient] += fee;
    }

    function _sendAll(address to, uint256 amount) private {
        bool ok;
        assembly ("memory-safe") {
            ok := call(gas(), to, amount, 0, 0, 0, 0)
        }
        if (!ok) revert TransferFailed();
    }
}
