//! `EmbedSpec::pooling` (the CLI's `--pooling`) overrides the pooling the
//! model directory declares, and is refused by name where it cannot apply:
//! `splade` turns a BERT masked-language model without a `SpladePooling`
//! module into a SPLADE encoder (the same vectors as sentence-transformers'
//! `SparseEncoder` on the committed tiny SPLADE model), is refused on a
//! model without a masked-language head, and a dense pooling is refused on
//! a SPLADE directory; `lasttoken` applies to an encoder. The fixtures are
//! committed (`tests/data/`); the tests fail, never skip, without them.

use std::path::{Path, PathBuf};

use corral_embed::{
    EmbedSpec, EmbedTokenizer, Embedder, ModelKind, Pooling, SparseEncoder, TruncationSide,
};
use serde::Deserialize;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[derive(Deserialize)]
struct SparseGolden {
    texts: Vec<SparseCase>,
}

#[derive(Deserialize)]
struct SparseCase {
    text: String,
    ids: Vec<u32>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

fn read<T: for<'de> Deserialize<'de>>(path: PathBuf) -> T {
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{} is committed ({e}); regenerate it with scripts/make_tiny_families.py",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

/// The tiny SPLADE model as a plain `BertForMaskedLM` checkpoint: its
/// files without `modules.json` and the `SpladePooling` module.
fn plain_masked_lm() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plain-mlm");
    std::fs::create_dir(&dir).unwrap();
    for entry in std::fs::read_dir(data("tiny-splade")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() && entry.file_name() != "modules.json" {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    (tmp, dir)
}

fn error_of<T>(r: Result<T, corral_embed::EmbedError>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn splade_makes_a_masked_language_model_sparse_with_sentence_transformers_vectors() {
    let golden: SparseGolden = read(data("tiny-splade").join("golden.json"));
    let (_tmp, dir) = plain_masked_lm();
    let plain = EmbedSpec::new(&dir);
    assert_eq!(plain.model_kind().unwrap(), ModelKind::Embed);
    let spec = plain.with_pooling(Pooling::Splade);
    assert_eq!(spec.model_kind().unwrap(), ModelKind::SparseEmbed);
    spec.validate().unwrap();
    let info = spec.sparse_info().unwrap();
    assert_eq!(info.vocab_size, 194);
    let tok = EmbedTokenizer::load(&spec).unwrap();
    let mut enc = SparseEncoder::load(&spec, 1).unwrap();
    let texts: Vec<&str> = golden.texts.iter().map(|c| c.text.as_str()).collect();
    let vectors = enc.encode(&texts).unwrap();
    for (case, got) in golden.texts.iter().zip(&vectors) {
        assert_eq!(
            tok.encode(&case.text, TruncationSide::Right).unwrap().ids,
            case.ids,
            "{:?}",
            case.text
        );
        assert_eq!(got.indices, case.indices, "{:?}", case.text);
        for (g, w) in got.values.iter().zip(&case.values) {
            assert!((g - w).abs() <= 1e-4, "{:?}: {g} against {w}", case.text);
        }
    }
    // The dense embedder refuses the sparse choice, naming where it goes.
    let msg = error_of(Embedder::load(&spec, 1));
    assert!(msg.contains("SparseEncoder"), "{msg}");
    let msg = error_of(spec.model_info());
    assert!(msg.contains("splade"), "{msg}");
}

#[test]
fn splade_is_refused_by_name_on_a_model_without_a_masked_language_head() {
    for (name, arch) in [
        ("tiny-mpnet", "MPNetModel"),
        ("tiny-bert-rerank", "BertForSequenceClassification"),
    ] {
        let spec = EmbedSpec::new(data(name)).with_pooling(Pooling::Splade);
        for msg in [
            error_of(spec.model_kind()),
            error_of(SparseEncoder::load(&spec, 1)),
            error_of(spec.validate()),
        ] {
            assert!(
                msg.contains("pooling splade") && msg.contains("BertForMaskedLM"),
                "{name}: {msg}"
            );
            assert!(msg.contains(arch), "{name}: {msg}");
        }
    }
}

#[test]
fn a_dense_pooling_is_refused_by_name_on_a_splade_directory() {
    for pooling in [Pooling::Mean, Pooling::Cls, Pooling::LastToken] {
        let spec = EmbedSpec::new(data("tiny-splade")).with_pooling(pooling);
        let msg = error_of(spec.model_kind());
        assert!(
            msg.contains(&format!("pooling {pooling}")) && msg.contains("SPLADE"),
            "{msg}"
        );
        let msg = error_of(SparseEncoder::load(&spec, 1));
        assert!(msg.contains(&format!("pooling {pooling}")), "{msg}");
    }
    // Its own pooling, or splade said again, is what it declares.
    for pooling in [None, Some(Pooling::Splade)] {
        let mut spec = EmbedSpec::new(data("tiny-splade"));
        spec.pooling = pooling;
        assert_eq!(spec.model_kind().unwrap(), ModelKind::SparseEmbed);
        SparseEncoder::load(&spec, 1).unwrap();
    }
}

#[derive(Deserialize)]
struct DenseGolden {
    texts: Vec<DenseCase>,
}

#[derive(Deserialize)]
struct DenseCase {
    text: String,
    mean: Vec<f32>,
    last: Vec<f32>,
}

#[test]
fn lasttoken_applies_to_an_encoder_and_is_what_the_model_reports() {
    let golden: DenseGolden = read(data("tiny-mpnet").join("golden.json"));
    let declared = EmbedSpec::new(data("tiny-mpnet")).with_normalize(false);
    assert_eq!(declared.model_info().unwrap().pooling, Pooling::Mean);
    let spec = declared.with_pooling(Pooling::LastToken);
    assert_eq!(spec.model_kind().unwrap(), ModelKind::Embed);
    assert_eq!(spec.model_info().unwrap().pooling, Pooling::LastToken);
    let mut e = Embedder::load(&spec, 1).unwrap();
    assert_eq!(e.pooling(), Pooling::LastToken);
    let texts: Vec<&str> = golden.texts.iter().map(|c| c.text.as_str()).collect();
    for (case, got) in golden.texts.iter().zip(e.embed(&texts).unwrap()) {
        let d = got
            .iter()
            .zip(&case.last)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(d <= 1e-4, "{:?}: {d}", case.text);
        assert_ne!(case.last, case.mean);
    }
}

#[test]
fn pooling_names_parse_and_print() {
    for (name, p) in [
        ("mean", Pooling::Mean),
        ("cls", Pooling::Cls),
        ("lasttoken", Pooling::LastToken),
        ("splade", Pooling::Splade),
    ] {
        assert_eq!(name.parse::<Pooling>(), Ok(p));
        assert_eq!(p.to_string(), name);
    }
    let e = "max".parse::<Pooling>().unwrap_err();
    assert!(e.contains("splade"), "{e}");
}
