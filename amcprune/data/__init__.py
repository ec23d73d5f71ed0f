"""Data stage: the RadioML 2018.01A reader with its prescribed split, and a RadioML-like generator."""
