//! End-to-end tests: FastBert against candle-transformers' `BertModel` on a
//! tiny random BERT written to a temporary safetensors file, and batch
//! invariance. Run them with `--release` (debug builds are slow).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_transformers::models::bert::{BertModel, Config};

use super::op_timer::OPS;
use super::test_util::random_vec;
use super::{FastBert, FastBertConfig, OpTimer};

const HIDDEN: usize = 36;
const HEADS: usize = 4;
const INTER: usize = 50;
const LAYERS: usize = 2;
const VOCAB: usize = 57;
const MAXPOS: usize = 40;

fn config_json() -> String {
    format!(
        r#"{{"vocab_size":{VOCAB},"hidden_size":{HIDDEN},"num_hidden_layers":{LAYERS},
        "num_attention_heads":{HEADS},"intermediate_size":{INTER},"hidden_act":"gelu",
        "hidden_dropout_prob":0.1,"max_position_embeddings":{MAXPOS},"type_vocab_size":2,
        "initializer_range":0.02,"layer_norm_eps":1e-12,"pad_token_id":0,
        "model_type":"bert"}}"#
    )
}

/// A tiny model's weights in a directory of their own, removed on drop —
/// also when the test using them panics.
struct TinyModel {
    /// The safetensors file.
    path: PathBuf,
}

