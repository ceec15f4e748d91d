import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# synth_prepared's generator settings (benchmarks/measure_test_bars.py trains on the same data)
SYNTH = dict(n_users=800, n_items=300, n_topics=6, seq_len_min=8, seq_len_max=20, image_size=0, seed=1)


@pytest.fixture(scope="session")
def synth_prepared(tmp_path_factory):
    """A small synthetic dataset whose next items follow the topics of recent items, prepared once."""
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth") / "prepared"
    prepare(generate(SynthConfig(**SYNTH)), out, log=lambda s: None)
    return out


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """120 users and 60 items, prepared once: for sweeps, tunes and parallel runs of two-epoch models."""
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("tiny") / "prepared"
    raw = generate(SynthConfig(n_users=120, n_items=60, n_topics=4, seq_len_min=6, seq_len_max=10, image_size=0, seed=1))
    prepare(raw, out, log=lambda s: None)
    return out


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """Every model in the suite is tiny: one thread is as fast as two, and far faster when the machine is
    busy (a second OpenMP worker that is descheduled makes every op wait; measured 5-50x here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
