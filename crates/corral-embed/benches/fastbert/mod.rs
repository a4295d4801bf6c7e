//! The encoder bench's FastBert-only parts: the per-op profile of a forward
//! (from FastBert's op spans, summed by an [`OpTimer`]).

use std::time::Duration;

use corral_embed::fast::{FastBert, OpTimer};
use tracing_subscriber::layer::SubscriberExt;

use super::{Batch, Res};

/// The per-op table's rows: FastBert's op span names and their labels.
const OP_LABELS: [(&str, &str); 9] = [
    ("embeddings", "embeddings (gather+sum+LN)"),
    ("qkv_matmul", "QKV matmul (+bias)"),
    ("attention", "attention (scores+softmax+context)"),
    ("attn_out_matmul", "attn-out matmul (+residual)"),
    ("ffn_in_matmul", "FFN-in matmul"),
    ("bias_gelu", "bias+GELU"),
    ("ffn_out_matmul", "FFN-out matmul (+residual)"),
    ("layer_norm", "bias+LayerNorm (x2)"),
    ("output", "output scatter/pool"),
];

/// Per-op times of one forward + mean pool + normalise of `b` on the
/// calling thread (one thread), averaged over `iters` calls, labelled and
/// in the order of [`OP_LABELS`].
pub(crate) fn op_profile(
    fb: &mut FastBert,
    b: &Batch,
    iters: usize,
) -> Res<Vec<(&'static str, Duration)>> {
    fb.forward_mean_pooled(&b.ids, &b.mask, b.rows, b.seq, 1, true)?;
    let timer = OpTimer::new();
    let subscriber = tracing_subscriber::registry().with(timer.clone());
    tracing::subscriber::with_default(subscriber, || -> Res<()> {
        for _ in 0..iters {
            fb.forward_mean_pooled(&b.ids, &b.mask, b.rows, b.seq, 1, true)?;
        }
        Ok(())
    })?;
    let p = timer.times();
    let calls = p.calls.max(1) as u32;
    Ok(OP_LABELS
        .iter()
        .map(|&(op, label)| (label, p.get(op).map_or(Duration::ZERO, |o| o.time) / calls))
        .collect())
}