impl Drop for TinyModel {
    fn drop(&mut self) {
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Writes random weights for the tiny model (names prefixed with `prefix`)
/// into a fresh directory.
fn write_tiny_model(prefix: &str, tag: &str) -> TinyModel {
    let dir = std::env::temp_dir().join(format!("corral-fastbert-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tiny_tensors(prefix), &path).unwrap();
    TinyModel { path }
}

/// The tiny model's weights as `dir/model.safetensors`, with `extra`
/// floats in a tensor the model does not read (so that files of different
/// `extra` differ in length only), and its configuration: for tests
/// outside this module.
pub(crate) fn write_tiny_bert(dir: &Path, extra: usize) -> (PathBuf, FastBertConfig) {
    let mut tensors = tiny_tensors("");
    let unused = Tensor::zeros(extra, candle_core::DType::F32, &Device::Cpu).unwrap();
    tensors.insert("unused".into(), unused);
    let path = dir.join("model.safetensors");
    candle_core::safetensors::save(&tensors, &path).unwrap();
    (path, FastBertConfig::from_hf_json(&config_json()).unwrap())
}

/// Random weights for the tiny model, names prefixed with `prefix`.
fn tiny_tensors(prefix: &str) -> HashMap<String, Tensor> {
    let mut seed = 100u64;
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut add = |name: String, shape: &[usize], scale: f32, offset: f32| {
        seed += 1;
        let n: usize = shape.iter().product();
        let v: Vec<f32> = random_vec(n, seed)
            .iter()
            .map(|x| x * scale + offset)
            .collect();
        tensors.insert(
            format!("{prefix}{name}"),
            Tensor::from_vec(v, shape, &Device::Cpu).unwrap(),
        );
    };
    add(
        "embeddings.word_embeddings.weight".into(),
        &[VOCAB, HIDDEN],
        1.0,
        0.0,
    );
    add(
        "embeddings.position_embeddings.weight".into(),
        &[MAXPOS, HIDDEN],
        0.5,
        0.0,
    );
    add(
        "embeddings.token_type_embeddings.weight".into(),
        &[2, HIDDEN],
        0.5,
        0.0,
    );
    add("embeddings.LayerNorm.weight".into(), &[HIDDEN], 0.2, 1.0);
    add("embeddings.LayerNorm.bias".into(), &[HIDDEN], 0.1, 0.0);
    let ws = 1.0 / (HIDDEN as f32).sqrt() * 1.7;
    for l in 0..LAYERS {
        let p = format!("encoder.layer.{l}.");
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
            "attention.output.dense",
        ] {
            add(format!("{p}{m}.weight"), &[HIDDEN, HIDDEN], ws, 0.0);
            add(format!("{p}{m}.bias"), &[HIDDEN], 0.1, 0.0);
        }
        add(
            format!("{p}intermediate.dense.weight"),
            &[INTER, HIDDEN],
            ws,
            0.0,
        );
        add(format!("{p}intermediate.dense.bias"), &[INTER], 0.1, 0.0);
        add(
            format!("{p}output.dense.weight"),
            &[HIDDEN, INTER],
            1.7 / (INTER as f32).sqrt(),
            0.0,
        );
        add(format!("{p}output.dense.bias"), &[HIDDEN], 0.1, 0.0);
        for ln in ["attention.output.LayerNorm", "output.LayerNorm"] {
            add(format!("{p}{ln}.weight"), &[HIDDEN], 0.2, 1.0);
            add(format!("{p}{ln}.bias"), &[HIDDEN], 0.1, 0.0);
        }
    }
    tensors
}

/// A padded batch of texts of different lengths (ids, mask, batch, seq).
fn batch_inputs() -> (Vec<u32>, Vec<u32>, usize, usize) {
    let lens = [7usize, 1, 13, 4, 13, 9];
    let seq = 13;
    let mut ids = vec![0u32; lens.len() * seq];
    let mut mask = vec![0u32; lens.len() * seq];
    for (b, &l) in lens.iter().enumerate() {
        for t in 0..l {
            ids[b * seq + t] = ((b * 31 + t * 7 + 1) % VOCAB) as u32;
            mask[b * seq + t] = 1;
        }
    }
    (ids, mask, lens.len(), seq)
}

/// Right-padded `[batch, seq]` ids and mask (each row's mask a run of ones
/// from the start) as packed ids and offsets.
fn packed(ids: &[u32], mask: &[u32], batch: usize, seq: usize) -> (Vec<u32>, Vec<usize>) {
    let (mut out, mut offsets) = (Vec::new(), vec![0]);
    for b in 0..batch {
        let row = &mask[b * seq..(b + 1) * seq];
        let len = row.iter().take_while(|&&m| m == 1).count();
        assert!(row[len..].iter().all(|&m| m == 0), "right padding only");
        out.extend_from_slice(&ids[b * seq..b * seq + len]);
        offsets.push(out.len());
    }
    (out, offsets)
}

/// [`FastBert::forward_packed`] on a right-padded batch, scattered back to
/// `[batch, seq, hidden]` with padding rows zero.
fn forward_padded(
    fast: &mut FastBert,
    ids: &[u32],
    mask: &[u32],
    batch: usize,
    seq: usize,
    threads: usize,
) -> Vec<f32> {
    let (p, offsets) = packed(ids, mask, batch, seq);
    let hidden = fast.forward_packed(&p, &offsets, threads).unwrap();
    let mut out = vec![0.0; batch * seq * HIDDEN];
    for (b, w) in offsets.windows(2).enumerate() {
        let rows = &hidden[w[0] * HIDDEN..w[1] * HIDDEN];
        out[b * seq * HIDDEN..b * seq * HIDDEN + rows.len()].copy_from_slice(rows);
    }
    out
}

/// Mean-pooled rows (`[batch, hidden]`, L2-normalised when `normalize`) of
/// a right-padded batch, through `forward_packed` and the crate's pooling.
fn mean_pooled(
    fast: &mut FastBert,
    ids: &[u32],
    mask: &[u32],
    batch: usize,
    seq: usize,
    threads: usize,
    normalize: bool,
) -> Vec<f32> {
    let (p, offsets) = packed(ids, mask, batch, seq);
    let hidden = fast.forward_packed(&p, &offsets, threads).unwrap();
    crate::pooling::pool(hidden, HIDDEN, &offsets, crate::Pooling::Mean, normalize).concat()
}

fn candle_hidden(path: &PathBuf, ids: &[u32], mask: &[u32], batch: usize, seq: usize) -> Vec<f32> {
    let cfg: Config = serde_json::from_str(&config_json()).unwrap();
    // SAFETY: the file was just written by this test and is not modified
    // while mapped.
    #[allow(unsafe_code)]
    let vb = unsafe {
        candle_nn::VarBuilder::from_mmaped_safetensors(
            &[path],
            candle_core::DType::F32,
            &Device::Cpu,
        )
        .unwrap()
    };
    let model = BertModel::load(vb, &cfg).unwrap();
    let ids_t = Tensor::from_slice(ids, (batch, seq), &Device::Cpu).unwrap();
    let mask_t = Tensor::from_slice(mask, (batch, seq), &Device::Cpu).unwrap();
    let types = ids_t.zeros_like().unwrap();
    model
        .forward(&ids_t, &types, Some(&mask_t))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

#[test]
fn matches_candle_bert_model_on_tiny_random_bert() {
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    for (prefix, tag) in [("", "plain"), ("bert.", "prefixed")] {
        let model = write_tiny_model(prefix, tag);
        let path = &model.path;
        let (ids, mask, batch, seq) = batch_inputs();
        let want = candle_hidden(path, &ids, &mask, batch, seq);
        let mut fast = FastBert::load(path, &cfg).unwrap();
        for threads in [1, 2] {
            let got = forward_padded(&mut fast, &ids, &mask, batch, seq, threads);
            let mut worst = 0.0f32;
            for (i, &m) in mask.iter().enumerate() {
                let (g, w) = (
                    &got[i * HIDDEN..(i + 1) * HIDDEN],
                    &want[i * HIDDEN..(i + 1) * HIDDEN],
                );
                if m == 1 {
                    for (a, b) in g.iter().zip(w) {
                        worst = worst.max((a - b).abs());
                    }
                } else {
                    assert!(g.iter().all(|&v| v == 0.0), "padding rows are zero");
                }
            }
            assert!(worst < 1e-4, "{tag} threads={threads}: max diff {worst}");

            // Mean pooling agrees with pooling the hidden states by hand.
            let pooled = mean_pooled(&mut fast, &ids, &mask, batch, seq, threads, false);
            for b in 0..batch {
                let n: u32 = mask[b * seq..(b + 1) * seq].iter().sum();
                for j in 0..HIDDEN {
                    let s: f32 = (0..seq)
                        .map(|t| want[(b * seq + t) * HIDDEN + j] * mask[b * seq + t] as f32)
                        .sum();
                    assert!((pooled[b * HIDDEN + j] - s / n as f32).abs() < 1e-4);
                }
            }
        }
    }
}

#[test]
fn text_alone_equals_text_in_mixed_batch() {
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "invariance");
    let path = &model.path;
    let mut fast = FastBert::load(path, &cfg).unwrap();
    let (ids, mask, batch, seq) = batch_inputs();
    let together = mean_pooled(&mut fast, &ids, &mask, batch, seq, 1, true);
    for b in 0..batch {
        let len = mask[b * seq..(b + 1) * seq].iter().sum::<u32>() as usize;
        let alone = mean_pooled(
            &mut fast,
            &ids[b * seq..b * seq + len],
            &mask[b * seq..b * seq + len],
            1,
            len,
            1,
            true,
        );
        let d = super::test_util::max_abs_diff(&alone, &together[b * HIDDEN..(b + 1) * HIDDEN]);
        assert!(d <= 1e-5, "text {b}: max diff {d}");
    }
}

#[test]
fn rejects_bad_inputs() {
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "bad");
    let path = &model.path;
    let mut fast = FastBert::load(path, &cfg).unwrap();
    // Offsets that do not describe the ids.
    assert!(fast.forward_packed(&[1, 2], &[0, 1], 1).is_err());
    assert!(fast.forward_packed(&[1, 2], &[1, 2], 1).is_err());
    assert!(fast.forward_packed(&[1, 2], &[0, 2, 1, 2], 1).is_err());
    assert!(fast.forward_packed(&[VOCAB as u32], &[0, 1], 1).is_err());
    let long = vec![1u32; MAXPOS + 1];
    assert!(fast.forward_packed(&long, &[0, MAXPOS + 1], 1).is_err());
    assert!(fast.forward_packed(&[1, 2], &[0, 2], 1).is_ok());
    assert!(FastBertConfig::from_hf_json(&config_json().replace("\"gelu\"", "\"relu\"")).is_err());
}

/// Under an [`OpTimer`], every op of a forward shows up in forward order
/// with time and the number of times it ran; the results are the same as
/// with no subscriber at all.
#[test]
fn op_timer_sums_every_op() {
    use tracing_subscriber::layer::SubscriberExt;

    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "op-timer");
    let path = &model.path;
    let mut fast = FastBert::load(path, &cfg).unwrap();
    let (ids, mask, batch, seq) = batch_inputs();
    let packed: Vec<u32> = ids
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m == 1)
        .map(|(&i, _)| i)
        .collect();
    let offsets = [0, 5, 9, packed.len()];
    let run = |fast: &mut FastBert| {
        (
            forward_padded(fast, &ids, &mask, batch, seq, 1),
            fast.forward_packed(&packed, &offsets, 2).unwrap().to_vec(),
            mean_pooled(fast, &ids, &mask, batch, seq, 2, true),
        )
    };
    let plain = run(&mut fast);

