"""Rendering and placing the shapes of the toy data: regular polygons, round l_p balls, the background.

Every shape is rasterised by :func:`_render_shape` (anti-aliased coverage and
a hard mask), which can be called on its own: the tests check polygon areas
against the analytic value.  :func:`_place_shapes` scatters shapes without
overlap by rejection sampling, :func:`_background` draws the faint,
edge-free background pattern (thesis Sec. 2.4.3), and :func:`_draw_context`
the optional label-correlated stripes around the shapes.
"""

from dataclasses import dataclass

import numpy as np

#: Minimal free space (pixels) between the bounding circles of two shapes.
_GAP = 3.0
#: Range of the grey value (0 = black, 1 = white) a shape is filled with.
_INK_RANGE = (0.1, 0.45)
#: Mean grey value of the background.
_BACKGROUND_LEVEL = 0.8
#: Number of plane waves summed into the background pattern.
_N_WAVES = 4
#: Candidate centres drawn per batch and batches tried per shape.
_BATCH = 64
_MAX_BATCHES = 20
#: Densest packing of equal discs in the plane; beyond it placement is impossible.
_MAX_PACKING = np.pi / (2.0 * np.sqrt(3.0))


@dataclass(frozen=True)
class _Shape:
    """One shape of a large image, in pixel-centre coordinates (row, col).

    ``kind`` is ``"polygon"`` (regular, ``n_vertices`` corners, circumradius
    ``radius``, first vertex at angle ``angle``) or ``"round"`` (the
    :math:`\\ell_p` ball ``|u|^p + |v|^p <= radius^p`` in a frame rotated by
    ``angle``).  ``intensity`` is the fill grey value in [0, 1].
    """

    kind: str
    cy: float
    cx: float
    radius: float
    angle: float
    n_vertices: int = 0
    p: float = 2.0
    intensity: float = 0.3


def _extent(kind, radius, p):
    """Radius of the smallest centred disc containing the shape.

    A polygon lies within its circumradius.  An :math:`\\ell_p` ball with
    ``p >= 2`` reaches out to ``radius * 2**(1/2 - 1/p)`` along its diagonals
    (up to ``sqrt(2) * radius``); for ``1 <= p <= 2`` it lies within ``radius``.
    """
    if kind == "polygon":
        return float(radius)
    return float(radius) * max(1.0, 2.0 ** (0.5 - 1.0 / p))


def _render_shape(shape, image_shape):
    """Rasterise one shape onto (a window of) an image of ``image_shape``.

    Returns ``(rows, cols, mask, coverage)``: ``rows`` and ``cols`` are slices
    of the image window holding the shape, ``mask`` (bool) marks the pixels
    whose centre lies inside the shape, and ``coverage`` (float32 in [0, 1]) is
    the anti-aliased ink coverage, ``clip(0.5 - d, 0, 1)`` for an approximate
    signed distance ``d`` (pixels) from the pixel centre to the shape outline,
    so ``coverage >= 0.5`` exactly where ``mask`` holds.
    """
    H, W = image_shape
    reach = _extent(shape.kind, shape.radius, shape.p) + 2.0
    r0 = max(int(np.floor(shape.cy - reach)), 0)
    r1 = min(int(np.ceil(shape.cy + reach)) + 1, H)
    c0 = max(int(np.floor(shape.cx - reach)), 0)
    c1 = min(int(np.ceil(shape.cx + reach)) + 1, W)
    dy = (np.arange(r0, r1, dtype=np.float64) - shape.cy)[:, None]
    dx = (np.arange(c0, c1, dtype=np.float64) - shape.cx)[None, :]

    if shape.kind == "polygon":
        n = int(shape.n_vertices)
        # Outward edge normals lie halfway between consecutive vertices; the
        # polygon is the intersection of the half-planes  <x, n_k> <= inradius.
        normal_angles = shape.angle + np.pi / n + 2.0 * np.pi * np.arange(n) / n
        inradius = shape.radius * np.cos(np.pi / n)
        proj = dy[None] * np.sin(normal_angles)[:, None, None] + dx[None] * np.cos(
            normal_angles
        )[:, None, None]
        dist = proj.max(axis=0) - inradius  # exact inside, close outside
        mask = dist <= 0.0
    elif shape.kind == "round":
        p = float(shape.p)
        cos, sin = np.cos(shape.angle), np.sin(shape.angle)
        u = np.abs(cos * dx + sin * dy)
        v = np.abs(-sin * dx + cos * dy)
        norm = (u**p + v**p) ** (1.0 / p)
        # First-order distance: (||x||_p - r) / |grad ||x||_p|.
        with np.errstate(divide="ignore", invalid="ignore"):
            grad = np.sqrt(u ** (2 * p - 2) + v ** (2 * p - 2)) / norm ** (p - 1)
        grad = np.where(np.isfinite(grad) & (grad > 0), grad, 1.0)
        dist = (norm - shape.radius) / grad
        mask = norm <= shape.radius
    else:  # pragma: no cover - internal misuse
        raise ValueError(f"unknown shape kind {shape.kind!r}")
    coverage = np.clip(0.5 - dist, 0.0, 1.0).astype(np.float32)
    return slice(r0, r1), slice(c0, c1), mask, coverage


