"""Spatial-pyramid bookkeeping of the encoders: grids, cells, atoms and the feature layout.

A spatial pyramid is a sequence of grids ``(rows, cols)``; every cell of
every grid is a block of the encoding (thesis Ch. 4: ``1x1 + 2x2 + 3x1``,
3x1 = three horizontal stripes).  A descriptor belongs to the cell its centre
``(x, y)`` falls in, ``row = floor(y rows / H)``, ``col = floor(x cols / W)``.

Sums over a cell are sums over its *atoms*, the non-empty intersections of
one cell of every grid: statistics are computed once per atom and added up
per cell with the ``(n_cells, n_atoms)`` membership matrix of
``pyramid_atoms``, so a pyramid costs no extra pass over the descriptors.
"""

import numpy as np

# what tells a user which cell a descriptor falls in and which feature dimensions belong to
# which cell; the atom bookkeeping is the encoders' own
__all__ = ["grid_cells", "n_cells", "block_layout"]


def grid_cells(centers, image_shape, grid):
    """Cell index (row-major) of each descriptor centre ``(x, y)`` in a ``rows x cols`` grid.

    Examples
    --------
    >>> import numpy as np
    >>> centres = np.array([[10.0, 10.0], [90.0, 10.0], [50.0, 90.0]])  # (x, y) in a 100 x 100 image
    >>> grid_cells(centres, (100, 100), (2, 2))
    array([0, 1, 3])
    >>> grid_cells(centres, (100, 100), (3, 1))  # three horizontal stripes
    array([0, 0, 2])
    """
    rows, cols = grid
    H, W = image_shape
    centers = np.asarray(centers)
    r = np.clip(np.floor(centers[:, 1] * rows / H), 0, rows - 1).astype(np.intp)
    c = np.clip(np.floor(centers[:, 0] * cols / W), 0, cols - 1).astype(np.intp)
    return r * cols + c


def check_pyramid(pyramid, name="pyramid"):
    """``pyramid`` as a tuple of ``(rows, cols)`` int pairs; errors name ``name``."""
    try:
        grids = tuple((int(r), int(c)) for r, c in pyramid)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a sequence of (rows, cols) pairs, got {pyramid!r}") from None
    if not grids or any(r < 1 or c < 1 for r, c in grids):
        raise ValueError(f"{name} must be a non-empty sequence of positive (rows, cols), got {pyramid!r}")
    return grids


def n_cells(grids):
    """Number of blocks per level: the cells of all grids.

    Examples
    --------
    >>> n_cells(((1, 1), (2, 2), (3, 1)))  # the thesis' pyramid
    8
    """
    return sum(r * c for r, c in grids)


def _centers(geometry, grids):
    if not hasattr(geometry, "centers") or not hasattr(geometry, "image_shape"):
        raise ValueError(
            f"the spatial pyramid {grids} needs descriptor geometry: pass DescriptorSets (DenseSIFT or "
            "DescriptorPCA output), or use pyramid=((1, 1),)"
        )
    return np.asarray(geometry.centers)


def descriptor_cells(geometry, n, grids):
    """Block index inside a level (grid offset included) of ``n`` descriptors per grid: ``(n, n_grids)``."""
    if grids == ((1, 1),):
        return np.zeros((n, 1), np.intp)
    centers = _centers(geometry, grids)
    first = np.cumsum([0] + [r * c for r, c in grids])[:-1]
    return np.stack([f + grid_cells(centers, geometry.image_shape, g) for f, g in zip(first, grids)], axis=1)


def pyramid_atoms(geometry, n, grids):
    """Atoms of ``n`` descriptors: ``(atom, membership)``.

    ``atom`` (n,) is each descriptor's atom; ``membership`` (n_cells, n_atoms)
    float64 is 1 where the atom lies in the cell, so ``membership @ S`` turns
    per-atom sums ``S`` into per-cell sums and ``membership.T @ s`` gives each
    atom the sum of its cells' values.
    """
    if grids == ((1, 1),):
        return np.zeros(n, np.intp), np.ones((1, 1))
    cells = descriptor_cells(geometry, n, grids)
    total = n_cells(grids)
    code = np.zeros(n, np.int64)
    for g in range(cells.shape[1]):  # one integer per combination of cells
        code = code * total + cells[:, g]
    uniq, atom = np.unique(code, return_inverse=True)
    membership = np.zeros((total, len(uniq)))
    for g in reversed(range(cells.shape[1])):
        membership[uniq % total, np.arange(len(uniq))] = 1.0
        uniq = uniq // total
    return atom.reshape(-1).astype(np.intp), membership


def block_layout(n_levels, grids, block_size):
    """One dict per block (``level``, ``grid``, ``cell``, ``start``, ``stop``), in output order.

    ``start:stop`` are the block's feature dimensions (a fitted
    :class:`bowlrp.FisherVectorEncoder` keeps its layout in
    ``feature_layout_``).

    Examples
    --------
    >>> layout = block_layout(1, ((1, 1), (2, 2)), 6)
    >>> len(layout), layout[1]
    (5, {'level': 0, 'grid': (2, 2), 'cell': 0, 'start': 6, 'stop': 12})
    """
    layout, start = [], 0
    for s in range(n_levels):
        for r, c in grids:
            for cell in range(r * c):
                layout.append({"level": s, "grid": (r, c), "cell": cell, "start": start, "stop": start + block_size})
                start += block_size
    return layout