    let timer = OpTimer::new();
    let subscriber = tracing_subscriber::registry().with(timer.clone());
    // Other tests run forward passes with no subscriber at the same time,
    // and tracing caches each callsite's interest process-wide. While only
    // one dispatcher exists, tracing takes it for the global one and a
    // callsite first hit on another test's thread (where no subscriber is
    // set) is cached as "never" — this test's spans would then be lost at
    // random. A second live dispatcher makes tracing ask every registered
    // dispatcher, this one included, whichever thread registers a callsite.
    let _second = tracing::Dispatch::new(tracing_subscriber::registry());
    let timed = tracing::subscriber::with_default(subscriber, || {
        tracing::callsite::rebuild_interest_cache();
        run(&mut fast)
    });
    assert_eq!(timed, plain, "the same results under the timer");

    let t = timer.times();
    assert_eq!(t.calls, 3, "forward calls");
    let names: Vec<&str> = t.ops.iter().map(|o| o.name).collect();
    assert_eq!(names, OPS, "every op, in forward order");
    for op in &t.ops {
        let want = match op.name {
            "embeddings" => 3,
            "layer_norm" => 3 * 2 * LAYERS as u64,
            _ => 3 * LAYERS as u64,
        };
        assert_eq!(op.count, want, "{}", op.name);
        assert!(op.time > std::time::Duration::ZERO, "{}", op.name);
    }
    assert!(t.forward_time >= t.total());
    timer.reset();
    assert_eq!(timer.times(), Default::default());
}

