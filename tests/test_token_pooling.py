"""benchmarks/token_pooling.py: the two poolings of a model's output frames."""
import torch

from conftest import tiny_config
from hear_gram import gram_t_patch
from hear_gram.checkpoint import save_model
from hear_gram.model import GramEncoder

from benchmarks.token_pooling import pooled_embedder


def _weights(tmp_path):
    torch.manual_seed(0)
    save_model(GramEncoder(tiny_config()), tmp_path / "w")
    return str(tmp_path / "w")


def test_mean_pooling_is_the_scene_embedding(tmp_path):
    w = _weights(tmp_path)
    audio = torch.randn(2, 2, 96_000, generator=torch.Generator().manual_seed(1)) * 0.1
    model = gram_t_patch.load_model(w)
    got = pooled_embedder("gram_t_patch", w, "mean")(audio)
    torch.testing.assert_close(got, gram_t_patch.get_scene_embeddings(audio, model), atol=1e-5, rtol=1e-5)


def test_power_weighting_follows_the_loud_frames(tmp_path):
    """A clip loud for 2 s and silent after: the power-weighted pooling is the mean of the loud part's output
    frames (25 of them, 8 log-mel frames each), not the mean of all frames."""
    w = _weights(tmp_path)
    audio = torch.zeros(1, 2, 128_000)
    audio[..., :64_000] = torch.randn(1, 2, 64_000, generator=torch.Generator().manual_seed(2)) * 0.1
    tok, _ = gram_t_patch.get_timestamp_embeddings(audio, gram_t_patch.load_model(w))
    loud, everything = tok[:, :25].mean(1), tok.mean(1)
    got = pooled_embedder("gram_t_patch", w, "power-weighted")(audio)
    err = lambda a, b: float((a - b).norm() / b.norm())
    assert err(got, loud) < 0.02
    assert err(everything, loud) > 0.2


def test_unknown_pooling_is_named(tmp_path):
    import pytest
    with pytest.raises(ValueError, match="'max'"):
        pooled_embedder("gram_t_patch", _weights(tmp_path), "max")
