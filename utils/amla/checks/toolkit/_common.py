"""Helpers shared by the checks of Hour 01."""

import torch

_CPU = torch.device("cpu")
