//! Frames: the header every frame starts with ([`VERSION`], [`FrameKind`])
//! and the four kinds of frame — request, reply, ping and load.

use std::time::Duration;

use corral_core::{Admission, PoolError, Submit};

use super::codec::{decode_items, encode_items, LoadReport, Wire};
use super::format::{Limits, WireError, VERSION};
use super::reader::Reader;
use super::writer::put_bool;
use crate::promise::Promise;

/// What a frame holds: its second byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// A pool request ([`encode_request`]).
    Request = 1,
    /// A pool reply with the pool's load ([`encode_reply`]).
    Reply = 2,
    /// A load query ([`encode_ping`]).
    Ping = 3,
    /// The pool's load alone, the answer to a ping ([`encode_load`]).
    Load = 4,
    /// A query for the member's promise ([`encode_describe`]).
    Describe = 5,
    /// The member's load and [`Promise`], the answer to a describe
    /// ([`encode_promise`]).
    Promise = 6,
}

impl FrameKind {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Request),
            2 => Some(Self::Reply),
            3 => Some(Self::Ping),
            4 => Some(Self::Load),
            5 => Some(Self::Describe),
            6 => Some(Self::Promise),
            _ => None,
        }
    }
}

fn frame(kind: FrameKind) -> Vec<u8> {
    vec![VERSION, kind as u8]
}

/// Checks the size, version and kind, and returns a reader past them.
fn open<'a>(bytes: &'a [u8], limits: &Limits, want: FrameKind) -> Result<Reader<'a>, WireError> {
    let mut r = Reader::new(bytes);
    match frame_kind_of(&mut r, limits)? {
        kind if kind == want => Ok(r),
        kind => Err(WireError::Kind { found: kind as u8 }),
    }
}

fn frame_kind_of(r: &mut Reader<'_>, limits: &Limits) -> Result<FrameKind, WireError> {
    if r.remaining() > limits.max_frame {
        return Err(WireError::TooLong {
            what: "frame",
            len: r.remaining(),
            limit: limits.max_frame,
        });
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(WireError::Version { found: version });
    }
    let kind = r.u8()?;
    FrameKind::from_byte(kind).ok_or(WireError::Kind { found: kind })
}

/// What `bytes` holds, from its header alone (size, version, kind), so a
/// node that takes several kinds of frame knows which decoder to call.
///
/// # Errors
/// [`WireError::TooLong`] over [`Limits::max_frame`],
/// [`WireError::Truncated`] under two bytes, [`WireError::Version`],
/// [`WireError::Kind`] for an unknown kind.
pub fn frame_kind(bytes: &[u8], limits: &Limits) -> Result<FrameKind, WireError> {
    frame_kind_of(&mut Reader::new(bytes), limits)
}

/// A request frame for `submit` (see the module docs for the layout).
pub fn encode_request<I: Wire>(submit: &Submit<I>) -> Vec<u8> {
    encode_request_parts(submit.admission, submit.deadline, &submit.inputs)
}

/// A request frame from its parts, for a caller that keeps its inputs (a
/// router re-encodes a request with what is left of its waits when it
/// tries another pool).
pub fn encode_request_parts<I: Wire>(
    admission: Admission,
    deadline: Option<Duration>,
    inputs: &[I],
) -> Vec<u8> {
    let mut out = frame(FrameKind::Request);
    admission.encode(&mut out);
    deadline.encode(&mut out);
    encode_items(inputs, &mut out);
    out
}

/// A request's inputs, encoded once, so that a router that tries several
/// pools re-frames the request with what is left of its waits
/// ([`encode_request_framed`]) without encoding the inputs again, and knows
/// the frame's size before it sends anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedInputs(Vec<u8>);

impl EncodedInputs {
    /// Encodes `inputs` as a request frame carries them.
    pub fn new<I: Wire>(inputs: &[I]) -> Self {
        let mut out = Vec::new();
        encode_items(inputs, &mut out);
        Self(out)
    }

    /// Their encoded size in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether nothing was encoded (never: the count is always there).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A request frame around inputs encoded beforehand; the same bytes as
/// [`encode_request_parts`] with those inputs.
pub fn encode_request_framed(
    admission: Admission,
    deadline: Option<Duration>,
    inputs: &EncodedInputs,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + 2 * 9 + inputs.len());
    out.extend_from_slice(&[VERSION, FrameKind::Request as u8]);
    admission.encode(&mut out);
    deadline.encode(&mut out);
    out.extend_from_slice(&inputs.0);
    out
}

