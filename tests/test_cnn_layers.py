"""Layers of bowlrp.cnn: forward against loops, backward against finite differences."""

import numpy as np
import pytest

from bowlrp.cnn.layers import AvgPool2d, Conv2d, Flatten, Linear, MaxPool2d, ReLU, SumPool2d
from bowlrp.cnn.network import Sequential


def _conv_loops(x, W, b, stride, padding):
    N, C, H, Wd = x.shape
    O, _, kh, kw = W.shape
    xp_ = np.pad(x, ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    Ho = (H + 2 * padding[0] - kh) // stride[0] + 1
    Wo = (Wd + 2 * padding[1] - kw) // stride[1] + 1
    out = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            for y in range(Ho):
                for xx in range(Wo):
                    patch = xp_[n, :, y * stride[0]:y * stride[0] + kh, xx * stride[1]:xx * stride[1] + kw]
                    out[n, o, y, xx] = (patch * W[o]).sum() + b[o]
    return out


def _pool_loops(x, k, s, op):
    N, C, H, W = x.shape
    Ho, Wo = (H - k[0]) // s[0] + 1, (W - k[1]) // s[1] + 1
    out = np.zeros((N, C, Ho, Wo))
    for y in range(Ho):
        for xx in range(Wo):
            out[:, :, y, xx] = op(x[:, :, y * s[0]:y * s[0] + k[0], xx * s[1]:xx * s[1] + k[1]], axis=(2, 3))
    return out


CONVS = [dict(kernel_size=3, stride=1, padding=0), dict(kernel_size=(3, 2), stride=2, padding=1),
         dict(kernel_size=4, stride=(2, 3), padding=(2, 0))]


@pytest.mark.parametrize("kw", CONVS)
def test_conv_forward_matches_loops(kw):
    rng = np.random.default_rng(0)
    conv = Conv2d(2, 3, **kw)
    conv.init(rng)
    conv.b = rng.standard_normal(3)
    x = rng.standard_normal((2, 2, 9, 8))
    out, _ = conv.forward(x)
    np.testing.assert_allclose(out, _conv_loops(x, conv.W, conv.b, conv.stride, conv.padding), atol=1e-12)
    assert out.shape[1:] == conv.output_shape(x.shape[1:])


def _finite_diff_check(layer, x, rng, params=()):
    """Compare backward with central finite differences of <g, forward(x)>."""
    out, tr = layer.forward(x)
    g = rng.standard_normal(out.shape)
    gx, grads = layer.backward(g, tr)
    h = 1e-6

    def f():
        return float((layer.forward(x)[0] * g).sum())

    for arr, ana in [(x, gx)] + [(getattr(layer, p), grads[p]) for p in params]:
        num = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):  # slow reference: one coordinate at a time
            old = arr[idx]
            arr[idx] = old + h
            fp = f()
            arr[idx] = old - h
            fm = f()
            arr[idx] = old
            num[idx] = (fp - fm) / (2 * h)
        np.testing.assert_allclose(ana, num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kw", CONVS)
def test_conv_backward_finite_differences(kw):
    rng = np.random.default_rng(1)
    conv = Conv2d(2, 3, **kw)
    conv.init(rng)
    conv.b = rng.standard_normal(3)
    _finite_diff_check(conv, rng.standard_normal((2, 2, 7, 6)), rng, params=("W", "b"))


def test_linear_backward_finite_differences():
    rng = np.random.default_rng(2)
    lin = Linear(5, 3)
    lin.init(rng)
    lin.b = rng.standard_normal(3)
    _finite_diff_check(lin, rng.standard_normal((4, 5)), rng, params=("W", "b"))


@pytest.mark.parametrize("cls,op", [(MaxPool2d, np.max), (SumPool2d, np.sum), (AvgPool2d, np.mean)])
@pytest.mark.parametrize("k,s", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_pool_forward_and_backward(cls, op, k, s):
    rng = np.random.default_rng(3)
    pool = cls(k, s)
    x = rng.standard_normal((2, 2, 7, 8))  # distinct values: max is differentiable
    out, _ = pool.forward(x)
    np.testing.assert_allclose(out, _pool_loops(x, pool.kernel_size, pool.stride, op), atol=1e-12)
    assert out.shape[1:] == pool.output_shape(x.shape[1:])
    _finite_diff_check(pool, x, rng)


def test_relu_flatten_sequential_backward():
    rng = np.random.default_rng(4)
    net = Sequential([Conv2d(1, 2, 3, padding=1), ReLU(), MaxPool2d(2), Flatten(), Linear(2 * 3 * 3, 2)])
    net.init(rng)
    x = rng.standard_normal((2, 1, 6, 7))
    out, tr = net.forward(x)
    g = rng.standard_normal(out.shape)
    gx, _ = net.backward(g, tr)
    h = 1e-6
    num = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[idx] += h
        xm[idx] -= h
        num[idx] = ((net(xp) - net(xm)) * g).sum() / (2 * h)
    np.testing.assert_allclose(gx, num, rtol=1e-5, atol=1e-7)
    assert net.output_shape((1, 6, 7)) == (2,)


def test_config_roundtrip_and_errors():
    net = Sequential([Conv2d(1, 2, 3, stride=2, padding=1), ReLU(), AvgPool2d(2), Flatten(), Linear(8, 1)])
    again = Sequential.from_config(net.config())
    assert again.config() == net.config()
    with pytest.raises(ValueError, match="valid types"):
        Sequential.from_config([{"type": "Dropout"}])
    with pytest.raises(ValueError, match="Flatten"):
        Linear(8, 1).output_shape((2, 2, 2))
    with pytest.raises(TypeError, match="not a bowlrp.cnn layer"):
        Sequential([lambda x: x])
