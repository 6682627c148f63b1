"""RFID card readers: the MFRC522 on SPI (and its idTag formatting)."""

from drivers.rfid.mfrc522 import CardError, ChipError, Mfrc522, Mfrc522Reader, format_id_tag

__all__ = ["CardError", "ChipError", "Mfrc522", "Mfrc522Reader", "format_id_tag"]
