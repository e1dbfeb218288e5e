"""FP gradients equal central finite differences of the exact simulator."""

import numpy as np
from hypothesis import assume, given, settings

from rtsnn.learn.offline import fp
from rtsnn.learn.offline import fp_reference as R

from _fp_nets import fp_case

H = 1e-6


def _pattern(spikes):
    return [n.tolist() for _, n in spikes]


def _times(spikes):
    return np.concatenate([t for t, _ in spikes])


def _fd_jacobian(net, s, x, max_out):
    """Central differences of all spike times w.r.t. every weight; columns where the spike
    pattern (which neuron fires, in which order) changes within +-H are NaN."""
    base = fp.simulate(net, s, x, max_out_spikes=max_out)
    theta = net.flat()
    fd = np.full((len(_times(base)), theta.size), np.nan)
    for p in range(theta.size):
        out = []
        for sign in (1, -1):
            th = theta.copy()
            th[p] += sign * H
            other = net.copy()
            other.set_flat(th)
            out.append(fp.simulate(other, s, x, max_out_spikes=max_out))
        if _pattern(out[0]) == _pattern(base) == _pattern(out[1]):
            fd[:, p] = (_times(out[0]) - _times(out[1])) / (2 * H)
    return base, fd


def _assert_close(jac, fd):
    ok = ~np.isnan(fd[0]) if fd.shape[0] else np.zeros(0, bool)
    assume(ok.any())
    scale = np.abs(fd[:, ok]).max()
    assume(scale > 0)
    err = np.abs(jac[:, ok] - fd[:, ok]).max() / scale
    assert err <= 1e-5, err


def _fd_case(net, s, x, max_out=3):
    spikes, jac, vdot = fp.spike_jacobian(net, s, x, max_out_spikes=max_out)
    assume(jac.shape[0] > 0)
    # near-tangential crossings make the spike time non-smooth within +-H: not comparable
    assume(vdot.min() > 1e-2)
    base, fd = _fd_jacobian(net, s, x, max_out)
    np.testing.assert_array_equal(_times(base), _times(spikes))
    _assert_close(jac, fd)
    return spikes


@settings(max_examples=40, deadline=None)
@given(fp_case(recurrent=False))
def test_fp_matches_finite_differences_feedforward(case):
    _fd_case(*case)


@settings(max_examples=40, deadline=None)
@given(fp_case(recurrent=True, max_depth=2))
def test_fp_matches_finite_differences_recurrent(case):
    _fd_case(*case)


def _bursty_net():
    rng = np.random.default_rng(7)
    w1 = rng.normal(3.0, 0.7, (3, 4))
    r1 = rng.normal(0.0, 0.5, (4, 4))
    np.fill_diagonal(r1, 0.0)
    w2 = rng.normal(1.2, 0.3, (4, 3))
    net = fp.FPNetwork([w1, w2, rng.normal(1.5, 0.3, (3, 2))], [r1, None, None])
    s = fp.FPSettings(alpha=1.0, beta=0.7, theta=1.0, t_max=6.0, max_hidden_spikes=6)
    return net, s, np.array([0.1, 0.4, 0.25])


def test_multi_spike_recurrent_three_layers_against_fd():
    net, s, x = _bursty_net()
    spikes = fp.simulate(net, s, x, max_out_spikes=3)
    counts = np.bincount(spikes[0][1], minlength=4)
    assert counts.max() >= 3, counts  # hidden neurons really burst
    assert len(spikes[2][0]) > 0
    spikes, jac, vdot = fp.spike_jacobian(net, s, x, max_out_spikes=3)
    base, fd = _fd_jacobian(net, s, x, 3)
    ok = ~np.isnan(fd[0])
    assert ok.mean() > 0.9
    err = np.abs(jac[:, ok] - fd[:, ok]).max() / np.abs(fd[:, ok]).max()
    assert err <= 1e-5, err


def test_dropping_own_spike_coupling_is_wrong():
    """The public FP code omits the coupling to the neuron's own earlier spikes: with bursts
    its Jacobian disagrees with finite differences; ours does not."""
    net, s, x = _bursty_net()
    spikes, jac, _ = fp.spike_jacobian(net, s, x, max_out_spikes=3)
    base, fd = _fd_jacobian(net, s, x, 3)
    ok = ~np.isnan(fd[0])
    order = np.argsort(x, kind="stable")
    layers = list(zip(net.w, net.r))
    wrong = R.spike_jacobian_ref(x[order], order, layers, spikes, s.alpha, s.beta, s.theta,
                                 own_coupling=False)
    scale = np.abs(fd[:, ok]).max()
    assert np.abs(jac[:, ok] - fd[:, ok]).max() / scale <= 1e-5
    assert np.abs(wrong[:, ok] - fd[:, ok]).max() / scale > 1e-2


def test_loss_gradient_matches_finite_differences():
    rng = np.random.default_rng(11)
    net = fp.init_network(5, [12], 3, seed=2)
    s = fp.FPSettings(alpha=1.0, beta=0.999, t_max=4.0, tau0=0.2, tau1=1.0, gamma=0.05)
    x = fp.encode_latency(rng.uniform(0, 1, (6, 4)))
    y = rng.integers(0, 3, 6)
    ev = fp.FPEvaluator(net, s)
    loss, grad, t_first, _, silent = ev.run(x, y)
    assert np.all(t_first < s.t_max)  # every output fires: the loss is smooth here
    theta = net.flat()
    fd = np.zeros_like(theta)
    for p in range(theta.size):
        vals = []
        for sign in (1, -1):
            th = theta.copy()
            th[p] += sign * H
            other = net.copy()
            other.set_flat(th)
            vals.append(fp.FPEvaluator(other, s).run(x, y, want_grad=False)[0])
        fd[p] = (vals[0] - vals[1]) / (2 * H)
    err = np.abs(grad - fd).max() / np.abs(fd).max()
    assert err <= 1e-5, err
