"""TCAV scores: equal to captum's with the same CAVs; gradients; refusal of constant-gradient layers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from concepts import ClassifierModel, ModelError
from concepts.tcav import (
    ProbeTask,
    check_gradients_vary,
    class_gradients,
    fit_cav_batch,
    shared_logit_share,
    tcav_scores,
)


def _model_and_images(n: int = 48, seed: int = 0) -> tuple[ClassifierModel, np.ndarray]:
    model = ClassifierModel.build("tiny-cnn", ("melanoma", "nevus"), seed=seed)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)
    images[: n // 2, 10:30, 10:30] = (200, 40, 40)  # a red square on half of them
    return model, images


def test_scores_equal_captum_with_the_same_cavs(tmp_path):
    """Inject the project's CAVs into captum.concept.TCAV; sign_count and magnitude must agree."""
    from captum.concept import TCAV, Concept
    from captum.concept._utils.classifier import Classifier

    model, images = _model_and_images()
    x = model.preprocess(images)
    concept_x = model.preprocess(images[:12])
    rnd_x = [model.preprocess(images[24 + 6 * r : 30 + 6 * r]) for r in range(4)]
    layer = "conv2"
    with torch.inference_mode():
        acts = {k: model.activations(v, [layer])[layer].numpy() for k, v in
                {"c": concept_x, **{f"r{r}": t for r, t in enumerate(rnd_x)}}.items()}
    pool = np.concatenate([a.reshape(len(a), -1) for a in acts.values()])
    tasks = [ProbeTask(np.arange(12), np.arange(12 + 6 * r, 18 + 6 * r), r) for r in range(4)]
    batch = fit_cav_batch(pool, tasks, probe="ridge", test_size=0.34)
    vectors = {(0, r + 1): batch.vectors[r] for r in range(4)}  # concept id 0 vs random id r+1

    class Injected(Classifier):
        """Returns the project's unit CAV instead of training one (captum's classifier API)."""

        def __init__(self) -> None:
            self._classes: list[int] = []

        def train_and_eval(self, dataloader, **kwargs):
            ids = torch.cat([lab for _, lab in dataloader]).unique().tolist()
            self._classes = sorted(int(i) for i in ids)
            return {"accs": torch.tensor(1.0)}

        def weights(self):
            v = torch.as_tensor(vectors[tuple(self._classes)])
            return torch.stack([v if c == 0 else -v for c in self._classes])

        def classes(self):
            return self._classes

    def loader(t):
        return torch.utils.data.DataLoader(t, batch_size=8)

    concept = Concept(0, "red", loader(concept_x))
    randoms = [Concept(r + 1, f"random_{r}", loader(t)) for r, t in enumerate(rnd_x)]
    with torch.inference_mode():
        all_acts = model.activations(x, [layer])[layer].numpy()
    for k in (0, 1):
        tcav = TCAV(model.module, layers=[f"stages.{layer}"], classifier=Injected(),
                    save_path=str(tmp_path / f"cav{k}"))
        ref = tcav.interpret(x, [[concept, r] for r in randoms], target=k)
        grads = class_gradients(model, layer, all_acts, k)
        ours = tcav_scores(grads, batch.vectors)
        for r in range(4):
            got = ref[f"0-{r + 1}"][f"stages.{layer}"]
            assert abs(float(got["sign_count"][0]) - ours.sign_count[r]) <= 1e-6
            # captum 0.9's "magnitude" is the mean directional derivative
            assert abs(float(got["magnitude"][0]) - ours.mean_derivative[r]) <= 1e-6
        # and the normalised magnitude Σ S⁺ / Σ|S| from captum's own layer gradients
        from captum.attr import LayerGradientXActivation

        lg = LayerGradientXActivation(model.module, model.module.stages[layer], multiply_by_inputs=False)
        S = lg.attribute(x, target=k).reshape(len(x), -1).detach().numpy() @ batch.vectors.T
        mag = np.where(S > 0, S, 0).sum(0) / np.abs(S).sum(0)
        np.testing.assert_allclose(ours.magnitude, mag, atol=1e-6)
    assert 0.0 < ours.sign_count.mean() < 1.0


