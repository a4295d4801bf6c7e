//! What a member promises and a front expects: [`promise_of`], and the
//! files' [`fingerprint`] it carries.

use std::io::Read;
use std::path::Path;

use corral_cluster::Promise;
use corral_embed::{EmbedError, EmbedSpec, ModelKind};

/// What a member serving `name` with `spec` promises (and what a front
/// serving `name` from its own directory expects, with normalisation off):
/// `model` (the name), `kind`, `max_input_tokens`, `tokenizer` and
/// `weights` (fingerprints of `tokenizer.json` and of the weights file,
/// see [`fingerprint`]), `quantize` (the dense layers' arithmetic: int8
/// vectors are within cosine 0.995 of fp32's, not equal); for an embedder also `dimensions`, `pooling` and
/// `normalize`; for a reranker or classifier `labels`. The node's name
/// ([`corral_cluster::NODE_KEY`]) is the caller's to add: it is shown, not compared.
///
/// The engine (`EmbedSpec::engine`, `--engine`) is deliberately not in
/// it: candle's and the fast engine's fp32 vectors agree within 1e-5, so
/// members on either answer alike (the restart test mixes them), and int8
/// is told apart by `quantize`. It would not be a faithful key either: a
/// spec names the engine asked for, and the fast one falls back to candle
/// for a model it does not support.
///
/// # Errors
/// A bad model directory, or a file that cannot be read.
pub fn promise_of(name: &str, spec: &EmbedSpec) -> Result<Promise, EmbedError> {
    let kind = spec.model_kind()?;
    let dir = &spec.model_dir;
    let read = |file: &str| {
        fingerprint(&dir.join(file)).map_err(|e| EmbedError::ModelDir {
            dir: dir.clone(),
            problem: format!("reading {file}: {e}"),
        })
    };
    let weights = if dir.join("model.safetensors").is_file() {
        "model.safetensors"
    } else {
        "pytorch_model.bin"
    };
    let mut promise = Promise::new()
        .with("model", name)
        .with("kind", kind.as_str())
        .with("tokenizer", read("tokenizer.json")?)
        .with("weights", read(weights)?)
        .with("quantize", spec.quantize);
    match kind {
        ModelKind::Embed => {
            let info = spec.model_info()?;
            promise.set("max_input_tokens", info.max_seq_length);
            promise.set("dimensions", info.dim);
            promise.set("pooling", info.pooling);
            promise.set("normalize", info.normalize);
        }
        _ => {
            let info = spec.score_info()?;
            promise.set("max_input_tokens", info.max_seq_length);
            promise.set("labels", info.labels.join(","));
        }
    }
    Ok(promise)
}

/// A 64-bit fingerprint of a file's bytes and its length, as
/// `<16 hex digits>-<length>`: tells apart two files that differ (another
/// tokenizer, other weights), cheaply (it reads the file once, a few GB/s);
/// not a defence against someone who forges a file to match.
///
/// # Errors
/// The file cannot be read.
pub fn fingerprint(path: &Path) -> std::io::Result<String> {
    const K: [u64; 4] = [
        0x9E37_79B9_7F4A_7C15,
        0xC2B2_AE3D_27D4_EB4F,
        0x1656_67B1_9E37_79F9,
        0x85EB_CA77_C2B2_AE63,
    ];
    let mut file = std::fs::File::open(path)?;
    let mut lanes = K;
    let mut buf = vec![0u8; 1 << 20];
    let mut len: u64 = 0;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        let n = file.read(&mut buf[tail.len()..])?;
        if n == 0 {
            break;
        }
        len += n as u64;
        let filled = tail.len() + n;
        let whole = filled / 32 * 32;
        for block in buf[..whole].chunks_exact(32) {
            for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(8)) {
                let w = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
                *lane = (*lane ^ w).wrapping_mul(K[1]).rotate_left(31);
            }
        }
        tail = buf[whole..filled].to_vec();
        buf[..tail.len()].copy_from_slice(&tail);
    }
    let mut h = len.wrapping_mul(K[0]);
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(K[3]).rotate_left(27);
    }
    for &b in &tail {
        h = (h ^ u64::from(b)).wrapping_mul(K[2]);
    }
    h ^= h >> 29;
    h = h.wrapping_mul(K[0]);
    h ^= h >> 32;
    Ok(format!("{h:016x}-{len}"))
}
