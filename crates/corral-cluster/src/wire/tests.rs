//! The wire module's tests: round trips, one crafted input per error, huge
//! lengths, and property tests over random and mutated frames.

use super::testing::{
    decode_exact as decode_value, on_the_wire, round_trip as roundtrip, Mutation,
};
use super::*;
use corral_core::{Admission, PoolError, Submit};
use proptest::collection::vec;
use proptest::prelude::*;
use std::time::{Duration, Instant};

/// Records the largest single allocation each thread asks for, so a test
/// can show that hostile lengths never size an allocation.
mod probe {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub(super) struct Probe;

    thread_local! {
        static LARGEST: Cell<usize> = const { Cell::new(0) };
    }

    fn note(size: usize) {
        let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
    }

    // SAFETY: every call is passed straight to `System`; `note` only
    // touches a const-initialised thread-local without a destructor,
    // which neither allocates nor reenters the allocator.
    #[allow(unsafe_code)]
    unsafe impl GlobalAlloc for Probe {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: as the caller promised us.
            unsafe { System.alloc(layout) }
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            note(layout.size());
            // SAFETY: as the caller promised us.
            unsafe { System.alloc_zeroed(layout) }
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: as the caller promised us.
            unsafe { System.dealloc(ptr, layout) }
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            note(new_size);
            // SAFETY: as the caller promised us.
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }

    /// Runs `f`, and returns its result and the largest allocation it
    /// asked for on this thread.
    pub(super) fn largest_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
        LARGEST.with(|l| l.set(0));
        let r = f();
        (r, LARGEST.with(Cell::get))
    }
}

#[global_allocator]
static PROBE: probe::Probe = probe::Probe;

fn lim() -> Limits {
    Limits::default()
}

