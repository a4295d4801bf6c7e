//! What every layer of the format shares: the version a node speaks, the
//! bounds a decoder holds a frame to, and why a frame is refused.

/// The wire format's version, the first byte of every frame.
pub const VERSION: u8 = 1;

/// Room a node leaves, above the wire's [`Limits::max_frame`], for
/// ractor_cluster's own envelope around a wire frame (the message's name,
/// the target actor, the reply tag): a node accepts inbound cluster frames
/// of up to `max_frame + ENVELOPE` bytes, so that every frame a sender
/// checked against `max_frame` arrives, and nothing larger does.
pub const ENVELOPE: usize = 64 << 10;

/// Bounds a decoder holds a frame to, so a hostile or corrupt frame cannot
/// make it allocate more than about [`Limits::max_frame`] worth of values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, in bytes (default 64 MiB).
    pub max_frame: usize,
    /// Most items in one request or reply (default 65,536).
    pub max_items: usize,
    /// Largest single string or vector, in bytes (default 4 MiB).
    pub max_item_bytes: usize,
    /// Largest error message, in bytes (default 64 KiB).
    pub max_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame: 64 << 20,
            max_items: 65_536,
            max_item_bytes: 4 << 20,
            max_message: 64 << 10,
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame ends inside a field.
    #[error(
        "truncated frame: the field at offset {at} needs {needed} byte(s), the frame ends sooner"
    )]
    Truncated {
        /// Bytes the field needs.
        needed: usize,
        /// Offset of the field in the frame.
        at: usize,
    },
    /// The frame was written by another version of the format.
    #[error("unsupported wire version {found} (this node speaks version {VERSION})")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// The frame is not of the kind the decoder reads (or of no known kind).
    #[error("unexpected frame kind {found}")]
    Kind {
        /// The kind byte found.
        found: u8,
    },
    /// A length is over its [`Limits`] bound.
    #[error("{what} is too long: {len} over the limit of {limit}")]
    TooLong {
        /// What was too long ("frame", "string", "items"…).
        what: &'static str,
        /// Its length: bytes for frames, strings and messages, elements for
        /// vectors and items.
        len: usize,
        /// The bound, in the same unit.
        limit: usize,
    },
    /// A field holds a value that cannot be (bad UTF-8, unknown tag…).
    #[error("invalid frame: {0}")]
    Invalid(String),
    /// Bytes are left after the frame's last field.
    #[error("{count} unexpected byte(s) after the end of the frame")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}
