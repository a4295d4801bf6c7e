//! Round trips of the embedding types, alone and in frames, one crafted
//! input per error of their own, and property tests over random and mutated
//! frames (moved here from corral-cluster with the impls).

use super::*;
use corral_cluster::wire::testing::{
    decode_exact as decode_value, on_the_wire, round_trip as roundtrip, Mutation,
};
use corral_cluster::wire::{
    decode_reply, decode_request, encode_reply, encode_request, LoadReport, WireReply,
};
use corral_core::{Admission, Submit};
use proptest::collection::vec;
use proptest::prelude::*;

fn lim() -> Limits {
    Limits::default()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
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

#[test]
fn embed_inputs_and_outputs_round_trip() {
    for input in [
        EmbedInput::Text(String::new()),
        EmbedInput::Text("naïve café".into()),
        EmbedInput::Tokens(vec![]),
        EmbedInput::Tokens(vec![101, 7592, 102]),
    ] {
        assert_eq!(roundtrip(&input), input);
    }
    let req = Submit::wait(
        vec![EmbedInput::from("a"), EmbedInput::from(vec![1, 2])],
        Duration::from_secs(1),
    );
    assert_eq!(
        decode_request::<EmbedInput>(&encode_request(&req), &lim()),
        Ok(req)
    );

    let before = Instant::now();
    let out = EmbedOutput {
        vector: vec![0.25, -1.0, f32::NAN],
        batch_started: before,
        batch_time: Duration::from_millis(40),
    };
    let back = roundtrip(&out);
    let after = Instant::now();
    assert_eq!(bits(&back.vector), bits(&out.vector));
    assert_eq!(back.batch_time, out.batch_time);
    assert!(back.batch_started + back.batch_time >= before);
    assert!(back.batch_started + back.batch_time <= after);
    // A batch time longer than the clock can go back does not panic.
    let huge = EmbedOutput {
        batch_time: Duration::MAX,
        ..out
    };
    assert_eq!(roundtrip(&huge).batch_time, on_the_wire(Duration::MAX));
}

#[test]
fn embed_forms_keep_their_bytes() {
    // The format, byte for byte (as corral-cluster wrote it before the
    // impls moved here).
    let mut out = Vec::new();
    EmbedInput::Text("hi".into()).encode(&mut out);
    EmbedInput::Tokens(vec![7]).encode(&mut out);
    assert_eq!(out, [0, 2, 0, 0, 0, b'h', b'i', 1, 1, 0, 0, 0, 7, 0, 0, 0]);
    let mut out = Vec::new();
    EmbedOutput {
        vector: vec![1.0],
        batch_started: Instant::now(),
        batch_time: Duration::from_micros(258),
    }
    .encode(&mut out);
    assert_eq!(out, [1, 0, 0, 0, 0, 0, 0x80, 0x3f, 2, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn bad_embed_bytes_are_refused() {
    let l = lim();
    assert!(matches!(
        decode_value::<EmbedInput>(&[2, 0, 0, 0, 0], &l),
        Err(WireError::Invalid(m)) if m.contains("embed input tag 2")
    ));
    assert_eq!(
        decode_value::<EmbedInput>(&[0, 3, 0, 0, 0, b'a'], &l),
        Err(WireError::Truncated { needed: 3, at: 5 })
    );
    let tight = Limits {
        max_item_bytes: 4,
        ..l
    };
    assert!(matches!(
        decode_value::<EmbedInput>(&[1, 2, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0], &tight),
        Err(WireError::TooLong {
            what: "u32 vector",
            len: 2,
            limit: 1
        })
    ));
    assert!(matches!(
        decode_value::<EmbedOutput>(&[0, 0, 0, 0, 1, 2, 3], &l),
        Err(WireError::Truncated { needed: 8, at: 4 })
    ));
}

#[test]
fn score_inputs_and_outputs_round_trip() {
    for input in [
        ScoreInput::Text(String::new()),
        ScoreInput::Text("naïve café".into()),
        ScoreInput::pair("", ""),
        ScoreInput::pair("what is a cat", "the cat sat"),
        ScoreInput::Tokens(PairTokenized::default()),
        ScoreInput::Tokens(PairTokenized {
            ids: vec![101, 7592, 102, 2088, 102],
            type_ids: vec![0, 0, 0, 1, 1],
            truncated: true,
        }),
    ] {
        assert_eq!(roundtrip(&input), input);
    }
    let req = Submit::wait(
        vec![ScoreInput::from(("q", "d")), ScoreInput::from("t")],
        Duration::from_secs(1),
    );
    assert_eq!(
        decode_request::<ScoreInput>(&encode_request(&req), &lim()),
        Ok(req)
    );
    let before = Instant::now();
    let out = ScoreOutput {
        logits: vec![0.25, -1.0, f32::NAN],
        batch_started: before,
        batch_time: Duration::from_millis(40),
    };
    let back = roundtrip(&out);
    let after = Instant::now();
    assert_eq!(bits(&back.logits), bits(&out.logits));
    assert_eq!(back.batch_time, out.batch_time);
    assert!(back.batch_started + back.batch_time >= before);
    assert!(back.batch_started + back.batch_time <= after);
    let huge = ScoreOutput {
        batch_time: Duration::MAX,
        ..out
    };
    assert_eq!(roundtrip(&huge).batch_time, on_the_wire(Duration::MAX));
}

#[test]
fn score_forms_keep_their_bytes() {
    let mut out = Vec::new();
    ScoreInput::Text("hi".into()).encode(&mut out);
    ScoreInput::pair("a", "b").encode(&mut out);
    ScoreInput::Tokens(PairTokenized {
        ids: vec![7],
        type_ids: vec![1],
        truncated: true,
    })
    .encode(&mut out);
    assert_eq!(
        out,
        [
            0, 2, 0, 0, 0, b'h', b'i', // Text
            1, 1, 0, 0, 0, b'a', 1, 0, 0, 0, b'b', // Pair
            2, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, // Tokens
        ]
    );
    let mut out = Vec::new();
    ScoreOutput {
        logits: vec![1.0],
        batch_started: Instant::now(),
        batch_time: Duration::from_micros(258),
    }
    .encode(&mut out);
    assert_eq!(out, [1, 0, 0, 0, 0, 0, 0x80, 0x3f, 2, 1, 0, 0, 0, 0, 0, 0]);
}

#[test]
fn bad_score_bytes_are_refused() {
    let l = lim();
    assert!(matches!(
        decode_value::<ScoreInput>(&[3, 0, 0, 0, 0], &l),
        Err(WireError::Invalid(m)) if m.contains("score input tag 3")
    ));
    // A pair missing its second text.
    assert!(matches!(
        decode_value::<ScoreInput>(&[1, 1, 0, 0, 0, b'a'], &l),
        Err(WireError::Truncated { .. })
    ));
    // A truncation flag that is not 0 or 1.
    assert!(matches!(
        decode_value::<ScoreInput>(&[2, 0, 0, 0, 0, 0, 0, 0, 0, 2], &l),
        Err(WireError::Invalid(m)) if m.contains("bool byte 2")
    ));
    assert!(matches!(
        decode_value::<ScoreOutput>(&[0, 0, 0, 0, 1, 2, 3], &l),
        Err(WireError::Truncated { needed: 8, at: 4 })
    ));
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

fn arb_embed_input() -> impl Strategy<Value = EmbedInput> {
    prop_oneof![
        any::<String>().prop_map(EmbedInput::Text),
        vec(any::<u32>(), 0..16).prop_map(EmbedInput::Tokens),
    ]
}

fn arb_score_input() -> impl Strategy<Value = ScoreInput> {
    prop_oneof![
        any::<String>().prop_map(ScoreInput::Text),
        (any::<String>(), any::<String>()).prop_map(|(a, b)| ScoreInput::Pair(a, b)),
        (
            vec(any::<u32>(), 0..16),
            vec(any::<u32>(), 0..16),
            any::<bool>()
        )
            .prop_map(
                |(ids, type_ids, truncated)| ScoreInput::Tokens(PairTokenized {
                    ids,
                    type_ids,
                    truncated
                })
            ),
    ]
}

fn arb_score_submit() -> impl Strategy<Value = Submit<ScoreInput>> {
    (vec(arb_score_input(), 0..8), arb_duration()).prop_map(|(inputs, wait)| Submit {
        inputs,
        admission: Admission::Wait(wait),
        deadline: None,
    })
}

fn arb_score_outputs() -> impl Strategy<Value = Vec<ScoreOutput>> {
    vec(
        (
            vec(any::<u32>().prop_map(f32::from_bits), 0..4),
            arb_duration(),
        ),
        0..6,
    )
    .prop_map(|outputs| {
        outputs
            .into_iter()
            .map(|(logits, batch_time)| ScoreOutput {
                logits,
                batch_started: Instant::now(),
                batch_time,
            })
            .collect()
    })
}

fn arb_submit() -> impl Strategy<Value = Submit<EmbedInput>> {
    (
        vec(arb_embed_input(), 0..8),
        prop_oneof![
            Just(Admission::Reject),
            arb_duration().prop_map(Admission::Wait)
        ],
        proptest::option::of(arb_duration()),
    )
        .prop_map(|(inputs, admission, deadline)| Submit {
            inputs,
            admission,
            deadline,
        })
}

fn arb_outputs() -> impl Strategy<Value = Vec<EmbedOutput>> {
    vec(
        (
            vec(any::<u32>().prop_map(f32::from_bits), 0..16),
            arb_duration(),
        ),
        0..6,
    )
    .prop_map(|outputs| {
        outputs
            .into_iter()
            .map(|(vector, batch_time)| EmbedOutput {
                vector,
                batch_started: Instant::now(),
                batch_time,
            })
            .collect()
    })
}

/// Submit with durations as they come back from the wire.
fn landed<I>(mut s: Submit<I>) -> Submit<I> {
    if let Admission::Wait(d) = s.admission {
        s.admission = Admission::Wait(on_the_wire(d));
    }
    s.deadline = s.deadline.map(on_the_wire);
    s
}

/// Decodes `bytes` as an embedding request and reply. Neither may panic,
/// and whatever decodes must encode back to exactly `bytes`.
fn every_decoder(bytes: &[u8]) {
    let l = lim();
    if let Ok(s) = decode_request::<EmbedInput>(bytes, &l) {
        assert_eq!(encode_request(&s), bytes);
    }
    if let Ok((load, reply)) = decode_reply::<EmbedOutput>(bytes, &l) {
        assert_eq!(encode_reply(&load, &reply), bytes);
    }
    if let Ok(s) = decode_request::<ScoreInput>(bytes, &l) {
        assert_eq!(encode_request(&s), bytes);
    }
    if let Ok((load, reply)) = decode_reply::<ScoreOutput>(bytes, &l) {
        assert_eq!(encode_reply(&load, &reply), bytes);
    }
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    (any::<u8>(), any::<usize>(), any::<u8>()).prop_map(Mutation::from_parts)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn embed_requests_round_trip(s in arb_submit()) {
        let bytes = encode_request(&s);
        prop_assert_eq!(decode_request(&bytes, &lim()), Ok(landed(s)));
        every_decoder(&bytes);
    }

    #[test]
    fn embed_output_replies_round_trip(outputs in arb_outputs()) {
        let bytes = encode_reply(&load(), &WireReply::Done(outputs.clone()));
        let (_, back) = decode_reply::<EmbedOutput>(&bytes, &lim()).unwrap();
        let WireReply::Done(back) = back else { panic!("not done") };
        prop_assert_eq!(back.len(), outputs.len());
        for (a, b) in outputs.iter().zip(&back) {
            prop_assert_eq!(bits(&a.vector), bits(&b.vector));
            prop_assert_eq!(on_the_wire(a.batch_time), b.batch_time);
        }
        every_decoder(&bytes);
    }

    #[test]
    fn score_requests_round_trip(s in arb_score_submit()) {
        let bytes = encode_request(&s);
        prop_assert_eq!(decode_request(&bytes, &lim()), Ok(landed(s)));
        every_decoder(&bytes);
    }

    #[test]
    fn score_output_replies_round_trip(outputs in arb_score_outputs()) {
        let bytes = encode_reply(&load(), &WireReply::Done(outputs.clone()));
        let (_, back) = decode_reply::<ScoreOutput>(&bytes, &lim()).unwrap();
        let WireReply::Done(back) = back else { panic!("not done") };
        prop_assert_eq!(back.len(), outputs.len());
        for (a, b) in outputs.iter().zip(&back) {
            prop_assert_eq!(bits(&a.logits), bits(&b.logits));
            prop_assert_eq!(on_the_wire(a.batch_time), b.batch_time);
        }
        every_decoder(&bytes);
    }

    #[test]
    fn mutated_score_frames_never_panic(
        frame in prop_oneof![
            arb_score_submit().prop_map(|s| encode_request(&s)),
            arb_score_outputs().prop_map(|o| encode_reply(&load(), &WireReply::Done(o))),
        ],
        mutations in vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = frame;
        for m in &mutations {
            m.apply(&mut bytes);
        }
        every_decoder(&bytes);
    }

    #[test]
    fn arbitrary_embed_bytes_never_panic(kind in 1u8..3, body in vec(any::<u8>(), 0..96)) {
        let mut bytes = vec![corral_cluster::wire::VERSION, kind];
        bytes.extend_from_slice(&body);
        every_decoder(&bytes);
    }

    #[test]
    fn mutated_embed_frames_never_panic(
        frame in prop_oneof![
            arb_submit().prop_map(|s| encode_request(&s)),
            arb_outputs().prop_map(|o| encode_reply(&load(), &WireReply::Done(o))),
        ],
        mutations in vec(arb_mutation(), 1..4),
    ) {
        let mut bytes = frame;
        for m in &mutations {
            m.apply(&mut bytes);
        }
        every_decoder(&bytes);
    }
}
