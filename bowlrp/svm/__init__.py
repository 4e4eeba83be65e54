"""Kernel SVM classifiers and their kernels."""

from .kernels import KERNELS, get_kernel
from .svc import KernelSVC

__all__ = ["KernelSVC", "KERNELS", "get_kernel"]
