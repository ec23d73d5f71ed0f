"""Shared test settings: tests run on tiny generated data, on two cores at most."""

import torch

torch.set_num_threads(2)