fn load() -> LoadReport {
    LoadReport {
        in_flight: 3,
        capacity: 64,
        ready_workers: 4,
        per_request: Duration::from_micros(1_500),
        retry_after: Duration::from_millis(20),
        draining: false,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn scalars_strings_and_vectors_round_trip() {
    for n in [0, 1, u64::MAX] {
        assert_eq!(roundtrip(&n), n);
    }
    for s in ["", "hello", "héllo wörld ✓ 日本語 🦀", "\0nul"] {
        assert_eq!(roundtrip(&s.to_owned()), s);
    }
    let floats = vec![
        0.0,
        -0.0,
        1.5,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE / 2.0,
        f32::NAN,
        f32::from_bits(0x7fc0_1234),
        f32::from_bits(0xffbf_ffff),
    ];
    assert_eq!(bits(&roundtrip(&floats)), bits(&floats));
    assert!(roundtrip(&Vec::<f32>::new()).is_empty());
    let ids = vec![0, 101, u32::MAX];
    assert_eq!(roundtrip(&ids), ids);
    assert_eq!(roundtrip(&Some(7u64)), Some(7));
    assert_eq!(roundtrip(&None::<u64>), None);
}

#[test]
fn durations_saturate_both_ways() {
    assert_eq!(roundtrip(&Duration::ZERO), Duration::ZERO);
    let d = Duration::new(3, 123_456_789);
    assert_eq!(roundtrip(&d), Duration::new(3, 123_456_000));
    let max = roundtrip(&Duration::MAX);
    assert_eq!(max, Duration::from_micros(u64::MAX));
    let years = max.as_secs() / (365 * 24 * 3600);
    assert!(years >= 584_000, "{years} years");
    // A saturated value round-trips to itself.
    assert_eq!(roundtrip(&max), max);
}

#[test]
fn admission_and_errors_round_trip() {
    for a in [
        Admission::Reject,
        Admission::Wait(Duration::ZERO),
        Admission::Wait(Duration::from_secs(5)),
        Admission::Default,
    ] {
        assert_eq!(roundtrip(&a), a);
    }
    assert_eq!(
        roundtrip(&Admission::Wait(Duration::MAX)),
        Admission::Wait(Duration::from_micros(u64::MAX))
    );
    for e in [
        PoolError::Overloaded {
            retry_after: Duration::from_millis(12),
        },
        PoolError::TimedOut,
        PoolError::DeadlinePassed,
        PoolError::WorkerLost,
        PoolError::ShuttingDown,
        PoolError::InvalidInput(String::new()),
        PoolError::InvalidInput("too long: ✗".into()),
        PoolError::Backend("candle: out of memory".into()),
        PoolError::TooLarge("65 MiB on the wire".into()),
    ] {
        assert_eq!(roundtrip(&e), e);
    }
    assert_eq!(roundtrip(&load()), load());
    let l = LoadReport {
        in_flight: u32::MAX,
        draining: true,
        per_request: Duration::MAX,
        ..LoadReport::default()
    };
    assert_eq!(roundtrip(&l).per_request, on_the_wire(Duration::MAX));
}

#[test]
fn request_frames_round_trip() {
    let reqs = [
        Submit::reject(vec![]),
        Submit::reject(vec!["a".to_owned(), String::new(), "ünï".to_owned()]),
        Submit::wait(vec!["x".to_owned()], Duration::from_secs(2)).within(Duration::from_secs(9)),
    ];
    for req in &reqs {
        let bytes = encode_request(req);
        assert_eq!(&bytes[..2], &[VERSION, 1]);
        assert_eq!(frame_kind(&bytes, &lim()), Ok(FrameKind::Request));
        assert_eq!(&decode_request::<String>(&bytes, &lim()).unwrap(), req);
    }
    let forever = Submit::wait(vec![1u64, 2], Duration::MAX).within(Duration::MAX);
    let back: Submit<u64> = decode_request(&encode_request(&forever), &lim()).unwrap();
    assert_eq!(back.admission, Admission::Wait(on_the_wire(Duration::MAX)));
    assert_eq!(back.deadline, Some(on_the_wire(Duration::MAX)));
    assert_eq!(back.inputs, vec![1, 2]);
}

#[test]
fn reply_ping_and_load_frames_round_trip() {
    let done = WireReply::Done(vec![vec![1.0f32, f32::NAN], vec![]]);
    let (l, back) = decode_reply::<Vec<f32>>(&encode_reply(&load(), &done), &lim()).unwrap();
    assert_eq!(l, load());
    match back {
        WireReply::Done(v) => {
            assert_eq!(v.len(), 2);
            assert_eq!(bits(&v[0]), bits(&[1.0, f32::NAN]));
            assert!(v[1].is_empty());
        }
        other => panic!("{other:?}"),
    }
    for refused in [false, true] {
        let failed = WireReply::<u64>::Failed {
            error: PoolError::ShuttingDown,
            refused,
        };
        let bytes = encode_reply(&load(), &failed);
        assert_eq!(decode_reply(&bytes, &lim()), Ok((load(), failed.clone())));
        assert_eq!(failed.into_result(), Err(PoolError::ShuttingDown));
    }
    assert_eq!(WireReply::Done(vec![5u64]).into_result(), Ok(vec![5]));

    let ping = encode_ping();
    assert_eq!(ping, vec![VERSION, 3]);
    assert_eq!(decode_ping(&ping, &lim()), Ok(()));
    let bytes = encode_load(&load());
    assert_eq!(bytes.len(), 2 + LoadReport::MIN_LEN);
    assert_eq!(decode_load(&bytes, &lim()), Ok(load()));
    assert_eq!(frame_kind(&bytes, &lim()), Ok(FrameKind::Load));
}

#[cfg(feature = "testing")]
#[test]
fn synthetic_items_carry_id_and_cost_only() {
    use corral_core::synthetic::Item;
    let items = vec![
        Item::new(7).costing(3),
        Item::new(u64::MAX).costing(usize::MAX),
    ];
    let bytes = encode_request(&Submit::reject(items));
    let back: Submit<Item> = decode_request(&bytes, &lim()).unwrap();
    let got: Vec<_> = back.inputs.iter().map(|i| (i.id, i.cost)).collect();
    assert_eq!(got, vec![(7, 3), (u64::MAX, usize::MAX)]);
    assert!(back
        .inputs
        .iter()
        .all(|i| i.fault.is_none() && i.payload.is_none()));
    let (_, reply) =
        decode_reply::<u64>(&encode_reply(&load(), &WireReply::Done(vec![7])), &lim()).unwrap();
    assert_eq!(reply, WireReply::Done(vec![7]));
}

#[test]
fn frames_keep_their_bytes() {
    // The format, byte for byte: a change here is a new VERSION.
    let req = Submit::wait(vec!["hi".to_owned()], Duration::from_millis(5))
        .within(Duration::from_secs(1));
    let mut want = vec![VERSION, 1, 1];
    want.extend_from_slice(&5_000u64.to_le_bytes());
    want.push(1);
    want.extend_from_slice(&1_000_000u64.to_le_bytes());
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&2u32.to_le_bytes());
    want.extend_from_slice(b"hi");
    assert_eq!(encode_request(&req), want);

    let mut load_bytes = Vec::new();
    for n in [3u32, 64, 4] {
        load_bytes.extend_from_slice(&n.to_le_bytes());
    }
    load_bytes.extend_from_slice(&1_500u64.to_le_bytes());
    load_bytes.extend_from_slice(&20_000u64.to_le_bytes());
    load_bytes.push(0);
    let failed = WireReply::<u64>::Failed {
        error: PoolError::ShuttingDown,
        refused: true,
    };
    let mut want = vec![VERSION, 2];
    want.extend_from_slice(&load_bytes);
    want.extend_from_slice(&[1, 3, 1]);
    assert_eq!(encode_reply(&load(), &failed), want);
    let mut want = vec![VERSION, 2];
    want.extend_from_slice(&load_bytes);
    want.push(0);
    want.extend_from_slice(&1u32.to_le_bytes());
    want.extend_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        encode_reply(&load(), &WireReply::Done(vec![u64::MAX])),
        want
    );
    let mut want = vec![VERSION, 4];
    want.extend_from_slice(&load_bytes);
    assert_eq!(encode_load(&load()), want);
}

