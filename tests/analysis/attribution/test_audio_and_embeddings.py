"""Issue #11 items 2/3: models without `logits` (an encoder's pooled output is explained, or a
warning names the guessed field), audio inputs refused clearly by the CAMs that cannot map
them, and the CAM layer search skipping weight-norm parametrizations. Tiny configs, no
downloads."""

from __future__ import annotations

import warnings

import pytest
import torch
import transformers as T
from torch import nn

import deepscope
from deepscope.analysis.attribution import AttributionWarning
from deepscope.analysis.attribution.layer_search import cam_layers
from deepscope.capture.hooks import find_module


def _clip() -> nn.Module:
    cfg = T.CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=64)  # fmt: skip
    return T.CLIPVisionModel(cfg).eval()


def _wav2vec() -> nn.Module:
    cfg = T.Wav2Vec2Config(vocab_size=32, hidden_size=32, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=64, conv_dim=(16, 16),
                           conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=16,
                           num_conv_pos_embedding_groups=2, num_labels=3)  # fmt: skip
    return T.Wav2Vec2ForSequenceClassification(cfg).eval()


def _whisper() -> nn.Module:
    cfg = T.WhisperConfig(vocab_size=100, num_mel_bins=8, d_model=32, encoder_layers=1,
                          encoder_attention_heads=2, encoder_ffn_dim=64, decoder_layers=1,
                          decoder_attention_heads=2, decoder_ffn_dim=64,
                          max_source_positions=16, num_labels=3)  # fmt: skip
    return T.WhisperForAudioClassification(cfg).eval()


def test_encoder_without_logits_explains_its_pooled_output_without_warning() -> None:
    torch.manual_seed(0)
    model, x = _clip(), torch.rand(1, 3, 32, 32)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AttributionWarning)
        default = deepscope.attribute(model, x, target=3, method="saliency").attributions
    pooled = deepscope.attribute(model, x, target=3, method="saliency", output="pooler_output")
    last = deepscope.attribute(
        model, x, target=3, method="saliency", output=lambda o: o.last_hidden_state[:, -1]
    )
    assert torch.allclose(default, pooled.attributions)
    assert not torch.allclose(default, last.attributions)


class _Hidden(nn.Module):
    """Returns a ModelOutput-like dict with only a (B, T, C) hidden state."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.lin(x)
        return {"last_hidden_state": h, "attentions": h.softmax(-1)}


def test_guessed_output_field_is_named_in_a_warning() -> None:
    with pytest.warns(AttributionWarning, match=r"'last_hidden_state'.*output="):
        deepscope.attribute(_Hidden(), torch.rand(2, 3, 4), target=1, method="saliency")


@pytest.mark.parametrize("method", ["score_cam", "grad_cam", "eigen_cam"])
def test_cams_refuse_raw_audio_with_a_typed_error_naming_working_methods(method: str) -> None:
    with pytest.raises(ValueError, match="saliency, integrated_gradients"):
        deepscope.attribute(_wav2vec(), torch.randn(2, 400), target=1, method=method)


def test_score_cam_refuses_a_spectrogram_input_clearly() -> None:
    with pytest.raises(ValueError, match=r"score_cam masks an image input.*\(2, 8, 32\)"):
        deepscope.attribute(_whisper(), torch.randn(2, 8, 32), target=1, method="score_cam")


def test_saliency_still_works_on_raw_audio() -> None:
    result = deepscope.attribute(_wav2vec(), torch.randn(2, 400), target=1, method="saliency")
    assert tuple(result.attributions.shape) == (2, 400)


def test_layer_search_skips_weight_norm_parametrizations() -> None:
    """Wav2Vec2's positional conv is weight-normed; its parametrization module outputs the
    weight (first axis = out channels), which is no activation."""
    model = _wav2vec()
    assert any(".parametrizations." in n for n, _ in model.named_modules())
    ranked = cam_layers(model, torch.randn(2, 400))
    assert ranked, "some activation layer qualifies"
    for name in ranked:
        assert "parametrizations" not in name.split("."), name
        assert not isinstance(find_module(model, name)[0], nn.ParameterList)
