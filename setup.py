from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as fh:
    long_description = fh.read()

setup(
    name="bowlrp",
    version="0.1.0",
    description=(
        "Layer-wise Relevance Propagation for Bag-of-Words / Fisher-vector "
        "kernel-SVM image classifiers"
    ),
    long_description=long_description,
    long_description_content_type="text/markdown",
    packages=find_packages(include=["bowlrp", "bowlrp.*"]),
    python_requires=">=3.9",
    install_requires=[
        "numpy>=1.22",
        "scipy>=1.8",
        "scikit-learn>=1.6",
        "opencv-python-headless>=4.5",
        "joblib>=1.2",
        "threadpoolctl>=3.1",
        "tqdm>=4.60",
        # the commands' figures: titled heatmap panels with colour scales, evaluation plots
        "matplotlib>=3.5",
    ],
    extras_require={
        "gpu": ["cupy>=12"],
        # scikit-image: an independent oracle for the Fisher-vector forward pass (tests only)
        # matplotlib: so that CI exercises bowlrp.evaluation.plots
        # dask[distributed]: the collection tests run a LocalCluster of worker processes
        "test": ["pytest>=7", "hypothesis>=6", "scikit-image>=0.22", "matplotlib>=3.5", "dask[distributed]>=2024.1"],
        # explain_collection / fit_collection on a Dask cluster (client= or --scheduler)
        "distributed": ["dask[distributed]>=2024.1"],
        "plot": ["matplotlib>=3.5"],
        # the real-photograph demo: brick, grass and gravel photographs that ship inside scikit-image
        "photos": ["scikit-image>=0.22"],
        # peers for benchmarks/peers.py only; nothing in the package imports them
        "bench": ["shap", "lime"],
        # the documentation site: python -m sphinx -W --keep-going -b html docs docs/_build/html
        # (scikit-image: the gallery's photograph examples)
        "docs": ["sphinx>=7", "numpydoc>=1.6", "pydata-sphinx-theme>=0.15", "sphinx-gallery>=0.17",
                 "myst-parser>=3", "matplotlib>=3.5", "scikit-image>=0.22"],
    },
    entry_points={"console_scripts": ["bowlrp=bowlrp.__main__:main"]},
)
