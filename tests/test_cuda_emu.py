"""The CUDA emulation (tests/cuda_emu) against CUDA's semantics, on small kernels of its own
(selftest.cu): real block barriers and __syncthreads_count, warp collectives with widths,
atomics across concurrent blocks, launch geometry and launch errors, CUB's radix sort (stable,
by key bits) and scans; and that AddressSanitizer stops an out-of-bounds write and the emulator
a block that can never pass its barrier. test_cuda_parity.py runs our real kernels on it."""
import numpy as np
import pytest
import torch

from tests.cuda_emu import harness

pytestmark = pytest.mark.cuda_cpu

if harness.unavailable_reason():
    pytest.skip("the CUDA emulation cannot build here: " + harness.unavailable_reason(),
                allow_module_level=True)

EMU = "tests.cuda_emu.emulated"


def _call(function, *args):
    return harness.call(EMU, "selftest", function, *args)


def _crash(function, *args):
    """Runs one call in a throwaway worker, which must die; returns its stderr."""
    w = harness.Worker()
    try:
        with pytest.raises(harness.EmulatorCrash) as err:
            w.call(EMU, "selftest", function, *args)
    finally:
        w.close()
    return str(err.value)


def test_in_bounds_copy_runs_clean():
    x = torch.arange(100, dtype=torch.float32)
    rc, _, out = _call("emu_copy", x, torch.zeros(100), 100, 0)
    assert rc == 0 and torch.equal(out, x)


def test_out_of_bounds_write_fails_under_asan():
    msg = _crash("emu_copy", torch.ones(100), torch.zeros(100), 100, 1)
    assert "heap-buffer-overflow" in msg and "WRITE of size 4" in msg, msg
    assert "selftest.cu" in msg, msg  # reported at the kernel's own source line


def test_barrier_and_syncthreads_count():
    x = torch.randint(0, 1000, (3 * 256,), dtype=torch.int32, generator=torch.Generator().manual_seed(0))
    rc, _, out, counts = _call("emu_rotate", x, torch.zeros_like(x), torch.zeros(3, dtype=torch.int32), 3)
    assert rc == 0
    want = x.view(3, 256).roll(-1, dims=1)
    assert torch.equal(out.view(3, 256), want)
    assert counts.tolist() == (want % 3 == 0).sum(1).tolist()


def test_warp_collectives():
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, 9, (128,), dtype=torch.int32, generator=gen)
    rc, _, out = _call("emu_warp", x, torch.zeros(128 * 8, dtype=torch.int32), 128)
    assert rc == 0
    o = out.view(128, 8).numpy()
    w = x.view(4, 32).numpy()
    for k in range(4):
        rows, v = o[32 * k:32 * k + 32], w[k]
        assert rows[0, 0] == v.sum()
        assert (rows[:, 1] == v.max()).all()
        assert (rows[:, 2].astype(np.uint32) == sum(1 << i for i in range(32) if v[i] & 1)).all()
        assert (rows[:, 3] == 1).all() and (rows[:, 4] == int((v == 7).any())).all()
        assert (rows[:, 5] == v[3]).all()
        up = [v[i] if i % 16 == 0 else v[i - 1] for i in range(32)]
        assert rows[:, 6].tolist() == up
        down = [i if i % 8 + 5 >= 8 else i + 5 for i in range(32)]
        assert rows[:, 7].tolist() == down


def test_atomics_across_blocks():
    n = 5000
    rc, f, i, m = _call("emu_atomic", torch.zeros(1), torch.zeros(1, dtype=torch.int32),
                        torch.zeros(1, dtype=torch.int32), n)
    assert rc == 0
    assert float(f) == 0.5 * n and int(i) == n * (n - 1) // 2
    assert int(m) == max((k * 7919) % 10007 for k in range(n))


def test_launch_geometry_and_invalid_launch():
    rc, out = _call("emu_geometry", torch.full((12 * 24,), -1, dtype=torch.int32))
    assert rc == 0
    want = [tx + 10 * ty + 100 * tz + 1000 * bx + 10000 * by + 100000 * bz
            for bz in range(2) for by in range(2) for bx in range(3)
            for tz in range(2) for ty in range(3) for tx in range(4)]
    assert out.tolist() == want
    rc, out = _call("emu_bad_launch", torch.full((4,), -1, dtype=torch.int32))
    assert rc == 9 and (out == -1).all()  # cudaErrorInvalidConfiguration, nothing ran


def test_radix_sort_is_stable_on_the_key_bits():
    gen = np.random.default_rng(2)
    n = 3000
    keys = (gen.integers(0, 50, n, dtype=np.uint64) << np.uint64(32)) | gen.integers(0, 1 << 20, n, dtype=np.uint64)
    keys[::7] = keys[3]  # many equal keys: their values must keep input order
    keys |= gen.integers(0, 4, n, dtype=np.uint64) << np.uint64(60)  # outside the sorted bits
    vals = np.arange(n, dtype=np.uint32)
    begin, end = 0, 38
    t = lambda a: torch.from_numpy(a.view(np.int64) if a.dtype == np.uint64 else a.view(np.int32))  # noqa: E731
    tmp = torch.zeros(1 << 16, dtype=torch.uint8)
    rc, _, k_out, _, v_out, _ = _call("emu_sort", t(keys), t(np.zeros_like(keys)), t(vals),
                                      t(np.zeros_like(vals)), n, begin, end, tmp, tmp.numel())
    assert rc == 0
    sort_key = keys & np.uint64((1 << end) - 1)
    order = np.argsort(sort_key, kind="stable")
    assert (v_out.numpy().view(np.uint32) == order).all()
    assert (k_out.numpy().view(np.uint64) == keys[order]).all()  # whole keys come back


def test_scans_wrap_like_unsigned():
    x = np.array([5, 0, 4294967295, 7, 1, 2], dtype=np.uint32)
    t = lambda a: torch.from_numpy(a.view(np.int32))  # noqa: E731
    tmp = torch.zeros(1024, dtype=torch.uint8)
    rc, _, inc, exc, _ = _call("emu_scan", t(x), t(np.zeros_like(x)), t(np.zeros_like(x)), len(x),
                               tmp, tmp.numel())
    assert rc == 0
    want = np.cumsum(x.astype(np.uint64)) % (1 << 32)
    assert (inc.numpy().view(np.uint32) == want).all()
    assert (exc.numpy().view(np.uint32) == np.concatenate([[0], want[:-1]])).all()


def test_block_that_cannot_pass_its_barrier_aborts():
    msg = _crash("emu_stuck", torch.zeros(64, dtype=torch.int32))
    assert "can never finish" in msg and "63 threads wait at __syncthreads" in msg, msg
