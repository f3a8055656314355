import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no Hub access here; read when huggingface_hub imports

from pathlib import Path

import pytest
import torch
from torch import nn

from nablatau.errors import ConfigError
from nablatau.models import TextClassifier, default_text_encoder, load_tokenizer, resnet18, without_head_dropout


def test_resnet18_logits_shape_and_parameter_count():
    model = resnet18(num_classes=10).eval()
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 10)
    # torchvision's ResNet-18 with a 10-way head, unchanged.
    assert sum(p.numel() for p in model.parameters()) == 11_181_642


def test_resnet18_rejects_bad_num_classes():
    with pytest.raises(ConfigError, match="num_classes to be a positive integer"):
        resnet18(num_classes=0)


def test_default_text_encoder_is_a_local_model_folder():
    folder = Path(default_text_encoder())
    assert (folder / "config.json").is_file()
    assert any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return TextClassifier()


def test_text_classifier_logits_shape(classifier, tokenizer):
    batch = tokenizer(["I love this!", "This is awful and sad."], padding=True, return_tensors="pt")
    assert "token_type_ids" in batch  # passed through to the BERT-style encoder
    classifier.eval()
    with torch.no_grad():
        logits = classifier(**batch)
    assert logits.shape == (2, 28)
    assert torch.isfinite(logits).all()


def test_text_classifier_head_follows_reference(classifier):
    dropouts = [m for m in classifier.modules() if isinstance(m, nn.Dropout) and m.p == 0.5]
    assert dropouts == [classifier.dropout]
    assert classifier.classifier.out_features == 28
    assert classifier.classifier.in_features == classifier.encoder.config.hidden_size == 384


def test_text_classifier_eval_is_deterministic_and_train_is_not(classifier, tokenizer):
    batch = tokenizer(["what a day", "ok"], padding=True, return_tensors="pt")
    classifier.eval()
    with torch.no_grad():
        first, second = classifier(**batch), classifier(**batch)
    assert torch.equal(first, second)
    classifier.train()
    with torch.no_grad():
        noisy = classifier(**batch)
    classifier.eval()
    assert not torch.equal(first, noisy)  # dropout is active in train mode


def test_without_head_dropout_is_the_references_unlearning_model(classifier, tokenizer):
    # The reference rebuilds the classifier with ret_model(n_train_steps, 0.0) and loads the weights.
    unlearning = without_head_dropout(classifier)
    assert unlearning.dropout.p == 0.0 and classifier.dropout.p == 0.5  # a copy; the original is untouched
    encoder_dropouts = [m.p for m in unlearning.encoder.modules() if isinstance(m, nn.Dropout)]
    assert encoder_dropouts and all(p > 0 for p in encoder_dropouts)  # the encoder's own dropout stays
    batch = tokenizer(["what a day", "ok"], padding=True, return_tensors="pt")
    classifier.eval()
    unlearning.eval()
    with torch.no_grad():
        assert torch.equal(classifier(**batch), unlearning(**batch))  # same weights
    with pytest.raises(ConfigError, match="expects a TextClassifier"):
        without_head_dropout(nn.Linear(2, 2))


def test_text_classifier_drops_arguments_the_encoder_does_not_take(classifier, tokenizer):
    batch = dict(tokenizer(["fine"], return_tensors="pt"))
    classifier.eval()
    with torch.no_grad():
        plain = classifier(**batch)
        extra = classifier(**batch, sample_index=torch.tensor([7]))
    assert torch.equal(plain, extra)


def test_text_classifier_accepts_an_encoder_module(classifier):
    model = TextClassifier(classifier.encoder, num_labels=3, dropout=0.1)
    ids = torch.tensor([[101, 2307, 102]])
    assert model.eval()(ids).shape == (1, 3)


def test_text_classifier_uses_first_token_without_pooler():
    class Encoder(nn.Module):
        config = type("Config", (), {"hidden_size": 4})()

        def forward(self, input_ids, attention_mask=None):
            hidden = torch.arange(input_ids.numel() * 4, dtype=torch.float32)
            return type("Out", (), {"last_hidden_state": hidden.view(*input_ids.shape, 4)})()

    model = TextClassifier(Encoder(), num_labels=2, dropout=0.0)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))
        model.classifier.bias.zero_()
        logits = model(torch.zeros(2, 3, dtype=torch.long))
    # sample 0's first token holds 0..3, sample 1's first token holds 12..15
    assert logits.tolist() == [[0.0, 3.0], [12.0, 15.0]]


def test_unknown_hub_name_offline_is_a_config_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    offline = "(?s)could not be loaded offline.*HF_HUB_OFFLINE=1"
    with pytest.raises(ConfigError, match=offline) as info:
        TextClassifier("nablatau-tests/no-such-model")
    assert default_text_encoder() in str(info.value)
    with pytest.raises(ConfigError, match="could not be loaded offline"):
        load_tokenizer("nablatau-tests/no-such-model")


def test_text_classifier_rejects_bad_settings():
    with pytest.raises(ConfigError, match="dropout in"):
        TextClassifier(nn.Identity(), dropout=1.5)
    with pytest.raises(ConfigError, match="hidden_size"):
        TextClassifier(nn.Identity())


def test_mean_pooling_averages_only_unmasked_tokens():
    from nablatau.models import TextClassifier

    classifier = TextClassifier(num_labels=3, dropout=0.0, pooling="mean").eval()
    ids = torch.tensor([[101, 2023, 2003, 102, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    with torch.no_grad():
        padded = classifier(input_ids=ids, attention_mask=mask)
        trimmed = classifier(input_ids=ids[:, :4], attention_mask=mask[:, :4])
    assert torch.allclose(padded, trimmed, atol=1e-5)
    with pytest.raises(ConfigError, match="pooling in"):
        TextClassifier(num_labels=3, pooling="max")
