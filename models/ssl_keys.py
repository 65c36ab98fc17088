"""Foreign self-supervised checkpoints -> torchaudio's wav2vec 2.0 / HuBERT / WavLM parameter names.

Pure functions on state dicts (name -> tensor), no model built. Two published layouts:

- fairseq (`fairseq.models.wav2vec.Wav2Vec2Model`, `HubertModel`; also the `ssl_model.model.`
  part of the SSL_Anti-spoofing and zero-shot source-tracing checkpoints): `feature_extractor.
  conv_layers.I.0` (convolution), `.I.2` (group norm, layer 0) or `.I.2.1` (layer norm),
  `layer_norm`, `post_extract_proj`, `encoder.pos_conv.0` (weight-normed), `encoder.layer_norm`,
  `encoder.layers.I.{self_attn.{q,k,v,out}_proj, self_attn_layer_norm, fc1, fc2, final_layer_norm}`.
- Hugging Face transformers (`Wav2Vec2Model`, `HubertModel`, `WavLMModel`, optionally under
  `wav2vec2.`, `hubert.` or `wavlm.` as in their `...ForCTC` / `...ForPreTraining`):
  `feature_extractor.conv_layers.I.{conv, layer_norm}`, `feature_projection.{layer_norm,
  projection}`, `encoder.pos_conv_embed.conv`, `encoder.layer_norm`, `encoder.layers.I.{attention.
  {q,k,v,out}_proj, layer_norm, feed_forward.{intermediate,output}_dense, final_layer_norm}`;
  WavLM's attention adds `rel_attn_embed` (layer 0), `gru_rel_pos_linear`, `gru_rel_pos_const`.

Every key of a checkpoint is either mapped or in the short list of pre-training-only parameters
that inference never reads (quantizer, masked-frame embedding, target projections, CTC head);
anything else is an error naming the key, so a wrong file never loads half-way. The mapped
dict is then loaded with `strict=True`. The maps follow the module names of the published code
(fairseq's `wav2vec2.py`, transformers' `modeling_wav2vec2.py` / `modeling_wavlm.py`) and of
`torchaudio.models.wav2vec2` (whose `utils.import_fairseq_model` and `import_huggingface_model`
convert live model objects, which would need fairseq or transformers installed).
"""
from __future__ import annotations

import re

import torch

_POS = "encoder.transformer.pos_conv_embed.conv."
_G, _V = _POS + "parametrizations.weight.original0", _POS + "parametrizations.weight.original1"  # weight norm
_LAYER = r"encoder.transformer.layers.\1."

FAIRSEQ_RULES = [  # (full-match pattern, replacement)
    (r"feature_extractor\.conv_layers\.(\d+)\.0\.(weight|bias)", r"feature_extractor.conv_layers.\1.conv.\2"),
    (r"feature_extractor\.conv_layers\.0\.2\.(weight|bias)", r"feature_extractor.conv_layers.0.layer_norm.\1"),
    (r"feature_extractor\.conv_layers\.(\d+)\.2\.1\.(weight|bias)", r"feature_extractor.conv_layers.\1.layer_norm.\2"),
    (r"layer_norm\.(weight|bias)", r"encoder.feature_projection.layer_norm.\1"),
    (r"post_extract_proj\.(weight|bias)", r"encoder.feature_projection.projection.\1"),
    (r"encoder\.pos_conv\.0\.bias", _POS + "bias"),
    (r"encoder\.pos_conv\.0\.(?:weight_g|parametrizations\.weight\.original0)", _G),
    (r"encoder\.pos_conv\.0\.(?:weight_v|parametrizations\.weight\.original1)", _V),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.transformer.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.self_attn\.([qkv]_proj|out_proj)\.(weight|bias)", _LAYER + r"attention.\2.\3"),
    (r"encoder\.layers\.(\d+)\.self_attn_layer_norm\.(weight|bias)", _LAYER + r"layer_norm.\2"),
    (r"encoder\.layers\.(\d+)\.fc1\.(weight|bias)", _LAYER + r"feed_forward.intermediate_dense.\2"),
    (r"encoder\.layers\.(\d+)\.fc2\.(weight|bias)", _LAYER + r"feed_forward.output_dense.\2"),
    (r"encoder\.layers\.(\d+)\.final_layer_norm\.(weight|bias)", _LAYER + r"final_layer_norm.\2"),
]
FAIRSEQ_UNUSED = (r"mask_emb|quantizer\..*|project_q\..*|final_proj\..*|label_embs_concat|target_glu\..*"
                  r"|w2v_encoder\.proj\..*")