/// With no subscriber the op spans are inert and forward works as ever.
#[test]
fn forward_works_with_no_subscriber() {
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "no-subscriber");
    let path = &model.path;
    let mut fast = FastBert::load(path, &cfg).unwrap();
    let (ids, mask, batch, seq) = batch_inputs();
    let a = forward_padded(&mut fast, &ids, &mask, batch, seq, 1);
    assert_eq!(a.len(), batch * seq * HIDDEN);
    assert!(a.iter().all(|v| v.is_finite()));
}

/// The whole forward, fp32 and int8, under every kernel build this CPU
/// runs (the portable one, AVX2, AVX-512 VNNI at both widths where the CPU
/// has it), forced in turn. In int8 the VNNI builds give the AVX2 build's
/// bits exactly (their element-wise kernels are AVX2's; their int8 tiles
/// compute the same exact sums); in fp32 they run their own AVX-512 dense
/// kernel, so they are within 1e-5 of AVX2 and equal to each other. The
/// portable build's attention rounds differently from AVX2's fused
/// multiply-adds, so it is within a small bound instead (a wider one in
/// int8, where an input a bit away can land on the next level; its int8
/// tiles are bit-exact: qmatmul's tests). Prints which builds ran.
#[test]
fn every_kernel_build_gives_the_same_hidden_states() {
    use super::isa::{with_isa, Isa};
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "isa");
    let (ids, mask, batch, seq) = batch_inputs();
    let (ids, offsets) = packed(&ids, &mask, batch, seq);
    let run = |isa: Isa, int8: bool, act8: super::Int8Layers| {
        with_isa(isa, || {
            assert_eq!(super::kernel_isa(), isa.name());
            let mut fast = FastBert::load(&model.path, &cfg).unwrap();
            if int8 {
                assert!(fast.quantize_with(super::Int8Layers::ALL, act8));
            }
            fast.forward_packed(&ids, &offsets, 1).unwrap().to_vec()
        })
    };
    let builds = Isa::available();
    #[cfg(target_arch = "x86_64")]
    assert!(builds.len() >= 2, "this test needs an AVX2 CPU");
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>();
    // fp32; int8 with 12-bit activations everywhere; int8 with the 8-bit
    // activations the VNNI builds run on `vpdpbusd` (the others on the
    // same values in 16-bit lanes).
    let modes = [
        (false, super::Int8Layers::NONE),
        (true, super::Int8Layers::NONE),
        (true, super::Int8Layers::EIGHT_BIT_ACTIVATIONS),
    ];
    for (int8, act8) in modes {
        let run = |isa: Isa, int8: bool| run(isa, int8, act8);
        let portable = run(Isa::BASELINE, int8);
        let Some(&first) = builds.get(1) else {
            continue;
        };
        let simd = run(first, int8);
        let d = super::test_util::max_abs_diff(&portable, &simd);
        eprintln!(
            "int8 {int8}: {} vs portable, max abs diff {d:e}",
            first.name()
        );
        // fp32: rounding only. int8: the builds' attention rounds
        // differently (fused multiply-adds), and a last-bit difference in a
        // layer's input can move a value to the next quantisation level,
        // which moves the outputs by about that level's step times a
        // weight (measured up to 9e-4 here; the int8 products themselves
        // are bit-exact across builds: qmatmul's tests).
        let bound = if int8 { 2e-3 } else { 1e-5 };
        assert!(d <= bound, "{} (int8 {int8}): {d}", first.name());
        // fp32: the AVX-512 builds run their own dense kernel (a
        // different order of fused multiply-adds than `gemm`'s), so they
        // are within the bound of AVX2 and equal to each other.
        let mut avx512_fp32: Option<Vec<f32>> = None;
        for &isa in &builds[2..] {
            let got = run(isa, int8);
            if !int8 && isa.vnni_wide().is_some() {
                let d = super::test_util::max_abs_diff(&got, &simd);
                assert!(d <= 1e-5, "{} fp32 vs {}: {d}", isa.name(), first.name());
                if let Some(other) = &avx512_fp32 {
                    assert!(bits(&got) == bits(other), "the AVX-512 builds differ");
                }
                avx512_fp32 = Some(got);
                continue;
            }
            assert!(
                bits(&got) == bits(&simd),
                "{} vs {} (int8 {int8}): max abs diff {:e}",
                isa.name(),
                first.name(),
                super::test_util::max_abs_diff(&got, &simd)
            );
        }
    }
    eprintln!(
        "builds run: {:?}",
        builds.iter().map(|i| i.name()).collect::<Vec<_>>()
    );
}