/// The size of the frame [`encode_request_framed`] makes, without making
/// it.
pub fn request_frame_len(
    admission: Admission,
    deadline: Option<Duration>,
    inputs: &EncodedInputs,
) -> usize {
    let mut head = Vec::with_capacity(2 * 9);
    admission.encode(&mut head);
    deadline.encode(&mut head);
    2 + head.len() + inputs.len()
}

/// Reads a request frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_request<I: Wire>(bytes: &[u8], limits: &Limits) -> Result<Submit<I>, WireError> {
    let mut r = open(bytes, limits, FrameKind::Request)?;
    let admission = Admission::decode(&mut r, limits)?;
    let deadline = Option::<Duration>::decode(&mut r, limits)?;
    let inputs = decode_items(&mut r, limits)?;
    r.finish()?;
    Ok(Submit {
        inputs,
        admission,
        deadline,
    })
}

/// A pool's answer to a remote request.
#[derive(Debug, Clone, PartialEq)]
pub enum WireReply<O> {
    /// One output per input, in order.
    Done(Vec<O>),
    /// The request failed.
    Failed {
        /// Why.
        error: PoolError,
        /// `true` when the request never ran (refused at the door, or
        /// timed out waiting for room), so the caller may send it to
        /// another pool; `false` when it may have run.
        refused: bool,
    },
}

impl<O> WireReply<O> {
    /// The outputs, or the error.
    ///
    /// # Errors
    /// The pool's error for a failed request.
    pub fn into_result(self) -> Result<Vec<O>, PoolError> {
        match self {
            Self::Done(outputs) => Ok(outputs),
            Self::Failed { error, .. } => Err(error),
        }
    }
}

/// A reply frame: the pool's `load`, then `reply`.
pub fn encode_reply<O: Wire>(load: &LoadReport, reply: &WireReply<O>) -> Vec<u8> {
    let mut out = frame(FrameKind::Reply);
    load.encode(&mut out);
    match reply {
        WireReply::Done(outputs) => {
            out.push(0);
            encode_items(outputs, &mut out);
        }
        WireReply::Failed { error, refused } => {
            out.push(1);
            error.encode(&mut out);
            put_bool(&mut out, *refused);
        }
    }
    out
}

/// Reads a reply frame: the pool's load and its answer.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_reply<O: Wire>(
    bytes: &[u8],
    limits: &Limits,
) -> Result<(LoadReport, WireReply<O>), WireError> {
    let mut r = open(bytes, limits, FrameKind::Reply)?;
    let load = LoadReport::decode(&mut r, limits)?;
    let reply = match r.tag("reply", 1)? {
        0 => WireReply::Done(decode_items(&mut r, limits)?),
        _ => WireReply::Failed {
            error: PoolError::decode(&mut r, limits)?,
            refused: r.bool()?,
        },
    };
    r.finish()?;
    Ok((load, reply))
}

/// A ping frame: asks a pool for its [`LoadReport`].
pub fn encode_ping() -> Vec<u8> {
    frame(FrameKind::Ping)
}

/// Checks a ping frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_ping(bytes: &[u8], limits: &Limits) -> Result<(), WireError> {
    open(bytes, limits, FrameKind::Ping)?.finish()
}

/// A load frame: the answer to a ping.
pub fn encode_load(load: &LoadReport) -> Vec<u8> {
    let mut out = frame(FrameKind::Load);
    load.encode(&mut out);
    out
}

/// Reads a load frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_load(bytes: &[u8], limits: &Limits) -> Result<LoadReport, WireError> {
    let mut r = open(bytes, limits, FrameKind::Load)?;
    let load = LoadReport::decode(&mut r, limits)?;
    r.finish()?;
    Ok(load)
}

/// A describe frame: asks a member for its load and its [`Promise`].
pub fn encode_describe() -> Vec<u8> {
    frame(FrameKind::Describe)
}

/// Checks a describe frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_describe(bytes: &[u8], limits: &Limits) -> Result<(), WireError> {
    open(bytes, limits, FrameKind::Describe)?.finish()
}

/// A promise frame, the answer to a describe: the pool's load, then the
/// member's promise.
pub fn encode_promise(load: &LoadReport, promise: &Promise) -> Vec<u8> {
    let mut out = frame(FrameKind::Promise);
    load.encode(&mut out);
    promise.encode(&mut out);
    out
}

/// Reads a promise frame.
///
/// # Errors
/// Any [`WireError`]; see [`frame_kind`] for the header's.
pub fn decode_promise(bytes: &[u8], limits: &Limits) -> Result<(LoadReport, Promise), WireError> {
    let mut r = open(bytes, limits, FrameKind::Promise)?;
    let load = LoadReport::decode(&mut r, limits)?;
    let promise = Promise::decode(&mut r, limits)?;
    r.finish()?;
    Ok((load, promise))
}