HF_RULES = [
    (r"feature_extractor\.conv_layers\.(\d+)\.(conv|layer_norm)\.(weight|bias)",
     r"feature_extractor.conv_layers.\1.\2.\3"),
    (r"feature_projection\.(layer_norm|projection)\.(weight|bias)", r"encoder.feature_projection.\1.\2"),
    (r"encoder\.pos_conv_embed\.conv\.bias", _POS + "bias"),
    (r"encoder\.pos_conv_embed\.conv\.(?:weight_g|parametrizations\.weight\.original0)", _G),
    (r"encoder\.pos_conv_embed\.conv\.(?:weight_v|parametrizations\.weight\.original1)", _V),
    (r"encoder\.layer_norm\.(weight|bias)", r"encoder.transformer.layer_norm.\1"),
    (r"encoder\.layers\.(\d+)\.attention\.([qkv]_proj|out_proj)\.(weight|bias)", _LAYER + r"attention.\2.\3"),
    (r"encoder\.layers\.(\d+)\.(layer_norm|final_layer_norm)\.(weight|bias)", _LAYER + r"\2.\3"),
    (r"encoder\.layers\.(\d+)\.feed_forward\.(intermediate_dense|output_dense)\.(weight|bias)",
     _LAYER + r"feed_forward.\2.\3"),
    # WavLM's relative position bias and gate (torchaudio keeps HF's names)
    (r"encoder\.layers\.(\d+)\.attention\."
     r"(rel_attn_embed\.weight|gru_rel_pos_linear\.(?:weight|bias)|gru_rel_pos_const)", _LAYER + r"attention.\2"),
]
HF_UNUSED = r"masked_spec_embed|quantizer\..*|project_hid\..*|project_q\..*|lm_head\..*"
HF_PREFIXES = ("wav2vec2.", "hubert.", "wavlm.")


class KeyMapError(ValueError):
    """A state dict key that no map knows."""


def layout(state: dict) -> str:
    """Which naming `state` uses: 'torchaudio', 'fairseq' or 'huggingface'."""
    keys = list(state)
    if any(k.startswith("encoder.transformer.") for k in keys):
        return "torchaudio"
    if any(".pos_conv_embed." in k or k.startswith(HF_PREFIXES) or k.startswith("feature_projection.") for k in keys):
        return "huggingface"
    if any(k.startswith(("encoder.pos_conv.", "post_extract_proj.")) or ".self_attn." in k for k in keys):
        return "fairseq"
    raise KeyMapError("not a wav2vec 2.0 / HuBERT / WavLM state dict (no encoder keys of fairseq, "
                      "Hugging Face or torchaudio)")


def _apply(state: dict, rules, unused: str, name: str) -> dict:
    compiled = [(re.compile(p), r) for p, r in rules]
    out = {}
    for key, value in state.items():
        for pattern, replacement in compiled:
            if pattern.fullmatch(key):
                out[pattern.sub(replacement, key)] = value
                break
        else:
            if not re.fullmatch(unused, key):
                raise KeyMapError(f"unexpected key {key!r} for a {name} state dict")
    return out


def from_fairseq(state: dict) -> dict:
    """fairseq wav2vec 2.0 / HuBERT names -> torchaudio's; pre-training-only keys dropped."""
    state = {k[len("w2v_encoder.w2v_model."):] if k.startswith("w2v_encoder.w2v_model.") else k: v
             for k, v in state.items()}
    return _apply(state, FAIRSEQ_RULES, FAIRSEQ_UNUSED, "fairseq wav2vec 2.0")


def from_huggingface(state: dict) -> dict:
    """Hugging Face wav2vec 2.0 / HuBERT / WavLM names -> torchaudio's. WavLM's separate
    q, k, v projections become the rows [q; k; v] of torchaudio's `in_proj` (its attention is
    `torch.nn.MultiheadAttention`), its `out_proj` moves under `attention.attention.`."""
    prefix = next((p for p in HF_PREFIXES if any(k.startswith(p) for k in state)), "")
    # the heads of ...ForCTC / ...ForPreTraining sit beside the prefix: left for HF_UNUSED
    state = {k[len(prefix):] if prefix and k.startswith(prefix) else k: v for k, v in state.items()}
    out = _apply(state, HF_RULES, HF_UNUSED, "Hugging Face wav2vec 2.0")
    if any(".gru_rel_pos_const" in k for k in out):  # WavLM
        layers = sorted({int(m.group(1)) for k in out if (m := re.match(r"encoder\.transformer\.layers\.(\d+)\.", k))})
        for i in layers:
            base = f"encoder.transformer.layers.{i}.attention."
            for kind in ("weight", "bias"):
                parts = [out.pop(f"{base}{p}_proj.{kind}") for p in "qkv"]
                out[f"{base}attention.in_proj_{kind}"] = torch.cat(parts)
                out[f"{base}attention.out_proj.{kind}"] = out.pop(f"{base}out_proj.{kind}")
    return out


def to_torchaudio(state: dict) -> dict:
    """Any supported layout -> torchaudio's names (torchaudio's own passes unchanged)."""
    kind = layout(state)
    if kind == "fairseq":
        return from_fairseq(state)
    if kind == "huggingface":
        return from_huggingface(state)
    return dict(state)
