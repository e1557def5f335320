"""Find the card for a `--model` value: a card file, a shipped card's name, or a model folder."""

from __future__ import annotations

from pathlib import Path

from models.card import ModelCard, load_card_file
from models.derive import derive_card
from models.errors import CardError

CARDS_DIR = Path(__file__).resolve().parent / "cards"
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def shipped_cards() -> dict[str, Path]:
    """Card files shipped in models/cards, by file stem."""
    return {path.stem: path for path in sorted(CARDS_DIR.glob("*.yaml"))}


def find_card(spec: str) -> ModelCard:
    path = Path(spec).expanduser()
    if path.is_file():
        return load_card_file(path)
    if path.is_dir():
        return derive_card(path)
    cards = shipped_cards()
    if spec in cards:
        return load_card_file(cards[spec])
    for card_path in cards.values():
        card = load_card_file(card_path)
        if spec in card.served_names:
            return card
    raise CardError(
        f"--model {spec!r} is neither a card file, a model folder, nor a shipped card "
        f"(shipped: {', '.join(sorted(cards))})",
        key="model",
    )
