from __future__ import annotations

from pathlib import Path

from wsi_screen.config import ScreenConfig
from wsi_screen.ledger import Ledger
from wsi_screen.ledger import run_key
from wsi_screen.ledger import settings_hash


def test_settings_hash_ignores_runtime_only_options() -> None:
    base = ScreenConfig()
    h = settings_hash(base.to_dict(), mpp=None)
    assert settings_hash(base.replace("classify", device="cuda", batch_size=7).to_dict(), mpp=None) == h
    assert settings_hash(base.replace("aggregate", min_cells=5).to_dict(), mpp=None) != h
    assert settings_hash(base.to_dict(), mpp=0.25) != h
    assert run_key("a", "m", h) != run_key("b", "m", h)


def test_ledger_survives_a_torn_line(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.append(input_name="a.png", stem="a", key="k1", input_sha256="s", status="ok")
    ledger.append(input_name="b.png", stem="b", key="k2", input_sha256="s", status="failed")
    with ledger.path.open("a", encoding="utf-8") as f:
        f.write('{"input": "c.png", "stem": "c", "ke')  # a kill in the middle of an append
    again = Ledger(ledger.path)
    assert again.load() == 2
    assert again.done("a.png", "a", "k1") is not None
    assert again.done("a.png", "a", "other-key") is None  # changed model/config: not done
    assert again.done("a.png", "a-2", "k1") is None  # same name in another folder of the batch
    assert again.done("b.png", "b", "k2") is None  # failed inputs are retried
    again.append(input_name="c.png", stem="c", key="k3", input_sha256="s", status="ok")
    third = Ledger(ledger.path)
    assert third.load() == 3
    assert third.done("c.png", "c", "k3") is not None
