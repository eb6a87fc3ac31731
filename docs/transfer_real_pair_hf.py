"""Hugging Face's TF classes into its own PyTorch classes, with no map: TFBertModel -> BertModel, TFGPT2Model ->
GPT2Model, TFViTModel -> ViTModel (transformers 4.46.3, the 4.x line that still has TF classes). The TF and the
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
ids = rng.integers(0, 99, (2, 7))
pixels = rng.standard_normal((2, 3, 32, 32)).astype("float32")
PAIRS = {
    "bert": (T.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=37, max_position_embeddings=64), T.TFBertModel, T.BertModel, ids),
    "gpt2": (T.GPT2Config(vocab_size=99, n_embd=32, n_layer=2, n_head=4, n_positions=64), T.TFGPT2Model,
             T.GPT2Model, ids),
    "vit": (T.ViTConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37), T.TFViTModel, T.ViTModel, pixels),
}


def rel(ref: np.ndarray, got: torch.Tensor) -> float:
    return float(np.abs(ref - got.numpy()).max() / np.abs(ref).max())


for name, (config, tf_class, torch_class, x) in PAIRS.items():
    tf_model = tf_class(config)
    expected = tf_model(x).last_hidden_state.numpy()
    tf_model.save_pretrained(f"{OUT}/{name}")
    torch.manual_seed(0)
    model = torch_class(config).eval()
    report = tf2torch.transfer(f"{OUT}/{name}/tf_model.h5", model, example_inputs=(torch.from_numpy(x),))
    theirs = torch_class.from_pretrained(f"{OUT}/{name}", from_tf=True).eval()
    with torch.no_grad():
        ours_error = rel(expected, model(torch.from_numpy(x)).last_hidden_state)
        theirs_error = rel(expected, theirs(torch.from_numpy(x)).last_hidden_state)
    print(f"{name}: {len(report.mapping)} tensors, ok={report.ok}; max relative error vs TF: tf2torch.transfer "
          f"{ours_error:.2e}, from_pretrained(from_tf=True) {theirs_error:.2e}")