#[test]
fn writers_and_readers_are_counterparts() {
    let mut out = Vec::new();
    put_u32(&mut out, 0xDEAD_BEEF);
    put_u64(&mut out, u64::MAX - 1);
    put_f32(&mut out, f32::from_bits(0x7fc0_1234));
    put_bool(&mut out, true);
    put_str(&mut out, "ünï");
    assert_eq!(put_len(&mut out, 3), 3);
    out.push(2);
    let mut r = Reader::new(&out);
    assert_eq!(r.u32(), Ok(0xDEAD_BEEF));
    assert_eq!(r.u64(), Ok(u64::MAX - 1));
    assert_eq!(r.f32().map(f32::to_bits), Ok(0x7fc0_1234));
    assert_eq!(r.bool(), Ok(true));
    assert_eq!(r.string("s", 8).as_deref(), Ok("ünï"));
    assert_eq!(r.length("n", 3, 0), Ok(3));
    assert_eq!(r.tag("t", 2), Ok(2));
    assert_eq!(r.finish(), Ok(()));
    // A length that does not fit a u32 is written as u32::MAX.
    #[cfg(target_pointer_width = "64")]
    {
        let mut out = Vec::new();
        assert_eq!(put_len(&mut out, usize::MAX), u32::MAX as usize);
        assert_eq!(out, u32::MAX.to_le_bytes());
    }
}

