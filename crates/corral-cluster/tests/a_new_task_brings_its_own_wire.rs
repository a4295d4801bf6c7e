//! A task the cluster crate has never heard of — a reranker, with input and
//! output types of its own — travels between members and routers through
//! nothing but its own [`Wire`] implementations, written here, outside the
//! crate, with the public reader and writer primitives.

use std::time::Duration;

use corral_cluster::wire::{self, Limits, Reader, Wire, WireError, WireReply};
use corral_cluster::{group_name, ClusterConfig, ClusterHandle, LoadReport, Member};
use corral_core::{Backend, BackendError, Call, LoadContext, Pool, PoolConfig, Submit};

/// A query and one passage to score against it.
#[derive(Debug, Clone, PartialEq)]
struct Pair {
    query: String,
    passage: String,
    /// Which model family wrote the query: a small enum, sent as a tag.
    lang: Lang,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Lang {
    En,
    Other(u32),
}

/// The passage's relevance, and how many of its words were read.
#[derive(Debug, Clone, PartialEq)]
struct Score {
    score: f32,
    words: u32,
    truncated: bool,
}

/// Two strings, then a tag (`0`, or `1` and a `u32`).
impl Wire for Pair {
    const MIN_LEN: usize = 4 + 4 + 1;

    fn encode(&self, out: &mut Vec<u8>) {
        wire::put_str(out, &self.query);
        wire::put_str(out, &self.passage);
        match self.lang {
            Lang::En => out.push(0),
            Lang::Other(code) => {
                out.push(1);
                wire::put_u32(out, code);
            }
        }
    }

    fn decode(r: &mut Reader<'_>, limits: &Limits) -> Result<Self, WireError> {
        Ok(Self {
            query: r.string("query", limits.max_item_bytes)?,
            passage: r.string("passage", limits.max_item_bytes)?,
            lang: match r.tag("language", 1)? {
                0 => Lang::En,
                _ => Lang::Other(r.u32()?),
            },
        })
    }
}

/// The score's bits, the word count, the flag: 9 bytes.
impl Wire for Score {
    const MIN_LEN: usize = 9;

    fn encode(&self, out: &mut Vec<u8>) {
        wire::put_f32(out, self.score);
        wire::put_u32(out, self.words);
        wire::put_bool(out, self.truncated);
    }

    fn decode(r: &mut Reader<'_>, _: &Limits) -> Result<Self, WireError> {
        Ok(Self {
            score: r.f32()?,
            words: r.u32()?,
            truncated: r.bool()?,
        })
    }
}

/// Scores a passage by the share of the query's words it contains.
struct Reranker {
    max_words: usize,
}

impl Backend for Reranker {
    type Spec = usize;
    type Input = Pair;
    type Output = Score;

    fn load(max_words: &usize, _: &LoadContext) -> Result<Self, BackendError> {
        Ok(Self {
            max_words: *max_words,
        })
    }

    fn cost(&self, input: &Pair) -> usize {
        input.passage.split_whitespace().count().max(1)
    }

    fn run(&mut self, batch: &[&Pair]) -> Result<Vec<Score>, BackendError> {
        Ok(batch
            .iter()
            .map(|p| {
                let words: Vec<&str> = p.passage.split_whitespace().collect();
                let read = &words[..words.len().min(self.max_words)];
                let query: Vec<&str> = p.query.split_whitespace().collect();
                let hits = query.iter().filter(|w| read.contains(w)).count();
                Score {
                    score: hits as f32 / query.len().max(1) as f32,
                    words: read.len() as u32,
                    truncated: read.len() < words.len(),
                }
            })
            .collect())
    }
}

fn pairs() -> Vec<Pair> {
    vec![
        Pair {
            query: "rust actors".into(),
            passage: "ractor runs actors in rust".into(),
            lang: Lang::En,
        },
        Pair {
            query: "rust actors".into(),
            passage: "nothing relevant at all here, more words than read".into(),
            lang: Lang::Other(0xC0DE),
        },
        Pair {
            query: String::new(),
            passage: "ünïcode ✓".into(),
            lang: Lang::En,
        },
    ]
}

#[test]
fn the_new_types_round_trip_through_the_frames() {
    let limits = Limits::default();
    let request = Submit::wait(pairs(), Duration::from_millis(250));
    let bytes = wire::encode_request(&request);
    assert_eq!(wire::decode_request::<Pair>(&bytes, &limits), Ok(request));

    let scores = vec![
        Score {
            score: 0.5,
            words: 7,
            truncated: false,
        },
        Score {
            score: f32::NAN,
            words: u32::MAX,
            truncated: true,
        },
    ];
    let load = LoadReport::default();
    let bytes = wire::encode_reply(&load, &WireReply::Done(scores.clone()));
    let (_, back) = wire::decode_reply::<Score>(&bytes, &limits).unwrap();
    let WireReply::Done(back) = back else {
        panic!("{back:?}")
    };
    assert_eq!(back[0], scores[0]);
    assert_eq!(back[1].score.to_bits(), f32::NAN.to_bits());
    assert_eq!((back[1].words, back[1].truncated), (u32::MAX, true));

    // The type's own errors come out of the same decoder, named by it.
    let mut bad = Vec::new();
    pairs()[0].encode(&mut bad);
    *bad.last_mut().unwrap() = 7;
    let mut r = Reader::new(&bad);
    assert!(matches!(
        Pair::decode(&mut r, &limits),
        Err(WireError::Invalid(m)) if m.contains("language tag 7")
    ));
    let tight = Limits {
        max_item_bytes: 4,
        ..limits
    };
    let mut r = Reader::new(&bad);
    assert!(matches!(
        Pair::decode(&mut r, &tight),
        Err(WireError::TooLong {
            what: "query",
            len: 11,
            limit: 4
        })
    ));
    // Whatever count a frame claims, the items must fit MIN_LEN each.
    let mut frame = wire::encode_request(&Submit::reject(Vec::<Pair>::new()));
    let n = frame.len();
    frame[n - 4..].copy_from_slice(&3u32.to_le_bytes());
    frame.extend_from_slice(&[0; 2 * Pair::MIN_LEN]);
    assert!(matches!(
        wire::decode_request::<Pair>(&frame, &limits),
        Err(WireError::Truncated { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_task_is_served_by_a_real_member() {
    let served = async {
        let group = group_name("rerank", "overlap-test");
        let config = PoolConfig {
            workers: 1,
            threads_per_worker: Some(1),
            ..PoolConfig::default()
        };
        let pool = Pool::<Reranker>::spawn(5, config).await.expect("pool");
        pool.wait_ready(Duration::from_secs(10))
            .await
            .expect("ready");
        let _member = Member::spawn(pool.pool_ref(), group.clone(), Limits::default())
            .await
            .expect("member");
        let handle = ClusterHandle::<Pair, Score>::spawn(ClusterConfig::new(group))
            .await
            .expect("router");
        handle
            .wait_members(1, Duration::from_secs(10))
            .await
            .expect("the member joins");

        let scores = handle.call_batch(pairs()).await.expect("served");
        let want = [(1.0, 5, false), (0.0, 5, true), (0.0, 2, false)];
        let got: Vec<_> = scores
            .iter()
            .map(|s| (s.score, s.words, s.truncated))
            .collect();
        assert_eq!(got, want);
        assert_eq!(handle.stats().answered, 1);
    };
    tokio::time::timeout(Duration::from_secs(60), served)
        .await
        .expect("the test finished in time");
}
