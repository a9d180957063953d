"""The decoder's last BatchNorm and 1x1 predictors run as one batched matmul with the norm folded in
(daaf.modeling.attention.pointwise): forward, backward and the running statistics must equal the
plain nn.BatchNorm2d and nn.Conv2d they replace, for HAB's one map and PAB's stacked groups."""

import copy

import pytest
import torch
import torch.nn.functional as F
from test_attention_branches import backbone_features, daaf_cfg, fake_batch

from daaf.modeling import build_model
from daaf.modeling.attention import Predictor
from daaf.modeling.attention.pointwise import grouped_pointwise_conv, normalized_grouped_pointwise_conv
from daaf.utils.errors import ConfigError


def _reference(x, weights, biases):
    """The convolutions one by one: weights[g] on the g-th batch slice of x."""
    return [F.conv2d(part, w, b) for part, w, b in zip(x.chunk(len(weights)), weights, biases)]


@pytest.mark.parametrize("channels_last", [True, False])
def test_grouped_pointwise_conv_equals_the_convolutions_forward_and_backward(channels_last):
    g = torch.Generator().manual_seed(0)
    sizes = [5, 2, 3]
    x = torch.randn(3 * 4, 16, 10, 6, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weights = [torch.randn(k, 16, 1, 1, generator=g) for k in sizes]
    biases = [torch.randn(k, generator=g) for k in sizes]
    upstream = [torch.randn(4, k, 10, 6, generator=g) for k in sizes]

    def run(fn):
        leaves = [t.detach().clone().requires_grad_() for t in (x, *weights, *biases)]
        outputs = fn(leaves[0], leaves[1:4], leaves[4:])
        sum((o * u).sum() for o, u in zip(outputs, upstream)).backward()
        return [o.detach() for o in outputs], [t.grad for t in leaves]

    outputs, grads = run(grouped_pointwise_conv)
    expected_outputs, expected_grads = run(_reference)
    assert [o.shape for o in outputs] == [(4, k, 10, 6) for k in sizes]
    for got, want in zip(outputs + grads, expected_outputs + expected_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "mode, chunk_elements",
    [
        ("train", 1 << 20),
        ("train, momentum None", 1 << 20),
        ("eval", 1 << 20),
        ("train", 7 * 8),
    ],  # last: 7-row chunks, a short last one
)
def test_normalized_grouped_pointwise_conv_equals_batchnorm_then_the_convolutions(monkeypatch, mode, chunk_elements):
    from daaf.modeling.attention import pointwise

    monkeypatch.setattr(pointwise, "_CHUNK_ELEMENTS", chunk_elements)
    g = torch.Generator().manual_seed(1)
    sizes = [3, 1]
    x = (torch.randn(2 * 3, 8, 6, 4, generator=g) * 3 + 2).contiguous(memory_format=torch.channels_last)
    weights = [torch.randn(k, 8, 1, 1, generator=g) for k in sizes]
    biases = [torch.randn(k, generator=g) for k in sizes]
    upstream = [torch.randn(3, k, 6, 4, generator=g) for k in sizes]
    norm = torch.nn.BatchNorm2d(8, momentum=None if "None" in mode else 0.1)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0, generator=g), norm.bias.normal_(generator=g)
        norm.running_mean.normal_(generator=g), norm.running_var.uniform_(0.5, 2.0, generator=g)
        norm.num_batches_tracked.fill_(3)
    norm.train(mode != "eval")
    start = {k: v.clone() for k, v in norm.state_dict().items()}

    def run(fn):
        norm.load_state_dict(start)
        norm.zero_grad()
        leaves = [t.detach().clone().requires_grad_() for t in (x, *weights, *biases)]
        outputs = fn(leaves[0], leaves[1:3], leaves[3:])
        sum((o * u).sum() for o, u in zip(outputs, upstream)).backward()
        grads = [t.grad for t in leaves] + [norm.weight.grad.clone(), norm.bias.grad.clone()]
        return [o.detach() for o in outputs] + grads, {k: v.clone() for k, v in norm.state_dict().items()}

    got, got_state = run(lambda x, w, b: normalized_grouped_pointwise_conv(x, norm, w, b))
    want, want_state = run(lambda x, w, b: _reference(norm(x), w, b))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    for key in want_state:
        torch.testing.assert_close(got_state[key], want_state[key], msg=key)
    assert (want_state["num_batches_tracked"] > start["num_batches_tracked"]) == (mode != "eval")