#[test]
fn each_error_comes_from_a_crafted_frame() {
    let req = encode_request(&Submit::reject(vec!["hello".to_owned()]));
    let l = lim();

    // Truncated: the frame ends inside the string.
    let cut = &req[..req.len() - 1];
    assert_eq!(
        decode_request::<String>(cut, &l),
        Err(WireError::Truncated {
            needed: 5,
            at: req.len() - 5
        })
    );
    assert_eq!(
        decode_ping(&[], &l),
        Err(WireError::Truncated { needed: 1, at: 0 })
    );
    assert_eq!(
        decode_ping(&[VERSION], &l),
        Err(WireError::Truncated { needed: 1, at: 1 })
    );

    // Version, checked before the kind.
    let mut v2 = req.clone();
    v2[0] = 2;
    assert_eq!(
        decode_request::<String>(&v2, &l),
        Err(WireError::Version { found: 2 })
    );
    assert_eq!(
        decode_ping(&[0, 0], &l),
        Err(WireError::Version { found: 0 })
    );

    // Kind: another kind of frame, or no known kind.
    assert_eq!(
        decode_reply::<String>(&req, &l),
        Err(WireError::Kind { found: 1 })
    );
    assert_eq!(
        decode_ping(&[VERSION, 9], &l),
        Err(WireError::Kind { found: 9 })
    );
    assert_eq!(
        frame_kind(&[VERSION, 0], &l),
        Err(WireError::Kind { found: 0 })
    );

    // TooLong: the frame (checked first, even before the version), a
    // string, the items, a vector, an error message.
    let small = Limits { max_frame: 8, ..l };
    let mut big = vec![0xEE; 9];
    assert_eq!(
        decode_ping(&big, &small),
        Err(WireError::TooLong {
            what: "frame",
            len: 9,
            limit: 8
        })
    );
    big.truncate(8);
    assert_eq!(
        decode_ping(&big, &small),
        Err(WireError::Version { found: 0xEE })
    );

    let tight = Limits {
        max_item_bytes: 4,
        max_items: 1,
        max_message: 3,
        ..l
    };
    assert_eq!(
        decode_request::<String>(&req, &tight),
        Err(WireError::TooLong {
            what: "string",
            len: 5,
            limit: 4
        })
    );
    let two = encode_request(&Submit::reject(vec![1u64, 2]));
    assert_eq!(
        decode_request::<u64>(&two, &tight),
        Err(WireError::TooLong {
            what: "items",
            len: 2,
            limit: 1
        })
    );
    let mut vbytes = Vec::new();
    vec![1.0f32, 2.0].encode(&mut vbytes);
    assert_eq!(
        decode_value::<Vec<f32>>(&vbytes, &tight),
        Err(WireError::TooLong {
            what: "f32 vector",
            len: 2,
            limit: 1
        })
    );
    let reply = encode_reply::<u64>(
        &load(),
        &WireReply::Failed {
            error: PoolError::Backend("boom".into()),
            refused: false,
        },
    );
    assert_eq!(
        decode_reply::<u64>(&reply, &tight),
        Err(WireError::TooLong {
            what: "error message",
            len: 4,
            limit: 3
        })
    );

    // Invalid: bad UTF-8, unknown tags, a bool that is not 0 or 1.
    let mut bad_utf8 = req.clone();
    let n = bad_utf8.len();
    bad_utf8[n - 5] = 0xFF;
    assert!(matches!(
        decode_request::<String>(&bad_utf8, &l),
        Err(WireError::Invalid(m)) if m.contains("UTF-8")
    ));
    let mut bad_admission = req.clone();
    bad_admission[2] = 3;
    assert!(matches!(
        decode_request::<String>(&bad_admission, &l),
        Err(WireError::Invalid(m)) if m.contains("admission tag 3")
    ));
    let mut bad_deadline = req.clone();
    bad_deadline[3] = 7;
    assert!(matches!(
        decode_request::<String>(&bad_deadline, &l),
        Err(WireError::Invalid(m)) if m.contains("option tag 7")
    ));
    let mut bad_bool = encode_load(&load());
    *bad_bool.last_mut().unwrap() = 2;
    assert!(matches!(decode_load(&bad_bool, &l), Err(WireError::Invalid(m)) if m.contains("bool")));
    let mut bad_error = reply.clone();
    bad_error[2 + LoadReport::MIN_LEN + 1] = 8;
    assert!(matches!(
        decode_reply::<u64>(&bad_error, &l),
        Err(WireError::Invalid(m)) if m.contains("pool error tag 8")
    ));
    let mut bad_reply = reply.clone();
    bad_reply[2 + LoadReport::MIN_LEN] = 2;
    assert!(matches!(
        decode_reply::<u64>(&bad_reply, &l),
        Err(WireError::Invalid(m)) if m.contains("reply tag 2")
    ));

    // TrailingBytes.
    let mut long = req.clone();
    long.extend_from_slice(&[0, 0]);
    assert_eq!(
        decode_request::<String>(&long, &l),
        Err(WireError::TrailingBytes { count: 2 })
    );
    assert_eq!(
        decode_ping(&[VERSION, 3, 0], &l),
        Err(WireError::TrailingBytes { count: 1 })
    );

    // The messages say what went wrong.
    assert_eq!(
        WireError::Version { found: 2 }.to_string(),
        "unsupported wire version 2 (this node speaks version 1)"
    );
    assert_eq!(
        WireError::TooLong {
            what: "string",
            len: 5,
            limit: 4
        }
        .to_string(),
        "string is too long: 5 over the limit of 4"
    );
}

