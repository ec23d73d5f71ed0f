"""Shared test settings: tests run on tiny generated data and tiny models.

One thread: for models this small, thread start-up and spin-waiting cost more than they save, and two
threads on a busy 2-core machine were measured 50x slower on the pruning tests.
"""

import torch

torch.set_num_threads(1)
