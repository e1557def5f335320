"""Cards: shipped cards load, folders derive what sentence-transformers computes, bad cards name the key."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from models.card import card_from_mapping, load_card_file, with_overrides
from models.catalog import find_card, shipped_cards
from models.derive import derive_card
from models.errors import CardError

BASE = {"name": "m", "source": "/nowhere", "pooling": "mean"}


def test_every_shipped_card_is_valid() -> None:
    cards = shipped_cards()
    assert "all-minilm-l6-v2" in cards
    for path in cards.values():
        card = load_card_file(path)
        assert card.name and card.pooling


def test_find_card_by_name_alias_file_and_folder(minilm_dir: Path, tmp_path: Path) -> None:
    assert find_card("all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"
    assert find_card("sentence-transformers/all-MiniLM-L6-v2").name == "all-MiniLM-L6-v2"
    card_file = tmp_path / "mine.yaml"
    card_file.write_text(yaml.safe_dump({**BASE, "source": "weights"}))
    assert find_card(str(card_file)).source == str((tmp_path / "weights").resolve())  # relative to the card
    assert find_card(str(minilm_dir)).pooling == "mean"
    with pytest.raises(CardError, match="shipped"):
        find_card("no-such-model")


def test_minilm_folder_derives_the_shipped_card(minilm_dir: Path) -> None:
    derived = derive_card(minilm_dir)
    shipped = find_card("all-MiniLM-L6-v2")
    for field in ("pooling", "normalize", "max_tokens", "prompts", "exclude_prompt_from_pooling"):
        assert getattr(derived, field) == getattr(shipped, field), field


def test_derive_reads_prompts_pooling_and_normalize(minilm_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(minilm_dir, folder)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 384, "pooling_mode_cls_token": True, "include_prompt": True})
    )
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": {"query": "query: ", "document": ""}, "default_prompt_name": "query"})
    )
    card = derive_card(folder)
    assert card.pooling == "cls" and card.normalize is False
    assert card.prompts == {"query": "query: "} and card.default_prompt == "query"


def test_derive_refuses_unsupported_modules(minilm_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(minilm_dir, folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules.append({"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(CardError, match="Dense"):
        derive_card(folder)


@pytest.mark.parametrize(
    ("fields", "key"),
    [
        ({"colour": "red"}, "colour"),
        ({"pooling": "median"}, "pooling"),
        ({"attention": "sideways"}, "attention"),
        ({"default_prompt": "query"}, "default_prompt"),
        ({"pooling": "cls", "exclude_prompt_from_pooling": True}, "exclude_prompt_from_pooling"),
        ({"pooling": "cls", "attention": "causal"}, "pooling"),
        ({"pooling": "latent_attention"}, "latent_attention"),
        ({"instruction_template": "Instruct: {task}"}, "instruction_template"),
        ({"matryoshka_dims": [64, 0]}, "matryoshka_dims"),
        ({"matryoshka_dims": []}, "matryoshka_dims"),
        ({"revision": "main"}, "revision"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"dtype": "int4"}, "dtype"),
    ],
)
def test_bad_cards_name_the_key(fields: dict, key: str) -> None:
    with pytest.raises(CardError) as error:
        card_from_mapping({**BASE, **fields}, "test card")
    assert error.value.key == key
    assert key in str(error.value)


def test_overrides_are_revalidated() -> None:
    card = card_from_mapping(BASE, "test card")
    assert with_overrides(card, pooling="max", layer=None).pooling == "max"
    with pytest.raises(CardError) as error:
        with_overrides(card, pooling="cls", attention="causal")
    assert error.value.key == "pooling"