#[test]
fn a_huge_length_is_refused_without_allocating() {
    let mut bytes = u32::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(&[0; 10]);
    let unlimited = Limits {
        max_frame: usize::MAX,
        max_items: usize::MAX,
        max_item_bytes: usize::MAX,
        max_message: usize::MAX,
    };
    let started = Instant::now();
    let (results, largest) = probe::largest_during(|| {
        let mut results = vec![
            decode_value::<String>(&bytes, &lim()),
            decode_value::<String>(&bytes, &unlimited),
        ];
        results.push(decode_value::<Vec<f32>>(&bytes, &unlimited).map(|_| String::new()));
        results.push(decode_value::<Vec<u32>>(&bytes, &unlimited).map(|_| String::new()));
        let mut r = Reader::new(&bytes);
        results.push(decode_items::<u64>(&mut r, &unlimited).map(|_| String::new()));
        let mut r = Reader::new(&bytes);
        results.push(decode_items::<String>(&mut r, &lim()).map(|_| String::new()));
        let mut frame = vec![VERSION, 1, 0, 0];
        frame.extend_from_slice(&bytes);
        results.push(decode_request::<String>(&frame, &unlimited).map(|_| String::new()));
        results
    });
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(largest < 4096, "an allocation of {largest} bytes");
    assert_eq!(
        results[0],
        Err(WireError::TooLong {
            what: "string",
            len: u32::MAX as usize,
            limit: 4 << 20
        })
    );
    for r in &results[1..] {
        assert!(
            matches!(
                r,
                Err(WireError::Truncated { .. } | WireError::TooLong { .. })
            ),
            "{r:?}"
        );
    }
    assert_eq!(
        results[1],
        Err(WireError::Truncated {
            needed: u32::MAX as usize,
            at: 4
        })
    );
}

// ---- property tests ----

fn arb_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..10_000_000).prop_map(Duration::from_micros),
        (any::<u64>(), 0u32..1_000_000_000).prop_map(|(s, n)| Duration::new(s, n)),
    ]
}

fn arb_admission() -> impl Strategy<Value = Admission> {
    prop_oneof![
        Just(Admission::Reject),
        arb_duration().prop_map(Admission::Wait),
        Just(Admission::Default),
    ]
}

fn arb_submit<I: std::fmt::Debug>(
    input: impl Strategy<Value = I>,
) -> impl Strategy<Value = Submit<I>> {
    (
        vec(input, 0..8),
        arb_admission(),
        proptest::option::of(arb_duration()),
    )
        .prop_map(|(inputs, admission, deadline)| Submit {
            inputs,
            admission,
            deadline,
        })
}

fn arb_error() -> impl Strategy<Value = PoolError> {
    prop_oneof![
        arb_duration().prop_map(|retry_after| PoolError::Overloaded { retry_after }),
        Just(PoolError::TimedOut),
        Just(PoolError::DeadlinePassed),
        Just(PoolError::WorkerLost),
        Just(PoolError::ShuttingDown),
        any::<String>().prop_map(PoolError::InvalidInput),
        any::<String>().prop_map(PoolError::Backend),
        any::<String>().prop_map(PoolError::TooLarge),
    ]
}

fn arb_load() -> impl Strategy<Value = LoadReport> {
    (
        any::<[u32; 3]>(),
        arb_duration(),
        arb_duration(),
        any::<bool>(),
    )
        .prop_map(
            |([in_flight, capacity, ready_workers], per_request, retry_after, draining)| {
                LoadReport {
                    in_flight,
                    capacity,
                    ready_workers,
                    per_request,
                    retry_after,
                    draining,
                }
            },
        )
}

fn arb_reply<O: std::fmt::Debug>(
    output: impl Strategy<Value = O>,
) -> impl Strategy<Value = WireReply<O>> {
    prop_oneof![
        vec(output, 0..8).prop_map(WireReply::Done),
        (arb_error(), any::<bool>())
            .prop_map(|(error, refused)| WireReply::Failed { error, refused }),
    ]
}

fn arb_floats() -> impl Strategy<Value = Vec<f32>> {
    vec(any::<u32>().prop_map(f32::from_bits), 0..16)
}

/// Submit with durations as they come back from the wire.
fn landed<I>(mut s: Submit<I>) -> Submit<I> {
    if let Admission::Wait(d) = s.admission {
        s.admission = Admission::Wait(on_the_wire(d));
    }
    s.deadline = s.deadline.map(on_the_wire);
    s
}

fn landed_load(l: LoadReport) -> LoadReport {
    LoadReport {
        per_request: on_the_wire(l.per_request),
        retry_after: on_the_wire(l.retry_after),
        ..l
    }
}

fn landed_reply<O>(r: WireReply<O>) -> WireReply<O> {
    match r {
        WireReply::Failed {
            error: PoolError::Overloaded { retry_after },
            refused,
        } => WireReply::Failed {
            error: PoolError::Overloaded {
                retry_after: on_the_wire(retry_after),
            },
            refused,
        },
        other => other,
    }
}

