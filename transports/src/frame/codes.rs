//! The numbers error kinds and abstraction kinds have on the wire.

use tether_semantics::{AbstractionKind, ErrorKind};

/// The wire code of an error kind:
///
/// | code | kind |
/// |---:|---|
/// | 1 | failed |
/// | 2 | unknown object |
/// | 3 | unknown method |
/// | 4 | bad arguments |
/// | 5 | incompatible interface |
/// | 6 | access denied |
/// | 7 | overloaded |
/// | 8 | deadline exceeded |
/// | 9 | disconnected |
/// | 10 | internal error (also for kinds newer than this table) |
pub fn error_code(kind: ErrorKind) -> u8 {
    match kind {
        ErrorKind::Failed => 1,
        ErrorKind::UnknownObject => 2,
        ErrorKind::UnknownMethod => 3,
        ErrorKind::BadArguments => 4,
        ErrorKind::Incompatible => 5,
        ErrorKind::AccessDenied => 6,
        ErrorKind::Overloaded => 7,
        ErrorKind::DeadlineExceeded => 8,
        ErrorKind::Disconnected => 9,
        _ => 10,
    }
}

/// The error kind of a wire code; unknown codes are
/// [`ErrorKind::Internal`].
pub fn error_from_code(code: u8) -> ErrorKind {
    match code {
        1 => ErrorKind::Failed,
        2 => ErrorKind::UnknownObject,
        3 => ErrorKind::UnknownMethod,
        4 => ErrorKind::BadArguments,
        5 => ErrorKind::Incompatible,
        6 => ErrorKind::AccessDenied,
        7 => ErrorKind::Overloaded,
        8 => ErrorKind::DeadlineExceeded,
        9 => ErrorKind::Disconnected,
        _ => ErrorKind::Internal,
    }
}

/// The wire code of an abstraction kind: 0 sync, 1 oneway, 2 future.
pub fn abstraction_code(kind: AbstractionKind) -> u8 {
    match kind {
        AbstractionKind::Oneway => 1,
        AbstractionKind::Future => 2,
        _ => 0,
    }
}

/// The abstraction kind of a wire code; unknown codes are sync (the caller
/// waits, which is always safe).
pub fn abstraction_from_code(code: u8) -> AbstractionKind {
    match code {
        1 => AbstractionKind::Oneway,
        2 => AbstractionKind::Future,
        _ => AbstractionKind::Sync,
    }
}
