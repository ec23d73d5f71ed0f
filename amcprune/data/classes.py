"""The RadioML 2018.01A label set.

The order is the one the one-hot labels of GOLD_XYZ_OSC.0001_1024.hdf5 use. The classes.txt shipped with
the dataset lists another order and is known to be wrong.
"""

CLASSES: tuple[str, ...] = (
    "OOK", "4ASK", "8ASK", "BPSK", "QPSK", "8PSK", "16PSK", "32PSK",
    "16APSK", "32APSK", "64APSK", "128APSK", "16QAM", "32QAM", "64QAM", "128QAM", "256QAM",
    "AM-SSB-WC", "AM-SSB-SC", "AM-DSB-WC", "AM-DSB-SC", "FM", "GMSK", "OQPSK",
)

SNRS_DB: tuple[int, ...] = tuple(range(-20, 31, 2))

FRAME_LENGTH = 1024