/// Some valid frames of every kind, for mutation.
fn arb_frame() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        arb_submit(any::<String>()).prop_map(|s| encode_request(&s)),
        arb_submit(any::<u64>()).prop_map(|s| encode_request(&s)),
        (arb_load(), arb_reply(arb_floats())).prop_map(|(l, r)| encode_reply(&l, &r)),
        (arb_load(), arb_reply(any::<String>())).prop_map(|(l, r)| encode_reply(&l, &r)),
        arb_load().prop_map(|l| encode_load(&l)),
        Just(encode_ping()),
    ]
}

/// Decodes `bytes` with every decoder. None may panic, and whatever
/// decodes must encode back to exactly `bytes` (decoding is strict).
fn every_decoder(bytes: &[u8]) {
    let l = lim();
    fn check<T>(bytes: &[u8], r: Result<T, WireError>, encode: impl Fn(&T) -> Vec<u8>) {
        if let Ok(v) = r {
            assert_eq!(encode(&v), bytes);
        }
    }
    let _ = frame_kind(bytes, &l);
    check(bytes, decode_ping(bytes, &l), |_| encode_ping());
    check(bytes, decode_load(bytes, &l), encode_load);
    check(bytes, decode_request::<String>(bytes, &l), encode_request);
    check(bytes, decode_request::<u64>(bytes, &l), encode_request);
    check(bytes, decode_request::<Vec<f32>>(bytes, &l), encode_request);
    check(bytes, decode_reply::<String>(bytes, &l), |(l, r)| {
        encode_reply(l, r)
    });
    check(bytes, decode_reply::<u64>(bytes, &l), |(l, r)| {
        encode_reply(l, r)
    });
    check(bytes, decode_reply::<Vec<f32>>(bytes, &l), |(l, r)| {
        encode_reply(l, r)
    });
    #[cfg(feature = "testing")]
    check(
        bytes,
        decode_request::<corral_core::synthetic::Item>(bytes, &l),
        encode_request,
    );
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    (any::<u8>(), any::<usize>(), any::<u8>()).prop_map(Mutation::from_parts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in vec(any::<u8>(), 0..64)) {
        every_decoder(&bytes);
    }

    #[test]
    fn arbitrary_bodies_never_panic(kind in 0u8..6, body in vec(any::<u8>(), 0..96)) {
        let mut bytes = vec![VERSION, kind];
        bytes.extend_from_slice(&body);
        every_decoder(&bytes);
    }

    #[test]
    fn mutated_frames_never_panic(
        frame in arb_frame(),
        mutations in vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = frame;
        for m in &mutations {
            m.apply(&mut bytes);
        }
        every_decoder(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn string_requests_round_trip(s in arb_submit(any::<String>())) {
        let bytes = encode_request(&s);
        prop_assert_eq!(decode_request::<String>(&bytes, &lim()), Ok(landed(s)));
        every_decoder(&bytes);
    }

    #[test]
    fn requests_framed_around_encoded_inputs_are_the_same_bytes(s in arb_submit(any::<String>())) {
        let inputs = EncodedInputs::new(&s.inputs);
        let bytes = encode_request_framed(s.admission, s.deadline, &inputs);
        prop_assert_eq!(request_frame_len(s.admission, s.deadline, &inputs), bytes.len());
        prop_assert_eq!(bytes, encode_request(&s));
    }

    #[test]
    fn replies_round_trip(load in arb_load(), reply in arb_reply(any::<String>())) {
        let bytes = encode_reply(&load, &reply);
        prop_assert_eq!(
            decode_reply::<String>(&bytes, &lim()),
            Ok((landed_load(load), landed_reply(reply)))
        );
        every_decoder(&bytes);
    }

    #[test]
    fn vector_replies_round_trip_bit_exact(load in arb_load(), reply in arb_reply(arb_floats())) {
        let bytes = encode_reply(&load, &reply);
        let (l, back) = decode_reply::<Vec<f32>>(&bytes, &lim()).unwrap();
        prop_assert_eq!(l, landed_load(load));
        match (landed_reply(reply), back) {
            (WireReply::Done(a), WireReply::Done(b)) => {
                let a: Vec<_> = a.iter().map(|v| bits(v)).collect();
                let b: Vec<_> = b.iter().map(|v| bits(v)).collect();
                prop_assert_eq!(a, b);
            }
            (a, b) => prop_assert_eq!(a, b),
        }
    }
}