def test_grouped_pointwise_conv_refuses_a_batch_that_is_not_equal_slices():
    with pytest.raises(ValueError, match="batch 5 is not 2 equal slices"):
        grouped_pointwise_conv(torch.zeros(5, 4, 2, 2), [torch.zeros(1, 4, 1, 1)] * 2, [torch.zeros(1)] * 2)


def test_predictor_is_its_convolution_then_the_activation():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 6, 4)
    sigmoid, plain = Predictor(8, 3), Predictor(8, 3, activation="")
    torch.testing.assert_close(sigmoid(x), torch.sigmoid(sigmoid.conv(x)))
    torch.testing.assert_close(plain(x), plain.conv(x))
    with pytest.raises(ConfigError, match="ACTIVATION"):
        Predictor(8, 3, activation="relu")


def _close_to(got, want, name):
    """got (float32) within float32 rounding of want (float64): 1e-4 of the largest entry."""
    torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * float(want.abs().max()), msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("branch,overrides", [("PAB", {}), ("PAB", {"MODEL__DAAF__PAB__SHARED_DECODER": False}), ("HAB", {})])
def test_branch_predictions_gradients_and_statistics_equal_the_plain_modules(branch, overrides):
    """HAB and PAB (shared decoder: stacked groups; independent decoders: one call per group)
    against the reference in float64: the whole decoder (its last BatchNorm included) and each
    predictor's nn.Conv2d and sigmoid, called one by one. (The float32 reference itself is ~10x
    further from the float64 one than the folded form: its BatchNorm rounds the normalised map.)"""
    torch.manual_seed(0)
    model = build_model(daaf_cfg(branch, **overrides)).train()
    module = model.branches[branch]
    features = {k: v.detach() for k, v in backbone_features(model, fake_batch()).items()}
    reference_module = copy.deepcopy(module).double()
    reference_features = {k: v.double() for k, v in features.items()}

    def run(module, predict):
        maps = predict(module)
        maps = maps if isinstance(maps, list) else [maps]
        sum((m * torch.linspace(0, 1, m.numel(), dtype=m.dtype).view_as(m)).sum() for m in maps).backward()
        grads = {n: p.grad for n, p in module.named_parameters() if p.grad is not None}
        return [m.detach() for m in maps], grads, module.state_dict()

    def reference(module):
        x = reference_features[module.source]
        if branch == "HAB":
            x = x if module.encoder is None else module.encoder(x)
            return torch.sigmoid(module.predictor.conv(module.decoder(x)))
        return [torch.sigmoid(p.conv(d)) for p, d in zip(module.predictors, module.decode_groups(x))]

    maps, grads, state = run(module, lambda m: m.predict(features))
    expected_maps, expected_grads, expected_state = run(reference_module, reference)
    for g, (got, want) in enumerate(zip(maps, expected_maps)):
        _close_to(got, want, f"map {g}")
    assert grads.keys() == expected_grads.keys() and any("decoder" in n for n in grads)
    for name in grads:
        _close_to(grads[name], expected_grads[name], name)
    for key in expected_state:
        _close_to(state[key], expected_state[key].double(), key)


