"""Hugging Face's TF classes into its own PyTorch classes, with no map: BERT, GPT-2, ViT, DistilBERT, RoBERTa,
ALBERT, the T5 encoder, ConvNeXt, Swin, DeiT, MobileBERT and Wav2Vec2 (TFBertModel -> BertModel, ...;
transformers 4.46.3, the 4.x line that still has TF classes). The TF and the
torch classes are separate code (names, layouts and GPT-2's (in, out) ``Conv1D`` differ); the weights are random
(small configs, ``save_pretrained`` writes ``tf_model.h5``), not a published checkpoint. The bar is transformers'
own hand-written loader, ``from_pretrained(..., from_tf=True)``: both errors against TF are printed.

Nothing is installed into the project's environment:
    pip install --no-deps --target PKGS transformers==4.46.3 huggingface_hub==0.26.2 tokenizers==0.20.3 \
        safetensors regex pyyaml tqdm
    python docs/transfer_real_pair_hf.py PKGS OUT_DIR
(needs tf_keras, which the project's development environment has).
"""

import os
import sys

import numpy as np
import torch

import tf2torch

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # transformers' TF classes are tf_keras models
PKGS, OUT = sys.argv[1], sys.argv[2]
sys.path.insert(0, PKGS)
import transformers as T  # noqa: E402

rng = np.random.default_rng(0)
ids = rng.integers(0, 99, (2, 7)).astype("int32")
pixels = rng.standard_normal((2, 3, 32, 32)).astype("float32")
img = rng.standard_normal((2, 3, 32, 32)).astype("float32")
audio = rng.standard_normal((2, 800)).astype("float32")
PAIRS = {  # name: (config, TF class, torch class, input)
    "bert": (T.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=37, max_position_embeddings=64), T.TFBertModel, T.BertModel, ids),
    "gpt2": (T.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64), T.TFGPT2Model,
             T.GPT2Model, ids),
    "vit": (T.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37), T.TFViTModel, T.ViTModel, pixels),
    "distilbert": (T.DistilBertConfig(vocab_size=99, dim=32, n_layers=2, n_heads=4, hidden_dim=37),
                   T.TFDistilBertModel, T.DistilBertModel, ids),
    "roberta": (T.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=37), T.TFRobertaModel, T.RobertaModel, ids),
    "albert": (T.AlbertConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                              num_attention_heads=4, intermediate_size=37), T.TFAlbertModel, T.AlbertModel, ids),
    "t5_encoder": (T.T5Config(vocab_size=99, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4),
                   T.TFT5EncoderModel, T.T5EncoderModel, ids),
    "convnext": (T.ConvNextConfig(num_channels=3, hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
                 T.TFConvNextModel, T.ConvNextModel, img),
    "swin": (T.SwinConfig(image_size=32, patch_size=4, embed_dim=8, depths=[1, 1], num_heads=[2, 2], window_size=4),
             T.TFSwinModel, T.SwinModel, img),
    "deit": (T.DeiTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=37), T.TFDeiTModel, T.DeiTModel, pixels),
    "mobilebert": (T.MobileBertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=37, embedding_size=16, intra_bottleneck_size=16,
                                      true_hidden_size=16), T.TFMobileBertModel, T.MobileBertModel, ids),
    "wav2vec2": (T.Wav2Vec2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                                  conv_dim=(8, 8), conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                                  num_conv_pos_embedding_groups=4), T.TFWav2Vec2Model, T.Wav2Vec2Model, audio),
}


def rel(ref: np.ndarray, got: torch.Tensor) -> float:
    return float(np.abs(ref - got.numpy()).max() / np.abs(ref).max())


for name, (config, tf_class, torch_class, x) in PAIRS.items():
    tf_model = tf_class(config)
    expected = tf_model(x).last_hidden_state.numpy()
    tf_model.save_pretrained(f"{OUT}/{name}")
    torch.manual_seed(0)
    model = torch_class(config).eval()
    tx = torch.from_numpy(x.astype("int64") if x.dtype.kind == "i" else x)
    report = tf2torch.transfer(f"{OUT}/{name}/tf_model.h5", model, example_inputs=(tx,))
    theirs = torch_class.from_pretrained(f"{OUT}/{name}", from_tf=True).eval()
    with torch.no_grad():
        ours_error = rel(expected, model(tx).last_hidden_state)
        theirs_error = rel(expected, theirs(tx).last_hidden_state)
    print(f"{name}: {len(report.mapping)} tensors, ok={report.ok}; max relative error vs TF: tf2torch.transfer "
          f"{ours_error:.2e}, from_pretrained(from_tf=True) {theirs_error:.2e}")
