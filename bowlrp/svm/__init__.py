"""Kernel SVM classifiers, their kernels and their decomposition."""

from .kernels import KERNELS, kernel_names, make_kernel
from .svc import KernelOneClassSVM, KernelSVC

__all__ = ["KernelSVC", "KernelOneClassSVM", "KERNELS", "kernel_names", "make_kernel"]
