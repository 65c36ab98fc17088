"""SSL-AASIST: key maps of the published checkpoints, the model's contract, its training recipes.

The key maps are checked on synthetic state dicts carrying the names and shapes of the public
checkpoints (XLS-R 300M: 24 layers, 1024 dims), as meta tensors (nothing allocated), against
torchaudio's own models of those sizes and, for fairseq names, against torchaudio's own
fairseq key map as an independent oracle. The network itself runs in a tiny configuration
(2 transformer layers, 64 dims).
"""
from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
import torchaudio.models as tam
from torchaudio.models.wav2vec2.utils.import_fairseq import _map_key as torchaudio_fairseq_key

import models
from conftest import REPO
from models import hparams, ssl_keys
from models.ssl_aasist import SSL_AASIST
from sourcetrace.errors import StageError
from sourcetrace.training import checkpoints, recipes, settings

XLSR_CONV = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
TINY_CONV = [(32, 10, 5)] + [(32, 3, 2)] * 4 + [(32, 2, 2)] * 2
TINY_SSL = {"extractor_mode": "layer_norm", "extractor_conv_layer_config": [list(c) for c in TINY_CONV],
            "extractor_conv_bias": True, "encoder_embed_dim": 64, "encoder_projection_dropout": 0.0,
            "encoder_pos_conv_kernel": 16, "encoder_pos_conv_groups": 4, "encoder_num_layers": 2,
            "encoder_num_heads": 4, "encoder_attention_dropout": 0.0, "encoder_ff_interm_features": 128,
            "encoder_ff_interm_dropout": 0.0, "encoder_dropout": 0.0, "encoder_layer_norm_first": True,
            "encoder_layer_drop": 0.0}
TINY = {"architecture": "SSL_AASIST", "ssl": "wav2vec2_model", "ssl_config": TINY_SSL,
        "filts": [24, [1, 8], [8, 8], [8, 16], [16, 16]], "gat_dims": [16, 8], "window_seconds": 1}


def meta(shapes: dict) -> dict:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def shapes_of(state: dict) -> dict:
    return {k: tuple(v.shape) for k, v in state.items()}