def test_gradient_matches_finite_differences():
    model, images = _model_and_images(n=8)
    with torch.inference_mode():
        h = model.activations(model.preprocess(images), ["conv2"])["conv2"].numpy()
    g = class_gradients(model, "conv2", h, 1, batch_size=3)
    v = np.random.default_rng(1).normal(size=g.shape[1]).astype(np.float32)
    v /= np.linalg.norm(v)
    eps = 1e-3
    with torch.no_grad():
        z0 = model.forward_from("conv2", torch.as_tensor(h))[:, 1]
        z1 = model.forward_from("conv2", torch.as_tensor(h + eps * v.reshape(h.shape[1:])))[:, 1]
    fd = ((z1 - z0) / eps).numpy()
    np.testing.assert_allclose(g @ v, fd, rtol=0.05, atol=1e-3)
    # centred logit: z_k - mean_j z_j (invariant to a shift shared by all logits)
    gc = class_gradients(model, "conv2", h, 1, target="centered_logit")
    g0 = class_gradients(model, "conv2", h, 0)
    np.testing.assert_allclose(gc, (g - g0) / 2, atol=1e-6)
    # shared part of the class gradients: ||mean_k g_k|| / mean_k ||g_k||, recomputed by hand
    g_all = [class_gradients(model, "conv2", h, k) for k in range(2)]
    expect = np.linalg.norm(np.mean(g_all, axis=0)) / np.mean([np.linalg.norm(x) for x in g_all])
    assert shared_logit_share(model, "conv2", h) == pytest.approx(expect, rel=1e-6)
    # a head whose two logits have the same weights shares everything; opposite weights nothing
    assert shared_logit_share(_tied_head(model, +1), "conv2", h) == pytest.approx(1.0, abs=1e-5)
    assert shared_logit_share(_tied_head(model, -1), "conv2", h) == pytest.approx(0.0, abs=1e-5)
    with pytest.raises(ModelError, match="unknown target"):
        class_gradients(model, "conv2", h, 1, target="loss")


def _tied_head(model: ClassifierModel, sign: int) -> ClassifierModel:
    """A copy whose second logit's weights are ``sign`` times the first's."""
    import copy

    m = copy.deepcopy(model)
    head = [mod for mod in m.module.modules() if isinstance(mod, torch.nn.Linear)][-1]
    with torch.no_grad():
        head.weight[1] = sign * head.weight[0]
        head.bias[1] = sign * head.bias[0]
    return m


@pytest.mark.parametrize("layer", ["conv3", "pool"])
def test_layers_feeding_only_a_linear_head_are_refused(layer):
    model, images = _model_and_images(n=8)
    with torch.inference_mode():
        h = model.activations(model.preprocess(images), [layer])[layer].numpy()
    g = class_gradients(model, layer, h, 0)
    with pytest.raises(ModelError, match="same for every input"):
        check_gradients_vary(g, layer)
    with torch.inference_mode():
        h2 = model.activations(model.preprocess(images), ["conv2"])["conv2"].numpy()
    assert check_gradients_vary(class_gradients(model, "conv2", h2, 0), "conv2") > 1e-3


def test_scores_of_degenerate_inputs():
    s = tcav_scores(np.zeros((4, 3), np.float32), np.eye(3, dtype=np.float32))
    np.testing.assert_array_equal(s.sign_count, 0.0)
    np.testing.assert_array_equal(s.magnitude, 0.5)
    empty = tcav_scores(np.zeros((0, 3), np.float32), np.eye(3, dtype=np.float32))
    assert empty.n_inputs == 0 and np.isnan(empty.sign_count).all()
    with pytest.raises(ModelError, match="features"):
        tcav_scores(np.zeros((2, 4), np.float32), np.eye(3, dtype=np.float32))