def _background(rng, size, tile_size, amplitude, noise_std):
    """Light background: a few faint low-frequency plane waves plus pixel noise."""
    idx = np.arange(size, dtype=np.float32)
    img = np.full((size, size), _BACKGROUND_LEVEL, dtype=np.float32)
    if amplitude > 0:
        weights = rng.uniform(0.5, 1.0, _N_WAVES)
        weights *= amplitude / weights.sum()  # |pattern| <= amplitude
        theta = rng.uniform(0.0, np.pi, _N_WAVES)
        k = 2.0 * np.pi / (rng.uniform(0.5, 2.0, _N_WAVES) * tile_size)
        phase = rng.uniform(0.0, 2.0 * np.pi, _N_WAVES)
        a = (k * np.sin(theta))[None, :] * idx[:, None] + phase  # (size, K), rows
        b = (k * np.cos(theta))[None, :] * idx[:, None]  # (size, K), columns
        # sum_k w_k sin(a_k + b_k) = [w sin a, w cos a] @ [cos b; sin b]: one matmul
        left = np.concatenate([weights * np.sin(a), weights * np.cos(a)], axis=1)
        right = np.concatenate([np.cos(b), np.sin(b)], axis=1).T
        img += (left @ right).astype(np.float32)
    if noise_std > 0:
        img += np.float32(noise_std) * rng.standard_normal((size, size), dtype=np.float32)
    return img


def _place_shapes(rng, size, n_shapes, shape_radius, lp_range, density):
    """Draw shapes and place them by rejection sampling, without overlap."""
    kinds = np.where(rng.uniform(size=n_shapes) < 0.5, "polygon", "round")
    radii = rng.uniform(shape_radius[0], shape_radius[1], n_shapes)
    ps = rng.uniform(lp_range[0], lp_range[1], n_shapes)
    extents = np.array([_extent(k, r, p) for k, r, p in zip(kinds, radii, ps)])
    needed = np.pi * ((extents + _GAP / 2.0) ** 2).sum()
    if needed > _MAX_PACKING * size**2:
        raise ValueError(
            f"density={density!r} asks for {n_shapes} non-overlapping shapes in a "
            f"{size}x{size} image, more than can possibly fit; lower `density` or "
            "`shape_radius`, or raise `image_size`."
        )
    centres = np.empty((n_shapes, 2))
    shapes = []
    for i in range(n_shapes):
        R = extents[i]
        lo, hi = R, size - 1.0 - R
        for _ in range(_MAX_BATCHES):
            cand = rng.uniform(lo, hi, (_BATCH, 2))
            if i:
                d2 = ((cand[:, None, :] - centres[None, :i, :]) ** 2).sum(-1)
                ok = (d2 > (R + extents[None, :i] + _GAP) ** 2).all(axis=1)
            else:
                ok = np.ones(_BATCH, dtype=bool)
            if ok.any():
                centres[i] = cand[np.argmax(ok)]
                break
        else:
            raise ValueError(
                f"could not place shape {i + 1} of {n_shapes} without overlap in a "
                f"{size}x{size} image after {_BATCH * _MAX_BATCHES} attempts; "
                f"density={density!r} is too high: lower `density` or `shape_radius`."
            )
        kind = str(kinds[i])
        shapes.append(
            _Shape(
                kind=kind,
                cy=float(centres[i, 0]),
                cx=float(centres[i, 1]),
                radius=float(radii[i]),
                angle=float(rng.uniform(0.0, 2.0 * np.pi)),
                n_vertices=int(rng.integers(4, 8)) if kind == "polygon" else 0,
                p=float(ps[i]),
                intensity=float(rng.uniform(*_INK_RANGE)),
            )
        )
    return shapes


#: Period (pixels) and half-width of the context texture's stripes around a shape.
_CONTEXT_PERIOD = 4.0
#: Outer radius of the textured ring around a shape, as a multiple of its extent.
_CONTEXT_REACH = 1.6


def _draw_context(rng, img, shapes, context, amplitude):
    """Paint stripes around the shapes, more often around polygons (the label's context).

    Each polygon gets a textured disc of radius ``1.6 * extent`` with
    probability ``(1 + context) / 2``, each round shape with probability
    ``(1 - context) / 2``; shapes are drawn over it afterwards, so the texture
    shows only around them.  Draws from ``rng`` only when called.
    """
    size = img.shape[0]
    for s in shapes:
        p = (1.0 + context) / 2.0 if s.kind == "polygon" else (1.0 - context) / 2.0
        use, theta = rng.uniform() < p, rng.uniform(0.0, np.pi)
        if not use:
            continue
        reach = _CONTEXT_REACH * _extent(s.kind, s.radius, s.p)
        r0, r1 = max(int(s.cy - reach), 0), min(int(np.ceil(s.cy + reach)) + 1, size)
        c0, c1 = max(int(s.cx - reach), 0), min(int(np.ceil(s.cx + reach)) + 1, size)
        dy = (np.arange(r0, r1) - s.cy)[:, None]
        dx = (np.arange(c0, c1) - s.cx)[None, :]
        inside = dy**2 + dx**2 <= reach**2
        stripes = np.sin(2.0 * np.pi * (dx * np.cos(theta) + dy * np.sin(theta)) / _CONTEXT_PERIOD)
        img[r0:r1, c0:c1] += (amplitude * stripes * inside).astype(np.float32)
