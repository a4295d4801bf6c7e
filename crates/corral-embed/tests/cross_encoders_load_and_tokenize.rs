//! Cross-encoders and sequence classifiers, what is read before any
//! forward pass: the four tiny random models in
//! `tests/data/tiny-{bert,xlmr}-{rerank,classify}/` (the tests fail, never
//! skip, without them) say what they are from their config, take the
//! activation and labels as sentence-transformers' `CrossEncoder` reads
//! them, and tokenise pairs exactly as the Hugging Face tokenizer does
//! (`longest_first` truncation at 64 tokens, bounded work on huge texts).
//! A model is served only as what its `config.json` declares: an embedder
//! refuses a reranker's directory and a scorer an embedder's.

mod cross_encoders;

use std::time::Instant;

use corral_embed::{
    Activation, EmbedError, EmbedSpec, EmbedTokenizer, Embedder, ModelKind, PairTokenized,
    ScoreInput, Scorer,
};

use cross_encoders::*;

#[test]
fn config_says_what_each_model_is_without_loading_weights() {
    for name in MODELS {
        let g = golden(name);
        let spec = EmbedSpec::new(dir(name));
        let info = spec.score_info().unwrap();
        let want_kind = if g.num_labels == 1 {
            ModelKind::Rerank
        } else {
            ModelKind::Classify
        };
        assert_eq!(spec.model_kind().unwrap(), want_kind, "{name}");
        assert_eq!(info.kind, want_kind, "{name}");
        let labels: Vec<String> = g.id2label.values().cloned().collect();
        assert_eq!(info.labels, labels, "{name}");
        let want_act = if g.num_labels > 1 {
            Activation::Softmax
        } else {
            assert_eq!(g.ce_activation, "Sigmoid");
            Activation::Sigmoid
        };
        assert_eq!(info.activation, want_act, "{name}");
        assert_eq!(info.max_seq_length, 64, "{name}");
    }
    let embedder = EmbedSpec::new(dir("tiny-xlmr"));
    assert_eq!(embedder.model_kind().unwrap(), ModelKind::Embed);
    let info = embedder.score_info().unwrap();
    assert!(info.labels.is_empty());
    assert_eq!(
        EmbedSpec::new(dir("tiny-xlmr-classify"))
            .score_info()
            .unwrap()
            .labels,
        ["negative", "neutral", "positive"]
    );
}

/// A copy of `from` with `config.json` edited by `edit` (and optionally a
/// `config_sentence_transformers.json`).
fn edited_copy(
    from: &str,
    edit: impl FnOnce(&mut serde_json::Value),
    st: Option<&str>,
) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for f in std::fs::read_dir(dir(from)).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), tmp.path().join(f.file_name())).unwrap();
    }
    let path = tmp.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, config.to_string()).unwrap();
    if let Some(st) = st {
        std::fs::write(tmp.path().join("config_sentence_transformers.json"), st).unwrap();
    }
    tmp
}

