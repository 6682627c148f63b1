"""RFID card readers: the MFRC522 on SPI, USB keyboard-emulation readers, idTag formatting."""

from drivers.rfid.keyboard import KeyboardReader, parse_keyboard_uid
from drivers.rfid.mfrc522 import CardError, ChipError, Mfrc522, Mfrc522Reader, format_id_tag

__all__ = [
    "CardError",
    "ChipError",
    "KeyboardReader",
    "Mfrc522",
    "Mfrc522Reader",
    "format_id_tag",
    "parse_keyboard_uid",
]