/// A forward given a ceiling above its threads takes every core of its
/// share while it runs alone, its share beside other running forwards
/// (never fewer than its own threads), and gives the same int8 bits (fp32:
/// within 1e-5) whatever it ran on.
#[test]
fn a_lone_forward_takes_the_free_cores_and_shares_them_under_load() {
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "share");
    let (ids, mask, batch, seq) = batch_inputs();
    let (ids, offsets) = packed(&ids, &mask, batch, seq);
    let share: &'static super::share::Share =
        Box::leak(Box::new(super::share::Share::with_cores(4)));
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    for int8 in [false, true] {
        let mut fast = FastBert::load(&model.path, &cfg).unwrap();
        if int8 {
            fast.quantize(super::Int8Layers::ALL);
        }
        fast.share = share;
        let run = |fast: &mut FastBert| {
            pool.install(|| fast.forward_packed(&ids, &offsets, 1).unwrap().to_vec())
        };
        let pinned = run(&mut fast);
        assert_eq!(fast.last_threads(), 1, "no ceiling: its own thread only");
        fast.set_max_threads(4);
        let alone = run(&mut fast);
        assert_eq!(fast.last_threads(), 4, "alone: every core");
        let other = share.enter();
        let beside_one = run(&mut fast);
        assert_eq!(fast.last_threads(), 2, "beside one other: half");
        let (a, b) = (share.enter(), share.enter());
        let beside_three = run(&mut fast);
        assert_eq!(fast.last_threads(), 1, "beside three: one core");
        drop((other, a, b));
        for got in [&alone, &beside_one, &beside_three] {
            let d = super::test_util::max_abs_diff(&pinned, got);
            if int8 {
                assert_eq!(d, 0.0, "int8 gives the same bits on any threads");
            } else {
                assert!(d <= 1e-5, "fp32 on more threads: {d}");
            }
        }
    }
    assert_eq!(share.running(), 0, "every forward counted itself out");
}