#[test]
fn the_activation_and_labels_follow_the_config_as_cross_encoder_reads_it() {
    let info = |t: &tempfile::TempDir| EmbedSpec::new(t.path()).score_info().unwrap();
    // config.json names Identity: raw logits.
    let t = edited_copy(
        "tiny-bert-rerank",
        |c| c["sentence_transformers"]["activation_fn"] = "torch.nn.modules.linear.Identity".into(),
        None,
    );
    assert_eq!(info(&t).activation, Activation::Identity);
    // config_sentence_transformers.json wins over config.json.
    let t = edited_copy(
        "tiny-bert-rerank",
        |c| c["sentence_transformers"]["activation_fn"] = "torch.nn.modules.linear.Identity".into(),
        Some(r#"{"activation_fn": "torch.nn.modules.activation.Sigmoid"}"#),
    );
    assert_eq!(info(&t).activation, Activation::Sigmoid);
    // The pre-4 key.
    let t = edited_copy(
        "tiny-xlmr-rerank",
        |c| c["sbert_ce_default_activation_function"] = "torch.nn.modules.linear.Identity".into(),
        None,
    );
    assert_eq!(info(&t).activation, Activation::Identity);
    // An activation Corral does not implement is refused by name.
    let t = edited_copy(
        "tiny-xlmr-rerank",
        |c| c["sbert_ce_default_activation_function"] = "torch.nn.modules.activation.Tanh".into(),
        None,
    );
    let err = EmbedSpec::new(t.path())
        .score_info()
        .unwrap_err()
        .to_string();
    assert!(err.contains("Tanh"), "{err}");
    // No id2label: num_labels, else transformers' default 2.
    let t = edited_copy(
        "tiny-bert-classify",
        |c| {
            let o = c.as_object_mut().unwrap();
            o.remove("id2label");
            o.remove("label2id");
            o.insert("num_labels".into(), 1.into());
        },
        None,
    );
    assert_eq!(info(&t).kind, ModelKind::Rerank);
    assert_eq!(info(&t).labels, ["LABEL_0"]);
    let t = edited_copy(
        "tiny-bert-classify",
        |c| {
            let o = c.as_object_mut().unwrap();
            o.remove("id2label");
            o.remove("label2id");
        },
        None,
    );
    assert_eq!(info(&t).kind, ModelKind::Classify);
    assert_eq!(info(&t).labels, ["LABEL_0", "LABEL_1"]);
    assert_eq!(info(&t).activation, Activation::Softmax);
}

#[test]
fn the_length_limit_is_the_tokenizers_model_max_length() {
    // As CrossEncoder: tokenizer_config.json's model_max_length, capped at
    // the position table (64 here).
    for (limit, want) in [(32, 32), (1_000_000, 64)] {
        let t = edited_copy("tiny-bert-rerank", |_| {}, None);
        let path = t.path().join("tokenizer_config.json");
        let mut config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        config["model_max_length"] = limit.into();
        std::fs::write(&path, config.to_string()).unwrap();
        let spec = EmbedSpec::new(t.path());
        assert_eq!(spec.score_info().unwrap().max_seq_length, want);
        let tok = EmbedTokenizer::load(&spec).unwrap();
        let long = "the cat sat on the mat ".repeat(20);
        let got = tok.encode_pair("what is a cat", Some(&long)).unwrap();
        assert_eq!(got.ids.len(), want);
        let mut s = Scorer::load(&spec, 1).unwrap();
        assert_eq!(s.max_seq_length(), want);
        assert_eq!(s.score(&[&ScoreInput::pair("q", long)]).unwrap().len(), 1);
    }
    // A limit that leaves no room for a pair's special tokens is refused.
    let mut spec = EmbedSpec::new(dir("tiny-bert-rerank"));
    spec.max_seq_length = Some(3);
    let err = Scorer::load(&spec, 1).unwrap_err().to_string();
    assert!(err.contains("no room for a pair"), "{err}");
    spec.max_seq_length = Some(4);
    let mut s = Scorer::load(&spec, 1).unwrap();
    let t = s.tokenizer().encode_pair("hello", Some("world")).unwrap();
    assert_eq!(t.ids.len(), 4);
    assert!(t.truncated);
    assert_eq!(s.score(&[&ScoreInput::Tokens(t)]).unwrap().len(), 1);
}

#[test]
fn each_loader_refuses_the_other_task_by_name() {
    for name in ["tiny-bert-rerank", "tiny-xlmr-classify"] {
        let spec = EmbedSpec::new(dir(name));
        let err = Embedder::load(&spec, 1).unwrap_err();
        let msg = err.to_string();
        match err {
            EmbedError::WrongTask {
                kind, architecture, ..
            } => {
                assert_ne!(kind, ModelKind::Embed);
                assert!(architecture.ends_with("ForSequenceClassification"));
                assert!(msg.contains(&architecture), "{msg}");
                assert!(msg.contains(&format!("`{kind}`")), "{msg}");
            }
            other => panic!("{name}: expected WrongTask, got {other}"),
        }
    }
    match Scorer::load(&EmbedSpec::new(dir("tiny-xlmr")), 1).unwrap_err() {
        EmbedError::WrongTask { kind, .. } => assert_eq!(kind, ModelKind::Embed),
        other => panic!("expected WrongTask, got {other}"),
    }
}

#[test]
fn pairs_tokenise_as_the_hugging_face_tokenizer_with_longest_first() {
    for name in MODELS {
        let g = golden(name);
        let tok = EmbedTokenizer::load(&EmbedSpec::new(dir(name))).unwrap();
        for p in &g.pairs {
            let got = tok.encode_pair(&p.query, Some(&p.document)).unwrap();
            assert_eq!(got.ids, p.ids, "{name}: {:?} / {:?}", p.query, p.document);
            assert_eq!(got.type_ids, p.type_ids, "{name}: {:?}", p.query);
            // The fixture's long pairs are cut (64 ids); the rest are not.
            assert_eq!(got.truncated, p.ids.len() == 64, "{name}: {:?}", p.query);
        }
        for t in &g.texts {
            let got = tok.encode_pair(&t.text, None).unwrap();
            assert_eq!(got.ids, t.ids, "{name}: {:?}", t.text);
            assert_eq!(got.type_ids, t.type_ids, "{name}: {:?}", t.text);
        }
    }
}

#[test]
fn longest_first_differs_from_only_second_where_the_fixture_says() {
    // The pair of two ~40-token texts: longest_first cuts both, so the
    // query loses tokens; only_second (TEI's documented strategy) would
    // keep it whole. The fixture has both; we follow longest_first.
    for name in MODELS {
        let g = golden(name);
        let tok = EmbedTokenizer::load(&EmbedSpec::new(dir(name))).unwrap();
        let differ: Vec<&GoldenPair> = g
            .pairs
            .iter()
            .filter(|p| matches!(p.only_second, Some(Some(_))))
            .collect();
        assert!(!differ.is_empty(), "{name}");
        for p in differ {
            let got = tok.encode_pair(&p.query, Some(&p.document)).unwrap();
            let alt = p.only_second.as_ref().unwrap().as_ref().unwrap();
            assert_ne!(got.ids, alt.ids);
            assert_eq!(got.ids, p.ids);
        }
    }
}

#[test]
fn huge_texts_are_tokenised_only_as_far_as_the_limit_needs() {
    let name = "tiny-bert-rerank";
    let g = golden(name);
    let tok = EmbedTokenizer::load(&EmbedSpec::new(dir(name))).unwrap();
    // The golden long document, then 10 MB more of it: the same cut.
    let p = g
        .pairs
        .iter()
        .find(|p| p.document.len() > 300 && p.query.len() < 40)
        .unwrap();
    let huge = format!(
        "{} {}",
        p.document,
        "lorem ipsum dolor sit amet ".repeat(400_000)
    );
    let start = Instant::now();
    let got = tok.encode_pair(&p.query, Some(&huge)).unwrap();
    assert_eq!(got.ids, p.ids);
    // Both texts over the limit alone and an odd budget (61 content
    // tokens): each keeps 30, the one with more tokens 31. Past the
    // tie-break's reach (both huge), the one with more bytes counts as
    // longer; here it also has more tokens.
    let sep_positions =
        |t: &PairTokenized| -> Vec<usize> { (0..t.ids.len()).filter(|&i| t.ids[i] == 3).collect() };
    let q = "the cat sat on the mat ".repeat(300_000);
    let d = "hello world ".repeat(500_000);
    let got = tok.encode_pair(&q, Some(&d)).unwrap();
    assert!(got.truncated);
    assert_eq!(got.ids.len(), 64);
    assert_eq!(
        sep_positions(&got),
        [32, 63],
        "query 31 tokens, document 30"
    );
    let got = tok.encode_pair(&d, Some(&q)).unwrap();
    assert_eq!(
        sep_positions(&got),
        [31, 63],
        "query 30 tokens, document 31"
    );
    // Within its reach it counts tokens, not bytes: fewer bytes but more
    // tokens keeps the odd one.
    let many = "a ".repeat(5_000);
    let long_words = "hello ".repeat(3_000);
    assert!(many.len() < long_words.len());
    let got = tok.encode_pair(&many, Some(&long_words)).unwrap();
    assert_eq!(sep_positions(&got), [32, 63], "the first has more tokens");
    let got = tok.encode_pair(&long_words, Some(&many)).unwrap();
    assert_eq!(sep_positions(&got), [31, 63], "the second has more tokens");
    // Tokenising 10 MB whole takes seconds; the bounded pieces, far less.
    let elapsed = start.elapsed();
    assert!(elapsed.as_secs_f64() < 2.0, "took {elapsed:?}");
}

#[test]
fn decode_gives_the_text_back_and_refuses_unknown_ids() {
    let tok = EmbedTokenizer::load(&EmbedSpec::new(dir("tiny-bert-rerank"))).unwrap();
    let t = tok.encode_pair("hello world", Some("the cat")).unwrap();
    assert_eq!(tok.decode(&t.ids, true).unwrap(), "hello world the cat");
    assert_eq!(
        tok.decode(&t.ids, false).unwrap(),
        "[CLS] hello world [SEP] the cat [SEP]"
    );
    let err = tok.decode(&[2, 100_000], true).unwrap_err();
    assert!(matches!(err, EmbedError::InvalidInput(_)), "{err}");
}
