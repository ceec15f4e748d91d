import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def synth_prepared(tmp_path_factory):
    """A small synthetic dataset whose next items follow the topics of recent items, prepared once."""
    from morec.data.prepare import prepare
    from morec.data.synthetic import SynthConfig, generate

    out = tmp_path_factory.mktemp("synth") / "prepared"
    raw = generate(SynthConfig(n_users=800, n_items=300, n_topics=6, seq_len_min=8, seq_len_max=20, image_size=0, seed=1))
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