/// `quantize` gives every dense layer 8-bit activations exactly where the
/// build that runs has `vpdpbusd` (the AVX-512 VNNI ones), and 12-bit ones
/// elsewhere; every build this CPU has is forced in turn.
#[test]
fn eight_bit_activations_only_where_the_build_has_vpdpbusd() {
    use super::isa::{with_isa, Isa};
    use super::layer::Dense;
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "act8");
    for isa in Isa::available() {
        let vnni = isa.vnni_wide().is_some();
        with_isa(isa, || {
            let mut fast = FastBert::load(&model.path, &cfg).unwrap();
            assert!(fast.quantize(super::Int8Layers::DEFAULT_INT8));
            for layer in &fast.model.layers {
                let eight = |d: &Dense| matches!(d, Dense::Int8(q) if q.eight_bit());
                for dense in [&layer.qkv, &layer.attn_out, &layer.ffn_in, &layer.ffn_out] {
                    assert_eq!(eight(dense), vnni, "{}", isa.name());
                }
            }
        });
        eprintln!("{}: 8-bit activations {vnni}", isa.name());
    }
}

#[test]
fn shared_weights_give_the_same_hidden_states_from_buffers_of_their_own() {
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "share");
    let (ids, mask, batch, seq) = batch_inputs();
    let (packed_ids, offsets) = packed(&ids, &mask, batch, seq);
    let short = [3u32, 9, 4];
    for int8 in [false, true] {
        let load = || {
            let mut fb = FastBert::load(&model.path, &cfg).unwrap();
            if int8 {
                assert!(fb.quantize(super::Int8Layers::DEFAULT_INT8));
            }
            fb
        };
        let mut alone = load();
        let want_long = alone
            .forward_packed(&packed_ids, &offsets, 1)
            .unwrap()
            .to_vec();
        let want_short = alone.forward_packed(&short, &[0, 3], 1).unwrap().to_vec();
        let mut first = load();
        let mut second = first.share();
        assert!(first.shares_weights_with(&second));
        // Both at once, each on its own thread and batch, several times:
        // one's buffers are never the other's.
        let (long, short_out) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                (0..5)
                    .map(|_| {
                        first
                            .forward_packed(&packed_ids, &offsets, 1)
                            .unwrap()
                            .to_vec()
                    })
                    .last()
                    .unwrap()
            });
            let b = s.spawn(|| {
                (0..5)
                    .map(|_| second.forward_packed(&short, &[0, 3], 1).unwrap().to_vec())
                    .last()
                    .unwrap()
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_eq!(long, want_long, "int8 {int8}");
        assert_eq!(short_out, want_short, "int8 {int8}");
        assert!(first.shares_weights_with(&second), "a forward never copies");
    }
}

#[test]
fn quantising_a_shared_model_copies_it_and_leaves_the_other_as_it_was() {
    let cfg = FastBertConfig::from_hf_json(&config_json()).unwrap();
    let model = write_tiny_model("", "share-q");
    let mut fp32 = FastBert::load(&model.path, &cfg).unwrap();
    let want = fp32
        .forward_packed(&[3, 9, 4], &[0, 3], 1)
        .unwrap()
        .to_vec();
    let mut other = fp32.share();
    assert!(other.quantize(super::Int8Layers::DEFAULT_INT8));
    assert!(!fp32.shares_weights_with(&other));
    assert_eq!(fp32.forward_packed(&[3, 9, 4], &[0, 3], 1).unwrap(), want);
    assert_ne!(other.forward_packed(&[3, 9, 4], &[0, 3], 1).unwrap(), want);
}
