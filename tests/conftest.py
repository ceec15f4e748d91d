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
