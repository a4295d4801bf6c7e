//! sentence-transformers prompts and Matryoshka `dimensions` through the
//! real server, on copies of the tiny XLM-RoBERTa fixture (corral-embed's
//! `tests/data/tiny-xlmr`, with PyTorch's golden ids and vectors) given a
//! `config_sentence_transformers.json`: the model's `default_prompt_name`,
//! a served default (`--default-prompt-name`), TEI's `prompt_name` and
//! `prompt` on `/embed` and the same extension on `/v1/embeddings` put the
//! prompt before the text, so the vector is PyTorch's for the prompted text
//! and the usage and the length limit count the prompt's tokens; `dimensions`
//! (TEI and OpenAI) and a model's `truncate_dim` cut then re-normalise.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{fixtures, start_models, TestServer};
use corral_embed::{EmbedSpec, EmbedTokenizer, Prompt, TruncationSide};
use corral_server::ServerConfig;
use serde_json::{json, Value};

const QUICK: &str = "The quick brown fox jumps over the lazy dog.";
const QUICK_PROMPT: &str = "The quick brown ";
const LONG_PREFIX: &str = "Embeddings turn text into vectors, ";

fn fixture() -> PathBuf {
    fixtures::fixture("tiny-xlmr")
}

fn golden() -> Value {
    fixtures::golden("tiny-xlmr")
}