def fairseq_shapes(layers: int, dim: int, ffn: int, conv, pos_kernel: int, pos_groups: int) -> dict:
    """Names and shapes of fairseq's `Wav2Vec2Model.state_dict()` (layer-norm feature extractor
    with biases, as XLS-R), pre-training-only parameters included."""
    s, c_in = {}, 1
    for i, (c, k, _) in enumerate(conv):
        s |= {f"feature_extractor.conv_layers.{i}.0.weight": (c, c_in, k), f"feature_extractor.conv_layers.{i}.0.bias": (c,),
              f"feature_extractor.conv_layers.{i}.2.1.weight": (c,), f"feature_extractor.conv_layers.{i}.2.1.bias": (c,)}
        c_in = c
    s |= {"layer_norm.weight": (c_in,), "layer_norm.bias": (c_in,), "post_extract_proj.weight": (dim, c_in),
          "post_extract_proj.bias": (dim,), "encoder.pos_conv.0.bias": (dim,),
          "encoder.pos_conv.0.weight_g": (1, 1, pos_kernel), "encoder.pos_conv.0.weight_v": (dim, dim // pos_groups, pos_kernel),
          "encoder.layer_norm.weight": (dim,), "encoder.layer_norm.bias": (dim,)}
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            s |= {f"{p}self_attn.{proj}.weight": (dim, dim), f"{p}self_attn.{proj}.bias": (dim,)}
        s |= {f"{p}self_attn_layer_norm.weight": (dim,), f"{p}self_attn_layer_norm.bias": (dim,),
              f"{p}fc1.weight": (ffn, dim), f"{p}fc1.bias": (ffn,), f"{p}fc2.weight": (dim, ffn), f"{p}fc2.bias": (dim,),
              f"{p}final_layer_norm.weight": (dim,), f"{p}final_layer_norm.bias": (dim,)}
    s |= {"mask_emb": (dim,), "quantizer.vars": (1, 640, 384), "quantizer.weight_proj.weight": (640, c_in),
          "quantizer.weight_proj.bias": (640,), "project_q.weight": (768, 768), "project_q.bias": (768,),
          "final_proj.weight": (768, dim), "final_proj.bias": (768,)}
    return s


def huggingface_shapes(layers: int, dim: int, ffn: int, conv, heads: int, wavlm: bool = False) -> dict:
    """Names and shapes of `Wav2Vec2ForPreTraining` (XLS-R: layer norms, conv biases) or, with
    `wavlm`, of `WavLMModel` (base: group norm in the first convolution, no conv biases)."""
    s, c_in = {}, 1
    for i, (c, k, _) in enumerate(conv):
        s[f"feature_extractor.conv_layers.{i}.conv.weight"] = (c, c_in, k)
        if not wavlm:
            s |= {f"feature_extractor.conv_layers.{i}.conv.bias": (c,),
                  f"feature_extractor.conv_layers.{i}.layer_norm.weight": (c,),
                  f"feature_extractor.conv_layers.{i}.layer_norm.bias": (c,)}
        elif i == 0:
            s |= {"feature_extractor.conv_layers.0.layer_norm.weight": (c,), "feature_extractor.conv_layers.0.layer_norm.bias": (c,)}
        c_in = c
    s |= {"feature_projection.layer_norm.weight": (c_in,), "feature_projection.layer_norm.bias": (c_in,),
          "feature_projection.projection.weight": (dim, c_in), "feature_projection.projection.bias": (dim,),
          "encoder.pos_conv_embed.conv.bias": (dim,), "encoder.pos_conv_embed.conv.weight_g": (1, 1, 128),
          "encoder.pos_conv_embed.conv.weight_v": (dim, dim // 16, 128),
          "encoder.layer_norm.weight": (dim,), "encoder.layer_norm.bias": (dim,), "masked_spec_embed": (dim,)}
    for i in range(layers):
        p = f"encoder.layers.{i}."
        for proj in ("k_proj", "v_proj", "q_proj", "out_proj"):
            s |= {f"{p}attention.{proj}.weight": (dim, dim), f"{p}attention.{proj}.bias": (dim,)}
        s |= {f"{p}layer_norm.weight": (dim,), f"{p}layer_norm.bias": (dim,),
              f"{p}feed_forward.intermediate_dense.weight": (ffn, dim), f"{p}feed_forward.intermediate_dense.bias": (ffn,),
              f"{p}feed_forward.output_dense.weight": (dim, ffn), f"{p}feed_forward.output_dense.bias": (dim,),
              f"{p}final_layer_norm.weight": (dim,), f"{p}final_layer_norm.bias": (dim,)}
        if wavlm:
            s |= {f"{p}attention.gru_rel_pos_const": (1, heads, 1, 1),
                  f"{p}attention.gru_rel_pos_linear.weight": (8, dim // heads), f"{p}attention.gru_rel_pos_linear.bias": (8,)}
            if i == 0:
                s[f"{p}attention.rel_attn_embed.weight"] = (320, heads)
    if wavlm:
        return s
    s = {f"wav2vec2.{k}": v for k, v in s.items()}
    return s | {"quantizer.codevectors": (1, 640, 384), "quantizer.weight_proj.weight": (640, 512),
                "quantizer.weight_proj.bias": (640,), "project_hid.weight": (768, dim), "project_hid.bias": (768,),
                "project_q.weight": (768, 768), "project_q.bias": (768,)}


def torchaudio_shapes(builder) -> dict:
    with torch.device("meta"):
        return shapes_of(builder().state_dict())


# ---------------------------------------------------------------- key maps, real sizes

def test_fairseq_xlsr_300m_maps_onto_torchaudios_xlsr_300m():
    fairseq = fairseq_shapes(24, 1024, 4096, XLSR_CONV, 128, 16)
    mapped = ssl_keys.to_torchaudio(meta(fairseq))
    assert shapes_of(mapped) == torchaudio_shapes(tam.wav2vec2_xlsr_300m)
    # every name as torchaudio's own fairseq importer names it (its weight-norm names are the
    # pre-parametrization ones, which torch translates on loading)
    compat = {"parametrizations.weight.original0": "weight_g", "parametrizations.weight.original1": "weight_v"}
    for key in fairseq:
        ours = ssl_keys.from_fairseq({key: torch.empty(0)})
        theirs = torchaudio_fairseq_key(key)
        if theirs is None:
            assert ours == {}, key
            continue
        (name,) = ours
        for new, old in compat.items():
            name = name.replace(new, old)
        assert name == theirs, key


def test_huggingface_xlsr_300m_maps_onto_torchaudios_xlsr_300m():
    hf = huggingface_shapes(24, 1024, 4096, XLSR_CONV, 16)
    mapped = ssl_keys.to_torchaudio(meta(hf))
    assert shapes_of(mapped) == torchaudio_shapes(tam.wav2vec2_xlsr_300m)
    # torchaudio's Hugging Face importer loads HF's submodules into its own: feature_extractor
    # into feature_extractor, feature_projection into encoder.feature_projection, encoder into
    # encoder.transformer; the names below those prefixes are the same
    oracle = {"feature_extractor.": "feature_extractor.", "feature_projection.": "encoder.feature_projection.",
              "encoder.": "encoder.transformer."}
    for key in hf:
        inner = key.removeprefix("wav2vec2.")
        if not key.startswith("wav2vec2.") or inner == "masked_spec_embed":
            assert ssl_keys.from_huggingface({key: torch.empty(0)}) == {}
            continue
        prefix = next(p for p in oracle if inner.startswith(p))
        expected = oracle[prefix] + inner[len(prefix):]
        expected = expected.replace("conv.weight_g", "conv.parametrizations.weight.original0")
        expected = expected.replace("conv.weight_v", "conv.parametrizations.weight.original1")
        assert list(ssl_keys.from_huggingface({key: torch.empty(0)})) == [expected]


def test_huggingface_wavlm_base_maps_onto_torchaudios_wavlm_base():
    conv = [(512, 10, 5)] + [(512, 3, 2)] * 4 + [(512, 2, 2)] * 2
    mapped = ssl_keys.to_torchaudio(meta(huggingface_shapes(12, 768, 3072, conv, 12, wavlm=True)))
    assert shapes_of(mapped) == torchaudio_shapes(tam.wavlm_base)


def test_wavlm_projections_become_in_proj_rows_q_k_v():
    state = {f"encoder.layers.0.attention.{p}_proj.{kind}": torch.full((2,) if kind == "bias" else (2, 2), float(i))
             for i, p in enumerate("qkvo") for kind in ("weight", "bias")}
    state = {k.replace("o_proj", "out_proj"): v for k, v in state.items()}
    state["encoder.layers.0.attention.gru_rel_pos_const"] = torch.ones(1, 1, 1, 1)
    out = ssl_keys.from_huggingface(state)
    prefix = "encoder.transformer.layers.0.attention.attention."
    assert out[prefix + "in_proj_bias"].tolist() == [0, 0, 1, 1, 2, 2]
    assert out[prefix + "in_proj_weight"][:, 0].tolist() == [0, 0, 1, 1, 2, 2]
    assert out[prefix + "out_proj.weight"].eq(3).all()


def test_unknown_keys_are_errors_naming_the_key():
    with pytest.raises(ssl_keys.KeyMapError, match="unexpected key 'encoder.layers.0.self_attn.rotary.weight'"):
        ssl_keys.to_torchaudio({"post_extract_proj.weight": torch.empty(0),
                                "encoder.layers.0.self_attn.rotary.weight": torch.empty(0)})
    with pytest.raises(ssl_keys.KeyMapError, match="not a wav2vec 2.0"):
        ssl_keys.to_torchaudio({"fc.weight": torch.empty(0)})


# Tak et al.'s SSL_Anti-spoofing model.py (XLS-R 300M, filts [128, [1, 32], [32, 32], [32, 64],
# [64, 64]], gat_dims [64, 32], 2 classes): a sample of its back-end names and shapes
SSL_ANTI_SPOOFING_BACKEND = {
    "LL.weight": (128, 1024), "LL.bias": (128,), "first_bn.weight": (1,), "first_bn1.running_var": (64,),
    "encoder.0.0.conv1.weight": (32, 1, 2, 3), "encoder.1.0.bn1.weight": (32,), "encoder.2.0.conv_downsample.weight": (64, 32, 1, 3),
    "encoder.5.0.conv2.weight": (64, 64, 2, 3), "attention.0.weight": (128, 64, 1, 1), "attention.2.running_mean": (128,),
    "attention.3.weight": (64, 128, 1, 1), "pos_S": (1, 42, 64), "master1": (1, 1, 64), "master2": (1, 1, 64),
    "GAT_layer_S.att_weight": (64, 1), "GAT_layer_T.proj_with_att.weight": (64, 64),
    "HtrgGAT_layer_ST11.proj_type1.weight": (64, 64), "HtrgGAT_layer_ST11.att_weightM": (32, 1),
    "HtrgGAT_layer_ST22.proj_without_attM.weight": (32, 32), "pool_S.proj.weight": (1, 64), "pool_hT2.proj.weight": (1, 32),
    "out_layer.weight": (2, 160), "out_layer.bias": (2,),
}


def test_ssl_anti_spoofing_checkpoint_layout_maps_onto_the_default_model():
    with torch.device("meta"):
        model = SSL_AASIST({"architecture": "SSL_AASIST"}, 2)
    ours = shapes_of(model.state_dict())
    for key, shape in SSL_ANTI_SPOOFING_BACKEND.items():
        assert ours[key] == shape, key
    backend = {k: v for k, v in ours.items() if not k.startswith("ssl_model.")}
    checkpoint = {**{f"ssl_model.model.{k}": v for k, v in fairseq_shapes(24, 1024, 4096, XLSR_CONV, 128, 16).items()},
                  **backend}
    assert shapes_of(SSL_AASIST.convert_state_dict(meta(checkpoint))) == ours
    assert SSL_AASIST.num_classes_in(model.state_dict()) == 2
    config = json.loads((REPO / "config" / "SSL_AASIST.conf").read_text())["model_config"]
    assert models.check_model_config(config) is None
    with torch.device("meta"):  # the shipped config is that layout
        assert shapes_of(SSL_AASIST(config, 2).state_dict()) == ours


# ---------------------------------------------------------------- the model, tiny

def tiny(seed: int = 0, classes: int = 3, **extra) -> SSL_AASIST:
    torch.manual_seed(seed)
    model = SSL_AASIST({**TINY, **extra}, classes)
    recipes.init_untrained(model)
    return model.eval()


def fairseq_named(state: dict) -> dict:
    """`state`'s SSL part under fairseq names, as the SSL_Anti-spoofing repository saves it;
    the names from torchaudio's own fairseq map (weight norm as fairseq stores it)."""
    names = fairseq_shapes(2, 64, 128, TINY_CONV, 16, 4)
    inverse = {}
    for name in names:
        mapped = torchaudio_fairseq_key(name)
        if mapped is not None:
            mapped = mapped.replace("conv.weight_g", "conv.parametrizations.weight.original0")
            inverse[mapped.replace("conv.weight_v", "conv.parametrizations.weight.original1")] = name
    return {(f"ssl_model.model.{inverse[k[len('ssl_model.'):]]}" if k.startswith("ssl_model.") else k): v
            for k, v in state.items()}


def test_repository_checkpoint_file_loads_and_gives_the_same_embeddings(tmp_path):
    model = tiny()
    path = tmp_path / "repo.pth"
    torch.save(fairseq_named(model.state_dict()), path)
    loaded = models.load_model(TINY, path, "full")
    waves = torch.randn(2, 12000)
    with torch.inference_mode():
        np.testing.assert_allclose(loaded(waves)[0].numpy(), model(waves)[0].numpy(), rtol=0, atol=1e-6)
    torch.save({f"module.{k}": v for k, v in fairseq_named(model.state_dict()).items()}, tmp_path / "parallel.pth")
    models.load_model(TINY, tmp_path / "parallel.pth")  # saved from nn.DataParallel
    torch.save({"model": model.state_dict(), "classes": ["a", "b", "c"]}, tmp_path / "ours.pth")
    models.load_model(TINY, tmp_path / "ours.pth")  # the toolkit's own layout, strict
    broken = fairseq_named(model.state_dict())
    broken["ssl_model.model.encoder.layers.0.extra"] = torch.zeros(1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(models.CheckpointError, match="broken.pth: unexpected key 'encoder.layers.0.extra'"):
        models.load_model(TINY, tmp_path / "broken.pth")


def test_embedding_does_not_depend_on_batch_neighbours():
    model = tiny()
    waves = torch.randn(3, 9000)
    with torch.inference_mode():
        together = model(waves)[0]
        alone = torch.cat([model(w[None])[0] for w in waves])
    assert together.shape == (3, 40)
    np.testing.assert_allclose(together.numpy(), alone.numpy(), rtol=0, atol=1e-5)


def test_long_inputs_are_the_mean_of_evenly_spaced_windows():
    model = tiny()  # window_seconds 1: 16000 samples
    assert model.windows(16000) == [0]
    # 3 windows of ceil(40000 / 3) = 13334 samples, starts i * (40000 - 13334) / 2; the last ends at 40000
    assert model.windows(40000) == [0, 13333, 26666]
    waves = torch.randn(2, 40000)
    with torch.inference_mode():
        embedding, logits = model(waves)
        pieces = [model._forward(waves[:, s:s + 13334]) for s in (0, 13333, 26666)]
        whole = model._forward(waves)
    expected = torch.stack(pieces).mean(dim=0)
    np.testing.assert_allclose(embedding.numpy(), expected.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(logits.numpy(), model.out_layer(expected).detach().numpy(), rtol=0, atol=1e-6)
    assert not torch.allclose(embedding, whole, atol=1e-3)  # windowing changes a long input's embedding
    model.train()
    assert model.windows(40000) == [0]  # training crops go whole


def test_ssl_layer_choices():
    model = tiny()
    waves = torch.randn(1, 8000)
    with torch.inference_mode():
        layers = model.ssl_model.extract_features(waves)[0]
        last = model.ssl_model.encoder.transformer.layer_norm(layers[-1])
        np.testing.assert_allclose(model.ssl_features(waves).numpy(), last.numpy(), atol=1e-5)
        first = tiny(ssl_layer=1)
        np.testing.assert_allclose(first.ssl_features(waves).numpy(),
                                   first.ssl_model.extract_features(waves)[0][0].numpy(), atol=1e-6)
        weighted = tiny(ssl_layer="weighted")  # the weights start equal: the plain mean
        layers = weighted.ssl_model.extract_features(waves)[0]
        np.testing.assert_allclose(weighted.ssl_features(waves).numpy(), ((layers[0] + layers[1]) / 2).numpy(),
                                   atol=1e-6)
    assert first.unused_parameter_names()[0] == "ssl_model.encoder.transformer.layers.1.attention.k_proj.weight"
    assert "ssl_model.encoder.transformer.layer_norm.weight" in weighted.unused_parameter_names()


def test_bf16_autocast_stays_close_to_fp32():
    model = tiny()
    waves = torch.randn(2, 16000)
    with torch.inference_mode():
        fp32 = model(waves)[0]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16 = model(waves)[0].float()
    cos = torch.nn.functional.cosine_similarity(fp32, bf16)
    assert cos.min() > 0.99, cos


def test_shortest_input_is_three_frames():
    model = tiny()
    assert model.min_samples == 400 + 2 * 320  # receptive field 400, hop 320
    with torch.inference_mode():
        assert model(torch.randn(1, model.min_samples))[0].shape == (1, 40)
    with pytest.raises(RuntimeError):
        model(torch.randn(1, model.min_samples - 320))


@pytest.mark.parametrize("change,message", [
    ({"ssl": "wav2vec3"}, "'ssl' is 'wav2vec3'"),
    ({"ssl": "wav2vec2_xlsr_300m", "ssl_config": {"encoder_num_layers": 2}},
     "'ssl_config' key 'encoder_num_layers' is not an argument of torchaudio's wav2vec2_xlsr_300m"),
    ({"ssl_config": {**TINY_SSL, "encoder_num_heads": "4"}},
     "'ssl_config.encoder_num_heads' is '4'; expected a positive integer"),
    ({"ssl_config": {k: v for k, v in TINY_SSL.items() if k != "encoder_dropout"}},
     "'ssl_config' lacks encoder_dropout: torchaudio's wav2vec2_model needs every argument"),
    ({"ssl_layer": 3}, "'ssl_layer' is 3; wav2vec2_model has layers 1 to 2"),
    ({"ssl_layer": "middle"}, "'ssl_layer' is 'middle'"),
    ({"head": "arcface"}, "'head' is 'arcface'; expected 'linear' or 'cosine'"),
    ({"filts": [24, [1, 8]]}, "'filts' is"),
    ({"window": 5}, "unknown SSL_AASIST key 'window'"),
])
def test_hyper_parameters_are_checked(change, message):
    problem = models.check_model_config({**copy.deepcopy(TINY), **change})
    assert problem is not None and problem.startswith(message), problem


def test_builder_tables_match_torchaudio():
    """hparams checks `ssl_config` without importing torch, from its own tables of torchaudio's
    builders: the same arguments and layer counts as torchaudio's."""
    import inspect
    for name, arguments in hparams.SSL_ARGUMENTS.items():
        signature = [p for p in inspect.signature(getattr(tam, name)).parameters if p != "aux_num_out"]
        assert sorted(arguments) == sorted(signature), name
    for name, layers in hparams.SSL_LAYERS.items():
        with torch.device("meta"):
            assert len(getattr(tam, name)().encoder.transformer.layers) == layers, name


def test_max_seconds_default_is_the_architectures():
    assert models.default_max_seconds(TINY) == 600
    assert models.default_max_seconds({"architecture": "AASIST"}) == 300


# ---------------------------------------------------------------- recipes

def test_recipe_defaults_are_the_published_ones():
    cfg = {"model_config": {"architecture": "SSL_AASIST"}, "train": {}}
    tak = settings.train_settings(cfg)
    assert (tak["optimizer"], tak["lr"], tak["weight_decay"], tak["betas"], tak["batch_size"], tak["epochs"],
            tak["scheduler"], tak["crop_samples"], tak["loss"], tak["ssl_frozen_epochs"], tak["mixup_alpha"]) == \
        ("adam", 1e-6, 1e-4, [0.9, 0.999], 14, 100, "constant", 64600, "ce", 0, 0.0)
    cfg["train"] = {"recipe": "chhibber2025", "epochs": 3}
    ch = settings.train_settings(cfg)
    assert (ch["lr"], ch["batch_size"], ch["scheduler"], ch["lr_min"], ch["loss"], ch["aam_scale"], ch["aam_margin"],
            ch["aam_warmup_epochs"], ch["mixup_alpha"], ch["mixup_start_epoch"], ch["ssl_frozen_epochs"], ch["epochs"]) == \
        (1e-4, 16, "cosine", 5e-6, "aam", 30.0, 0.5, 10, 0.4, 10, 5, 3)


def test_aam_loss_by_hand_with_margin_warm_up():
    s = {"loss": "aam", "aam_scale": 30.0, "aam_margin": 0.5, "aam_warmup_epochs": 10}
    cosines, target = torch.tensor([[0.3, 0.4, -0.1]]), torch.tensor([0])
    for epoch, margin in ((0, 0.0), (4, 0.2), (10, 0.5), (25, 0.5)):
        assert recipes.aam_margin(s, epoch) == pytest.approx(margin)
        z = 30 * np.array([np.cos(np.arccos(0.3) + margin), 0.4, -0.1])
        expected = -(z[0] - np.log(np.exp(z).sum()))  # 3.0486 (no margin) to 14.24 (0.5)
        assert float(recipes.loss_function(s, ["a", "b", "c"], epoch)(cosines, target)) == pytest.approx(expected, rel=1e-5)


def test_mixup_draws_depend_on_seed_epoch_step_and_rank_only():
    s = {"seed": 7, "mixup_alpha": 0.4, "mixup_start_epoch": 2}
    assert recipes.mixup_draw(s, 1, 5, 0, 8) is None  # before the start epoch
    perm, lam = recipes.mixup_draw(s, 2, 5, 0, 8)
    again = recipes.mixup_draw(s, 2, 5, 0, 8)
    assert torch.equal(perm, again[0]) and lam == again[1] and 0 < lam < 1
    assert sorted(perm.tolist()) == list(range(8))
    assert recipes.mixup_draw(s, 2, 6, 0, 8)[1] != lam


def test_mixup_mixes_the_ssl_features():
    model = tiny()
    reference = copy.deepcopy(model)
    model.train()
    waves = torch.randn(2, 8000)
    torch.manual_seed(0)
    model.mixup = (torch.tensor([1, 0]), 1.0)  # lam 1: each keeps its own features
    plain = model(waves)[0]
    torch.manual_seed(0)
    model.mixup = None
    assert torch.allclose(plain, model(waves)[0])
    torch.manual_seed(0)
    model.mixup = (torch.tensor([1, 0]), 0.0)  # lam 0: each gets its partner's features
    swapped = model(waves)[0]
    torch.manual_seed(0)  # the same dropout masks; training BatchNorm's batch statistics ignore the order
    model.mixup = None
    assert torch.allclose(swapped, model(waves.flip(0))[0], atol=1e-6)
    assert not torch.allclose(swapped, plain, atol=1e-3)
    model.load_state_dict(reference.state_dict())  # training-mode passes moved the BatchNorm statistics
    model.eval()
    model.mixup = (torch.tensor([1, 0]), 0.0)  # never at inference
    with torch.inference_mode():
        assert torch.equal(model(waves)[0], reference(waves)[0])


def test_loss_and_head_must_agree():
    cfg = {"model_config": {**TINY, "head": "linear"}, "train": {"recipe": "chhibber2025"}}
    with pytest.raises(StageError, match="'train.loss' 'aam' needs model_config.head 'cosine' \\(it is 'linear'\\)"):
        settings.validate_train_section(cfg)
    cfg["model_config"]["head"] = "cosine"
    settings.validate_train_section(cfg)


@pytest.mark.parametrize("layout", ["huggingface", "fairseq"])
def test_ssl_weights_start_the_front_end(tmp_path, layout):
    source = tiny(seed=1)
    ssl = {f"ssl_model.{k}": v for k, v in source.ssl_model.state_dict().items()}
    if layout == "fairseq":
        state = {k[len("ssl_model.model."):]: v for k, v in fairseq_named(ssl).items()}
    else:  # Hugging Face's names, as torchaudio's importer pairs the submodules
        renames = (("encoder.feature_projection.", "feature_projection."), ("encoder.transformer.", "encoder."),
                   ("conv.parametrizations.weight.original0", "conv.weight_g"),
                   ("conv.parametrizations.weight.original1", "conv.weight_v"))
        state = {}
        for key, value in source.ssl_model.state_dict().items():
            for old, new in renames:
                key = key.replace(old, new)
            state[f"wav2vec2.{key}"] = value
    path = tmp_path / "ssl.pt"
    torch.save(state, path)
    model = tiny(seed=2)
    checkpoints.load_ssl_weights(model, path)
    for key, value in source.ssl_model.state_dict().items():
        assert torch.equal(model.ssl_model.state_dict()[key], value), key
    torch.save({"unrelated.weight": torch.zeros(1)}, path)
    with pytest.raises(StageError, match=f"train.ssl_weights: {path}: not a wav2vec 2.0"):
        checkpoints.load_ssl_weights(model, path)