@pytest.mark.parametrize(
    "batch, height, width, with_bias, chunk_elements",
    [(3, 4, 5, False, 1 << 20), (5, 3, 2, True, 1 << 20), (5, 6, 4, True, 300)],  # one chunk; one; several + a short last one
)
def test_stride2_transposed_conv_equals_conv_transpose2d_forward_and_backward(monkeypatch, batch, height, width, with_bias, chunk_elements):
    from daaf.modeling.attention import transposed_conv

    monkeypatch.setattr(transposed_conv, "_CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(transposed_conv, "_MIN_CHUNKED_PIXELS", 1)
    torch.manual_seed(0)
    x = torch.randn(batch, 6, height, width).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(6, 5, 3, 3)
    bias = torch.randn(5) if with_bias else None
    grad = torch.randn(batch, 5, 2 * height, 2 * width)
    outputs, grads = [], []
    for fn in (transposed_conv.stride2_transposed_conv3x3, F.conv_transpose2d):
        leaves = [t.clone().requires_grad_() for t in (x, weight) + ((bias,) if with_bias else ())]
        extra = {} if fn is transposed_conv.stride2_transposed_conv3x3 else {"stride": 2, "padding": 1, "output_padding": 1}
        out = fn(leaves[0], leaves[1], leaves[2] if with_bias else None, **extra)
        out.backward(grad)
        outputs.append(out)
        grads.append([leaf.grad for leaf in leaves])
    torch.testing.assert_close(outputs[0], outputs[1])
    for mine, reference in zip(*grads):
        torch.testing.assert_close(mine, reference, rtol=1e-4, atol=1e-4)


def test_decoder_layers_take_the_fast_transposed_conv_and_keep_plain_state_dict_keys(monkeypatch):
    from daaf.modeling.attention import decoder as decoder_module
    from daaf.modeling.attention import transposed_conv

    calls = []
    real = transposed_conv.transposed_conv3x3_weight_grad
    monkeypatch.setattr(transposed_conv, "transposed_conv3x3_weight_grad", lambda x, g: calls.append(tuple(x.shape)) or real(x, g))
    # the chunked weight gradient from 9 input pixels on: the first layer's 4x2 input takes
    # oneDNN's, the second's 8x4 the chunked one; both must match the plain layers
    monkeypatch.setattr(transposed_conv, "_MIN_CHUNKED_PIXELS", 9)
    torch.manual_seed(0)
    decoder = decoder_module.Decoder(in_channels=4, num_deconvs=2, channels=8)
    reference = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(4, 8, 3, 2, 1, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(8, 8, 3, 2, 1, 1, bias=False), torch.nn.BatchNorm2d(8),
    ).double()  # fmt: skip
    reference.load_state_dict({k.removeprefix("layers."): v for k, v in decoder.state_dict().items()})
    x, projection = torch.randn(2, 4, 4, 2), torch.randn(2, 8, 16, 8)
    # a random projection keeps the loss well conditioned: squaring a BatchNorm output cancels
    # its gradient down to rounding noise, which no tolerance can tell from a wrong tap
    (decoder(x) * projection).sum().backward()
    (reference(x.double()) * projection.double()).sum().backward()
    assert calls == [(2, 8, 8, 4)]
    for (name, p), q in zip(decoder.layers.named_parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad.double(), q.grad, rtol=1e-5, atol=1e-5 * float(q.grad.abs().max()), msg=name)


def test_flop_count_of_the_cpu_kernels_equals_that_of_the_plain_layers(monkeypatch):
    """The transposed conv with its own weight gradient and the folded norm + predictors trace as
    opaque autograd Functions; count_flops counts them as the layers they compute."""
    from daaf.modeling import count_flops
    from daaf.modeling.attention import Decoder, transposed_conv
    from daaf.utils.fvcore_compat import FlopCountAnalysis

    monkeypatch.setattr(transposed_conv, "_MIN_CHUNKED_PIXELS", 1)
    torch.manual_seed(0)
    decoder = Decoder(in_channels=4, num_deconvs=2, channels=8).train()
    predictors = torch.nn.ModuleList([Predictor(8, 3), Predictor(8, 3)])
    plain = torch.nn.Sequential(
        torch.nn.ConvTranspose2d(4, 8, 3, 2, 1, 1, bias=False), torch.nn.BatchNorm2d(8), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(8, 8, 3, 2, 1, 1, bias=False), torch.nn.BatchNorm2d(8),
    ).train()  # fmt: skip

    class Fast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder, self.predictors = decoder, predictors

        def forward(self, x):
            return tuple(Predictor.stacked(self.predictors, *self.decoder.forward_before_last_norm(x)))

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers, self.predictors = plain, predictors

        def forward(self, x):
            parts = self.layers(x).chunk(2)
            return tuple(F.conv2d(part, p.conv.weight, p.conv.bias).sigmoid() for part, p in zip(parts, self.predictors))

    fast, reference, x = Fast(), Plain(), torch.randn(4, 4, 4, 2)
    fast_flops, plain_flops = count_flops(fast, (x,)), count_flops(reference, (x,))
    uncounted = FlopCountAnalysis(fast, (x,)).unsupported_ops_warnings(False).uncalled_modules_warnings(False).total()
    assert fast_flops == plain_flops > uncounted
    # running statistics: the norm counts 2 FLOPs an element instead of 5, in both forms
    fast.eval(), reference.eval()
    assert count_flops(fast, (x,)) == count_flops(reference, (x,)) < fast_flops
