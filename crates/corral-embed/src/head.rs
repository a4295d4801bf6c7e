//! The sequence-classification head of a cross-encoder or classifier, the
//! one implementation both engines share: it reads the first row of each
//! text in the packed last hidden states (`[CLS]` / `<s>`) and gives one
//! logit per label, in fp32 whatever the encoder's arithmetic.
//!
//! Both families compute `out(tanh(dense(x)))` on that row, from weights
//! under different names:
//! - BERT (`BertForSequenceClassification`): the pooler
//!   (`bert.pooler.dense`, then tanh) and `classifier`;
//! - XLM-RoBERTa (`XLMRobertaForSequenceClassification`): no pooler;
//!   `classifier.dense`, tanh, `classifier.out_proj`.
//!
//! (Dropout sits between them in training; inference skips it.)
//!
//! This module owns [`Head`].

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::VarBuilder;

use crate::config::Architecture;
use crate::EmbedError;

/// One `nn.Linear`: `weight` `[out, in]` row-major as PyTorch stores it,
/// `bias` `[out]`.
#[derive(Debug, Clone)]
struct Dense {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
}

impl Dense {
    fn outputs(&self) -> usize {
        self.bias.len()
    }

    /// `weight · x + bias` into `out`.
    fn forward(&self, x: &[f32], out: &mut Vec<f32>) {
        out.clear();
        for (row, b) in self.weight.chunks_exact(self.inputs).zip(&self.bias) {
            let dot: f32 = row.iter().zip(x).map(|(w, x)| w * x).sum();
            out.push(dot + b);
        }
    }
}

/// A loaded classification head: `out(tanh(dense(first row)))`.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    dense: Dense,
    out: Dense,
}

/// Opens the weights in `dir` (`model.safetensors`, else
/// `pytorch_model.bin`) as candle reads them, in f32 on the CPU.
pub(crate) fn var_builder(dir: &Path) -> Result<VarBuilder<'static>, EmbedError> {
    let device = Device::Cpu;
    let safetensors = dir.join("model.safetensors");
    Ok(if safetensors.is_file() {
        // SAFETY: the file is mapped read-only and candle copies every
        // tensor out of the map while loading; the usual caveat of mmap
        // (another process truncating the file meanwhile) applies.
        #[allow(unsafe_code)]
        unsafe {
            VarBuilder::from_mmaped_safetensors(&[&safetensors], DType::F32, &device)?
        }
    } else {
        VarBuilder::from_pth(dir.join("pytorch_model.bin"), DType::F32, &device)?
    })
}

impl Head {
    /// The head of the model in `dir` for `arch`, with `labels` outputs
    /// and `hidden` inputs.
    ///
    /// # Errors
    /// [`EmbedError::Config`] naming the tensor that is missing or of
    /// another shape; [`EmbedError::Candle`] when the weights cannot be
    /// read.
    pub(crate) fn load(
        dir: &Path,
        arch: &Architecture,
        hidden: usize,
        labels: usize,
    ) -> Result<Self, EmbedError> {
        let vb = var_builder(dir)?;
        let (dense, out) = match arch {
            Architecture::Bert(_) => ("bert.pooler.dense", "classifier"),
            Architecture::XlmRoberta(_) => ("classifier.dense", "classifier.out_proj"),
            // Refused when the configuration is read; kept an error here too.
            Architecture::Family(f) => {
                return Err(EmbedError::config(
                    dir,
                    format!("a classification head on {} is not supported", f.name()),
                ))
            }
        };
        let linear = |name: &str, n: usize| -> Result<Dense, EmbedError> {
            let get = |suffix: &str, shape: &[usize]| {
                vb.get(shape, &format!("{name}.{suffix}"))
                    .and_then(|t| t.flatten_all()?.to_vec1::<f32>())
                    .map_err(|e| {
                        EmbedError::config(
                            dir,
                            format!(
                                "the classification head's {name}.{suffix} (shape {shape:?}): {e}"
                            ),
                        )
                    })
            };
            Ok(Dense {
                weight: get("weight", &[n, hidden])?,
                bias: get("bias", &[n])?,
                inputs: hidden,
            })
        };
        Ok(Self {
            dense: linear(dense, hidden)?,
            out: linear(out, labels)?,
        })
    }

    /// One logit per label for each text of a packed batch: `hidden` is
    /// `[tokens, h]` and text `i` owns rows `offsets[i]..offsets[i + 1]`;
    /// the head reads each text's first row (a text has at least its
    /// special tokens).
    pub(crate) fn forward(&self, hidden: &[f32], offsets: &[usize]) -> Vec<Vec<f32>> {
        let h = self.dense.inputs;
        let mut pooled = Vec::with_capacity(h);
        offsets
            .windows(2)
            .map(|w| {
                let Some(first) = hidden.get(w[0] * h..w[0] * h + h).filter(|_| w[1] > w[0]) else {
                    return vec![0.0; self.out.outputs()];
                };
                self.dense.forward(first, &mut pooled);
                pooled.iter_mut().for_each(|x| *x = x.tanh());
                let mut logits = Vec::with_capacity(self.out.outputs());
                self.out.forward(&pooled, &mut logits);
                logits
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_reads_each_texts_first_row_through_dense_tanh_and_out() {
        let head = Head {
            dense: Dense {
                weight: vec![1.0, 0.0, 0.0, 2.0],
                bias: vec![0.0, 0.5],
                inputs: 2,
            },
            out: Dense {
                weight: vec![1.0, -1.0],
                bias: vec![0.25],
                inputs: 2,
            },
        };
        // Two texts: rows 0..2 and 2..3.
        let hidden = [0.3, -0.2, 9.0, 9.0, -0.1, 0.4];
        let got = head.forward(&hidden, &[0, 2, 3]);
        let want = |x: f32, y: f32| (x.tanh() - (2.0 * y + 0.5).tanh()) + 0.25;
        assert_eq!(got.len(), 2);
        assert!((got[0][0] - want(0.3, -0.2)).abs() < 1e-6);
        assert!((got[1][0] - want(-0.1, 0.4)).abs() < 1e-6);
    }
}