/// The golden entry whose text passes `pick`: (text, ids, mean vector).
fn golden_text(pick: impl Fn(&str, usize) -> bool) -> (String, usize, Vec<f32>) {
    let g = golden();
    let max = g["max_tokens"].as_u64().unwrap() as usize;
    let t = g["texts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| pick(t["text"].as_str().unwrap(), max))
        .unwrap();
    let mean = t["mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect();
    (
        t["text"].as_str().unwrap().to_owned(),
        t["ids"].as_array().unwrap().len(),
        mean,
    )
}

fn copy_with(dir: &Path, st_config: &Value) {
    for f in ["config.json", "tokenizer.json", "model.safetensors"] {
        std::fs::copy(fixture().join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("config_sentence_transformers.json"),
        st_config.to_string(),
    )
    .unwrap();
}

fn prompts() -> Value {
    json!({
        "prompts": {"quick": QUICK_PROMPT, "long": LONG_PREFIX, "query": "query: "},
        "default_prompt_name": "quick",
    })
}

struct Served {
    server: TestServer,
    _dirs: Vec<tempfile::TempDir>,
    prompted: PathBuf,
}

/// `prompted`: the model's default prompt ("quick"); `served-long`: the
/// same model served with the default prompt "long" (as `corral serve
/// --default-prompt-name long`); `matryoshka`: a `truncate_dim` of 16.
async fn serve() -> Served {
    let prompted = tempfile::tempdir().unwrap();
    copy_with(prompted.path(), &prompts());
    let matryoshka = tempfile::tempdir().unwrap();
    copy_with(matryoshka.path(), &json!({"truncate_dim": 16}));
    let mut models = Vec::new();
    for (name, spec) in [
        ("prompted", EmbedSpec::new(prompted.path())),
        (
            "served-long",
            EmbedSpec::new(prompted.path()).with_prompt(Prompt::Named("long".into())),
        ),
        ("matryoshka", EmbedSpec::new(matryoshka.path())),
    ] {
        models.push(fixtures::serve_spec(name, spec).await);
    }
    let server = start_models(models, ServerConfig::default(), Duration::from_secs(5)).await;
    Served {
        server,
        prompted: prompted.path().to_path_buf(),
        _dirs: vec![prompted, matryoshka],
    }
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn unit(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}");
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-4, "{what}: max difference {d}");
}

async fn tei(s: &TestServer, body: Value) -> (u16, Value) {
    let r = s.post("/embed", body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn openai(s: &TestServer, body: Value) -> (u16, Value) {
    let r = s.post("/v1/embeddings", body).await;
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompts_are_put_before_the_text_as_sentence_transformers_does() {
    let served = serve().await;
    let s = &served.server;
    let (_, quick_ids, quick) = golden_text(|t, _| t == QUICK);
    let (long_text, long_ids, long) =
        golden_text(|t, max| t.starts_with(LONG_PREFIX) && t.len() > max);
    assert_eq!(long_ids, golden()["max_tokens"].as_u64().unwrap() as usize);
    let rest = &QUICK[QUICK_PROMPT.len()..];
    let long_rest = &long_text[LONG_PREFIX.len()..];

    // The model's default prompt, on TEI's route and OpenAI's.
    let (status, body) = tei(
        s,
        json!({"model": "prompted", "inputs": rest, "normalize": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(&floats(&body[0]), &quick, "TEI, the model's default prompt");
    let (status, body) = openai(s, json!({"model": "prompted", "input": [rest]})).await;
    assert_eq!(status, 200, "{body}");
    assert_close(
        &floats(&body["data"][0]["embedding"]),
        &unit(&quick),
        "OpenAI, the model's default prompt",
    );
    assert_eq!(
        body["usage"]["prompt_tokens"], quick_ids,
        "usage counts the prompt"
    );

    // A named prompt overrides the default; the text is cut after it.
    let (status, body) = tei(
        s,
        json!({"model": "prompted", "inputs": long_rest, "prompt_name": "long",
               "truncate": true, "normalize": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(
        &floats(&body[0]),
        &long,
        "TEI prompt_name, cut after the prompt",
    );
    let (status, body) = openai(
        s,
        json!({"model": "prompted", "input": long_rest, "prompt_name": "long"}),
    )
    .await;
    assert_eq!(status, 400, "over the limit with the prompt: {body}");

    // The served default (--default-prompt-name), and a prompt string.
    let (status, body) = tei(
        s,
        json!({"model": "served-long", "inputs": long_rest, "truncate": true, "normalize": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(&floats(&body[0]), &long, "the served default prompt");
    let (status, body) = openai(
        s,
        json!({"model": "served-long", "input": rest, "prompt": QUICK_PROMPT}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(
        &floats(&body["data"][0]["embedding"]),
        &unit(&quick),
        "OpenAI `prompt`",
    );

    // An empty prompt is none: the whole text alone is PyTorch's.
    let (status, body) = tei(
        s,
        json!({"model": "prompted", "inputs": QUICK, "prompt": "", "normalize": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(&floats(&body[0]), &quick, "no prompt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_counts_the_prompt_and_bad_prompts_are_named() {
    let served = serve().await;
    let s = &served.server;
    // A text that fits alone but not after the default prompt.
    let t =
        EmbedTokenizer::load(&EmbedSpec::new(&served.prompted).with_prompt(Prompt::None)).unwrap();
    let text = (1..200)
        .map(|n| "fox ".repeat(n))
        .find(|text| {
            !t.encode(text, TruncationSide::Right).unwrap().truncated
                && t.encode_prompted(text, Some(QUICK_PROMPT), TruncationSide::Right)
                    .unwrap()
                    .truncated
        })
        .expect("a text the prompt pushes over the limit");
    let (status, body) = openai(s, json!({"model": "prompted", "input": text})).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );
    let (status, body) = tei(s, json!({"model": "prompted", "inputs": text})).await;
    assert_eq!(status, 413, "{body}");
    let (status, _) = tei(
        s,
        json!({"model": "prompted", "inputs": text, "prompt": ""}),
    )
    .await;
    assert_eq!(status, 200, "without the prompt it fits");

    for (route, bad_status) in [("/embed", 422), ("/v1/embeddings", 400)] {
        let field = if route == "/embed" { "inputs" } else { "input" };
        let check = |body: Value, param: &'static str, needle: &'static str| async move {
            let r = s.post(route, body.clone()).await;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            assert_eq!(status, bad_status, "{route} {body}: {text}");
            assert!(
                text.contains(param) && text.contains(needle),
                "{route} {body}: {text}"
            );
        };
        check(
            json!({"model": "prompted", field: "a", "prompt_name": "passage"}),
            "prompt_name",
            "quick",
        )
        .await;
        check(
            json!({"model": "prompted", field: "a", "prompt_name": "query", "prompt": "q: "}),
            "prompt",
            "not both",
        )
        .await;
        check(
            json!({"model": "prompted", field: [[5, 6]], "prompt_name": "query"}),
            "prompt_name",
            "token ids",
        )
        .await;
        check(
            json!({"model": "matryoshka", field: "a", "prompt_name": "query"}),
            "prompt_name",
            "no prompts",
        )
        .await;
        // Token ids get no default prompt: they are embedded as sent.
        let r = s
            .post(route, json!({"model": "prompted", field: [[5, 6]]}))
            .await;
        assert_eq!(r.status().as_u16(), 200, "{route}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dimensions_cut_then_normalise_and_truncate_dim_is_the_default() {
    let served = serve().await;
    let s = &served.server;
    let (_, _, quick) = golden_text(|t, _| t == QUICK);
    let (status, body) = tei(
        s,
        json!({"model": "prompted", "inputs": QUICK, "prompt": "", "dimensions": 8}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(&floats(&body[0]), &unit(&quick[..8]), "TEI dimensions");
    let (status, body) = tei(
        s,
        json!({"model": "prompted", "inputs": QUICK, "prompt": "", "dimensions": 8,
               "normalize": false}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(
        &floats(&body[0]),
        &quick[..8],
        "TEI dimensions, not normalised",
    );

    // The model's truncate_dim is what it serves; `dimensions` cuts further.
    let (status, body) = tei(s, json!({"model": "matryoshka", "inputs": QUICK})).await;
    assert_eq!(status, 200, "{body}");
    assert_close(&floats(&body[0]), &unit(&quick[..16]), "truncate_dim");
    let (status, body) = openai(
        s,
        json!({"model": "matryoshka", "input": QUICK, "dimensions": 4}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_close(
        &floats(&body["data"][0]["embedding"]),
        &unit(&quick[..4]),
        "OpenAI dimensions under truncate_dim",
    );
    let info: Value = s.get("/info").await.json().await.unwrap();
    let text = info.to_string();
    assert!(text.contains("\"dimensions\":16"), "{text}");
    for (model, d) in [("matryoshka", 17), ("prompted", 33), ("prompted", 0)] {
        let (status, body) = tei(s, json!({"model": model, "inputs": "a", "dimensions": d})).await;
        assert_eq!(status, 422, "{model} {d}: {body}");
        assert!(body.to_string().contains("dimensions"), "{body}");
    }
}

/// The ids `/tokenize` lists for `body`.
async fn token_ids(s: &TestServer, body: Value) -> (u16, Value, Vec<u64>) {
    let r = s.post("/tokenize", body).await;
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap();
    let ids = body[0]
        .as_array()
        .map(|tokens| tokens.iter().map(|t| t["id"].as_u64().unwrap()).collect())
        .unwrap_or_default();
    (status, body, ids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokenize_lists_what_embed_embeds_the_prompt_included() {
    let served = serve().await;
    let s = &served.server;
    let tokenizer =
        EmbedTokenizer::load(&EmbedSpec::new(&served.prompted).with_prompt(Prompt::None)).unwrap();
    let want = |prompt: Option<&str>, text: &str| -> Vec<u64> {
        tokenizer
            .encode_prompted(text, prompt, TruncationSide::Right)
            .unwrap()
            .ids
            .into_iter()
            .map(u64::from)
            .collect()
    };
    let rest = &QUICK[QUICK_PROMPT.len()..];

    // The model's default prompt, as `/embed` applies it: the ids of the
    // whole golden sentence.
    let (status, body, ids) = token_ids(s, json!({"model": "prompted", "inputs": rest})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids, want(Some(QUICK_PROMPT), rest), "{body}");
    assert_eq!(ids, want(None, QUICK), "prompt + text is the sentence");
    // A named prompt, a prompt string, and an empty prompt (none).
    let (_, body, ids) = token_ids(
        s,
        json!({"model": "prompted", "inputs": "fox", "prompt_name": "query"}),
    )
    .await;
    assert_eq!(ids, want(Some("query: "), "fox"), "{body}");
    // Each token's offsets are bytes of prompt + text, and its text those
    // bytes; the template's tokens have none.
    let prompted = "query: fox";
    let tokens = body[0].as_array().unwrap();
    let (first, last) = (&tokens[0], &tokens[tokens.len() - 1]);
    for special in [first, last] {
        assert_eq!(special["special"], true, "{special}");
        assert!(
            special["start"].is_null() && special["stop"].is_null(),
            "{special}"
        );
    }
    // From the prompt's first byte to the text's last, in order (a
    // SentencePiece word marker shares its word's first byte).
    let mut at = 0;
    for t in &tokens[1..tokens.len() - 1] {
        let (start, stop) = (
            t["start"].as_u64().unwrap() as usize,
            t["stop"].as_u64().unwrap() as usize,
        );
        assert!(start >= at && stop <= prompted.len(), "{t}");
        assert_eq!(t["text"], prompted[start..stop], "{t}");
        at = start;
    }
    assert_eq!(tokens[1]["start"], 0, "{body}");
    assert_eq!(tokens[tokens.len() - 2]["stop"], prompted.len(), "{body}");
    let (_, body, _) = token_ids(
        s,
        json!({"model": "prompted", "inputs": "fox", "prompt_name": "query",
               "add_special_tokens": false}),
    )
    .await;
    assert_eq!(
        body[0].as_array().unwrap().len(),
        tokens.len() - 2,
        "{body}"
    );
    let (_, body, ids) = token_ids(
        s,
        json!({"model": "prompted", "inputs": "fox", "prompt": "search: "}),
    )
    .await;
    assert_eq!(ids, want(Some("search: "), "fox"), "{body}");
    let (_, body, ids) = token_ids(
        s,
        json!({"model": "prompted", "inputs": "fox", "prompt": ""}),
    )
    .await;
    assert_eq!(ids, want(None, "fox"), "{body}");
    // The served default (`--default-prompt-name long`).
    let (_, body, ids) = token_ids(s, json!({"model": "served-long", "inputs": "fox"})).await;
    assert_eq!(ids, want(Some(LONG_PREFIX), "fox"), "{body}");

    // Bad choices are refused as on `/embed`, naming the field.
    for (body, needle) in [
        (
            json!({"model": "prompted", "inputs": "a", "prompt_name": "passage"}),
            "prompt_name",
        ),
        (
            json!({"model": "prompted", "inputs": "a", "prompt_name": "query", "prompt": "q"}),
            "not both",
        ),
        (
            json!({"model": "matryoshka", "inputs": "a", "prompt_name": "query"}),
            "no prompts",
        ),
    ] {
        let (status, answer, _) = token_ids(s, body.clone()).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer.to_string().contains(needle), "{body}: {answer}");
    }
}
